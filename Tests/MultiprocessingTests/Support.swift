import Foundation
import Multiprocessing
import SystemPackage
import TestHarness

/// Where the test helper binary is: beside the test bundle in the build folder.
let helperPath: String = builtExecutable("mp-test-helper") ?? "mp-test-helper-not-found"

/// Children of the tests run this test binary itself (the library takes a child over before the
/// test runner's main), which knows every task type. The helper is for scenarios that need a
/// parent of their own, and for children that must run another program.
func inTheHelper(_ method: StartMethod = .spawn) -> ChildProcessConfiguration {
    ChildProcessConfiguration(startMethod: method, executable: FilePath(helperPath))
}

/// The helper's environment in scenarios: the crash backtracer off, so that a child that traps
/// ends at once instead of holding stdout while a backtrace is written.
let quietHelper = ["SWIFT_BACKTRACE": "enable=no"]

/// Runs the helper as a parent, in a scenario, and collects its output.
@available(*, noasync, message: "Use the async runHelper, which does not block a thread of the cooperative pool")
func runHelper(_ arguments: [String]) throws -> ProgramOutput {
    try runProgram(helperPath, arguments, environment: quietHelper)
}

/// Runs the helper as a parent, in a scenario, and collects its output, waiting on a thread of its own.
func runHelper(_ arguments: [String]) async throws -> ProgramOutput {
    try await runProgram(helperPath, arguments, environment: quietHelper)
}

/// Starts the helper as a parent in a scenario that prints lines (the pids of its children first)
/// and then waits to be killed or told to go on.
func startHelper(_ arguments: [String]) throws -> RunningProgram {
    try RunningProgram(helperPath, arguments, environment: quietHelper)
}
