import Testing

/// What a user coming from Python's tutorial checks in the examples' output: the claims they make
/// must show in what they print, every run.
@Suite("New user: examples show what they claim")
struct NewUserExamplesTests {
    @Test("process-terminate: the child is reaped before any join (no zombie without join), and still after it")
    func processTerminateNoZombieWithoutJoin() throws {
        let run = try runExample(["process-terminate", "--interval", "0.5", "--wait", "0.25"])
        #expect(run.status == 0, "\(run.output)")
        let before = try #require(run.lines.firstIndex { $0.hasPrefix("/proc/") && $0.contains(" after terminate, before join: ") },
                                  "\(run.output)")
        #expect(run.lines[before].hasSuffix("before join: gone (reaped: no zombie)"), "\(run.output)")
        let joined = try #require(run.lines.firstIndex { $0 == "terminated ChildProcess-1, exit code -15" }, "\(run.output)")
        let after = try #require(run.lines.firstIndex { $0.hasPrefix("/proc/") && $0.hasSuffix(" after join: gone (reaped: no zombie)") },
                                 "\(run.output)")
        #expect(before < joined && joined < after, "\(run.output)")
    }

    @Test("thread-event: the car never starts on red (its first line is running, in every one of 40 runs)")
    func threadEventStartsOnGreen() throws {
        for i in 0..<40 {
            // 4 ticks, all green: the light only turns red after the fifth.
            let run = try runExample(["thread-event", "--seconds", "0.04", "--tick", "0.01"])
            #expect(run.status == 0, "run \(i): \(run.output)")
            let car = run.lines.filter { $0.hasPrefix("[MINI]") }
            #expect(car.first == "[MINI] running...", "run \(i): \(run.output)")
            #expect(!car.contains("[MINI] sees red light,waiting..."), "run \(i): \(run.output)")
        }
    }
}
