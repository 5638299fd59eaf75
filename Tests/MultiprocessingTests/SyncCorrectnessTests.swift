// Regression tests for issue 12, items 8 to 12: timeouts, constructor arguments, Barrier's
// waitingCount, the built-in lock idiom of SharedValue/SharedArray, and locks in async code.
import Foundation
import Testing
import TestHarness
@testable import Multiprocessing
import TestSupport
import MultiprocessingSystem

/// Python's `threading.TIMEOUT_MAX` on Linux, in whole seconds.
private let pythonTimeoutMax = Duration.seconds(9_223_372_036)
/// The longest `Duration` in whole seconds.
private let longestDuration = Duration.seconds(Int64.max)

/// The one-letter state of a process in /proc (R, S, T...), or nil when it is gone.
private func processState(_ pid: Int32) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}

/// Runs `wait` on a thread, waits until `isWaiting` says it sleeps, then runs `wake`: the wait must
/// succeed, not time out.
private func expectWaitsUntilWoken(_ name: String, _ wait: @escaping @Sendable () throws -> Void,
                                   isWaiting: () -> Bool, wake: () throws -> Void,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    let waiter = OSThread(name: name) { try wait() }
    try waiter.start()
    #expect(eventually { isWaiting() || !waiter.isAlive }, "\(name) never started to wait", sourceLocation: sourceLocation)
    #expect(waiter.isAlive, "\(name) gave up instead of waiting: \(String(describing: waiter.error))", sourceLocation: sourceLocation)
    try wake()
    try waiter.join(timeout: .seconds(20))
    #expect(waiter.error == nil, "\(name): \(String(describing: waiter.error))", sourceLocation: sourceLocation)
}

/// Expects `.misuse` whose message mentions each of `words` (the suites of this target share it).
func expectMisuse(_ words: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected .misuse, got no error", sourceLocation: sourceLocation)
    } catch let error as MultiprocessingError {
        #expect(error.code == .misuse, "\(error)", sourceLocation: sourceLocation)
        for word in words {
            #expect(error.message.contains(word), "\(error.message) should mention \(word)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected MultiprocessingError, got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("SyncCorrectnessTimeouts", .serialized)
struct SyncCorrectnessTimeoutTests {
    @Test("a deadline saturates: TIMEOUT_MAX and Int64.max seconds never wrap into the past")
    func deadlineSaturates() throws {
        for timeout in [pythonTimeoutMax, longestDuration, Duration.seconds(Int64.max / 1_000_000_000 + 1)] {
            let deadline = try Deadline(timeout: timeout, "test")
            #expect(!deadline.hasPassed)
            if let left = deadline.remainingNanoseconds { #expect(left > 9_000_000_000_000_000) }
            #expect(deadline.pollMilliseconds == -1 || deadline.pollMilliseconds == CInt.max)
        }
        // A fraction of a nanosecond rounds up: a wait never ends early.
        #expect(try Deadline.nanoseconds(of: .init(secondsComponent: 0, attosecondsComponent: 1), "test") == 1)
        #expect(try Deadline.nanoseconds(of: .milliseconds(3), "test") == 3_000_000)
    }

    @Test("Lock, RLock, Semaphore, Event, Condition, Barrier, Queue, Connection and join wait for TIMEOUT_MAX")
    func hugeTimeoutsWait() throws {
        for timeout in [pythonTimeoutMax, longestDuration] {
            let lock = try Lock()
            let release = try Event()
            let holder = OSThread { try lock.withLock { try release.wait() } }
            try holder.start()
            #expect(eventually { lock.isLocked })
            try expectWaitsUntilWoken("Lock.acquire", { try lock.acquire(timeout: timeout); try lock.release() },
                                      isWaiting: { lock.mutex.word.load() & system_futexWaitersBit != 0 },
                                      wake: { release.set() })
            try holder.join(timeout: .seconds(20))

            let rlock = try RLock()
            let releaseR = try Event()
            let holderR = OSThread { try rlock.withLock { try releaseR.wait() } }
            try holderR.start()
            #expect(eventually { rlock.mutex.ownerTID != 0 })
            try expectWaitsUntilWoken("RLock.acquire", { try rlock.acquire(timeout: timeout); try rlock.release() },
                                      isWaiting: { rlock.mutex.word.load() & system_futexWaitersBit != 0 },
                                      wake: { releaseR.set() })
            try holderR.join(timeout: .seconds(20))

            let semaphore = try Semaphore(0)
            try expectWaitsUntilWoken("Semaphore.acquire", { try semaphore.acquire(timeout: timeout) },
                                      isWaiting: { semaphore.core.sleepers.load() == 1 },
                                      wake: { try semaphore.release() })

            let event = try Event()
            try expectWaitsUntilWoken("Event.wait", { try event.wait(timeout: timeout) },
                                      isWaiting: { event.sleepers.load() == 1 }, wake: { event.set() })

            let condition = try Condition()
            try expectWaitsUntilWoken("Condition.wait", { try condition.withLock { try condition.wait(timeout: timeout) } },
                                      isWaiting: { condition.registeredWaiters == 1 },
                                      wake: { try condition.withLock { try condition.notify() } })

            let barrier = try Barrier(parties: 2, timeout: timeout)
            try expectWaitsUntilWoken("Barrier.wait", { try barrier.wait() },
                                      isWaiting: { barrier.waitingCount == 1 }, wake: { try barrier.wait() })

            let queue = try Queue<Int>()
            try expectWaitsUntilWoken("Queue.get", { _ = try queue.get(timeout: timeout) },
                                      isWaiting: { queue.storage.notEmptyWaiters.load() == 1 }, wake: { try queue.put(1) })

            let (a, b) = try Connection.pipe()
            try expectWaitsUntilWoken("Connection.receive", { _ = try a.receive(Int.self, timeout: timeout) },
                                      isWaiting: { a.operationsInFlight == 1 }, wake: { try b.send(7) })

            let finish = try Event()
            let worker = OSThread { try finish.wait() }
            try worker.start()
            try expectWaitsUntilWoken("OSThread.join", { try worker.join(timeout: timeout) },
                                      isWaiting: { true }, wake: { finish.set() })
        }
    }

    @Test("a negative timeout is .misuse everywhere, even where the call would not have to wait")
    func negativeTimeoutsRefused() throws {
        for timeout in [Duration.seconds(-1), .nanoseconds(-1), .seconds(Int64.min)] {
            let lock = try Lock()
            expectMisuse(["Lock.acquire", "negative"]) { try lock.acquire(timeout: timeout) }
            #expect(!lock.isLocked, "a refused acquire must not take the lock")
            expectMisuse(["Lock.withLock", "negative"]) { try lock.withLock(timeout: timeout) { () -> Void in Issue.record("body ran") } }
            #expect(!lock.isLocked)

            let rlock = try RLock()
            expectMisuse(["RLock.acquire"]) { try rlock.acquire(timeout: timeout) }
            #expect(rlock.recursionDepth == 0)

            let semaphore = try Semaphore(1)
            expectMisuse(["Semaphore.acquire"]) { try semaphore.acquire(timeout: timeout) }
            #expect(semaphore.value == 1, "a refused acquire must not take a unit")
            let bounded = try BoundedSemaphore(1)
            expectMisuse(["BoundedSemaphore.acquire"]) { try bounded.acquire(timeout: timeout) }
            #expect(bounded.value == 1)

            let event = try Event()
            event.set()
            expectMisuse(["Event.wait"]) { try event.wait(timeout: timeout) }

            let condition = try Condition()
            try condition.withLock {
                expectMisuse(["Condition.wait"]) { try condition.wait(timeout: timeout) }
                #expect(condition.isOwnedByCurrentThreadForTests, "the lock stays held")
                expectMisuse(["Condition.wait(for:)"]) { try condition.wait(for: { true }, timeout: timeout) }
            }
            #expect(condition.registeredWaiters == 0)

            expectMisuse(["Barrier(timeout:)"]) { _ = try Barrier(parties: 2, timeout: timeout) }
            let barrier = try Barrier(parties: 2)
            expectMisuse(["Barrier.wait"]) { try barrier.wait(timeout: timeout) }
            #expect(!barrier.isBroken, "a refused wait does not break the barrier")

            let value = try SharedValue(0)
            expectMisuse(["SharedValue.withLock"]) { try value.withLock(timeout: timeout) { $0 += 1 } }
            let array = try SharedArray<Int>(repeating: 0, count: 2)
            expectMisuse(["SharedArray.withLock"]) { try array.withLock(timeout: timeout) { $0[0] += 1 } }
            #expect(value.value == 0 && array[0] == 0)

            let queue = try Queue<Int>()
            try queue.put(1)
            expectMisuse(["Queue.get"]) { _ = try queue.get(timeout: timeout) }
            expectMisuse(["Queue.put"]) { try queue.put(2, timeout: timeout) }
            #expect(try queue.get(timeout: .seconds(5)) == 1)

            let (a, b) = try Connection.pipe()
            try b.send(1)
            expectMisuse(["Connection.receive"]) { _ = try a.receive(Int.self, timeout: timeout) }
            expectMisuse(["Connection.send"]) { try b.send(2, timeout: timeout) }
            expectMisuse(["Connection.poll"]) { _ = try a.poll(timeout: timeout) }
            #expect(try a.receive(Int.self, timeout: .seconds(5)) == 1, "the message is still there")

            let thread = OSThread {}
            try thread.start()
            expectMisuse(["OSThread.join"]) { try thread.join(timeout: timeout) }
            try thread.join(timeout: .seconds(20))
            expectMisuse(["OSTimer"]) { try OSTimer(after: timeout) {}.start() }
        }
    }
}

extension SyncCorrectnessTimeoutTests {
    @Test("a negative timeout is .misuse in the async twins too")
    func negativeTimeoutsRefusedAsync() async throws {
        let timeout = Duration.milliseconds(-5)
        let lock = try Lock()
        await expectCode(.misuse) { try await lock.withLock(timeout: timeout) { () -> Void in Issue.record("body ran") } }
        #expect(!lock.isLocked)
        let rlock = try RLock()
        await expectCode(.misuse) { try await rlock.withLock(timeout: timeout) { () -> Void in Issue.record("body ran") } }
        let semaphore = try Semaphore(1)
        await expectCode(.misuse) { try await semaphore.acquire(timeout: timeout) }
        #expect(semaphore.value == 1)
        let event = try Event()
        event.set()
        await expectCode(.misuse) { try await event.wait(timeout: timeout) }
        let condition = try Condition()
        await expectCode(.misuse) { try await condition.withLock(waitingFor: { true }, timeout: timeout) {} }
        await expectCode(.misuse) { try await condition.withLock(timeout: timeout) {} }
        let barrier = try Barrier(parties: 2)
        await expectCode(.misuse) { try await barrier.wait(timeout: timeout) }
        let value = try SharedValue(0)
        await expectCode(.misuse) { try await value.withLock(timeout: timeout) { $0 += 1 } }
        let queue = try Queue<Int>()
        try await queue.put(1)
        await expectCode(.misuse) { _ = try await queue.get(timeout: timeout) }
        let (a, b) = try Connection.pipe()
        try await b.send(1)
        await expectCode(.misuse) { _ = try await a.receive(Int.self, timeout: timeout) }
        await expectCode(.misuse) { try await b.send(2, timeout: timeout) }
        await expectCode(.misuse) { _ = try await a.poll(timeout: timeout) }
        #expect(try await a.receive(Int.self, timeout: .seconds(5)) == 1)
        let thread = OSThread {}
        try thread.start()
        await expectCode(.misuse) { try await thread.join(timeout: timeout) }
        try await thread.join(timeout: .seconds(20))
    }
}

@Suite("SyncCorrectnessArguments")
struct SyncCorrectnessArgumentTests {
    @Test("Semaphore(-1), BoundedSemaphore(-1) and Barrier(parties: 0 / -1) throw, naming the argument")
    func badConstructorArguments() {
        expectMisuse(["Semaphore", "value", "-1"]) { _ = try Semaphore(-1) }
        expectMisuse(["BoundedSemaphore", "value", "-1"]) { _ = try BoundedSemaphore(-1) }
        expectMisuse(["Semaphore", "value"]) { _ = try Semaphore(Int(UInt32.max)) }
        expectMisuse(["BoundedSemaphore", "value"]) { _ = try BoundedSemaphore(Int.max) }
        expectMisuse(["Barrier", "parties", "0"]) { _ = try Barrier(parties: 0) }
        expectMisuse(["Barrier", "parties", "-1"]) { _ = try Barrier(parties: -1) }
        expectMisuse(["Barrier", "parties"]) { _ = try Barrier(parties: Int(Int32.max)) }
    }

    @Test("in a child process, the bad arguments throw (the task fails) instead of trapping (the child dies)")
    func badArgumentsDoNotTrapInAChild() throws {
        for kind in ["Semaphore(-1)", "BoundedSemaphore(-1)", "Barrier(parties: 0)", "Barrier(parties: -1)"] {
            let child = ChildProcess(MakeBadPrimitive(kind: kind))
            try child.start()
            do {
                let result = try child.value(timeout: .seconds(60))
                Issue.record("\(kind): \(result)")
            } catch let error as MultiprocessingError {
                #expect(error.code == .childFailed, "\(kind): \(error)")
                #expect(child.exitCode == 1, "\(kind): \(String(describing: child.exitStatus))")
            }
        }
    }

    @Test("an unbounded Semaphore's count never wraps past 2^32 - 2: release throws and keeps the count")
    func semaphoreDoesNotWrap() throws {
        let semaphore = try Semaphore(Int(UInt32.max) - 2)
        try semaphore.release()
        #expect(semaphore.value == Int(UInt32.max) - 1)
        expectMisuse(["Semaphore.release", "4294967294"]) { try semaphore.release() }
        #expect(semaphore.value == Int(UInt32.max) - 1)
        let empty = try Semaphore(0)
        expectMisuse(["Semaphore.release"]) { try empty.release(Int.max) }
        expectMisuse(["Semaphore.release", "n"]) { try empty.release(0) }
        expectMisuse(["BoundedSemaphore.release", "n"]) { try BoundedSemaphore(1).release(-1) }
        #expect(empty.value == 0)
    }
}

@Suite("SyncCorrectnessBarrier", .serialized)
struct SyncCorrectnessBarrierTests {

    @Test("waitingCount is 0 once the barrier trips, while stopped parties have not left yet")
    func waitingCountAfterTrip() throws {
        let barrier = try Barrier(parties: 5)
        let children = (0..<4).map { _ in ChildProcess(WaitAtBarrier(barrier: barrier)) }
        for child in children { try child.start() }
        #expect(eventually(within: .seconds(30)) { barrier.waitingCount == 4 })
        // Stopped, the four cannot leave the barrier: only the trip itself can change the count.
        let pids = children.compactMap(\.pid)
        #expect(pids.count == 4)
        for pid in pids { kill(pid, SIGSTOP) }
        #expect(eventually(within: .seconds(30)) { pids.allSatisfy { processState($0) == "T" } })
        let mine = try barrier.wait(timeout: .seconds(30))
        #expect(mine == 4)
        #expect(barrier.waitingCount == 0)
        for pid in pids { kill(pid, SIGCONT) }
        let indices = try children.map { try $0.value(timeout: .seconds(30)) } + [mine]
        #expect(indices.sorted() == [0, 1, 2, 3, 4])
        #expect(barrier.waitingCount == 0)
    }
}

@Suite("SyncCorrectnessSharedIdiom", .serialized)
struct SyncCorrectnessSharedIdiomTests {

    @Test("`counter.lock.withLock { counter.value += 1 }` is exact: 4 processes x 1,000")
    func lockedIdiomAcrossProcesses() throws {
        let counter = try SharedValue(0)
        let array = try SharedArray<Int>(repeating: 0, count: 2)
        let ready = try Barrier(parties: 4)
        let iterations = 1_000
        let children = (0..<4).map { _ in
            ChildProcess(LockedIdiomIncrement(counter: counter, array: array, iterations: iterations, ready: ready))
        }
        for child in children { try child.start() }
        for child in children {
            try child.value(timeout: .seconds(120))
            #expect(child.exitCode == 0)
        }
        #expect(counter.value == 4 * iterations)
        #expect(array.toArray() == [4 * iterations, 4 * iterations])
    }

    @Test("the idiom between threads, nested accessors, and the lock's re-entry depth")
    func lockedIdiomBetweenThreads() throws {
        let counter = try SharedValue(0)
        let array = try SharedArray<Int>(repeating: 0, count: 3)
        let threads = (0..<4).map { _ in
            OSThread {
                for _ in 0..<2_000 {
                    try counter.lock.withLock { counter.value += 1 }
                    try array.lock.withLock { array[2] += 1; _ = array.toArray() }
                    try counter.withLock { value in value += 1; _ = counter.lock.recursionDepth }
                }
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join(timeout: .seconds(60)) }
        for t in threads { #expect(t.error == nil) }
        #expect(counter.value == 16_000)
        #expect(array[2] == 8_000)
        try counter.lock.withLock {
            #expect(counter.lock.recursionDepth == 1)
            _ = counter.value
            #expect(counter.lock.recursionDepth == 1, "an accessor gives back only the level it took")
        }
        #expect(!counter.lock.isOwnedByCurrentThread)
    }
}

@Suite("SyncCorrectnessAsync")
struct SyncCorrectnessAsyncTests {
    @Test("tasks that suspend between critical sections on one pool keep a lock consistent")
    func tasksSuspendBetweenCriticalSections() async throws {
        let lock = try Lock()
        let rlock = try RLock()
        let counter = UnsafeCounter(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<250 {
                        try await lock.withLock { counter.value += 1 }
                        await Task.yield()
                        try await rlock.withLock { try rlock.withLock { counter.value += 1 } }
                        try await Task.sleep(for: .microseconds(10))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(counter.value == 2_000)
        #expect(!lock.isLocked && rlock.mutex.ownerTID == 0)
    }

    @Test("a lock taken again by its owning thread, or released by another, says that a lock belongs to a thread, not to a task")
    func misuseMessagesNameTheAsyncMistake() throws {
        let lock = try Lock()
        try lock.acquire()
        expectMisuse(["already holds", "RLock", "await", "withLock"]) { try lock.acquire(timeout: .seconds(1)) }
        let other = OSThread { try lock.release() }
        try other.start()
        try other.join(timeout: .seconds(20))
        let message = (other.error as? MultiprocessingError)?.message ?? ""
        #expect((other.error as? MultiprocessingError)?.code == .misuse)
        for word in ["does not hold", "await", "another thread", "withLock"] {
            #expect(message.contains(word), "\(message) should mention \(word)")
        }
        try lock.release()

        let rlock = try RLock()
        let foreign = OSThread { try rlock.release() }
        try foreign.start()
        try foreign.join(timeout: .seconds(20))
        #expect((foreign.error as? MultiprocessingError)?.message.contains("await") == true)
    }
}

/// Type-checks `source` against the Multiprocessing module this test run was built with.
private func typecheck(_ source: String) throws -> ProgramOutput {
    let bin = URL(fileURLWithPath: helperPath).deletingLastPathComponent()
    var root = bin
    let systemMap = "checkouts/swift-system/Sources/CSystem/include/module.modulemap"
    while root.path != "/" && !FileManager.default.fileExists(atPath: root.appendingPathComponent(systemMap).path) {
        root = root.deletingLastPathComponent()
    }
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("mp-noasync-\(getpid())-\(UUID().uuidString).swift")
    try source.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    return try runProgram("/usr/bin/env", [
        "swiftc", "-swift-version", "6", "-typecheck",
        "-I", bin.appendingPathComponent("Modules").path,
        "-Xcc", "-fmodule-map-file=" + root.appendingPathComponent(systemMap).path,
        "-Xcc", "-fmodule-map-file=" + bin.appendingPathComponent("CMultiprocessing.build/module.modulemap").path,
        file.path,
    ])
}

extension SyncCorrectnessAsyncTests {
    @Test("holding a Lock, RLock or Condition across an await does not compile; withLock does")
    func lockAcrossAwaitDoesNotCompile() throws {
        let good = try typecheck("""
            import Multiprocessing
            func f(_ lock: Lock, _ rlock: RLock, _ condition: Condition) async throws {
                try await lock.withLock { }
                await Task.yield()
                try await rlock.withLock { try rlock.withLock { } }
                try await condition.withLock(waitingFor: { true }) { try condition.notifyAll() }
            }
            """)
        #expect(good.status == 0, "the control snippet must compile: \(good.stderr)")
        for (type, call) in [("Lock", "acquire()"), ("Lock", "acquire(timeout: .seconds(1))"), ("Lock", "release()"),
                             ("Lock", "tryAcquire()"), ("RLock", "acquire()"), ("RLock", "release()"),
                             ("Condition", "acquire()"), ("Condition", "release()")] {
            // Issue 12's pattern: take the lock, await, release.
            let bad = try typecheck("""
                import Multiprocessing
                func f(_ lock: \(type)) async throws {
                    _ = try await lock.\(call)
                    await Task.yield()
                }
                """)
            #expect(bad.status != 0, "\(type).\(call) compiled in an async function")
            #expect(bad.stderr.contains("unavailable from asynchronous contexts"), "\(type).\(call): \(bad.stderr)")
        }
    }
}
