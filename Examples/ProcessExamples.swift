// The tutorial's first half: multiprocessing.Process, args/kwargs, getpid/getppid, daemon, terminate.
import ArgumentParser
import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

/// `def sing(): for i in range(3): print("singing"); time.sleep(0.5)`
struct SingTask: ProcessTask {
    var times = 3           // args=(3,) — by position in Python, by name here
    var interval = 0.5
    func run() {
        for _ in 0..<times {
            print("singing")
            pause(seconds: interval)
        }
    }
}

struct DrawTask: ProcessTask {
    var times = 3
    var interval = 0.5
    func run() {
        for _ in 0..<times {
            print("drawing")
            pause(seconds: interval)
        }
    }
}

/// Sleeps and flushes, so that output from parallel processes interleaves as it does in Python.
func pause(seconds: Double) {
    fflush(nil)
    usleep(UInt32(seconds * 1_000_000))
}

struct ProcessStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-start",
        abstract: "sing and draw in two processes")
    func run() throws {
        let process1 = ChildProcess(SingTask())
        let process2 = ChildProcess(DrawTask())
        try process1.start()
        try process2.start()
        try process1.join()
        try process2.join()
    }
}

struct ProcessArgs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-args",
        abstract: "a task's arguments: Python's args and kwargs")
    func run() throws {
        // Python: Process(target=sing, args=(3,)) and Process(target=draw, kwargs={"num": 3}).
        // Swift: a task is a value; its stored properties are the arguments.
        let process1 = ChildProcess(SingTask(times: 3))
        let process2 = ChildProcess(DrawTask(times: 3))
        try process1.start()
        try process2.start()
        try process1.join()
        try process2.join()
    }
}

struct ShowIDs: ProcessTask {
    func run() {
        print("child  \(CurrentProcess.name): pid \(CurrentProcess.pid), parent pid \(CurrentProcess.parentPID)")
    }
}

struct ProcessIDs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-ids",
        abstract: "getpid and getppid")
    func run() throws {
        print("parent \(CurrentProcess.name): pid \(CurrentProcess.pid), parent pid \(CurrentProcess.parentPID)")
        fflush(nil)
        let child = ChildProcess(ShowIDs(), name: "sing-process")
        try child.start()
        try child.join()
    }
}

struct ProcessDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-daemon",
        abstract: "a daemon child ends with the main process")
    func run() throws {
        // Python: process1.daemon = True, set before start().
        let process1 = ChildProcess(SingTask(times: 10), daemon: true)
        try process1.start()
        pause(seconds: 1)
        print("主进程结束 (main process ends)")
        // Returning from main terminates daemon children: the remaining "singing" lines never print.
    }
}

struct ProcessTerminate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-terminate",
        abstract: "terminate plus join: no zombie left behind")
    func run() throws {
        let process1 = ChildProcess(SingTask(times: 10))
        try process1.start()
        pause(seconds: 1)
        try process1.terminate()
        let pid = process1.pid ?? -1
        try process1.join()
        print("terminated \(process1.name), exit code \(process1.exitCode.map(String.init) ?? "?")")
        print("/proc/\(pid) after join: \(procState(pid))")
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

let exampleCommands: [any ParsableCommand.Type] = [
    ProcessStart.self, ProcessArgs.self, ProcessIDs.self, ProcessDaemon.self, ProcessTerminate.self,
] + threadExampleCommands + ipcExampleCommands
