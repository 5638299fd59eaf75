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

/// Runs the helper as a parent, in a scenario, and collects its output.
func runHelper(_ arguments: [String]) throws -> ProgramOutput {
    try runProgram(helperPath, arguments)
}
