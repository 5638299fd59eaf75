import MultiprocessingSystem

/// A flag that one thread sets once and other threads wait for: a private futex word.
///
/// Used where a blocking wait must not hold any lock (a thread asking the monitor to start a child,
/// a thread joining a child). The word lives in its own allocation so that its address is stable.
internal final class OneShot: @unchecked Sendable {
    // The word is only touched through atomic C helpers and the futex syscall.
    private let word: UnsafeMutablePointer<UInt32>

    init() {
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
    }

    deinit { word.deallocate() }

    var isSet: Bool { system_atomicLoad(word) != 0 }

    func set() {
        system_atomicStore(word, 1)
        system_futexWake(word, count: Int32.max, shared: false)
    }

    /// Waits until set or until the deadline passes. Returns whether it was set.
    func wait(until deadline: Deadline) -> Bool {
        while system_atomicLoad(word) == 0 {
            let left = deadline.remainingNanoseconds
            if left == 0 { return false }
            // EINTR and spurious wake-ups come back here and re-check; other errors cannot happen
            // for a private, aligned, mapped word, so they are treated like a spurious wake-up.
            _ = try? system_futexWait(word, expected: 0, timeoutNanoseconds: left, shared: false)
        }
        return true
    }
}
