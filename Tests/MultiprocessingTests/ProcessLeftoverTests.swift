import Foundation
import Testing
import TestHarness
import Multiprocessing
import TestSupport

/// The process defects found after issue 12: each scenario runs in the helper binary as the parent.
@Suite("Process leftovers", .serialized)
struct ProcessLeftoverTests {

    // The fork server cloned a child and then reported its pid; killed in between, it left the
    // child (the parent's own, by CLONE_PARENT) unknown to the parent: never adopted, never
    // reaped. No hook in the library: strace kills the real server with SIGKILL at its first
    // close() after it is attached, which is the close of its copy of the child's socket right
    // after the clone.
    @Test func aForkServerKilledRightAfterItsCloneLeavesNoZombie() async throws {
        let strace = "/usr/bin/strace"
        try #require(FileManager.default.isExecutableFile(atPath: strace), "this test needs strace (apt-get install strace)")
        let helper = try RunningProgram(helperPath, ["scenario", "forkserver-dies-after-clone"],
                                        environment: ["SWIFT_BACKTRACE": "enable=no"], keepStandardError: true)
        let server = try #require(try await offThePool { pids(in: helper.readLine()).first }, "the helper named no fork server")
        let tracer = Foundation.Process()
        tracer.executableURL = URL(fileURLWithPath: strace)
        tracer.arguments = ["-qq", "-o", "/dev/null", "-e", "trace=close", "-e", "inject=close:signal=KILL", "-p", "\(server)"]
        try tracer.run()
        defer { if tracer.isRunning { tracer.terminate() } }
        #expect(await eventuallyAsync(within: .seconds(60)) { (tracerPID(of: server) ?? 0) != 0 }, "strace did not attach to \(server)")
        helper.write("go\n")
        let (status, lines) = await helper.finish()
        #expect(status == 0, "\(lines)")
        // The child reported itself, so the start succeeded although the server died.
        #expect(lines.contains("value 49"), "\(lines)")
        #expect(lines.contains("server reaped true"), "\(lines)")
        #expect(lines.contains("leftover []"), "children of the helper left unreaped: \(lines)")
    }

    // A `.fork` child inherited the parent's duplicate of its socket's other end (the one the
    // handshake is written through); spawned and fork-server children close everything else.
    @Test func aForkChildHoldsNoDescriptorOfItsParentsEnd() async throws {
        let result = try await runHelper(["scenario", "fork-descriptors"])
        #expect(result.lines.contains("parent ends 1"), "\(result.stdout)\(result.stderr)")
        #expect(result.lines.contains("inherited []"), "\(result.stdout)\(result.stderr)")
    }

    // A `.fork` child ignored its configuration's environment.
    @Test func aForkChildSeesItsConfiguredEnvironment() async throws {
        let result = try await runHelper(["scenario", "fork-environment"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.lines.contains("fork environment configured"), "\(result.stdout)\(result.stderr)")
        #expect(result.lines.contains("fork home /configured-home"), "\(result.stdout)\(result.stderr)")
        #expect(result.lines.contains("parent environment unset"), "\(result.stdout)\(result.stderr)")
    }
}
