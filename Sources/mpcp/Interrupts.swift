import Glibc
import MPCopy
import Multiprocessing
import MultiprocessingSystem

// The command line's signal handling: the engine knows nothing of signals, and is stopped with
// `CopyJob.cancel()`.

/// Turns SIGINT, SIGTERM and SIGHUP (the terminal went away) into a call on a thread of their own,
/// where any work is safe.
///
/// Signals are blocked in the calling thread (and so in every thread it starts afterwards) and a
/// dedicated thread waits for them with `sigwait(3)`: no code runs in a signal handler.
enum InterruptWatcher {
    /// Starts watching. Call it first thing in `main`, before any other thread exists.
    ///
    /// - Parameter handler: called on the watcher thread with the signal number for the first
    ///   SIGINT, SIGTERM or SIGHUP. A second one ends the process at once.
    static func start(_ handler: @escaping @Sendable (CInt) -> Void) {
        let signals = [SIGINT, SIGTERM, SIGHUP]
        system_blockSignals(signals)
        // A daemon thread: it must not keep the process alive at exit.
        let thread = OSThread(name: "mpcp-signals", daemon: true) {
            let first = system_sigwait(signals)
            handler(first)
            let second = system_sigwait(signals)
            exitBySignal(second)
        }
        try? thread.start()
    }

    /// Ends the process by `signal` with its default action, so that the parent sees the usual
    /// "killed by SIGINT" status (the shell's 130), after the caller has cleaned up.
    ///
    /// - Parameter signal: the signal that stopped the copy.
    static func exitBySignal(_ signal: CInt) -> Never {
        system_defaultAndUnblock(signal)
        system_raise(signal)
        // Unreachable unless the signal is ignored by force: exit with the shell's convention.
        exit(128 + signal)
    }

    /// This process's command line as a shell command that finishes an interrupted copy (for
    /// ``CopyJob/interruptionAdvice(resumeCommand:)``): every
    /// argument as it was (raw bytes, quoted), with `-u` after the program name unless it or
    /// `--no-clobber` is there, so that what is already complete is kept.
    static func resumeCommand() -> String {
        var words: [[UInt8]] = []
        for index in 0..<Int(CommandLine.argc) {
            guard let p = CommandLine.unsafeArgv[index] else { continue }
            words.append(Array(UnsafeBufferPointer(start: p, count: strlen(p))).map { UInt8(bitPattern: $0) })
        }
        let options = words.dropFirst().prefix { $0 != Array("--".utf8) }
        // --no-clobber keeps every complete file already, and refuses -u beside it.
        let keeps = ["-u", "--update", "--no-clobber"].contains { options.contains(Array($0.utf8)) }
        if !keeps {
            words.insert(Array("-u".utf8), at: min(1, words.count))
        }
        // Each word as GNU `ls` quotes a name (Quoting.swift): it pastes back into a shell byte for byte.
        return words.map { String(decoding: shellQuoted($0), as: UTF8.self) }.joined(separator: " ")
    }
}
