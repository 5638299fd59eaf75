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

/// Runs the helper as a parent, in a scenario, and collects its output.
func runHelper(_ arguments: [String]) throws -> ProgramOutput {
    try runProgram(helperPath, arguments)
}
