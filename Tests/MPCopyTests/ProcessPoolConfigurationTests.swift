import Foundation
import MPCopy
import Multiprocessing
import SystemPackage
import Testing

/// Issue 14, item 1: the process pool gives its workers their own configuration. Before, it set the
/// process-wide executable (`ChildProcessConfiguration.setExecutable`) and never restored it, so
/// every child this process started afterwards ran mpcp.
@Suite struct ProcessPoolConfigurationTests {
    @Test(arguments: [false, true])
    func workersLeaveTheDefaultAlone(otherExecutable: Bool) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        try await sh("mkdir -p src/d && echo one > src/a && echo two > src/d/b", in: scratch.path).expectSuccess()
        let before = ChildProcessConfiguration.default
        var options = CopyOptions()
        options.recursive = true
        options.jobs = 2
        options.workers = .processes
        // This test binary's children run their task before main; so do mpcp's.
        if otherExecutable { options.workerExecutable = FilePath(try mpcpExecutable()) }
        let job = try CopyJob(sources: [FilePath(scratch.path + "/src")], destination: FilePath(scratch.path + "/dst"), options: options)
        let report = try job.run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.files == 2)
        #expect(ChildProcessConfiguration.default == before)
        let check = try await sh("cat dst/a dst/d/b", in: scratch.path)
        #expect(check.stdout == "one\ntwo\n", "\(check.stdout)\(check.stderr)")
    }
}
