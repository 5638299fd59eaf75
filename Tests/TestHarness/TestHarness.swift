// What the test suites share on the parent's side: finding the binaries SwiftPM built beside the
// test bundle, and reading /proc. (Task types live in TestSupport instead, which children load and
// which therefore stays free of Foundation.)
public import Foundation

/// The executable `name` that SwiftPM built next to this test bundle: found from /proc/self/exe,
/// looking in its directory and then its parents. Nil when it is not there.
public func builtExecutable(_ name: String) -> String? {
    var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent(name).path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
           FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        directory = directory.deletingLastPathComponent()
    }
    return nil
}

/// Waits for `condition`, checking every few milliseconds, up to `limit`. For conditions that no
/// event announces to this process (another process's death), never as a stand-in for a join.
public func eventually(within limit: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while clock.now < deadline {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}

/// The fields of /proc/PID/stat after the command name: state first, then the parent's pid.
private func statFields(_ pid: Int32) -> [Substring]? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(after: close)...].split(separator: " ")
}

/// Whether a process exists and is not a zombie.
public func processIsRunning(_ pid: Int32) -> Bool {
    guard let fields = statFields(pid) else { return false }
    return fields.first != "Z"
}

/// The pid of the process that traces `pid` (ptrace), 0 if none, nil if `pid` does not exist.
public func tracerPID(of pid: Int32) -> Int32? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    let line = status.split(separator: "\n").first { $0.hasPrefix("TracerPid:") }
    return line.flatMap { Int32($0.dropFirst("TracerPid:".count).trimmingCharacters(in: .whitespaces)) }
}

/// The zombie children of `parent`, read from /proc.
public func zombieChildren(of parent: Int32) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry), let fields = statFields(pid), fields.count > 2,
              fields[0] == "Z", Int32(fields[1]) == parent else { return nil }
        return pid
    }
}

/// What a program printed and how it ended.
public struct ProgramOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    public var lastLine: String { lines.last ?? "" }
}

/// Runs the program at `path` to its end and collects its output. `environment` entries are added
/// to this process's environment (for example `SWIFT_BACKTRACE=enable=no`, so that a child that
/// traps ends at once instead of holding its output open while a backtrace is written).
///
/// This blocks the calling thread until the program ends. From an async test, use the async twin,
/// which waits on a thread of its own and leaves the cooperative pool's threads to other tests.
@available(*, noasync, message: "Use the async runProgram, which does not block a thread of the cooperative pool")
public func runProgram(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ProgramOutput {
    let process = Foundation.Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    let out = Foundation.Pipe()
    let err = Foundation.Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // stderr is read on another thread, so that a program filling one pipe never blocks on it.
    let errData = LockedData()
    let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let stderr = errData.wait()
    return ProgramOutput(status: process.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
}

/// Runs the program at `path` to its end and collects its output, without blocking a thread of the
/// cooperative pool: the run and its waits happen on a thread of their own.
///
/// Swift Testing runs tests on the cooperative pool, which has one thread per core (two here). A
/// test that blocks one of them for the minutes a child program can take on a loaded machine
/// starves every async test that needs a thread meanwhile.
public func runProgram(_ path: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> ProgramOutput {
    try await offThePool { try runProgram(path, arguments, environment: environment) }
}

/// Runs `body` on a new thread (not one of the cooperative pool's) and returns what it returns.
/// For blocking waits (a child program, a pipe) in async tests.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// A program started as a parent in a scenario and read line by line while it runs: its first
/// lines usually name the children it started (`pids 123 456`), for a test to watch or kill them.
public final class RunningProgram: @unchecked Sendable {
    public let process = Foundation.Process()
    private let out = Foundation.Pipe()
    private let input = Foundation.Pipe()
    private var buffered = Data()

    /// Starts `path` with `arguments`. `environment` entries are added to this process's
    /// environment; stderr is discarded unless `keepStandardError`. The program's stdin is a pipe
    /// that ``write(_:)`` writes to.
    public init(_ path: String, _ arguments: [String], environment: [String: String] = [:], keepStandardError: Bool = false) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.standardOutput = out
        process.standardInput = input
        process.standardError = keepStandardError ? FileHandle.standardError : FileHandle.nullDevice
        try process.run()
    }

    /// The program's pid.
    public var pid: Int32 { process.processIdentifier }

    /// The next line the program prints, or nil once its output ends.
    public func readLine() -> String? {
        while true {
            if let newline = buffered.firstIndex(of: 10) {
                let line = String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self)
                buffered.removeSubrange(buffered.startIndex...newline)
                return line
            }
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty {
                guard !buffered.isEmpty else { return nil }
                defer { buffered = Data() }
                return String(decoding: buffered, as: UTF8.self)
            }
            buffered.append(chunk)
        }
    }

    /// The next `count` lines (fewer if the output ends first).
    public func readLines(_ count: Int) -> [String] {
        var lines: [String] = []
        while lines.count < count, let line = readLine() { lines.append(line) }
        return lines
    }

    /// The pids the first line prints after its first word (`pids 123 456` gives [123, 456]).
    public func firstLinePIDs() -> [Int32] { pids(in: readLine()) }

    /// Writes `text` to the program's stdin.
    public func write(_ text: String) {
        input.fileHandleForWriting.write(Data(text.utf8))
    }

    /// Reads the rest of the output and waits for the program to end, on a thread of its own.
    public func finish() async -> (status: Int32, lines: [String]) {
        (try? await offThePool { [self] in
            var lines: [String] = []
            while let line = readLine() { lines.append(line) }
            process.waitUntilExit()
            return (process.terminationStatus, lines)
        }) ?? (-1, [])
    }

    /// Sends `signal` to the program.
    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the program to end and returns its exit status (minus nothing: Foundation's
    /// `terminationStatus`, the signal number for a killed program). Foundation waits for the
    /// output pipe to close too, so a child that holds it makes this wait for that child.
    @available(*, noasync, message: "Use the async wait(), which does not block a thread of the cooperative pool")
    @discardableResult
    public func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits for the program to end on a thread of its own; see the blocking ``wait()``.
    @discardableResult
    public func wait() async -> Int32 {
        (try? await offThePool { [self] in
            process.waitUntilExit()
            return process.terminationStatus
        }) ?? -1
    }
}

/// The pids a line prints after its first word: `pids 123 456` gives [123, 456].
public func pids(in line: String?) -> [Int32] {
    (line ?? "").split(separator: " ").dropFirst().compactMap { Int32($0) }
}

private final class LockedData: @unchecked Sendable {
    private let condition = NSCondition()
    private var data: Data?
    func set(_ value: Data) {
        condition.lock()
        data = value
        condition.broadcast()
        condition.unlock()
    }
    func wait() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while data == nil { condition.wait() }
        return data ?? Data()
    }
}
