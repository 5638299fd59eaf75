import Foundation
import Multiprocessing
import SystemPackage
import TestHarness

/// Where the manager helper binary is: beside the test bundle in the build folder.
let managerHelperPath: String = builtExecutable("mp-manager-helper") ?? "mp-manager-helper-not-found"

/// A helper process run as a parent, read line by line.
final class HelperProcess: @unchecked Sendable {
    let process = Foundation.Process()
    private let out = Foundation.Pipe()
    private var buffered = Data()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: managerHelperPath)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        try process.run()
    }

    /// The next line of output (nil at the end).
    func readLine() -> String? {
        while true {
            if let newline = buffered.firstIndex(of: 10) {
                let line = String(decoding: buffered[buffered.startIndex..<newline], as: UTF8.self)
                buffered.removeSubrange(buffered.startIndex...newline)
                return line
            }
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffered.append(chunk)
        }
    }

    var pid: Int32 { process.processIdentifier }

    func kill(_ signal: Int32 = SIGKILL) {
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
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
