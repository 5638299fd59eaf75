// The fork server and the terminal's signals: a Ctrl-C goes to the whole foreground process
// group, fork server included; the parent may handle it and go on, so the server must not die of
// it. A real process group, a real SIGINT (`forkserver-signals` in TestSupport/ForkServerSignalTasks.swift).
import Foundation
import Multiprocessing
import TestHarness
import TestSupport
import Testing

@Suite("Fork server signals", .serialized)
struct ForkServerSignalTests {
    @Test func aSigintToTheGroupLeavesTheForkServerServing() async throws {
        let helper = try RunningProgram(helperPath, ["scenario", "forkserver-signals"], environment: ["SWIFT_BACKTRACE": "enable=no"])
        let ready = try await offThePool { helper.readLine() } ?? ""
        let words = ready.split(separator: " ")
        let group = try #require(words.count == 3 && words[0] == "ready" ? Int32(words[1]) : nil, "\(ready)")
        kill(-group, SIGINT)
        let (status, lines) = await helper.finish()
        #expect(status == 0, "\(lines)")
        #expect(lines.contains("server alive"), "\(lines)")
        // A child starts with every signal at its default action, as a spawned one does
        // (POSIX_SPAWN_SETSIGDEF): not the server's ignored SIGINT, SIGHUP and SIGQUIT, nor the
        // parent's own handler or its ignored SIGQUIT.
        #expect(lines.contains("child INT default HUP default QUIT default TERM default"), "\(lines)")
        #expect(lines.contains("after HUP QUIT alive"), "\(lines)")
        #expect(lines.contains("after TERM dead"), "\(lines)")
        #expect(lines.contains("restart value 49"), "\(lines)")
    }
}
