import Glibc
import SystemPackage

/// A robust, process-shared glibc mutex that lives in shared memory, with waits that time out and
/// that a cancellation interrupts.
///
/// Why a robust pthread mutex and not our own futex word: the kernel's robust-futex list is the only
/// race-free way to learn that a thread or process died holding a lock. glibc registers each robust
/// mutex a thread holds in that list; when the thread dies the kernel sets `FUTEX_OWNER_DIED` in the
/// mutex's word and wakes a waiter, and the next `trylock` returns `EOWNERDEAD`. The uncontended path
/// is glibc's `trylock` and `unlock`, with no system call.
///
/// Why we do not call `pthread_mutex_lock`/`clocklock` to wait: those cannot be interrupted, and every
/// wait here must end on cancellation. So the slow path does what glibc's own slow path does, on the
/// same word: set `FUTEX_WAITERS` in the mutex's futex word (`__data.__lock`, the owner's TID plus
/// the robust bits, a kernel ABI), sleep on that word (and on the waiter's cancellation word, with
/// `futex_waitv`), and retry `trylock` when woken. glibc's unlock wakes one sleeper whenever
/// `FUTEX_WAITERS` is set. A thread that got the lock after sleeping sets `FUTEX_WAITERS` again,
/// because `trylock` stores a bare TID and other sleepers may remain; a waiter that gives up
/// (timeout, cancellation) wakes one other sleeper, in case the wake-up it consumed was the last one.
internal struct RobustMutex: @unchecked Sendable {
    internal let mutex: UnsafeMutablePointer<pthread_mutex_t>

    internal static var size: Int { MemoryLayout<pthread_mutex_t>.size }

    @inline(__always)
    internal init(_ raw: UnsafeMutableRawPointer) {
        mutex = raw.assumingMemoryBound(to: pthread_mutex_t.self)
    }

    internal func initialize(recursive: Bool) throws(MultiprocessingError) {
        do { try system_robustMutexInit(mutex, recursive: recursive) } catch {
            throw .system("pthread_mutex_init (robust, process-shared)", error)
        }
    }

    internal var word: SharedWord { SharedWord(system_mutexLockWord(mutex)) }

    /// What a successful acquisition found.
    internal enum Acquired {
        case normally
        /// The previous owner died holding the mutex; it is consistent again and held by the caller.
        case afterOwnerDied
    }

    /// Takes the mutex without waiting: nil when another thread holds it.
    @inline(__always)
    internal func tryLock(_ operation: StaticString) throws(MultiprocessingError) -> Acquired? {
        let r = system_mutexTryLock(mutex)
        if r == 0 { return .normally }
        return try handle(r, operation, afterSleeping: false)
    }

    /// Takes the mutex without waiting, after a sleep that may have consumed a wake-up.
    internal func tryLockAfterSleeping(_ operation: StaticString) throws(MultiprocessingError) -> Acquired? {
        try handle(system_mutexTryLock(mutex), operation, afterSleeping: true)
    }

    /// Takes the mutex, waiting as the context allows.
    @inline(__always)
    internal func lock(_ context: @autoclosure () -> WaitContext) throws(MultiprocessingError) -> Acquired {
        let r = system_mutexTryLock(mutex)
        if r == 0 { return .normally }
        return try lockSlow(r, context())
    }

    @inline(never)
    internal func lockSlow(_ first: CInt, _ context: WaitContext) throws(MultiprocessingError) -> Acquired {
        var r = first
        var slept = false
        while true {
            if let acquired = try handle(r, context.operation, afterSleeping: slept) { return acquired }
            do {
                try sleepWhileHeld(context)
            } catch {
                // Any wake-up this waiter consumed goes to another sleeper.
                word.wake(1)
                throw error
            }
            slept = true
            r = system_mutexTryLock(mutex)
        }
    }

    /// Turns a trylock result into an acquisition, nil (busy), or an error.
    @inline(__always)
    private func handle(_ r: CInt, _ operation: StaticString, afterSleeping: Bool) throws(MultiprocessingError) -> Acquired? {
        switch r {
        case 0:
            if afterSleeping { word.or(system_futexWaitersBit) }
            return .normally
        case EBUSY:
            return nil
        case EOWNERDEAD:
            _ = system_mutexConsistent(mutex)
            if afterSleeping { word.or(system_futexWaitersBit) }
            return .afterOwnerDied
        case EDEADLK:
            throw MultiprocessingError(.misuse, "\(operation): this thread already holds the lock, so waiting would deadlock. Use an RLock to take a lock again from its owner.")
        case ENOTRECOVERABLE:
            throw MultiprocessingError(.ownerDied, "\(operation): the lock is not recoverable: its owner died and the next owner released it without marking it consistent.")
        default:
            throw MultiprocessingError.system("\(operation): pthread_mutex_trylock", Errno(rawValue: r))
        }
    }

    /// Sleeps once while another thread holds the mutex; returns when it may be free.
    private func sleepWhileHeld(_ context: WaitContext) throws(MultiprocessingError) {
        let word = self.word
        var value = word.load()
        // Free, or its owner died: trylock again at once.
        if value & system_futexTIDMask == 0 { try context.check(); return }
        if value & system_futexWaitersBit == 0 {
            guard word.compareExchange(&value, value | system_futexWaitersBit) else { try context.check(); return }
            value |= system_futexWaitersBit
        }
        try context.wait(on: word, expected: value)
    }

    /// Waits until the mutex looks free without taking it: the async twins take it on the task's own
    /// thread afterwards, because a pthread mutex belongs to the thread that locks it.
    internal func waitUntilFree(_ context: WaitContext) throws(MultiprocessingError) {
        do {
            try sleepWhileHeld(context)
        } catch {
            word.wake(1)
            throw error
        }
    }

    /// Releases the mutex. Throws `.misuse` when the calling thread does not hold it.
    @inline(__always)
    internal func unlock(_ operation: StaticString) throws(MultiprocessingError) {
        let r = system_mutexUnlock(mutex)
        if r != 0 { throw unlockError(r, operation) }
    }

    @inline(never)
    private func unlockError(_ r: CInt, _ operation: StaticString) -> MultiprocessingError {
        if r == EPERM {
            return MultiprocessingError(.misuse, "\(operation): the calling thread does not hold this lock. A shared lock is owned by the thread that acquired it (it is a robust mutex, so the kernel can tell when its owner dies) and only that thread can release it.")
        }
        return MultiprocessingError.system("\(operation): pthread_mutex_unlock", Errno(rawValue: r))
    }

    /// The TID of the owning thread, or 0.
    internal var ownerTID: UInt32 { word.load() & system_futexTIDMask }
}
