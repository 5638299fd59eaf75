import Foundation
import Multiprocessing
import SystemPackage

/// Where the test helper binary is: beside the test bundle in the build folder.
let helperPath: String = {
    let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = me.deletingLastPathComponent()
    // The bundle may be a directory (…/X.xctest/…) on some layouts: climb until the helper is found.
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("mp-test-helper").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return "mp-test-helper-not-found"
}()

/// Makes spawned children (and the fork server) run the helper, which knows the TestSupport tasks.
func useHelperExecutable() {
    ChildProcessConfiguration.setExecutable(FilePath(helperPath))
}

struct ScenarioResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs the helper as a parent, in a scenario, and collects its output.
func runHelper(_ arguments: [String], timeout: TimeInterval = 30) throws -> ScenarioResult {
    let process = Foundation.Process()
    process.executableURL = URL(fileURLWithPath: helperPath)
    process.arguments = arguments
    let out = Foundation.Pipe()
    let err = Foundation.Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ScenarioResult(status: process.terminationStatus,
                          stdout: String(decoding: outData, as: UTF8.self),
                          stderr: String(decoding: errData, as: UTF8.self))
}

/// Whether a process exists (not a zombie).
func processIsRunning(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    guard let close = stat.lastIndex(of: ")") else { return false }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.first != "Z"
}

/// The zombie children of `parent`, read from /proc.
func zombieChildren(of parent: Int32) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var zombies: [Int32] = []
    for entry in entries {
        guard let pid = Int32(entry),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 2, fields[0] == "Z", Int32(fields[1]) == parent { zombies.append(pid) }
    }
    return zombies
}

/// Waits for `condition`, checking every few milliseconds, up to `limit`. For conditions that no
/// event announces to this process (another process's death), never as a stand-in for a join.
func eventually(within limit: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while clock.now < deadline {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}
