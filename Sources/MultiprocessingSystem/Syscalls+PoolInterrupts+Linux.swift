#if os(Linux)
// The process pool's SIGINT handler (Sources/Multiprocessing/Pool/PoolInterrupts.swift); the handler
// itself is C (shim_pool_linux.c), because a signal handler must run no Swift code.
public import CMultiprocessing

/// Installs the pool's SIGINT handler (or counts one more user). True when it is in place; false
/// when SIGINT is ignored (and left so) or the handler could not be installed.
@inlinable package func system_poolInterruptAcquire(_ eventfd: Int32) -> Bool { cmp_pool_sigint_acquire(eventfd) == 1 }

/// One user fewer; the last puts the previous SIGINT disposition back.
@inlinable package func system_poolInterruptRelease() { cmp_pool_sigint_release() }

/// A SIGINT no pool call took goes where it would have gone: with the default disposition, the
/// process is killed by it. True if it was raised again.
@inlinable package func system_poolInterruptPassOn() -> Bool { cmp_pool_sigint_pass_on() == 1 }
#endif
