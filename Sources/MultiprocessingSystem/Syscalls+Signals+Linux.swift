#if os(Linux)
// The signal calls of the mpcp command line (Interrupts.swift): signal handling is the CLI's
// concern, not the engine's, which is cancelled through `CopyJob.cancel()`.
public import Glibc

/// Blocks `signals` in the calling thread; threads it creates afterwards inherit the mask.
@inlinable package func system_blockSignals(_ signals: [CInt]) {
    var set = sigset_t()
    sigemptyset(&set)
    for s in signals { sigaddset(&set, s) }
    _ = pthread_sigmask(SIG_BLOCK, &set, nil)
}

/// `sigwait(3)` for one of `signals`, which must be blocked. Returns the signal.
@inlinable package func system_sigwait(_ signals: [CInt]) -> CInt {
    var set = sigset_t()
    sigemptyset(&set)
    for s in signals { sigaddset(&set, s) }
    var received: CInt = 0
    while sigwait(&set, &received) != 0 {}
    return received
}

@inlinable package func system_raise(_ signal: CInt) { _ = Glibc.kill(Glibc.getpid(), signal) }

/// Restores the default action of `signal` and unblocks it (to die by it after cleaning up).
@inlinable package func system_defaultAndUnblock(_ signal: CInt) {
    Glibc.signal(signal, SIG_DFL)
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, signal)
    _ = pthread_sigmask(SIG_UNBLOCK, &set, nil)
}
#endif
