import MultiprocessingSystem

/// How a process ended.
public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// It called `exit` with this code (0 is success; a task that threw exits with 1).
    case exited(Int32)
    /// A signal ended it.
    case signaled(Signal)

    /// Python's `exitcode`: the exit code, or minus the signal number.
    public var code: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return -signal.rawValue
        }
    }

    /// True for `exit(0)`.
    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): return "exited with code \(code)"
        case .signaled(let signal): return "killed by \(signal)"
        }
    }

    internal init(waitStatus: Int32) {
        let decoded = system_decodeWaitStatus(waitStatus)
        if let signal = decoded.signal {
            self = .signaled(Signal(rawValue: signal))
        } else {
            self = .exited(decoded.exitCode)
        }
    }
}

/// A POSIX signal, by number, with its conventional name.
public struct Signal: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The terminal interrupt, `SIGINT`.
    public static let interrupt = Signal(rawValue: 2)
    /// `SIGQUIT`.
    public static let quit = Signal(rawValue: 3)
    /// An illegal instruction, `SIGILL`: what a Swift trap (`fatalError`, an overflow, an index out of range) raises on x86_64.
    public static let illegalInstruction = Signal(rawValue: 4)
    /// `SIGTRAP`: what a Swift trap raises on some architectures.
    public static let trap = Signal(rawValue: 5)
    /// `SIGABRT`.
    public static let abort = Signal(rawValue: 6)
    /// `SIGBUS`.
    public static let bus = Signal(rawValue: 7)
    /// `SIGFPE`.
    public static let floatingPointException = Signal(rawValue: 8)
    /// `SIGKILL`, which cannot be caught: ``ChildProcess/kill()``.
    public static let kill = Signal(rawValue: 9)
    /// `SIGUSR1`.
    public static let user1 = Signal(rawValue: 10)
    /// `SIGSEGV`, an invalid memory access.
    public static let segmentationFault = Signal(rawValue: 11)
    /// `SIGUSR2`.
    public static let user2 = Signal(rawValue: 12)
    /// `SIGPIPE`.
    public static let brokenPipe = Signal(rawValue: 13)
    /// `SIGALRM`.
    public static let alarm = Signal(rawValue: 14)
    /// `SIGTERM`, the polite stop: ``ChildProcess/terminate()``.
    public static let terminate = Signal(rawValue: 15)

    private static let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
        8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
        14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
        20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
        26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
    ]

    /// The signal's name, such as `SIGSEGV`.
    public var name: String { Self.names[rawValue] ?? "signal \(rawValue)" }

    public var description: String { name }

}
