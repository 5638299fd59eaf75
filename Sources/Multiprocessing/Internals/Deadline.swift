import MultiprocessingSystem

/// A point on the monotonic clock by which a blocking call must return.
///
/// Every blocking call takes `timeout: Duration?`; `nil` waits forever. A deadline turns that into
/// the time left, so that a wait that wakes spuriously and waits again never extends the total.
///
/// This is the one place where a timeout is checked and turned into clock arithmetic:
/// - A negative timeout is refused with ``MultiprocessingError/Code/misuse`` (Python raises
///   `ValueError`), by every call that takes one, even when it would not have to wait.
/// - Any non-negative `Duration` is accepted, up to the largest (past `Int64.max` seconds). The clock counts
///   nanoseconds since boot in an `Int64`, so it ends about 292 years after boot; a deadline beyond
///   that end (Python's `threading.TIMEOUT_MAX`, about 9.2e9 s, is one) waits forever, which is at
///   least as long as asked. Arithmetic saturates: it never wraps into the past.
internal struct Deadline: Sendable {
    /// Nanoseconds on CLOCK_MONOTONIC, or nil for no deadline.
    internal let nanoseconds: Int64?

    /// A deadline `timeout` from now.
    /// - Parameters:
    ///   - timeout: How long; `nil` for no deadline.
    ///   - operation: Names the call in the error, e.g. "Lock.acquire".
    /// - Throws: `.misuse` when `timeout` is negative.
    internal init(timeout: Duration?, _ operation: StaticString) throws(MultiprocessingError) {
        guard let timeout else {
            nanoseconds = nil
            return
        }
        let length = try Deadline.nanoseconds(of: timeout, operation)
        let (end, overflow) = system_clockMonotonicNanoseconds().addingReportingOverflow(length)
        nanoseconds = overflow ? nil : end
    }

    private init(nanoseconds: Int64?) {
        self.nanoseconds = nanoseconds
    }

    /// No deadline.
    internal static var never: Deadline { Deadline(nanoseconds: nil) }

    /// A deadline that has passed already: a wait with it only checks.
    internal static var now: Deadline { Deadline(nanoseconds: system_clockMonotonicNanoseconds()) }

    /// Refuses a negative timeout without reading the clock: the check a fast path (a free lock, a
    /// raised event) makes before it returns without waiting.
    /// - Throws: `.misuse` when `timeout` is negative.
    @inline(__always)
    internal static func validate(_ timeout: Duration?, _ operation: StaticString) throws(MultiprocessingError) {
        if let timeout, timeout < .zero { throw negativeTimeout(timeout, operation) }
    }

    /// The length of a non-negative timeout in nanoseconds, rounded up (a wait never ends early) and
    /// saturated at `Int64.max`.
    internal static func nanoseconds(of timeout: Duration, _ operation: StaticString) throws(MultiprocessingError) -> Int64 {
        if timeout < .zero { throw negativeTimeout(timeout, operation) }
        // `Duration` holds 128-bit attoseconds, and `components` traps on one longer than Int64.max
        // seconds (`.seconds(Int64.max) * 2`): saturate before asking for them.
        if timeout >= .nanoseconds(Int64.max) { return Int64.max }
        let (seconds, attoseconds) = timeout.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return Int64.max }
        let fraction = (attoseconds + 999_999_999) / 1_000_000_000
        let (total, overflowAgain) = whole.addingReportingOverflow(fraction)
        return overflowAgain ? Int64.max : total
    }

    @inline(never)
    private static func negativeTimeout(_ timeout: Duration, _ operation: StaticString) -> MultiprocessingError {
        MultiprocessingError(.misuse, "\(operation): the timeout must not be negative (it was \(timeout)). Pass nil to wait for ever, or .zero to check without waiting.")
    }

    /// The nanoseconds left: nil for forever, 0 when the deadline has passed.
    internal var remainingNanoseconds: Int64? {
        guard let nanoseconds else { return nil }
        return max(0, nanoseconds - system_clockMonotonicNanoseconds())
    }

    /// The time left as a `Duration`: nil for forever, `.zero` when the deadline has passed.
    internal var remaining: Duration? {
        remainingNanoseconds.map { .nanoseconds($0) }
    }

    internal var hasPassed: Bool {
        guard let nanoseconds else { return false }
        return system_clockMonotonicNanoseconds() >= nanoseconds
    }

    /// Milliseconds left for poll(2): -1 for forever, rounded up so that a wait never ends early;
    /// a wait longer than poll can take (24 days) wakes early and the caller polls again.
    internal var pollMilliseconds: CInt {
        guard let left = remainingNanoseconds else { return -1 }
        return CInt(clamping: left / 1_000_000 + (left % 1_000_000 == 0 ? 0 : 1))
    }
}
