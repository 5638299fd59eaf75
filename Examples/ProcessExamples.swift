// The tutorial's first half: multiprocessing.Process, args/kwargs, getpid/getppid, daemon, terminate.
import ArgumentParser
import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

/// `def sing(num): for i in range(num): say("singing"); time.sleep(0.5)`
///
/// A `ProcessTask` is Python's `target` together with its arguments: the stored properties are the
/// arguments, and the value is encoded, sent to the child and decoded there. So the arguments are
/// typed and checked by the compiler, where Python's `args=(3,)` is checked only when `sing` runs.
struct SingTask: ProcessTask {
    var num: Int
    var interval: Double

    /// By name, as Python's `kwargs={"num": 3}`: `SingTask(num: 3, interval: 0.5)`.
    init(num: Int, interval: Double = 0.5) {
        self.num = num
        self.interval = interval
    }

    /// By position, as Python's `args=(3,)`: `SingTask(3)`.
    init(_ num: Int, _ interval: Double = 0.5) {
        self.init(num: num, interval: interval)
    }

    func run() {
        for _ in 0..<num {
            say("singing")
            pause(seconds: interval)
        }
    }
}

/// `def draw(num): for i in range(num): say("drawing"); time.sleep(0.5)`
struct DrawTask: ProcessTask {
    var num: Int
    var interval: Double

    init(num: Int, interval: Double = 0.5) {
        self.num = num
        self.interval = interval
    }

    init(_ num: Int, _ interval: Double = 0.5) {
        self.init(num: num, interval: interval)
    }

    func run() {
        for _ in 0..<num {
            say("drawing")
            pause(seconds: interval)
        }
    }
}

/// The sleep between lines, where the seed sleeps 0.5 s; tests pass a shorter one.
struct IntervalOption: ParsableArguments {
    @Option(help: "Seconds to sleep between lines (the seed sleeps 0.5).")
    var interval: Double = 0.5
}

struct ProcessStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-start",
        abstract: "sing and draw in two processes")
    @OptionGroup var options: IntervalOption

    func run() throws {
        // process1 = multiprocessing.Process(target=sing)
        let process1 = ChildProcess(SingTask(num: 3, interval: options.interval))
        let process2 = ChildProcess(DrawTask(num: 3, interval: options.interval))
        try process1.start()
        try process2.start()
        // Python's main process waits for its children at exit; ours does too (bootstrap() installs
        // that), but joining says so.
        try process1.join()
        try process2.join()
    }
}

struct ProcessArgs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-args",
        abstract: "a task's arguments: Python's args (by position) and kwargs (by name)")
    @OptionGroup var options: IntervalOption

    func run() throws {
        // Process(target=sing, args=(3,)): by position.
        let process1 = ChildProcess(SingTask(3, options.interval))
        // Process(target=draw, kwargs={"num": 3}): by name.
        let process2 = ChildProcess(DrawTask(num: 3, interval: options.interval))
        try process1.start()
        try process2.start()
        try process1.join()
        try process2.join()
    }
}

/// Prints the ids seen from inside the child: `os.getpid()` and `os.getppid()`.
struct ShowIDs: ProcessTask {
    func run() {
        say("child  \(CurrentProcess.name): pid \(CurrentProcess.pid), parent pid \(CurrentProcess.parentPID)")
    }
}

struct ProcessIDs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-ids",
        abstract: "getpid and getppid")
    func run() throws {
        say("parent \(CurrentProcess.name): pid \(CurrentProcess.pid), parent pid \(CurrentProcess.parentPID)")
        let child = ChildProcess(ShowIDs(), name: "sing-process")
        try child.start()
        try child.join()
    }
}

struct ProcessDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-daemon",
        abstract: "a daemon child ends with the main process")
    @OptionGroup var options: IntervalOption
    @Option(help: "Seconds the main process runs before it ends (the seed sleeps 1).")
    var wait: Double = 1

    func run() throws {
        // process1.daemon = True, set before start().
        let process1 = ChildProcess(SingTask(num: 10, interval: options.interval), daemon: true)
        try process1.start()
        pause(seconds: wait)
        say("主进程结束 (main process ends)")
        // Returning from main terminates daemon children: the remaining "singing" lines never print.
        // Unlike Python, a daemon child also dies when the parent is killed (SIGKILL included).
    }
}

struct ProcessTerminate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-terminate",
        abstract: "terminate plus join: no zombie left behind")
    @OptionGroup var options: IntervalOption
    @Option(help: "Seconds before the main process terminates the child (the seed's example: 1).")
    var wait: Double = 1

    func run() throws {
        let process1 = ChildProcess(SingTask(num: 10, interval: options.interval))
        try process1.start()
        pause(seconds: wait)
        let pid = process1.pid ?? -1
        // process1.terminate(); process1.join()
        try process1.terminate()
        // In Python, a terminated process that is not joined stays a zombie (defunct) until the
        // parent exits. Here the library's monitor reaps every child as soon as it ends, joined or
        // not: wait on the sentinel (multiprocessing.connection.wait([p.sentinel])), which is ready
        // once the child has been reaped, and look at /proc before any join.
        let ended = try Multiprocessing.wait([process1.sentinel], timeout: .seconds(30))
        say("/proc/\(pid) after terminate, before join: \(ended.isEmpty ? "still running after 30 s" : procState(pid))")
        try process1.join()
        say("terminated \(process1.name), exit code \(process1.exitCode.map(String.init) ?? "?")")
        say("/proc/\(pid) after join: \(procState(pid))")
    }

    /// The process state letter from /proc/PID/stat ("Z" for a zombie), or "gone".
    func procState(_ pid: Int32) -> String {
        let fd = open("/proc/\(pid)/stat", O_RDONLY)
        guard fd >= 0 else { return "gone (reaped: no zombie)" }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, buffer.count)
        let text = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return "unknown" }
        let state = text[text.index(close, offsetBy: 2)...].prefix(1)
        return state == "Z" ? "Z (zombie!)" : "state \(state)"
    }
}
