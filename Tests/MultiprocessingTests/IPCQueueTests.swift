import Glibc
import Testing
import Synchronization
import TestSupport
@testable import Multiprocessing

@Suite("IPC queues", .timeLimit(.minutes(15)))
struct IPCQueueTests {

    @Test("bytes and Codable items round-trip in FIFO order")
    func roundTrip() throws {
        let bytes = try Queue<[UInt8]>()
        try bytes.put([1, 2, 3])
        try bytes.put([])
        try bytes.put(Array(repeating: 0xAB, count: 100_000))
        #expect(try bytes.get() == [1, 2, 3])
        #expect(try bytes.get() == [])
        #expect(try bytes.get() == Array(repeating: 0xAB, count: 100_000))

        let messages = try Queue<IPCMessage>()
        let sent = (0..<50).map { IPCMessage(id: $0, text: "item \($0) ✓", values: [Double($0), .pi], tags: ["n": $0], blob: [UInt8(truncatingIfNeeded: $0)]) }
        for m in sent { try messages.put(m) }
        #expect(messages.qsize == 50)
        let received = try (0..<50).map { _ in try messages.get(timeout: .seconds(5)) }
        #expect(received == sent)
        #expect(messages.empty)

        let simple = try SimpleQueue<String>()
        try simple.put("a")
        try simple.put("b")
        #expect(try simple.get() == "a")
        #expect(try simple.get(timeout: .zero) == "b")
        #expect(simple.empty)
    }

    @Test("putNowait and getNowait throw full and empty; maxsize, qsize, empty and full agree")
    func nowaitAndSizes() throws {
        let queue = try Queue<Int>(maxsize: 3)
        #expect(queue.empty && !queue.full && queue.qsize == 0 && queue.maxsize == 3)
        ipcExpectCode(.empty) { try queue.getNowait() }
        for i in 0..<3 { try queue.putNowait(i) }
        #expect(queue.full && queue.qsize == 3)
        ipcExpectCode(.full) { try queue.putNowait(3) }
        #expect(try queue.getNowait() == 0)
        try queue.putNowait(3)
        #expect(try (0..<3).map { _ in try queue.getNowait() } == [1, 2, 3])
        ipcExpectCode(.empty) { try queue.getNowait() }
    }

    @Test("get on an empty queue and put on a full one time out near their timeout")
    func timeouts() throws {
        let queue = try Queue<Int>(maxsize: 1)
        var start = ContinuousClock.now
        ipcExpectCode(.timedOut) { try queue.get(timeout: .milliseconds(60)) }
        var waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(60) && waited < .seconds(2))
        try queue.put(1)
        start = ContinuousClock.now
        ipcExpectCode(.timedOut) { try queue.put(2, timeout: .milliseconds(60)) }
        waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(60) && waited < .seconds(2))
        #expect(try queue.get(timeout: .zero) == 1)
    }

    @Test("items of many MiB cross processes intact, and wrap around the ring")
    func largeItems() throws {
        // 20 MiB items in a 64 MiB ring: the fourth item wraps around the end.
        let queue = try Queue<[UInt8]>(maximumMessageSize: 20 << 20)
        let child = ChildProcess(IPCPutPattern(queue: queue, count: 6, size: 20 << 20))
        try child.start()
        for i in 0..<6 {
            let item = try queue.get(timeout: .seconds(30))
            #expect(item.count == 20 << 20)
            #expect(IPCPattern.check(item) == i)
        }
        try child.join(timeout: .seconds(30))
        #expect(child.exitCode == 0)
        ipcExpectCode(.misuse) { try queue.put([UInt8](repeating: 0, count: (20 << 20) + 1)) }
    }

    @Test("memory follows the backlog: 400 MiB through a queue keeps it near max(16 MiB, 2 × live), and idle at 16 MiB")
    func memoryFollowsBacklog() throws {
        let queue = try Queue<[UInt8]>(maximumMessageSize: 8 << 20)  // a 64 MiB ring
        let item = [UInt8](repeating: 1, count: 4 << 20)
        // A steady backlog of two 4 MiB items while 100 more pass through.
        try queue.put(item)
        try queue.put(item)
        var peak = 0
        for _ in 0..<100 {
            try queue.put(item)
            _ = try queue.get()
            peak = max(peak, queue.storage.residentBytes)
        }
        // The soft end: 2 × the live bytes (three 4 MiB items and their 8-byte record headers,
        // while a put is in flight), rounded up to 4 MiB: 28 MiB; plus the header page. A ring that
        // used its whole 64 MiB would fail this.
        #expect(peak <= (28 << 20) + 4096)
        for _ in 0..<2 { _ = try queue.get() }
        #expect(queue.storage.residentBytes <= (16 << 20) + 4096)
        // A burst of 48 MiB, then drained: the memory goes back down.
        for _ in 0..<12 { try queue.put(item) }
        #expect(queue.storage.residentBytes >= 48 << 20)
        for _ in 0..<12 { _ = try queue.get() }
        #expect(queue.storage.residentBytes <= (16 << 20) + 4096)
    }

    @Test("close: puts throw closed, gets drain and then throw closed, waiters wake")
    func close() throws {
        let queue = try Queue<Int>()
        try queue.put(1)
        let woken = Mutex<MultiprocessingError.Code?>(nil)
        let other = try Queue<Int>()
        let thread = try IPCTestThread {
            do { _ = try other.get(timeout: .seconds(20)) } catch let error as MultiprocessingError {
                woken.withLock { $0 = error.code }
            } catch {}
        }
        queue.close()
        // Close only once the thread waits, so that this checks the wake-up.
        try ipcEventually { other.storage.waitingConsumers == 1 }
        other.close()
        try thread.join()
        #expect(woken.withLock { $0 } == .closed)
        #expect(queue.isClosed)
        ipcExpectCode(.closed) { try queue.put(2) }
        #expect(try queue.get() == 1)
        ipcExpectCode(.closed) { try queue.get() }
        ipcExpectCode(.closed) { try queue.getNowait() }
    }

    @Test("an item that holds a descriptor is refused with a clear message")
    func descriptorItemsRefused() throws {
        let queue = try Queue<IPCReceiveHandles.Handles>()
        let (a, _) = try Connection.pipe()
        let error = ipcExpectCode(.coding) { try queue.put(.init(label: "x", reply: a, queue: try Queue<Int>())) }
        #expect(error?.message.contains("shared memory") == true)
        #expect(queue.empty)
    }

    @Test("async get, async put, iteration that ends at close, and cancellation")
    func asyncUse() async throws {
        let queue = try Queue<Int>(maxsize: 4)
        let consumer = Task {
            var seen: [Int] = []
            for try await item in queue { seen.append(item) }
            return seen
        }
        for i in 0..<100 { try await queue.put(i) }
        queue.close()
        #expect(try await consumer.value == Array(0..<100))

        let empty = try Queue<Int>()
        let waiting = Task { try await empty.get() }
        waiting.cancel()
        do {
            _ = try await waiting.value
            Issue.record("a cancelled get returned")
        } catch let error as MultiprocessingError {
            #expect(error.code == .cancelled)
        }
        try await empty.put(7)
        #expect(try await empty.get(timeout: .seconds(5)) == 7)
    }

    @Test("SimpleQueue and JoinableQueue: async iteration ends at close; async join waits for taskDone")
    func asyncSimpleAndJoinable() async throws {
        let simple = try SimpleQueue<String>()
        for word in ["a", "b", "c"] { try await simple.put(word) }
        simple.close()
        var words: [String] = []
        for try await word in simple { words.append(word) }
        #expect(words == ["a", "b", "c"])

        let tasks = try JoinableQueue<Int>()
        for n in 0..<10 { try await tasks.put(n) }
        let joiner = Task { try await tasks.join(timeout: .seconds(20)) }
        var done = 0
        for try await _ in tasks {
            try tasks.taskDone()
            done += 1
            if done == 10 { break }
        }
        try await joiner.value
        #expect(tasks.unfinishedTasks == 0)
    }

    @Test("N producers × M consumers, across processes: every item exactly once")
    func manyProducersManyConsumers() throws {
        let queue = try Queue<Int>(maxsize: 64)
        let perProducer = 3000
        let producers = (0..<4).map { p in ChildProcess(IPCPutRange(queue: queue, start: p * perProducer, count: perProducer)) }
        let consumers = (0..<3).map { _ in ChildProcess(IPCDrain(queue: queue)) }
        for c in consumers { try c.start() }
        for p in producers { try p.start() }
        // This thread consumes too, so items also cross threads of one process.
        let mine = Mutex<[Int]>([])
        let local = try IPCTestThread {
            while let item = try? queue.get(timeout: .seconds(30)) { mine.withLock { $0.append(item) } }
        }
        for p in producers { try p.join(timeout: .seconds(30)); #expect(p.exitCode == 0) }
        queue.close()
        var all = mine.withLock { $0 }
        try local.join()
        all = mine.withLock { $0 }
        var perConsumer: [Int] = []
        for c in consumers {
            let items = try c.value(timeout: .seconds(30))
            perConsumer.append(items.count)
            all += items
        }
        #expect(all.count == 4 * perProducer)
        #expect(Set(all).count == all.count)
        #expect(Set(all) == Set(0..<(4 * perProducer)))
        #expect(perConsumer.reduce(0, +) > 0)
    }

    @Test("a producer killed with SIGKILL mid-run leaves the queue whole and usable")
    func producerKilled() throws {
        let queue = try Queue<[UInt8]>(maxsize: 8)
        // 256 KiB items make a kill inside the copy (while holding the lock) likely.
        let producer = ChildProcess(IPCPutPattern(queue: queue, count: -1, size: 256 << 10))
        try producer.start()
        var next = 0
        for _ in 0..<40 {
            let item = try queue.get(timeout: .seconds(20))
            #expect(IPCPattern.check(item) == next)
            next += 1
        }
        try producer.kill()
        try producer.join(timeout: .seconds(10))
        // Whatever the producer had committed is whole and in order; nothing torn, nothing twice.
        while let item = try? queue.getNowait() {
            #expect(IPCPattern.check(item) == next)
            next += 1
        }
        // The lock is free (or recovered) and the queue works for new producers.
        try queue.put(IPCPattern.make(1000, size: 300_000), timeout: .seconds(5))
        #expect(IPCPattern.check(try queue.get(timeout: .seconds(5))) == 1000)
    }

    @Test("a consumer killed with SIGKILL mid-run: no item torn or delivered twice, at most the one it held lost")
    func consumerKilled() throws {
        let queue = try Queue<[UInt8]>()
        let total = 120
        // 512 KiB items: the consumer spends most of its time copying, holding the lock.
        for i in 0..<total { try queue.put(IPCPattern.make(i, size: 512 << 10)) }
        let (reports, childReports) = try Connection.pipe()
        let consumer = ChildProcess(IPCReportPattern(queue: queue, report: childReports))
        try consumer.start()
        childReports.close()
        var seen: [Int] = []
        for _ in 0..<20 { seen.append(try reports.receive(Int.self, timeout: .seconds(20))) }
        try consumer.kill()
        try consumer.join(timeout: .seconds(10))
        // Reports already on their way, then the end of the stream (the consumer is gone).
        while let s = try? reports.receive(Int.self, timeout: .seconds(5)) { seen.append(s) }
        var rest: [Int] = []
        while let item = try? queue.getNowait() { rest.append(IPCPattern.check(item) ?? -1) }
        #expect(!seen.contains(-1) && !rest.contains(-1))
        #expect(seen == Array(0..<seen.count))
        // The queue resumes right after what the consumer took: the item it held at the kill is
        // either still here (killed before its get committed) or gone with it (after).
        let resumedAt = rest.first ?? total
        #expect(resumedAt == seen.count || resumedAt == seen.count + 1)
        #expect(rest == Array(resumedAt..<total))
        try queue.put([1])
        #expect(try queue.get(timeout: .seconds(5)) == [1])
    }

    @Test("a process dying inside put, inside get, or inside a get's commit leaves the queue consistent",
          arguments: QueueCrashPoint.allCases)
    func deathWhileHoldingTheLock(point: QueueCrashPoint) throws {
        let queue = try Queue<[UInt8]>()
        for i in 0..<3 { try queue.put(IPCPattern.make(i, size: 1000)) }
        let storage = queue.storage
        let pid = try ipcForkChild { storage.dieWhileHolding(point) }
        #expect(try ipcWaitChild(pid) == 128 + SIGKILL)
        // The next locker finds the owner dead and repairs the queue.
        var expected = Array(0..<3)
        if point == .midGetCommit { expected.removeFirst() }  // the dead consumer had committed its get
        #expect(queue.qsize == 3 || point == .midGetCommit)  // before anyone locks, nothing is repaired
        try queue.put(IPCPattern.make(3, size: 1000), timeout: .seconds(5))
        expected.append(3)
        #expect(queue.qsize == expected.count)  // the put repaired the queue first: counts agree
        var received: [Int] = []
        while let item = try? queue.getNowait() { received.append(IPCPattern.check(item) ?? -1) }
        #expect(received == expected)
        #expect(queue.qsize == 0)
    }

    @Test("joining a producer before draining its queue does not deadlock")
    func joinBeforeDrain() throws {
        // 64 MiB in 1000 items: far more than any pipe buffer. In Python this join never returns.
        let queue = try Queue<[UInt8]>()
        let producer = ChildProcess(IPCPutPattern(queue: queue, count: 1000, size: 64 << 10))
        try producer.start()
        try producer.join(timeout: .seconds(30))
        #expect(producer.exitCode == 0)
        #expect(queue.qsize == 1000)
        for i in 0..<1000 { #expect(IPCPattern.check(try queue.getNowait()) == i) }
    }

    @Test("JoinableQueue: join waits for every taskDone, across processes; extra taskDone is misuse")
    func joinable() throws {
        let tasks = try JoinableQueue<Int>()
        let results = try Queue<Int>()
        let workers = (0..<2).map { _ in ChildProcess(IPCSquareWorker(tasks: tasks, results: results)) }
        for w in workers { try w.start() }
        for n in 1...200 { try tasks.put(n) }
        try tasks.join(timeout: .seconds(30))
        // join returned: every item was taken and marked done, so every result is already there.
        #expect(tasks.unfinishedTasks == 0)
        #expect(results.qsize == 200)
        var sum = 0
        while let r = try? results.getNowait() { sum += r }
        #expect(sum == (1...200).reduce(0) { $0 + $1 * $1 })
        tasks.close()
        for w in workers { try w.join(timeout: .seconds(10)); #expect(w.exitCode == 0) }
        ipcExpectCode(.misuse) { try tasks.taskDone() }

        let idle = try JoinableQueue<Int>()
        try idle.put(1)
        ipcExpectCode(.timedOut) { try idle.join(timeout: .milliseconds(30)) }
        _ = try idle.get()
        try idle.taskDone()
        try idle.join(timeout: .zero)
    }
}
