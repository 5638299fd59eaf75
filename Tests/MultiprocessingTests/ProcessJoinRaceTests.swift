import Testing
import Glibc
import Multiprocessing

// Outside checks (red team): one child joined from several threads at once, then signalled
// after it ended.

/// Sleeps for a while, then returns.
struct NapTask: ProcessTask {
    var milliseconds: Int
    func run() -> Int { usleep(UInt32(milliseconds * 1000)); return milliseconds }
}

@Suite("Process join race")
struct ProcessJoinRaceTests {
    /// Four threads join one child at once: each returns once it has ended, with its exit code;
    /// then terminate, kill and a signal to the ended (and reaped) child are no-ops, as in Python.
    @Test(.timeLimit(.minutes(5)))
    func aChildJoinedFromFourThreadsAtOnce() throws {
        for round in 0..<10 {
            let child = ChildProcess(NapTask(milliseconds: 50 + round * 10))
            try child.start()
            let joiners = (0..<4).map { _ in
                OSThread { () -> String in
                    do {
                        try child.join(timeout: .seconds(60))
                        return "joined \(child.exitCode.map(String.init) ?? "none")"
                    } catch { return "threw \(error)" }
                }
            }
            for joiner in joiners { try joiner.start() }
            for joiner in joiners {
                try joiner.join(timeout: .seconds(120))
                #expect(try joiner.result(as: String.self) == "joined 0")
            }
            try child.terminate()
            try child.kill()
            try child.signal(.user1)
            #expect(child.exitStatus == .exited(0))
            #expect(try child.value() == 50 + round * 10)
        }
    }
}
