import Foundation
import Testing
import TestHarness
import Multiprocessing
import TestSupport
import MultiprocessingSystem

/// The blocking twin of join, called from a synchronous context (an async test would pick the async one).
private func blockingJoin(_ child: some ProcessHandle, _ timeout: Duration) throws {
    try child.join(timeout: timeout)
}

@Suite("Process correctness", .serialized)
struct ProcessCorrectnessTests {

    // Item 1: a .fork child's main thread inherited the monitor thread's thread-local state, so
    // its Mutexes recorded a thread id that is not its own and traps followed.
    @Test("a .fork child that starts children of its own never traps", arguments: ["spawn", "forkserver", "fork"])
    func forkChildStartsGrandchildren(method: String) async throws {
        let result = try await runHelper(["scenario", "fork-grandchildren", method, "200"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.lines.contains("grandchildren \(method) rounds 200 failures 0"), "\(result.stdout)\(result.stderr.suffix(2000))")
    }


    // Item 3: the fork server's children are the parent's own, so a dead server takes nothing
    // with it; the dead server is reaped, and the next start gets a new one.
    @Test func aDeadForkServerLeavesItsChildrenAliveAndReachable() async throws {
        let result = try await runHelper(["scenario", "forkserver-dies"])
        let all = "\(result.stdout)\(result.stderr)"
        #expect(result.status == 0, "\(all)")
        #expect(result.lines.contains("server count 1"), "\(all)")
        #expect(result.lines.contains("server reaped true"), "\(all)")
        #expect(result.lines.contains("child running true alive true status none"), "\(all)")
        #expect(result.lines.contains("child terminated -15 running false"), "\(all)")
        #expect(result.lines.contains("next value 36"), "\(all)")
    }

    // Item 3, the design: a fork-server child is a raw clone, whose first thread keeps glibc's
    // cached thread id of the server; it runs on a fresh thread, so a robust lock it dies holding
    // records its real thread id and the kernel reports the death.
    @Test func aForkServerChildThatDiesHoldingALockIsReportedOwnerDied() throws {
        let lock = try Lock()
        let value = try SharedValue(5)
        let child = ChildProcess(DieHoldingLock(lock: lock, value: value), startMethod: .forkServer)
        try child.start()
        try child.join(timeout: .seconds(30))
        #expect(value.atomicLoad() == -1)
        do {
            try lock.acquire(timeout: .seconds(10))
            Issue.record("acquire should report the dead owner")
            try lock.release()
        } catch let error as MultiprocessingError {
            #expect(error.code == .ownerDied, "\(error)")
            try lock.release()
        }
    }

    // Item 4: non-daemon children receive SIGTERM when their parent is SIGKILLed, by every start
    // method; a child started with outlivesParent keeps running.
    @Test func nonDaemonChildrenDieWithAKilledParentUnlessTheyOptOut() async throws {
        let helper = try startHelper(["scenario", "orphans"])
        let lines = try await offThePool { helper.readLines(2) }
        let children = pids(in: lines.first { $0.hasPrefix("pids ") })
        let survivor = pids(in: lines.first { $0.hasPrefix("survivor ") })
        defer { for pid in survivor { kill(pid, SIGKILL) } }
        #expect(children.count == 3, "\(lines)")
        #expect(survivor.count == 1, "\(lines)")
        #expect(children.allSatisfy(processIsRunning))
        helper.signal(SIGKILL)
        // (Not wait() yet: Foundation waits for the output pipe too, which the survivor holds.)
        #expect(await eventuallyAsync(within: .seconds(60)) { children.allSatisfy { !processIsRunning($0) } }, "orphans left: \(children.filter(processIsRunning))")
        #expect(survivor.allSatisfy(processIsRunning))
        for pid in survivor { kill(pid, SIGKILL) }
        await helper.wait()
    }

    // Item 5: a daemon may not have children (as in Python): they would be orphaned when it is killed.
    @Test func aDaemonChildCannotStartChildren() throws {
        let child = ChildProcess(StartGrandchild(), daemon: true)
        try child.start()
        let answer = try child.value(timeout: .seconds(60))
        #expect(answer.hasPrefix("misuse:"), "\(answer)")
        #expect(answer.contains("daemon"))
        let plain = ChildProcess(StartGrandchild())
        try plain.start()
        #expect(try plain.value(timeout: .seconds(60)) == "started")
    }

    @Test func aDaemonThatOutlivesItsParentIsRefused() throws {
        let child = ChildProcess(Square(x: 2), daemon: true, outlivesParent: true)
        do {
            try child.start()
            Issue.record("start should be refused")
        } catch let error as MultiprocessingError {
            #expect(error.code == .misuse)
            #expect(error.message.contains("outlivesParent"))
        }
    }

    // Item 6: a failed start closed nothing of the parent's socket.
    @Test func failedStartsLeakNoDescriptor() async throws {
        let result = try await runHelper(["scenario", "failed-starts"])
        let line = result.lines.first { $0.hasPrefix("refused ") } ?? ""
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 3, "\(result.stdout)\(result.stderr)")
        if numbers.count == 3 {
            #expect(numbers[0] == 50)
            #expect(numbers[1] == numbers[2], "descriptors before and after 50 failed starts: \(line)")
        }
    }

    // Item 6: with SIGCHLD ignored, waitpid says ECHILD; the monitor used to retry forever.
    @Test func joinWithSIGCHLDIgnoredEndsWithAClearError() async throws {
        let result = try await runHelper(["scenario", "sigchld-ignored"])
        let all = "\(result.stdout)\(result.stderr)"
        #expect(result.status == 0, "\(all)")
        #expect(result.lines.contains("join error systemCall \(ECHILD)"), "\(all)")
        #expect(result.lines.contains { $0.hasPrefix("message ") && $0.contains("SIG_IGN") }, "\(all)")
        #expect(result.lines.contains("alive false"), "\(all)")
        // The result itself arrived before the exit: it is still there.
        #expect(result.lines.contains("value 25"), "\(all)")
    }

    // Item 6: a cancelled async join(timeout:) always throws .cancelled, never CancellationError.
    @Test func cancelledAsyncJoinAlwaysThrowsCancelled() async throws {
        // The child outlives the test by far (it is killed at the end): a loaded machine can hold
        // this async test off the cooperative pool for minutes, and the child must still run.
        let child = ChildProcess(SleepBlocking(milliseconds: 3_600_000))
        try child.start()
        defer { try? child.kill() }
        for round in 0..<100 {
            let waiter = Task { try await child.join(timeout: .seconds(120)) }
            // Cancel at different moments: before the wait starts, and while it waits.
            for _ in 0..<(round % 4) { await Task.yield() }
            if round % 5 == 4 { try await Task.sleep(for: .milliseconds(2)) }
            waiter.cancel()
            do {
                try await waiter.value
                Issue.record("round \(round): join returned while the child runs")
            } catch let error as MultiprocessingError {
                #expect(error.code == .cancelled, "round \(round): \(error)")
            } catch {
                Issue.record("round \(round): \(type(of: error)) \(error), not MultiprocessingError.cancelled")
            }
        }
        do {
            try await child.join(timeout: .milliseconds(20))
            Issue.record("join should time out")
        } catch let error as MultiprocessingError {
            #expect(error.code == .timedOut)
        }
        try child.kill()
        try await child.join(timeout: .seconds(30))
        #expect(child.exitCode == -9)
    }

    // Item 8 for joins: a negative timeout is refused by both twins, and the longest one
    // (Int64.max seconds, past the clock's end) waits for the child instead of overflowing.
    @Test func joinTimeoutsAreCheckedByBothTwins() async throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 120_000))
        try child.start()
        defer { try? child.kill() }
        for timeout in [Duration.seconds(-1), .nanoseconds(-1)] {
            do {
                try blockingJoin(child, timeout)
                Issue.record("join(timeout: \(timeout)) returned")
            } catch let error as MultiprocessingError {
                #expect(error.code == .misuse, "\(error)")
            }
            do {
                try await child.join(timeout: timeout)
                Issue.record("async join(timeout: \(timeout)) returned")
            } catch let error as MultiprocessingError {
                #expect(error.code == .misuse, "\(error)")
            }
        }
        let waiter = Task { try await child.join(timeout: .seconds(Int64.max)) }
        let blockingWaiter = OSThread { try blockingJoin(child, .seconds(Int64.max)) }
        try blockingWaiter.start()
        // Both still wait while the child runs: kill it, and both return without an error.
        try await Task.sleep(for: .milliseconds(50))
        #expect(child.isAlive)
        try child.kill()
        try await waiter.value
        try await blockingWaiter.join()
        #expect(blockingWaiter.error == nil)
        #expect(child.exitCode == -9)
    }

    // Item 7: a result over the frame limit fails with an error that names the limit and the size.
    @Test func aResultOverTheLimitNamesTheLimitAndTheSize() throws {
        let size = (1 << 30) + 1
        let child = ChildProcess(OversizedResult(count: size))
        try child.start()
        do {
            _ = try child.value(timeout: .seconds(120))
            Issue.record("value() should throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .coding, "\(error)")
            // The size is the encoded result's: the bytes and their length prefix.
            let said = error.message.split(separator: " ").compactMap { Int($0) }
            #expect(said.contains { $0 >= size }, "\(error)")
            #expect(error.message.contains("\(1 << 30)-byte"), "\(error)")
        }
        #expect(child.exitCode == 1)
    }

    // Item 7: the library's channel is not at descriptor 3, which a task may close and reuse.
    @Test("a task that closes descriptor 3 and opens a file gets a clean file", arguments: [StartMethod.spawn, .forkServer])
    func closingDescriptorThreeDoesNotHijackTheReport(method: StartMethod) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mp-fd3-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { unlink(path) }
        let child = ChildProcess(CloseThreeThenOpen(path: path), startMethod: method)
        try child.start()
        #expect(try child.value(timeout: .seconds(60)) == 3)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.size] as? NSNumber)?.intValue == 0, "the child's report went into the task's file")
    }
}
