// Outside checks after issue 12: variations of its items that its own regression tests do not
// cover, tried as a CPython user and as an attacker would (bad arguments at their limits).
import Foundation
import Testing
import TestHarness
@testable import Multiprocessing
import TestSupport
import MultiprocessingSystem

/// Durations longer than `Int64.max` seconds: `Duration` holds 128-bit attoseconds, so these are
/// valid values a caller can compute (`.seconds(Int64.max) * 2`), but `Duration.components` traps on
/// them ("Not enough bits to represent the passed value").
let durationsPastInt64Seconds: [Duration] = [
    .seconds(Int64.max) * 2,
    .seconds(Int64.max) * 18,  // close to the largest Duration (Int128.max attoseconds)
    .init(secondsComponent: Int64.max, attosecondsComponent: Int64.max),
]

/// Runs `wait` on a thread, waits until `isWaiting` says it sleeps, then runs `wake`: the wait must
/// succeed, not time out or fail.
private func expectWaitsUntilWoken(_ name: String, _ wait: @escaping @Sendable () throws -> Void,
                                   isWaiting: () -> Bool, wake: () throws -> Void,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    let waiter = OSThread(name: name) { try wait() }
    try waiter.start()
    #expect(eventually(within: .seconds(20)) { isWaiting() || !waiter.isAlive }, "\(name) never started to wait", sourceLocation: sourceLocation)
    #expect(waiter.isAlive, "\(name) gave up instead of waiting: \(String(describing: waiter.error))", sourceLocation: sourceLocation)
    try wake()
    try waiter.join(timeout: .seconds(20))
    #expect(waiter.error == nil, "\(name): \(String(describing: waiter.error))", sourceLocation: sourceLocation)
}

@Suite("OutsideCheckTimeouts", .serialized)
struct OutsideCheckTimeoutTests {
    @Test("a Duration longer than Int64.max seconds is a deadline that never passes, not a trap")
    func durationsPastInt64SecondsSaturate() throws {
        for timeout in durationsPastInt64Seconds {
            #expect(try Deadline.nanoseconds(of: timeout, "test") == Int64.max)
            let deadline = try Deadline(timeout: timeout, "test")
            #expect(!deadline.hasPassed)
        }
        // The most negative Duration is refused, not trapped on.
        #expect(throws: MultiprocessingError.self) { try Deadline(timeout: .seconds(Int64.min) * 18, "test") }
    }

    @Test("blocking calls wait, sync and async, for a Duration longer than Int64.max seconds")
    func blockingCallsWaitForDurationsPastInt64Seconds() throws {
        for timeout in durationsPastInt64Seconds {
            let lock = try Lock()
            try lock.acquire()
            try expectWaitsUntilWoken("Lock.acquire", { try lock.acquire(timeout: timeout); try lock.release() },
                                      isWaiting: { lock.mutex.word.load() & system_futexWaitersBit != 0 },
                                      wake: { try lock.release() })

            let event = try Event()
            try expectWaitsUntilWoken("Event.wait", { try event.wait(timeout: timeout) },
                                      isWaiting: { event.sleepers.load() == 1 }, wake: { event.set() })

            let semaphore = try Semaphore(0)
            try expectWaitsUntilWoken("Semaphore.acquire", { try semaphore.acquire(timeout: timeout) },
                                      isWaiting: { semaphore.core.sleepers.load() == 1 },
                                      wake: { try semaphore.release() })

            let queue = try Queue<Int>()
            try expectWaitsUntilWoken("Queue.get", { _ = try queue.get(timeout: timeout) },
                                      isWaiting: { queue.storage.notEmptyWaiters.load() == 1 }, wake: { try queue.put(1) })

            let (a, b) = try Connection.pipe()
            try b.send(5)
            #expect(try a.poll(timeout: timeout))
            #expect(try a.receive(Int.self, timeout: timeout) == 5)

            let condition = try Condition()
            try condition.withLock { try condition.wait(for: { true }, timeout: timeout) }

            let thread = OSThread { }
            try thread.start()
            try thread.join(timeout: timeout)

            let barrier = try Barrier(parties: 1, timeout: timeout)
            #expect(try barrier.wait() == 0)
        }
    }

    @Test("the async twins take a Duration longer than Int64.max seconds")
    func asyncTwinsTakeDurationsPastInt64Seconds() async throws {
        for timeout in durationsPastInt64Seconds {
            let event = try Event()
            let waiter = Task { try await event.wait(timeout: timeout) }
            #expect(await eventuallyAsync { event.sleepers.load() == 1 })
            event.set()
            try await waiter.value

            let (a, b) = try Connection.pipe()
            try await b.send(6, timeout: timeout)
            #expect(try await a.receive(Int.self, timeout: timeout) == 6)

            let thread = OSThread { }
            try thread.start()
            try await thread.join(timeout: timeout)

            let barrier = try Barrier(parties: 1)
            #expect(try await barrier.wait(timeout: timeout) == 0)

            let child = ChildProcess(Square(x: 3), startMethod: .spawn)
            try child.start()
            try await child.join(timeout: timeout)
        }
    }
}

@Suite("OutsideCheckArguments", .serialized)
struct OutsideCheckArgumentTests {
    @Test("sizes at their limits are errors that name the argument, not traps")
    func sizesAtTheirLimitsAreErrors() throws {
        for size in [0, -1, Int.min] {
            expectMisuse(["Connection.pipe", "maximumMessageSize"]) { _ = try Connection.pipe(maximumMessageSize: size) }
            expectMisuse(["Connection.pipe", "maximumMessageSize"]) { _ = try Connection.pipe(duplex: false, maximumMessageSize: size) }
        }
        // A connection's buffer grows as frames arrive, so any positive limit is fine there; a
        // queue maps its whole buffer at creation.
        for size in [0, -1, Int.min, Int.max, QueueStorage.largestMessageSize + 1] {
            expectMisuse(["Queue", "maximumMessageSize"]) { _ = try Queue<Int>(maximumMessageSize: size) }
            expectMisuse(["Queue", "maximumMessageSize"]) { _ = try SimpleQueue<Int>(maximumMessageSize: size) }
            expectMisuse(["Queue", "maximumMessageSize"]) { _ = try JoinableQueue<Int>(maximumMessageSize: size) }
        }
        for count in [-1, Int.min, Int.max, Int.max / 8] {
            expectMisuse(["SharedArray", "count"]) { _ = try SharedArray<Int64>(repeating: 0, count: count) }
        }
        // The limits themselves still work.
        let (a, b) = try Connection.pipe(maximumMessageSize: 1)
        try a.sendBytes([7])
        #expect(try b.receiveBytes(timeout: .seconds(10)) == [7])
        let empty = try SharedArray<Int64>(repeating: 0, count: 0)
        #expect(empty.toArray() == [])
    }

    @Test("Condition.notify with a negative count is .misuse, not a trap; notify(0) wakes nobody")
    func negativeNotifyIsAnError() throws {
        let condition = try Condition()
        try condition.withLock {
            expectMisuse(["Condition.notify", "-1"]) { try condition.notify(-1) }
            expectMisuse(["Condition.notify"]) { try condition.notify(Int.min) }
            try condition.notify(0)
        }
    }
}

@Suite("OutsideCheckHostilePeers", .serialized)
struct OutsideCheckHostilePeerTests {
    @Test("a frame header that announces more than memory holds, under a raised limit, is not allocated up front")
    func hugeAnnouncedFrameUnderARaisedLimit() throws {
        for announced in [UInt64(1) << 62, UInt64(1) << 42] {
            let (a, b) = try Connection.pipe(maximumMessageSize: Int.max)
            let header = FrameHeader(kind: .bytes, descriptorCount: 0, length: Int(announced)).bytes
            let written = header.withUnsafeBytes { write(b.descriptor, $0.baseAddress, $0.count) }
            #expect(written == header.count)
            // Some of the body, then the peer stalls: the receiver times out, holding what came.
            let part = [UInt8](repeating: 0xAB, count: 100_000)
            #expect(part.withUnsafeBytes { write(b.descriptor, $0.baseAddress, $0.count) } == part.count)
            do {
                _ = try a.receiveBytes(timeout: .milliseconds(50))
                Issue.record("a frame of \(announced) bytes cannot have arrived")
            } catch let error as MultiprocessingError {
                #expect(error.code == .timedOut, "\(error)")
            }
            b.close()
            do {
                _ = try a.receiveBytes(timeout: .seconds(10))
                Issue.record("the stream ended inside the frame")
            } catch let error as MultiprocessingError {
                #expect(error.code == .malformedFrame, "\(error)")
                #expect(error.message.contains("after 100000 of \(announced) bytes"), "\(error.message)")
            }
        }
    }

    @Test("a message larger than the first buffer arrives whole, through many reads")
    func largeMessagesGrowTheBufferAndArriveWhole() throws {
        let (a, b) = try Connection.pipe()
        let size = 40 << 20
        let message = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 16)) }
        let sender = OSThread { try b.sendBytes(message, timeout: .seconds(60)) }
        try sender.start()
        let received = try a.receiveBytes(timeout: .seconds(60))
        try sender.join(timeout: .seconds(60))
        #expect(received.count == size)
        #expect(received == message)
    }
}

/// Runs the helper with `arguments` and returns its exit status and output lines.
private func runHelperLines(_ arguments: [String]) async throws -> (status: Int32, lines: [String]) {
    let output = try await runHelper(arguments)
    return (output.status, output.lines)
}

@Suite("OutsideCheckProcesses", .serialized)
struct OutsideCheckProcessTests {

    @Test("with SIGCHLD ignored, join ends and the value arrives, by every start method", arguments: ["spawn", "fork", "forkserver"])
    func sigchldIgnoredByEveryStartMethod(_ method: String) async throws {
        let (status, lines) = try await runHelperLines(["scenario", "outside-sigchld", method])
        #expect(status == 0, "\(lines)")
        #expect(lines.contains("value 25"), "\(lines)")
        #expect(lines.contains { $0 == "join returned" || $0.hasPrefix("join error systemCall") }, "\(lines)")
        let seconds = lines.first { $0.hasPrefix("seconds ") }.flatMap { Int($0.dropFirst(8)) } ?? 99
        #expect(seconds < 30, "join waited for its whole timeout: \(lines)")
    }

    @Test("with descriptors 0-2 closed in the parent, a child still runs, by every start method", arguments: ["spawn", "fork", "forkserver"])
    func closedStandardDescriptors(_ method: String) async throws {
        let (status, lines) = try await runHelperLines(["scenario", "outside-closed-stdio", method])
        #expect(status == 0, "\(lines)")
        #expect(lines.contains("value 49"), "\(lines)")
    }

    @Test("a fork server SIGKILLed while children start: every start gives a value or a clear error, none hangs, no zombie")
    func forkServerKilledWhileChildrenStart() async throws {
        let (status, lines) = try await runHelperLines(["scenario", "outside-forkserver-killed-while-starting", "20"])
        #expect(status == 0, "\(lines)")
        let report = lines.first { $0.hasPrefix("rounds ") } ?? ""
        let numbers = report.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 6, "\(lines)")
        if numbers.count == 6 {
            #expect(numbers[1] + numbers[2] == 400, "\(report)")
            #expect(numbers[3] == 0, "starts that hung: \(report)")
            #expect(numbers[4] == 0, "dead servers left as zombies: \(report)")
            #expect(numbers[5] == 20, "later starts that failed: \(report)")
        }
    }

    @Test("a killed parent leaves no orphan or zombie grandchild", arguments: ["spawn", "fork", "forkserver"])
    func killedParentLeavesNoGrandchildren(_ childMethod: String) async throws {
        var orphans: [String] = []
        for grandchildMethod in ["spawn", "fork", "forkserver"] {
            for kind in ["plain", "daemon", "outlives"] {
                for signal in [SIGKILL, SIGTERM] {
                    let helper = try startHelper(["scenario", "outside-tree", childMethod, grandchildMethod, kind])
                    let firstLine = try await offThePool { helper.readLine() }
                    let family = pids(in: firstLine)
                    let label = "\(childMethod)->\(grandchildMethod) \(kind) \(signal == SIGKILL ? "SIGKILL" : "SIGTERM")"
                    #expect(family.count == 2 && family.allSatisfy { $0 > 0 }, "\(label): \(firstLine ?? "no output")")
                    guard family.count == 2 else { helper.signal(SIGKILL); await helper.wait(); continue }
                    helper.signal(signal)
                    let (child, grandchild) = (family[0], family[1])
                    let childGone = await eventuallyAsync(within: .seconds(30)) { !isRunningProcess(child) }
                    if kind == "outlives" {
                        #expect(childGone, "\(label): the child outlived its killed parent")
                        // The grandchild opted out: it keeps running, and is ours to kill.
                        #expect(isRunningProcess(grandchild), "\(label): the grandchild that opted out died")
                        kill(grandchild, SIGKILL)
                    } else {
                        let grandchildGone = await eventuallyAsync(within: .seconds(30)) { !isRunningProcess(grandchild) }
                        if !childGone { orphans.append("\(label): child \(child)"); kill(child, SIGKILL) }
                        if !grandchildGone { orphans.append("\(label): grandchild \(grandchild)"); kill(grandchild, SIGKILL) }
                    }
                    if await !eventuallyAsync(within: .seconds(30), { !helper.process.isRunning }) {
                        orphans.append("\(label): the parent survived the signal")
                        helper.signal(SIGKILL)
                    }
                    await helper.wait()
                }
            }
        }
        #expect(orphans.isEmpty, "left running: \(orphans)")
    }
}

/// The error code `body` throws, or nil.
private func code(_ body: () throws -> Void) -> MultiprocessingError.Code? {
    do { try body(); return nil } catch let error as MultiprocessingError { return error.code } catch { return nil }
}

// Cases of CPython's Lib/test/lock_tests.py (BaseLockTests, EventTests, ConditionTests,
// BarrierTests) and _test_multiprocessing.py, translated to this API with timeouts of zero and
// of a few nanoseconds.
@Suite("OutsideCheckCPythonCases", .serialized)
struct OutsideCheckCPythonCaseTests {
    @Test("a zero or tiny timeout checks without waiting, everywhere")
    func zeroAndTinyTimeoutsOnlyCheck() throws {
        for timeout in [Duration.zero, .nanoseconds(1), .init(secondsComponent: 0, attosecondsComponent: 1)] {
            // BaseLockTests.test_timeout: a held lock times out, then is still held.
            let lock = try Lock()
            let done = try Event()
            let holder = OSThread { try lock.withLock { try done.wait(timeout: .seconds(60)) } }
            try holder.start()
            #expect(eventually(within: .seconds(20)) { lock.isLocked })
            #expect(code { try lock.acquire(timeout: timeout) } == .timedOut)
            done.set()
            try holder.join(timeout: .seconds(20))
            #expect(!lock.isLocked)
            let rlock = try RLock()
            try rlock.acquire(timeout: timeout)
            try rlock.acquire(timeout: timeout)  // re-entry never waits
            try rlock.release(); try rlock.release()
            #expect(code { try rlock.release() } == .misuse, "RLock: release more than acquired")
            #expect(code { try Semaphore(0).acquire(timeout: timeout) } == .timedOut)
            #expect(code { try BoundedSemaphore(1).release() } == .misuse, "BoundedSemaphore over-release")
            #expect(code { try Event().wait(timeout: timeout) } == .timedOut)
            let condition = try Condition()
            #expect(code { try condition.withLock { try condition.wait(timeout: timeout) } } == .timedOut)
            #expect(code { try condition.withLock { try condition.wait(for: { false }, timeout: timeout) } } == .timedOut)
            let queue = try Queue<Int>(maxsize: 1)
            // This module's queues say .timedOut for a timeout and .empty/.full for the nowait
            // forms (Python raises Empty/Full for both).
            #expect(code { _ = try queue.get(timeout: timeout) } == .timedOut)
            #expect(code { _ = try queue.getNowait() } == .empty)
            try queue.put(1, timeout: timeout)
            #expect(code { try queue.put(2, timeout: timeout) } == .timedOut)
            #expect(code { try queue.putNowait(2) } == .full)
            let joinable = try JoinableQueue<Int>()
            try joinable.put(1)
            #expect(code { try joinable.join(timeout: timeout) } == .timedOut)
            _ = try joinable.get(timeout: timeout)
            try joinable.taskDone()
            try joinable.join(timeout: timeout)
            #expect(code { try joinable.taskDone() } == .misuse, "task_done called too many times")
            let (a, b) = try Connection.pipe()
            #expect(try !a.poll(timeout: timeout))
            #expect(code { _ = try a.receiveBytes(timeout: timeout) } == .timedOut)
            try b.send(1, timeout: timeout)
            #expect(try a.poll(timeout: timeout))
            // BarrierTests.test_timeout: a wait that times out breaks the barrier; reset mends it.
            let barrier = try Barrier(parties: 2)
            #expect(code { _ = try barrier.wait(timeout: timeout) } == .timedOut)
            #expect(barrier.isBroken)
            #expect(code { _ = try barrier.wait(timeout: .seconds(5)) } == .broken)
            barrier.reset()
            #expect(!barrier.isBroken)
            #expect(barrier.waitingCount == 0)
        }
    }

    @Test("BarrierTests.test_action_exception: the party that ran the action gets its error, the others .broken")
    func barrierActionThatThrowsBreaksIt() throws {
        struct ActionFailed: Error {}
        let barrier = try Barrier(parties: 3, action: { throw ActionFailed() })
        let outcomes = try Queue<String>()
        let threads = (0..<3).map { _ in
            OSThread {
                do {
                    _ = try barrier.wait(timeout: .seconds(30))
                    try outcomes.put("passed")
                } catch let error as MultiprocessingError {
                    try outcomes.put("\(error.code)")
                } catch {
                    try outcomes.put("action")
                }
            }
        }
        for thread in threads { try thread.start() }
        for thread in threads { try thread.join(timeout: .seconds(60)) }
        let seen = try (0..<3).map { _ in try outcomes.get(timeout: .seconds(10)) }
        #expect(seen.sorted() == ["action", "broken", "broken"])
        #expect(barrier.isBroken)
    }
}

@Suite("OutsideCheckEventStorms", .serialized)
struct OutsideCheckEventStormTests {

    @Test("set() then clear() at once wakes every waiter in four other processes, 500 rounds in a row")
    func setThenClearStormsWakeEveryProcess() throws {
        let event = try Event()
        let done = try Queue<Int>()
        let rounds = 500
        let waiters = (0..<4).map { ChildProcess(EventStormWaiter(event: event, done: done, rounds: rounds), startMethod: $0 % 2 == 0 ? .spawn : .forkServer) }
        for waiter in waiters { try waiter.start() }
        defer { for waiter in waiters { try? waiter.kill() } }
        var lost = 0
        for round in 0..<rounds {
            guard eventually(within: .seconds(30), { event.sleepers.load() == 4 }) else {
                Issue.record("round \(round): the waiters never all slept (\(event.sleepers.load()))")
                return
            }
            event.set()
            event.clear()
            var woke = 0
            for _ in 0..<4 {
                if (try? done.get(timeout: .seconds(30))) == round { woke += 1 }
            }
            lost += 4 - woke
            if woke < 4 { break }
        }
        #expect(lost == 0, "waiters that missed a set() followed by clear()")
        for waiter in waiters { try waiter.join(timeout: .seconds(30)) }
    }
}

@Suite("OutsideCheckAsyncNegativeTimeouts", .serialized)
struct OutsideCheckAsyncNegativeTimeoutTests {

    /// The code an async call throws, or nil.
    private func asyncCode(_ body: () async throws -> Void) async -> MultiprocessingError.Code? {
        do { try await body(); return nil } catch let error as MultiprocessingError { return error.code } catch { return nil }
    }

    @Test("the async twins refuse a negative timeout with .misuse, even where they would not wait")
    func asyncTwinsRefuseNegativeTimeouts() async throws {
        for timeout in [Duration.nanoseconds(-1), .seconds(Int64.min) * 18] {
            let event = try Event()
            event.set()
            #expect(await asyncCode { try await event.wait(timeout: timeout) } == .misuse)
            let semaphore = try Semaphore(1)
            #expect(await asyncCode { try await semaphore.acquire(timeout: timeout) } == .misuse)
            #expect(semaphore.value == 1)
            let lock = try Lock()
            #expect(await asyncCode { try await lock.withLock(timeout: timeout) { } } == .misuse)
            let rlock = try RLock()
            #expect(await asyncCode { try await rlock.withLock(timeout: timeout) { } } == .misuse)
            let queue = try Queue<Int>()
            #expect(await asyncCode { try await queue.put(1, timeout: timeout) } == .misuse)
            try await queue.put(1)
            #expect(await asyncCode { _ = try await queue.get(timeout: timeout) } == .misuse)
            #expect(try await queue.get(timeout: .seconds(10)) == 1, "a refused get must leave the item")
            let joinable = try JoinableQueue<Int>()
            #expect(await asyncCode { try await joinable.join(timeout: timeout) } == .misuse)
            let (a, b) = try Connection.pipe()
            #expect(await asyncCode { try await b.send(1, timeout: timeout) } == .misuse)
            try await b.send(2)
            #expect(await asyncCode { _ = try await a.receive(Int.self, timeout: timeout) } == .misuse)
            #expect(await asyncCode { _ = try await a.poll(timeout: timeout) } == .misuse)
            #expect(try await a.receive(Int.self, timeout: .seconds(10)) == 2, "a refused receive must leave the message")
            let barrier = try Barrier(parties: 1)
            #expect(await asyncCode { _ = try await barrier.wait(timeout: timeout) } == .misuse)
            #expect(!barrier.isBroken)
            let thread = OSThread { }
            try thread.start()
            #expect(await asyncCode { try await thread.join(timeout: timeout) } == .misuse)
            try await thread.join()
            let child = ChildProcess(Square(x: 2), startMethod: .spawn)
            try child.start()
            #expect(await asyncCode { try await child.join(timeout: timeout) } == .misuse)
            #expect(await asyncCode { _ = try await child.value(timeout: timeout) } == .misuse)
            #expect(try await child.value(timeout: .seconds(60)) == 4)
        }
    }
}
