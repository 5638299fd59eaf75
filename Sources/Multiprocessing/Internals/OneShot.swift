import CMultiprocessing
import MultiprocessingSystem

/// A flag that one thread sets once and other threads wait for: a private futex word.
///
/// Used where a blocking wait must not hold any lock (a thread asking the monitor to start a child,
/// a thread joining a child, the caller of a pool task). The word lives in its own allocation so
/// that its address is stable.
///
/// The word is 0 (not set), 2 (not set, and a thread waits or is about to) or 1 (set). A waiter
/// turns 0 into 2 before it sleeps on the futex; `set` exchanges in 1 and makes the wake-up call
/// only when it took a 2 out, so a flag that nobody waits for is set without a system call (a pool
/// task's result, whose caller usually reads it later or is spinning for it).
internal final class OneShot: @unchecked Sendable {
    // The word is only touched through atomic C helpers and the futex syscall.
    private let word: UnsafeMutablePointer<UInt32>

    init() {
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
    }

    deinit { word.deallocate() }

    var isSet: Bool { system_atomicLoad(word) == 1 }

    func set() {
        if cmp_atomic_exchange32(word, 1) == 2 {
            system_futexWake(word, count: Int32.max, shared: false)
        }
    }

    /// Waits until set or until the deadline passes. Returns whether it was set.
    func wait(until deadline: Deadline) -> Bool {
        while true {
            var seen = system_atomicLoad(word)
            if seen == 1 { return true }
            let left = deadline.remainingNanoseconds
            if left == 0 { return false }
            // Say that a thread waits (0 -> 2); if the word moved meanwhile, look at it again.
            if seen == 0 && !cmp_atomic_cas32(word, &seen, 2) { continue }
            // EINTR, a set between the exchange above and this call (the word is no longer 2), and
            // spurious wake-ups come back here and re-check; other errors cannot happen for a
            // private, aligned, mapped word, so they are treated like a spurious wake-up.
            _ = try? system_futexWait(word, expected: 2, timeoutNanoseconds: left, shared: false)
        }
    }
}
