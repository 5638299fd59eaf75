// A task handle's `onDone` callback that calls back into its pool: get of a handle still pending,
// submit, close and join, terminate, or one that blocks. Each runs in a helper process of its own
// (`pool-callbacks` in TestSupport/PoolCallbackTasks.swift), which says `stuck` and exits 3 when
// a call does not return within 120 s, so that a deadlock fails the test instead of hanging it.
import Foundation
import Multiprocessing
import TestHarness
import TestSupport
import Testing

@Suite("Pool callbacks re-enter the pool")
struct PoolCallbackTests {
    private func run(_ mode: String) async throws -> ProgramOutput {
        try await runProgram(helperPath, ["scenario", "pool-callbacks", mode], environment: ["SWIFT_BACKTRACE": "enable=no"])
    }

    /// A callback gets a handle whose task is still running: on the old code the callback ran on
    /// the driver's thread, which had to read that answer, so the get never returned.
    @Test func callbackGetsAPendingHandle() async throws {
        let output = try await run("get-other")
        #expect(output.status == 0 && output.lastLine == "ok get-other value 7", "\(output.stdout)\(output.stderr)")
    }

    @Test func callbackGetsItsOwnHandle() async throws {
        let output = try await run("get-same")
        #expect(output.status == 0 && output.lastLine == "ok get-same value 16", "\(output.stdout)\(output.stderr)")
    }

    @Test func callbackSubmitsAndGets() async throws {
        let output = try await run("submit")
        #expect(output.status == 0 && output.lastLine == "ok submit value 36", "\(output.stdout)\(output.stderr)")
    }

    /// close and join from a callback: join waits for the other task and its callback, not for itself.
    @Test func callbackClosesAndJoins() async throws {
        let output = try await run("join")
        #expect(output.status == 0 && output.lastLine == "ok join value () other value 8 workers 0", "\(output.stdout)\(output.stderr)")
    }

    @Test func callbackTerminates() async throws {
        let output = try await run("terminate")
        #expect(output.status == 0 && output.lastLine == "ok terminate terminated pending cancelled workers 0", "\(output.stdout)\(output.stderr)")
    }

    /// A callback that blocks: other callers' get and map go on, and so do later callbacks.
    @Test func blockingCallbackWedgesNobodyElse() async throws {
        let output = try await run("block")
        #expect(output.status == 0 && output.lastLine == "ok block get value 100 map value 2470 callback value 121", "\(output.stdout)\(output.stderr)")
    }

    /// A thread pool of one thread: the callback ran on that thread, the only one that could run
    /// the task it waited for.
    @Test func threadPoolCallbackGetsAPendingHandle() async throws {
        let output = try await run("thread-get-other")
        #expect(output.status == 0 && output.lastLine == "ok thread-get-other value 7", "\(output.stdout)\(output.stderr)")
    }
}
