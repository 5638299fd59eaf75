import Foundation
import Multiprocessing
import SystemPackage
import TestHarness

/// Where the test helper binary is: beside the test bundle in the build folder.
let helperPath: String = builtExecutable("mp-test-helper") ?? "mp-test-helper-not-found"

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
