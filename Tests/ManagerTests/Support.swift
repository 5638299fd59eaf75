import Foundation
import Multiprocessing
import SystemPackage
import TestHarness

/// Where the manager helper binary is: beside the test bundle in the build folder.
let managerHelperPath: String = builtExecutable("mp-manager-helper") ?? "mp-manager-helper-not-found"

/// A helper process run as a parent, read line by line (TestHarness's `RunningProgram`, its
/// stderr passed through).
final class HelperProcess: Sendable {
    private let program: RunningProgram

    init(_ arguments: [String]) throws {
        program = try RunningProgram(managerHelperPath, arguments, keepStandardError: true)
    }

    /// The next line of output (nil at the end).
    func readLine() -> String? { program.readLine() }

    var pid: Int32 { program.pid }

    func kill(_ signal: Int32 = SIGKILL) {
        program.signal(signal)
        program.wait()
    }
}

/// Whether a process exists (not a zombie).
func processIsRunning(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    guard let close = stat.lastIndex(of: ")") else { return false }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.first != "Z"
}

/// Runs `body` and returns how long it took.
func timed<T>(_ body: () throws -> T) rethrows -> (T, Duration) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try body()
    return (value, clock.now - start)
}
