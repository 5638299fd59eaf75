import Glibc
import CMultiprocessing
import SystemPackage
import MultiprocessingSystem

/// A robust lock in shared memory, shared by threads and processes, with waits that time out and
/// that a cancellation interrupts. ``Lock``, ``RLock``, ``Condition``, ``Barrier``, ``SharedValue``
/// and ``SharedArray`` are built on it.
///
/// Design (measured, see docs/benchmarks.md): a futex word holding the owner's TID, registered in
/// the kernel's robust-futex list of the owning thread. That list is the only race-free way to learn
/// that a thread or process died holding a lock: when the thread dies the kernel sets
/// `FUTEX_OWNER_DIED` in the word and wakes a waiter, and the next `trylock` takes the lock and
/// reports `EOWNERDEAD`. The list is glibc's own per-thread list, so the shim (`cmp_robust_lock`)
/// follows glibc's protocol for it (`list_op_pending`, the `{prev, next}` node where
/// `pthread_mutex_t` has it); the lock and unlock paths are a compare-and-swap, an exchange and a
/// few stores: no system call, and about half the cost of a robust `pthread_mutex_t`, whose
/// general-purpose paths we first used (14 ns per pair against 6.3 ns now, `Mutex` 4.8 ns).
///
/// Waiting: every wait here must end on cancellation, so it is ours. A waiter sets `FUTEX_WAITERS`
/// in the word, sleeps on it (and on its cancellation word, with `futex_waitv`), and tries again when
/// woken; unlock wakes one sleeper whenever `FUTEX_WAITERS` is set. A thread that got the lock after
/// sleeping sets `FUTEX_WAITERS` again, because other sleepers may remain; a waiter that gives up
/// (timeout, cancellation) wakes one other sleeper, in case the wake-up it consumed was the last.
/// Before its first sleep a waiter spins briefly, as glibc's adaptive mutexes do: a lock held for a
/// few nanoseconds is usually free again before a sleep could even start.
internal struct RobustMutex: @unchecked Sendable {
    internal let mutex: UnsafeMutablePointer<cmp_robust_lock>

    internal static var size: Int { MemoryLayout<cmp_robust_lock>.size }

    /// Spins before the first sleep (each with a pause instruction).
    private static let spinLimit = 20

    @inline(__always)
    internal init(_ raw: UnsafeMutableRawPointer) {
        mutex = raw.assumingMemoryBound(to: cmp_robust_lock.self)
    }

    internal func initialize(recursive: Bool) throws(MultiprocessingError) {
        do { try system_robustLockInit(mutex, recursive: recursive) } catch {
            if error.rawValue == ENOSYS {
                throw MultiprocessingError(.unsupported, "This thread has no kernel robust-futex list that a shared lock can use (get_robust_list failed, or glibc's robust-list layout is not the expected one).", errno: error)
            }
            throw .system("initialising a robust lock", error)
        }
    }

    /// The futex word: owner TID | FUTEX_WAITERS | FUTEX_OWNER_DIED (a kernel ABI).
    internal var word: SharedWord { SharedWord(UnsafeMutableRawPointer(mutex)) }

    /// How many times the owner holds it (meaningful to the owner only).
    internal var count: UInt32 { UnsafeMutableRawPointer(mutex).load(fromByteOffset: 4, as: UInt32.self) }

    /// What a successful acquisition found.
    internal enum Acquired {
        case normally
        /// The previous owner died holding the mutex; it is consistent again and held by the caller.
        case afterOwnerDied
    }

    /// Takes the mutex without waiting: nil when another thread holds it.
    @inline(__always)
    internal func tryLock(_ operation: StaticString) throws(MultiprocessingError) -> Acquired? {
        let r = system_robustTryLock(mutex)
        if r == 0 { return .normally }
        return try handle(r, operation, afterSleeping: false)
    }

    /// Takes the mutex without waiting, after a sleep that may have consumed a wake-up.
    internal func tryLockAfterSleeping(_ operation: StaticString) throws(MultiprocessingError) -> Acquired? {
        try handle(system_robustTryLock(mutex), operation, afterSleeping: true)
    }

    /// Spins briefly, then takes the mutex if it came free: nil when it stayed held.
    internal func tryLockAfterSpinning(_ operation: StaticString) throws(MultiprocessingError) -> Acquired? {
        try handle(spinBriefly(), operation, afterSleeping: false)
    }

    /// Takes the mutex, waiting as the context allows.
    ///
    /// The context is built only when the mutex is busy (it reads the clock); a caller with a
    /// timeout validates it first with ``Deadline/validate(_:_:)``, so that a bad timeout is refused
    /// on the fast path too.
    @inline(__always)
    internal func lock(_ context: @autoclosure () throws(MultiprocessingError) -> WaitContext) throws(MultiprocessingError) -> Acquired {
        let r = system_robustTryLock(mutex)
        if r == 0 { return .normally }
        return try lockSlow(r, context())
    }

    @inline(never)
    internal func lockSlow(_ first: CInt, _ context: WaitContext) throws(MultiprocessingError) -> Acquired {
        var r = first == EBUSY ? spinBriefly() : first
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
            r = system_robustTryLock(mutex)
        }
    }

    /// Spins briefly: a lock held for nanoseconds is usually free before a sleep could start.
    /// Returns the last trylock result (EBUSY when the lock stayed held).
    internal func spinBriefly() -> CInt {
        for _ in 0..<RobustMutex.spinLimit {
            system_cpuRelax()
            if word.load() & system_futexTIDMask == 0 {
                let r = system_robustTryLock(mutex)
                if r != EBUSY { return r }
            }
        }
        return EBUSY
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
            if afterSleeping { word.or(system_futexWaitersBit) }
            return .afterOwnerDied
        case EDEADLK:
            throw MultiprocessingError(.misuse, "\(operation): this thread already holds the lock, so waiting would deadlock. A shared lock is owned by a thread, not by a Swift task: either this code takes the lock again while holding it (use an RLock for that), or another task that ran on this same thread still holds it, because it took the lock and then suspended at an `await` (use withLock, whose body cannot await).")
        case ENOSYS:
            throw MultiprocessingError(.unsupported, "\(operation): this thread has no kernel robust-futex list that a shared lock can use.")
        default:
            throw MultiprocessingError.system("\(operation): robust trylock", Errno(rawValue: r))
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
    /// thread afterwards, because a robust lock belongs to the thread that locks it.
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
        let r = system_robustUnlock(mutex)
        if r != 0 { throw unlockError(r, operation) }
    }

    @inline(never)
    private func unlockError(_ r: CInt, _ operation: StaticString) -> MultiprocessingError {
        if r == EPERM {
            return MultiprocessingError(.misuse, "\(operation): the calling thread does not hold this lock. A shared lock is owned by the thread that acquired it (it is a robust lock, so the kernel can tell when its owner dies) and only that thread can release it. In async code this happens when a task takes the lock, suspends at an `await` and resumes on another thread: hold a lock only inside withLock, whose body cannot await.")
        }
        return MultiprocessingError.system("\(operation): robust unlock", Errno(rawValue: r))
    }

    /// Runs `body` holding the mutex, for the accessors that cannot throw (``SharedValue/value``,
    /// ``SharedArray``'s subscript): waits without timeout or cancellation and ignores a dead
    /// previous owner (a plain read or write needs no repair). The mutex of those objects is
    /// recursive, so this also works inside their `lock.withLock`. It releases only what it took:
    /// if the lock cannot be taken at all (no robust list: not reachable once the object exists),
    /// `body` runs without it rather than releasing a level someone else holds.
    @inline(__always)
    internal func withInternalLock<R>(_ operation: StaticString, _ body: () -> R) -> R {
        let locked = (try? lock(.uncancellable(operation))) != nil
        defer { if locked { _ = try? unlock(operation) } }
        return body()
    }

    /// The TID of the owning thread, or 0.
    internal var ownerTID: UInt32 { word.load() & system_futexTIDMask }
}
