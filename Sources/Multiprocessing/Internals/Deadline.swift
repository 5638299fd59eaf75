/// A point on the monotonic clock by which a blocking call must return.
///
/// Every blocking call takes `timeout: Duration?`; `nil` waits forever. A deadline turns that into
/// the time left, so that a wait that wakes spuriously and waits again never extends the total.
internal struct Deadline: Sendable {
    /// Nanoseconds on CLOCK_MONOTONIC, or nil for no deadline.
    internal let nanoseconds: Int64?

    internal init(timeout: Duration?) {
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            let ns = max(0, seconds) &* 1_000_000_000 &+ (seconds < 0 ? 0 : attoseconds / 1_000_000_000)
            nanoseconds = system_clockMonotonicNanoseconds() &+ ns
        } else {
            nanoseconds = nil
        }
    }

    internal static var never: Deadline { Deadline(timeout: nil) }

    /// The nanoseconds left: nil for forever, 0 when the deadline has passed.
    internal var remainingNanoseconds: Int64? {
        guard let nanoseconds else { return nil }
        return max(0, nanoseconds - system_clockMonotonicNanoseconds())
    }

    internal var hasPassed: Bool {
        guard let nanoseconds else { return false }
        return system_clockMonotonicNanoseconds() >= nanoseconds
    }

    /// Milliseconds left for poll(2): -1 for forever, rounded up so that a wait never ends early.
    internal var pollMilliseconds: CInt {
        guard let left = remainingNanoseconds else { return -1 }
        return CInt(clamping: (left + 999_999) / 1_000_000)
    }
}
