import MPCopy
import SystemPackage
import Testing

/// The engine's errors name the problem in the engine's terms: a library user has no `--jobs` or
/// `--preserve` flag to fix. The `mpcp` command line maps them to its flags (EndToEndTests'
/// badArgumentsExitWithTwo).
@Suite struct MPCopyEngineErrorTests {
    @Test func noWorkersIsRefusedWithoutNamingAFlag() throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        var options = CopyOptions()
        options.jobs = 0
        do {
            _ = try CopyJob(sources: [FilePath(scratch.path)], destination: FilePath(scratch.path + "/dst"), options: options)
            Issue.record("a job with no workers was accepted")
        } catch {
            #expect(error.code == .usage)
            #expect(error.message == "the number of workers (jobs) must be at least 1, not 0", "\(error.message)")
        }
    }

    @Test func anUnknownAttributeIsRefusedWithoutNamingAFlag() {
        do {
            _ = try PreservedAttributes(parsing: "mode,colour")
            Issue.record("an unknown attribute was accepted")
        } catch {
            #expect(error.code == .usage)
            #expect(error.message == "unknown attribute 'colour': use mode, ownership, timestamps, links, xattr or all", "\(error.message)")
        }
    }
}
