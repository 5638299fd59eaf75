#if os(Linux)
// The fork server's signal dispositions (Multiprocessing/Platforms/ForkServer+Linux.swift).
public import Glibc

/// In the fork server: ignores the signals a terminal sends to the whole foreground process group
/// (SIGINT for Ctrl-C, SIGQUIT for Ctrl-\, SIGHUP on hang-up), which are the parent's to handle.
/// A parent that dies of one kills the server anyway (`PR_SET_PDEATHSIG`); one that handles it
/// goes on and still needs its server. SIGTERM keeps its default: it is sent to a process, not by
/// a terminal, and ends the server at once.
@inlinable package func system_ignoreTerminalSignals() {
    _ = Glibc.signal(SIGINT, SIG_IGN)
    _ = Glibc.signal(SIGQUIT, SIG_IGN)
    _ = Glibc.signal(SIGHUP, SIG_IGN)
}

/// In a child the fork server made: puts back the default actions the server ignored, so that the
/// child starts as a spawned one does (every signal at its default action).
@inlinable package func system_defaultTerminalSignals() {
    _ = Glibc.signal(SIGINT, SIG_DFL)
    _ = Glibc.signal(SIGQUIT, SIG_DFL)
    _ = Glibc.signal(SIGHUP, SIG_DFL)
}
#endif
