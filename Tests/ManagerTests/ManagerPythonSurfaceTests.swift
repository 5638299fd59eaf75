import Foundation
import Testing
import Multiprocessing
@testable import MultiprocessingManager
import ManagerTestSupport
import MultiprocessingSystem

// Issue 18, Managers: the rest of Python's manager surface. Each test runs a real manager server
// process and real client processes (the tasks of Tests/ManagerTestSupport/PythonSurfaceTasks.swift).

extension ManagerTests {
    @Test func aManagedQueueReportsEmptyFullAndCountInEveryProcess() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let queue = try manager.queue(Int.self, maximumSize: 2)
        #expect(try queue.isEmpty && queue.empty)
        #expect(try !queue.isFull && !queue.full)
        #expect(try queue.count == 0 && queue.maxsize == 2)
        try queue.put(1)
        try queue.put(2)
        #expect(try !queue.isEmpty)
        #expect(try queue.isFull && queue.full)
        #expect(try queue.count == 2 && queue.qsize == 2)
        let reader = ChildProcess(QueueStateReader(queue: queue))
        try reader.start()
        #expect(try reader.value(timeout: .seconds(60))
                == "empty false full true count 2; putNowait full, put timedOut; got [1, 2]; getNowait empty, get timedOut; empty true")
        #expect(try queue.isEmpty && !queue.isFull)
        // An unbounded queue is never full.
        let unbounded = try manager.queue(Int.self)
        for i in 0..<100 { try unbounded.putNowait(i) }
        #expect(try !unbounded.isFull && unbounded.count == 100 && unbounded.maxsize == 0)
    }

    @Test func aManagedJoinableQueueJoinsWhenAnotherProcessMarksEveryTaskDone() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let queue = try manager.joinableQueue(String.self, maximumSize: 2, name: "jobs")
        let seen = try manager.list(String.self)
        #expect(try queue.unfinishedTasks == 0)
        try queue.join(timeout: .zero)          // nothing put: done at once
        try queue.put("a")
        try queue.put("b")
        #expect(try queue.isFull && queue.unfinishedTasks == 2)
        #expect(shapeOutcome { try queue.putNowait("x") } == "full")
        #expect(shapeOutcome { try queue.join(timeout: .milliseconds(20)) } == "timedOut")
        #expect(shapeOutcome { try queue.join(timeout: .seconds(-1)) } == "misuse")
        let consumer = ChildProcess(JoinableConsumer(queue: queue, seen: seen, count: 3))
        try consumer.start()
        try queue.put("c", timeout: .seconds(60))     // waits for the consumer to make room
        try queue.join(timeout: .seconds(60))
        #expect(try queue.unfinishedTasks == 0)
        #expect(try seen.snapshot() == ["a", "b", "c"])
        #expect(try consumer.value(timeout: .seconds(60)) == "misuse")
        #expect(try queue.isEmpty)
        // The same name as a plain queue is the same queue, still counting tasks.
        let plain = try manager.queue(String.self, name: "jobs")
        try plain.put("d")
        #expect(try queue.unfinishedTasks == 1 && plain.info().unfinishedTasks == 1)
        _ = try queue.get()
        try queue.taskDone()
        try queue.join(timeout: .zero)
    }
}

extension ManagerTests {
    @Test func aManagedBoundedSemaphoreRefusesAReleaseAboveItsBoundInEveryProcess() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let semaphore = try manager.boundedSemaphore(value: 2)
        #expect(try semaphore.bound == 2 && semaphore.value == 2)
        #expect(shapeOutcome { try semaphore.release() } == "misuse")
        #expect(try semaphore.value == 2)
        let user = ChildProcess(BoundedSemaphoreUser(semaphore: semaphore))
        try user.start()
        #expect(try user.value(timeout: .seconds(60)) == "bound 2 try true false value 0 -> 2 over misuse")
        // The plain proxy of the same object is still bounded: the server checks.
        #expect(shapeOutcome { try semaphore.semaphore.release() } == "misuse")
        #expect(try semaphore.withPermit { try semaphore.value } == 1)
        #expect(shapeOutcome { _ = try manager.boundedSemaphore(value: -1) } == "misuse")
        // A name is get-or-create of one kind: a bounded semaphore is not a semaphore.
        _ = try manager.boundedSemaphore(value: 1, name: "b")
        #expect(shapeOutcome { _ = try manager.semaphore(value: 1, name: "b") } == "misuse")
        #expect(shapeOutcome { _ = try manager.boundedSemaphore(value: 0).bound } == "returned")
        #expect(shapeOutcome { _ = try ManagedBoundedSemaphore(reference: manager.semaphore().reference).bound } == "misuse")
    }

    @Test func tryAcquireOnManagedSemaphoresNeverWaitsInAnotherProcess() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let semaphore = try manager.semaphore(value: 1)
        let bounded = try manager.boundedSemaphore(value: 1)
        try semaphore.acquire()
        try bounded.acquire()
        for s in [ChildProcess(TryAcquirer(semaphore: semaphore)), ChildProcess(TryAcquirer(semaphore: bounded))] {
            try s.start()
            #expect(try s.value(timeout: .seconds(60)) == false)
        }
        try semaphore.release()
        try bounded.release()
        for s in [ChildProcess(TryAcquirer(semaphore: semaphore)), ChildProcess(TryAcquirer(semaphore: bounded))] {
            try s.start()
            #expect(try s.value(timeout: .seconds(60)) == true)
        }
        #expect(try semaphore.value == 0 && bounded.value == 0)
        #expect(try semaphore.reference.waiterCount() == 0)
    }
}

/// A fresh path under /tmp for a test's file.
private func temporaryPath(_ name: String) -> String {
    "/tmp/mp-manager-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

extension ManagerTests {
    @Test func aManagerInitializerRunsOnceInTheServerBeforeStartReturns() throws {
        let path = temporaryPath("initializer")
        defer { unlink(path) }
        let manager = Manager()
        try manager.start(initializer: RecordingInitializer(path: path))
        defer { try? manager.shutdown() }
        let pid = try #require(manager.serverPID)
        // Written by the server process itself, before start() returned.
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(pid)\n")
        #expect(try manager.serverStatistics().pid == pid)
        // The server serves clients in other processes as usual.
        let counts = try manager.dictionary(String.self, Int.self)
        let child = ChildProcess(IncrementTask(counters: counts, key: "k", times: 10))
        try child.start()
        #expect(try child.value(timeout: .seconds(60)) == 10)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(pid)\n")
        #expect(manager.serverExitStatus == nil)
    }

    @Test func aThrowingInitializerFailsTheStartWithItsErrorAndLeavesNothingRunning() throws {
        let manager = Manager()
        do {
            try manager.start(initializer: FailingInitializer(reason: "no configuration"))
            Issue.record("start succeeded")
        } catch let error as MultiprocessingError {
            #expect(error.code == .childFailed)
            #expect(error.message.contains("the initializer refused: no configuration"), "\(error.message)")
            #expect(error.message.contains("initializer failed"), "\(error.message)")
            #expect(error.remoteTypeName?.contains("InitializerRefusal") == true, "\(String(describing: error.remoteTypeName))")
        }
        #expect(manager.serverPID == nil)
        #expect(manager.serverExitStatus == .exited(1))
        #expect(shapeOutcome { _ = try manager.dictionary(String.self, Int.self) } == "misuse")
        // The manager may be started again, with an initializer that succeeds.
        let path = temporaryPath("second")
        defer { unlink(path) }
        try manager.start(initializer: RecordingInitializer(path: path))
        defer { try? manager.shutdown() }
        #expect(try manager.list(Int.self).append(1) == 1)
        #expect(manager.serverExitStatus == nil)
    }

    @Test func theScopedFormShutsTheManagerDownAtTheEndAndOnAThrow() throws {
        var kept: Manager?
        let total = try Manager.with { manager in
            kept = manager
            let counts = try manager.dictionary(String.self, Int.self)
            let children = (0..<2).map { _ in ChildProcess(IncrementTask(counters: counts, key: "n", times: 50)) }
            for child in children { try child.start() }
            for child in children { try child.join(timeout: .seconds(60)) }
            return try counts.get("n") ?? 0
        }
        #expect(total == 100)
        let first = try #require(kept)
        #expect(first.serverPID == nil)
        #expect(first.serverExitStatus == .exited(0))
        #expect(shapeOutcome { _ = try first.serverStatistics() } == "endOfStream")

        struct Stop: Error {}
        var pid: Int32?
        #expect(throws: Stop.self) {
            try Manager.with(initializer: RecordingInitializer(path: "/dev/null")) { manager in
                kept = manager
                pid = manager.serverPID
                _ = try manager.list(Int.self).append(1)
                throw Stop()
            }
        }
        let second = try #require(kept)
        #expect(pid != nil && second.serverPID == nil)
        #expect(second.serverExitStatus == .exited(0))
        #expect(!processIsRunning(try #require(pid)))
    }

    @Test func theServersExitStatusIsReadableFromTheHandle() throws {
        let manager = Manager()
        #expect(manager.serverExitStatus == nil)
        try manager.start()
        let pid = try #require(manager.serverPID)
        #expect(manager.serverExitStatus == nil)
        kill(pid, SIGKILL)
        // The handle learns it once the server is reaped; shutdown then has nothing to ask.
        try manager.shutdown()
        #expect(manager.serverExitStatus == .signaled(.kill))
        let again = Manager()
        try again.start()
        try again.shutdown()
        #expect(again.serverExitStatus == .exited(0))
    }
}

extension ManagerTests {
    @Test func aNamespacePrintsAsPythonsDoesInEveryProcess() throws {
        let manager = try started()
        let namespace = try manager.namespace(Settings(name: "job \"one\"", count: 1, tags: []))
        #expect(namespace.description == #"Namespace(name="job \"one\"", count=1, tags=[])"#)
        let child = ChildProcess(NamespacePrinter(namespace: namespace))
        try child.start()
        #expect(try child.value(timeout: .seconds(60)) == #"Namespace(name="job \"one\"", count=2, tags=["child"])"#)
        #expect("\(namespace)" == #"Namespace(name="job \"one\"", count=2, tags=["child"])"#)
        #expect(try manager.namespace(7).text() == "Namespace(7)")
        try manager.shutdown()
        #expect(namespace.description.hasPrefix("Namespace(<unavailable: "), "\(namespace)")
        #expect(shapeOutcome { _ = try namespace.text() } == "endOfStream")
    }
}

extension ManagerTests {
    @Test func aManagedListCountsFindsReversesSortsAndExtendsFromAnotherProcess() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let list = try manager.list(Int.self)
        try list.append(contentsOf: [3, 1, 2, 3])
        let child = ChildProcess(ListSurfaceUser(list: list))
        try child.start()
        #expect(try child.value(timeout: .seconds(60))
                == "count 2 index Optional(0) from1 Optional(3) last Optional(3) before nil none nil in true false first 3 end 3; "
                 + "reversed [4, 5, 3, 2, 1, 3] sorted [1, 2, 3, 3, 4, 5] descending [5, 4, 3, 3, 2, 1]")
        #expect(try list.snapshot() == [5, 4, 3, 3, 2, 1])
        #expect(try list.index(of: 1, from: -100, to: 100) == 5)
        #expect(try list.index(of: 5, from: 3, to: 1) == nil)
        #expect(try list.count(of: 7) == 0)
    }

    @Test func aSortRacingAppendsInAnotherProcessLosesNoAppend() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let list = try manager.list(Int.self)
        try list.append(contentsOf: Array(0..<50))
        let appended = Array(1000..<1300)
        let appender = ChildProcess(ListAppender(list: list, values: appended))
        let sorter = ChildProcess(ListSorter(list: list, times: 60))
        try sorter.start()
        try appender.start()
        try appender.join(timeout: .seconds(120))
        try sorter.join(timeout: .seconds(120))
        #expect(appender.exitStatus == .exited(0) && sorter.exitStatus == .exited(0))
        // A sort replaces the list only if nothing changed since it read it: every append stays.
        #expect(try list.snapshot().sorted() == Array(0..<50) + appended)
    }

    @Test func aManagedDictionaryKeepsInsertionOrderUpdatesAndPopsAsPythonsDoes() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let dictionary = try manager.dictionary(String.self, Int.self)
        for (key, value) in [("b", 2), ("a", 1), ("c", 3)] { try dictionary.set(key, value) }
        #expect(try dictionary.keys() == ["b", "a", "c"])
        let child = ChildProcess(DictionarySurfaceUser(dictionary: dictionary))
        try child.start()
        #expect(try child.value(timeout: .seconds(60))
                == "order [\"a\", \"c\", \"d\", \"b\"] values [10, 3, 4, 20, 3, 2] popped z=26 default -1")
        #expect(try dictionary.items().map { "\($0.key)=\($0.value)" } == ["a=10", "c=3", "d=4", "b=20", "x=3", "y=2"])
        var popped: [String] = []
        while let (key, _) = try dictionary.popItem() { popped.append(key) }
        #expect(popped == ["y", "x", "b", "d", "c", "a"])
        #expect(try dictionary.popItem() == nil && dictionary.count() == 0)
        // Many removals (the server compacts its order) keep the order of what is left.
        for i in 0..<200 { try dictionary.set("k\(i)", i) }
        for i in 0..<200 where i % 3 != 0 { try dictionary.removeValue(forKey: "k\(i)") }
        try dictionary.set("k1", 1)
        try dictionary.set("k0", -1)
        #expect(try dictionary.keys() == stride(from: 0, to: 200, by: 3).map { "k\($0)" } + ["k1"])
        #expect(try dictionary.get("k0") == -1)
    }

    @Test func mergesFromTwoProcessesAtOnceLoseNothing() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let dictionary = try manager.dictionary(String.self, Int.self)
        try dictionary.set("k0", 1000)
        let mergers = (0..<2).map { _ in ChildProcess(DictionaryMerger(dictionary: dictionary, times: 100)) }
        for merger in mergers { try merger.start() }
        for merger in mergers { try merger.join(timeout: .seconds(120)) }
        #expect(mergers.allSatisfy { $0.exitStatus == .exited(0) })
        // k0 first (it was there); the others in the order of the first merge's Swift dictionary.
        let items = try dictionary.items().map { "\($0.key)=\($0.value)" }
        #expect(items.first == "k0=1200")
        #expect(items.sorted() == ["k0=1200", "k1=200", "k2=200", "k3=200", "k4=200"], "\(items)")
    }

    @Test func iteratingAManagedListOrDictionaryWalksOneSnapshot() async throws {
        let manager = Manager()
        try await manager.start()
        let list = try manager.list(Int.self)
        try list.append(contentsOf: [1, 2, 3])
        let dictionary = try manager.dictionary(String.self, Int.self)
        try dictionary.update(contentsOf: [("a", 1), ("b", 2), ("c", 3)])
        let changer = IterationChanger(list: list, dictionary: dictionary)
        var seen: [Int] = []
        for try await element in list {
            seen.append(element)
            if seen.count == 1 {
                let child = ChildProcess(changer)
                try child.start()
                try await child.join(timeout: .seconds(60))
            }
        }
        #expect(seen == [1, 2, 3])
        #expect(try list.snapshot() == [2, 3, 4])
        var keys: [String] = []
        for try await (key, _) in dictionary {
            keys.append(key)
            if keys.count == 1 { try dictionary.set("e", 5) }
        }
        #expect(keys == ["b", "c", "d"])
        #expect(try dictionary.keys() == ["b", "c", "d", "e"])
        try await manager.shutdown()
    }
}

extension ManagerTests {
    @Test func aManagedArrayIsSharedWithAFixedLengthAndAtomicIncrements() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let array = try manager.array(repeating: 0, count: 3)
        let labels = try manager.array(["a", "b", "c"])
        #expect(try array.snapshot() == [0, 0, 0] && labels.count() == 3)
        let children = (0..<2).map { ChildProcess(ArrayIncrementer(array: array, labels: labels, slot: $0, times: 100)) }
        for child in children { try child.start() }
        let reports = try children.map { try $0.value(timeout: .seconds(120)) }
        #expect(reports == ["length 3 tooLong misuse outside misuse last c", "length 3 tooLong misuse outside misuse last c"])
        #expect(try array.snapshot() == [200, 200, 200])
        #expect(try labels.snapshot() == ["child 0", "child 1", "c"])
        try array.set(-1, 7)
        try array.set([1, 2], at: 1)
        #expect(try array[0] == 200 && array[-1] == 2 && array.get(1) == 1)
        #expect(shapeOutcome { try array.set([1], at: 3) } == "misuse")
        #expect(shapeOutcome { try array.set([1], at: -1) } == "misuse")
        #expect(shapeOutcome { _ = try manager.array(repeating: 0, count: -1) } == "misuse")
        let doubles = try manager.array([0.5])
        #expect(try doubles.increment(at: 0, by: 0.25) == 0.75)
        let empty = try manager.array([Int]())
        #expect(try empty.count() == 0 && empty.snapshot() == [])
        try empty.set([Int](), at: 0)
        // Named: get-or-create, of one kind.
        let named = try manager.array([1, 2], name: "a")
        #expect(try manager.array([9], name: "a").snapshot() == named.snapshot())
        #expect(shapeOutcome { _ = try manager.list(Int.self, name: "a") } == "misuse")
    }

    @Test func iteratingAManagedArrayWalksOneSnapshot() async throws {
        let manager = Manager()
        try await manager.start()
        let array = try manager.array([1, 2, 3])
        var seen: [Int] = []
        for try await element in array {
            seen.append(element)
            try array.set(2, 30)
        }
        #expect(seen == [1, 2, 3])
        #expect(try array.snapshot() == [1, 2, 30])
        try await manager.shutdown()
    }
}

extension ManagerTests {
    @Test func malformedNewMessagesGetAClearErrorAndTheServerGoesOn() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let list = try manager.list(Int.self)
        let array = try manager.array([1, 2])
        let queue = try manager.joinableQueue(Int.self)
        // Each new operation's body, cut short after its object id: malformed, and the server
        // closes that connection only.
        let ops: [(Op, UInt64)] = [(.qJoin, queue.reference.id), (.semInfo, 0), (.lCountOf, list.reference.id),
                                   (.lIndexOf, list.reference.id), (.lReplace, list.reference.id), (.dUpdate, 0), (.dGetMany, 0),
                                   (.aGet, array.reference.id), (.aSet, array.reference.id), (.aSetSlice, array.reference.id),
                                   (.aAddInt, array.reference.id), (.aAddDouble, array.reference.id)]
        for (op, id) in ops {
            let socket = try authenticatedSocket(manager)
            defer { socket.close() }
            var body: [UInt8] = [op.rawValue]
            body.wireAppendVarint(id)
            var frame = [UInt8](repeating: 0, count: ManagerPlatform.frameHeaderSize) + body
            frame.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: body.count, into: $0) }
            try socket.write(frame)
            var reply = ByteReader(try socket.readFrame())
            // A semInfo or dGetMany for object 0 has no object: notFound; the rest end early.
            let status = try reply.byte()
            let code = try reply.string()
            let message = try reply.string()
            #expect(status == ReplyStatus.error.rawValue)
            if op == .semInfo {
                #expect(code == "notFound" && message.contains("no object 0"), "\(op): \(code) \(message)")
            } else if op == .dGetMany || op == .dUpdate {
                #expect(code == "malformedFrame" || code == "notFound", "\(op): \(code) \(message)")
            } else {
                #expect(code == "malformedFrame" && message.contains("malformed"), "\(op): \(code) \(message)")
            }
        }
        // A create of an array whose initial bytes are not a list of elements.
        #expect(throws: MultiprocessingError.self) {
            _ = try ManagerRequest(body: [Op.create.rawValue, 0, ManagedKind.array.rawValue, 0, 0, 3, 5, 1, 2])
        }
        // A new request to an object of another kind names both.
        let client = ManagerClient.shared(try #require(manager.address), key: manager.authKey)
        do {
            _ = try client.request(ArrayRequest.count, object: list.reference.id)
            Issue.record("an array request to a list was served")
        } catch let error as MultiprocessingError {
            #expect(error.code == .notFound && error.message.contains("is a list, not an array"), "\(error.message)")
        }
        do {
            _ = try client.request(QueueRequest.join(timeout: 0), object: array.reference.id)
            Issue.record("a queue request to an array was served")
        } catch let error as MultiprocessingError {
            #expect(error.code == .notFound && error.message.contains("is an array, not a queue"), "\(error.message)")
        }
        #expect(try list.append(contentsOf: [1, 2]) == 2 && array.count() == 2)
    }
}

extension ManagerTests {
    @Test func theAsyncScopedFormStartsWithAnInitializerAndAJoinableQueueJoinsAsync() async throws {
        let path = temporaryPath("async-initializer")
        defer { unlink(path) }
        var kept: Manager?
        let seen = try await Manager.with(initializer: RecordingInitializer(path: path)) { manager in
            kept = manager
            let queue = try manager.joinableQueue(String.self)
            let seen = try manager.list(String.self)
            try await queue.put("x")
            try await queue.put("y")
            let consumer = ChildProcess(JoinableConsumer(queue: queue, seen: seen, count: 2))
            try consumer.start()
            try await queue.join(timeout: .seconds(60))
            try await consumer.join(timeout: .seconds(60))
            return try seen.snapshot()
        }
        #expect(seen == ["x", "y"])
        let manager = try #require(kept)
        #expect(manager.serverExitStatus == .exited(0))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
    }
}
