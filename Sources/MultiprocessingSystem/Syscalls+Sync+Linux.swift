#if os(Linux)
// The libc calls of Sync/ and Threads/: the robust process-shared mutex, futex waits that a
// cancellation can interrupt, pthreads, thread-specific keys and atexit.
public import Glibc
public import CMultiprocessing
public import SystemPackage

// MARK: robust lock

/// Initialises a robust lock in place (see `cmp_robust_lock` in the shim).
@inlinable package func system_robustLockInit(_ lock: UnsafeMutablePointer<cmp_robust_lock>, recursive: Bool) throws(Errno) {
    _ = try negatedErrno { cmp_robust_lock_init(lock, recursive) }
}

/// Takes a robust lock without waiting: 0, EBUSY, EOWNERDEAD, EDEADLK or ENOSYS.
@inline(__always)
@inlinable package func system_robustTryLock(_ lock: UnsafeMutablePointer<cmp_robust_lock>) -> CInt {
    cmp_robust_trylock(lock)
}

/// Releases one level of a robust lock: 0, or EPERM when the calling thread does not hold it.
@inline(__always)
@inlinable package func system_robustUnlock(_ lock: UnsafeMutablePointer<cmp_robust_lock>) -> CInt {
    cmp_robust_unlock(lock)
}

/// The calling thread's TID, cached per thread by the shim.
@inline(__always)
@inlinable package func system_robustTID() -> UInt32 { cmp_robust_tid() }

/// A pause instruction for a short spin before sleeping.
@inline(__always)
@inlinable package func system_cpuRelax() { cmp_cpu_relax() }

@usableFromInline package let system_futexWaitersBit: UInt32 = cmp_futex_waiters_bit()
@usableFromInline package let system_futexOwnerDiedBit: UInt32 = cmp_futex_owner_died_bit()
@usableFromInline package let system_futexTIDMask: UInt32 = cmp_futex_tid_mask()

// MARK: futex wait with cancellation

/// What ended a futex wait.
@usableFromInline package enum FutexWaitResult {
    /// Woken, the value differed, the cancellation word was set, or a signal arrived: look again.
    case woken
    /// The absolute deadline passed.
    case timedOut
}

/// Waits while `word` holds `expected` and `cancelWord` holds 0 (`futex_waitv(2)`), until an absolute
/// CLOCK_MONOTONIC deadline (nil: forever).
@inlinable package func system_futexWaitCancellable(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, shared: Bool,
                                          cancelWord: UnsafeMutablePointer<UInt32>, deadline: Int64?) throws(Errno) -> FutexWaitResult {
    let r = cmp_futex_wait2(word, expected, shared, cancelWord, deadline ?? -1)
    if r == 0 || r == -EINTR { return .woken }
    if r == -ETIMEDOUT { return .timedOut }
    throw Errno(rawValue: -r)
}

// MARK: threads

@inlinable package func system_pthreadSelf() -> pthread_t { pthread_self() }

/// The main thread's pthread, recorded when the library was loaded.
@inlinable package func system_mainThread() -> pthread_t { cmp_main_thread() }

/// `pthread_atfork(3)` with only a handler that runs in the child.
@inlinable package func system_atfork(child: @convention(c) () -> Void) {
    _ = pthread_atfork(nil, nil, child)
}

/// The (device, inode) of an open descriptor: tells two descriptors of one memfd apart from others.
@inlinable package func system_fileIdentity(_ fd: CInt) throws(Errno) -> (device: UInt64, inode: UInt64, size: Int) {
    var out = cmp_stat_t()
    _ = try negatedErrno { cmp_statx(fd, "", true, &out) }
    return ((out.dev_major << 32) | out.dev_minor, out.ino, Int(out.size))
}

// MARK: thread-specific keys

@inlinable package func system_keyCreate(destructor: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?) throws(Errno) -> pthread_key_t {
    var key = pthread_key_t()
    let r = pthread_key_create(&key, destructor)
    if r != 0 { throw Errno(rawValue: r) }
    return key
}

@inlinable package func system_keyDelete(_ key: pthread_key_t) { _ = pthread_key_delete(key) }

@inline(__always)
@inlinable package func system_getSpecific(_ key: pthread_key_t) -> UnsafeMutableRawPointer? { pthread_getspecific(key) }

@inline(__always)
@inlinable package func system_setSpecific(_ key: pthread_key_t, _ value: UnsafeMutableRawPointer?) {
    _ = pthread_setspecific(key, value)
}
#endif
