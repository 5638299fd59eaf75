// What the test suites share on the parent's side: finding the binaries SwiftPM built beside the
// test bundle, and reading /proc. (Task types live in TestSupport instead, which children load and
// which therefore stays free of Foundation.)
import Foundation

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

/// Runs the program at `path` to its end and collects its output.
public func runProgram(_ path: String, _ arguments: [String]) throws -> ProgramOutput {
    let process = Foundation.Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
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
