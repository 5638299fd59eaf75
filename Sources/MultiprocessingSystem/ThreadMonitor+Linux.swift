#if os(Linux)
// The package's one in-process mutex and condition: the manager's locks, the blocking bridge's
// list of helpers, MPCopy's scheduler and its progress ticker.
import Glibc

/// A process-private pthread mutex with a condition variable whose timed waits run on
/// `CLOCK_MONOTONIC`, so that a change of the wall clock neither stretches nor cuts a wait short.
///
/// Why not `Synchronization.Mutex`: on Linux that is a priority-inheritance futex, which hands the
/// lock to a sleeping waiter on every contended release. A plain mutex lets a running thread take a
/// just-released lock; with more busy threads than cores, hand-off convoys cut a manager server's
/// throughput by five. The corresponding C types are `pthread_mutex_t` and `pthread_cond_t`.
package final class ThreadMonitor: @unchecked Sendable {
    // @unchecked: the pthread mutex is the synchronization. Heap-allocated: pthread objects must
    // not move.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    /// A new, unlocked monitor.
    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Takes the lock.
    package func lock() { pthread_mutex_lock(mutex) }

    /// Releases the lock.
    package func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` with the lock held.
    package func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits for a signal with the lock held; returns with it held again. May return spuriously.
    package func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a signal, up to `nanoseconds` on the monotonic clock, with the lock held; returns
    /// with it held again. May return early (a signal, or spuriously).
    /// - Returns: false when the time ran out.
    @discardableResult
    package func wait(nanoseconds: Int64) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = Int64(now.tv_nsec) + max(nanoseconds, 0)
        var until = timespec(tv_sec: now.tv_sec + Int(total / 1_000_000_000), tv_nsec: Int(total % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &until) != ETIMEDOUT
    }

    /// Wakes one waiter.
    package func signal() { pthread_cond_signal(condition) }

    /// Wakes every waiter.
    package func broadcast() { pthread_cond_broadcast(condition) }
}
#endif
