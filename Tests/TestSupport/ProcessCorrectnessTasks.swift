// Task types and helper-binary scenarios for the process-correctness tests (issue 12, "Processes").
// The scenarios run in mp-test-helper as the parent: a clean single-threaded main (for `.fork`), a
// parent that a test can SIGKILL, or one that changes process-wide state (SIGCHLD, the executable)
// that the test runner must not see.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing
import SystemPackage

/// Tries to start a child of its own and says what happened: "started", or the error's code.
public struct StartGrandchild: ProcessTask {
    public init() {}
    public func run() -> String {
        let child = ChildProcess(Square(x: 2))
        do {
            try child.start()
            _ = try? child.value()
            return "started"
        } catch let error as MultiprocessingError {
            return "\(error.code): \(error.message)"
        } catch {
            return "\(error)"
        }
    }
}

/// Returns `count` bytes: over 1 GiB, more than a child's result may be.
public struct OversizedResult: ProcessTask {
    public var count: Int
    public init(count: Int) { self.count = count }
    public func run() -> [UInt8] { [UInt8](repeating: 7, count: count) }
}

/// Closes descriptor 3, opens a file (which then gets descriptor 3) and leaves it open: the
/// child's report must not land in that file. Returns the descriptor the file got.
public struct CloseThreeThenOpen: ProcessTask {
    public var path: String
    public init(path: String) { self.path = path }
    public func run() -> Int32 {
        close(3)
        return open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    }
}

/// The pids of the processes whose parent is `parent`, from /proc.
public func childPIDs(of parent: Int32) -> [Int32] {
    guard let dir = opendir("/proc") else { return [] }
    defer { closedir(dir) }
    var result: [Int32] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard let pid = Int32(name), let fields = procStatFields(pid), fields.count > 1 else { continue }
        if Int32(fields[1]) == parent { result.append(pid) }
    }
    return result
}

/// The fields of /proc/PID/stat after the command name: state, ppid, ...
func procStatFields(_ pid: Int32) -> [Substring]? {
    let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return nil }
    let text = String(decoding: buffer.prefix(n), as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(after: close)...].split(separator: " ")
}

/// Whether `pid` exists and is not a zombie.
public func isRunningProcess(_ pid: Int32) -> Bool {
    guard let fields = procStatFields(pid) else { return false }
    return fields.first != "Z"
}

/// The number of descriptors open in this process.
public func openDescriptorCount() -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
    }
    return count - 1 // the directory's own descriptor
}

/// Polls `condition` every millisecond for up to `seconds` of the clock (not a count of rounds:
/// a condition that scans /proc can take milliseconds itself on a loaded machine).
public func pollUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + .milliseconds(Int(seconds * 1000))
    while clock.now < deadline {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

private func say(_ text: String) {
    print(text)
    fflush(nil)
}

private func method(_ name: String?) -> StartMethod {
    switch name {
    case "fork": return .fork
    case "forkserver": return .forkServer
    default: return .spawn
    }
}

/// Runs one of this file's scenarios in the helper binary. Returns false for an unknown name.
public func runProcessCorrectnessScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    switch name {
    case "fork-grandchildren":
        // A .fork child whose task starts two children (METHOD) and joins them, ROUNDS times.
        let grandchildMethod = method(rest.first)
        let rounds = Int(rest.dropFirst().first ?? "") ?? 100
        var failures = 0
        var firstFailure = ""
        for round in 0..<rounds {
            let child = ChildProcess<Int>(forking: {
                let a = ChildProcess(Square(x: 3), startMethod: grandchildMethod)
                let b = ChildProcess(Square(x: 4), startMethod: grandchildMethod)
                try a.start()
                try b.start()
                return try a.value(timeout: .seconds(60)) + b.value(timeout: .seconds(60))
            })
            do {
                try child.start()
                let value = try child.value(timeout: .seconds(120))
                if value != 25 { throw TaskFailure(reason: "got \(value)") }
            } catch {
                failures += 1
                if firstFailure.isEmpty { firstFailure = "round \(round): \(error)" }
                try? child.kill()
            }
        }
        say("grandchildren \(rest.first ?? "spawn") rounds \(rounds) failures \(failures)")
        if !firstFailure.isEmpty { say("first failure \(firstFailure)") }

    case "forkserver-dies":
        // A non-daemon fork-server child outlives its dead server, is still ours to signal, and
        // the dead server is reaped; the next start starts a new server.
        let child = ChildProcess(SleepBlocking(milliseconds: 60_000), startMethod: .forkServer)
        try child.start()
        let me = getpid()
        guard let childPID = child.pid else { say("no pid"); return true }
        let servers = childPIDs(of: me).filter { $0 != childPID }
        say("server count \(servers.count)")
        guard servers.count == 1 else { return true }
        let server = servers[0]
        kill(server, SIGKILL)
        // The monitor notices the closed control socket and reaps the server: no zombie remains.
        let reaped = pollUntil(seconds: 20) { procStatFields(server) == nil }
        say("server reaped \(reaped)")
        say("child running \(isRunningProcess(childPID)) alive \(child.isAlive) status \(child.exitStatus.map { "\($0)" } ?? "none")")
        try child.terminate()
        try child.join(timeout: .seconds(30))
        say("child terminated \(child.exitCode ?? 99) running \(isRunningProcess(childPID))")
        let next = ChildProcess(Square(x: 6), startMethod: .forkServer)
        try next.start()
        say("next value \(try next.value(timeout: .seconds(60)))")

    case "orphans":
        // Non-daemon children by each start method, and one that opts out; then wait to be killed.
        let forked = ChildProcess(SleepBlocking(milliseconds: 60_000), startMethod: .fork)
        try forked.start()
        let spawned = ChildProcess(SleepBlocking(milliseconds: 60_000), startMethod: .spawn)
        try spawned.start()
        let served = ChildProcess(SleepBlocking(milliseconds: 60_000), startMethod: .forkServer)
        try served.start()
        let survivor = ChildProcess(SleepBlocking(milliseconds: 60_000), outlivesParent: true, startMethod: .spawn)
        try survivor.start()
        say("pids \(forked.pid ?? -1) \(spawned.pid ?? -1) \(served.pid ?? -1)")
        say("survivor \(survivor.pid ?? -1)")
        while true { pause() }

    case "sigchld-ignored":
        // With SIGCHLD ignored the kernel reaps children itself: join must end with a clear error.
        signal(SIGCHLD, SIG_IGN)
        let child = ChildProcess(Square(x: 5))
        try child.start()
        do {
            try child.join(timeout: .seconds(30))
            say("join returned \(child.exitStatus.map { "\($0)" } ?? "none")")
        } catch let error as MultiprocessingError {
            say("join error \(error.code) \(error.underlyingErrno.map { "\($0.rawValue)" } ?? "-")")
            say("message \(error.message)")
        }
        say("alive \(child.isAlive)")
        do {
            say("value \(try child.value(timeout: .seconds(60)))")
        } catch let error as MultiprocessingError {
            say("value error \(error.code)")
        }

    case "failed-starts":
        // Starts that fail (no such executable) must not leak the parent's end of the socket.
        let warmup = ChildProcess(Square(x: 1))
        try warmup.start()
        _ = try warmup.value()
        let before = openDescriptorCount()
        let missing = FilePath("/nonexistent/mp-no-such-program")
        var refused = 0
        for i in 0..<50 {
            let child = ChildProcess(Square(x: 1), configuration: ChildProcessConfiguration(startMethod: i % 2 == 0 ? .spawn : .forkServer, executable: missing))
            do {
                try child.start()
            } catch {
                refused += 1
            }
        }
        let after = openDescriptorCount()
        say("refused \(refused) descriptors before \(before) after \(after)")

    default:
        return false
    }
    return true
}
