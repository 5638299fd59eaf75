// Issue 18, "Queues": Queue.shutdown(immediate:) as Python 3.13's. Putters are refused with
// .shutDown; getters take what is left and then get .shutDown (at once with immediate, which drops
// the rest); blocked getters, putters and joiners wake, in this process and in others.
import Testing
import TestHarness
@testable import Multiprocessing
import TestSupport

/// Expects `.shutDown` whose message says `words`.
private func expectShutDown(_ words: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected .shutDown, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as MultiprocessingError {
        #expect(error.code == .shutDown, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(words), "\(error.message) does not say \(words)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected .shutDown, got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("QueueShutdown")
struct QueueShutdownTests {

    @Test("after shutdown(): puts are refused, gets take what is left and then get .shutDown")
    func drainThenRefuse() throws {
        let queue = try Queue<Int>()
        for i in 1...3 { try queue.put(i) }
        #expect(!queue.isShutDown)
        queue.shutdown()
        #expect(queue.isShutDown && !queue.isClosed)
        expectShutDown("Queue.put: the queue was shut down, so it takes no more items") { try queue.put(4) }
        expectShutDown("Queue.put") { try queue.putNowait(4) }
        expectShutDown("Queue.put") { try queue.put(4, timeout: .seconds(1)) }
        #expect(queue.qsize == 3)
        #expect(try queue.get() == 1)
        #expect(try queue.getNowait() == 2)
        #expect(try queue.get(timeout: .seconds(5)) == 3)
        // Empty now: every get says shut down, none waits or times out.
        expectShutDown("Queue.get: the queue was shut down and is empty") { _ = try queue.get() }
        expectShutDown("Queue.get") { _ = try queue.getNowait() }
        expectShutDown("Queue.get") { _ = try queue.get(timeout: .seconds(60)) }
        // Twice does nothing more; close() afterwards still reports the shutdown.
        queue.shutdown()
        queue.close()
        expectShutDown("Queue.put") { try queue.put(5) }
        // A SimpleQueue shares the storage: a queue shut down elsewhere refuses it too.
        let simple = try SimpleQueue<Int>()
        simple.storage.shutdown(immediate: false)
        expectShutDown("SimpleQueue.put") { try simple.put(1) }
    }

    @Test("shutdown(immediate: true) drops the items left, so gets throw at once")
    func immediate() throws {
        let queue = try Queue<[UInt8]>()
        for _ in 0..<5 { try queue.put([UInt8](repeating: 7, count: 100_000)) }
        queue.shutdown(immediate: true)
        #expect(queue.qsize == 0 && queue.empty)
        expectShutDown("shut down and is empty") { _ = try queue.get() }
        expectShutDown("takes no more items") { try queue.put([1]) }
        // A plain shutdown first, then an immediate one, drops what the first left.
        let later = try Queue<Int>()
        try later.put(1)
        try later.put(2)
        later.shutdown()
        #expect(try later.get() == 1)
        later.shutdown(immediate: true)
        expectShutDown("empty") { _ = try later.get() }
    }

    @Test("blocked getters and putters on other threads wake with .shutDown; async ones too")
    func wakesThreads() async throws {
        let empty = try Queue<Int>()
        let getters = (0..<2).map { _ in OSThread { try empty.get() } }
        for t in getters { try t.start() }
        #expect(await eventuallyAsync { empty.storage.waitingConsumers == 2 })
        let full = try Queue<Int>(maxsize: 1)
        try await full.put(0)
        let putter = OSThread { try full.put(1) }
        try putter.start()
        #expect(await eventuallyAsync { full.storage.waitingProducers == 1 })
        let asyncGet = Task { try await empty.get(timeout: .seconds(600)) }
        empty.shutdown()
        full.shutdown()
        for t in getters + [putter] {
            try await t.join(timeout: .seconds(60))
            #expect((t.error as? MultiprocessingError)?.code == .shutDown, "\(String(describing: t.error))")
        }
        await expectCode(.shutDown) { _ = try await asyncGet.value }
        // The putter was refused; the item already queued is still there to take.
        #expect(try await full.get() == 0)
        await expectCode(.shutDown) { _ = try await full.get() }
        await expectCode(.shutDown) { try await full.put(2) }
        // Async iteration ends at a shutdown, after the items left.
        let iterated = try Queue<Int>()
        try await iterated.put(1)
        try await iterated.put(2)
        iterated.shutdown()
        var seen: [Int] = []
        for try await item in iterated { seen.append(item) }
        #expect(seen == [1, 2])
    }

    @Test("a shutdown in this process wakes a child blocked in get or put; a child's shutdown wakes us",
          arguments: [StartMethod.spawn, .forkServer])
    func acrossProcesses(_ method: StartMethod) throws {
        // A child drains what is left, then is refused.
        let queue = try Queue<Int>()
        for i in 1...3 { try queue.put(i) }
        let getter = ChildProcess(GetUntilRefused(queue: queue), startMethod: method)
        try getter.start()
        #expect(eventually(within: .seconds(60)) { queue.storage.waitingConsumers == 1 })
        queue.shutdown()
        let got = try getter.value(timeout: .seconds(60))
        #expect(got.items == [1, 2, 3] && got.code == "shutDown", "\(got)")
        #expect(got.message.contains("shut down and is empty"))

        // A child blocked on a full queue is refused.
        let full = try Queue<Int>(maxsize: 2)
        let putter = ChildProcess(PutUntilRefused(queue: full), startMethod: method)
        try putter.start()
        #expect(eventually(within: .seconds(60)) { full.storage.waitingProducers == 1 })
        full.shutdown(immediate: true)
        let put = try putter.value(timeout: .seconds(60))
        #expect(put.items == [1, 2] && put.code == "shutDown", "\(put)")
        #expect(full.qsize == 0)

        // A child shuts down a queue that a thread here waits on.
        let other = try Queue<Int>()
        let waiter = OSThread { try other.get(timeout: .seconds(60)) }
        try waiter.start()
        #expect(eventually(within: .seconds(60)) { other.storage.waitingConsumers == 1 })
        let shutter = ChildProcess(ShutDownQueue(queue: other, immediate: false), startMethod: method)
        try shutter.start()
        try shutter.join(timeout: .seconds(60))
        try waiter.join(timeout: .seconds(60))
        #expect((waiter.error as? MultiprocessingError)?.code == .shutDown, "\(String(describing: waiter.error))")
        #expect(other.isShutDown)
    }

    @Test("JoinableQueue: after an immediate shutdown the dropped items count as done, so join returns")
    func joinAfterImmediate() throws {
        let queue = try JoinableQueue<Int>()
        for i in 1...4 { try queue.put(i) }
        #expect(try queue.get() == 1)            // taken, not yet done
        let joiner = OSThread { try queue.join(timeout: .seconds(60)) }
        try joiner.start()
        #expect(eventually(within: .seconds(60)) { queue.storage.waitingJoiners == 1 })
        queue.shutdown(immediate: true)
        // Three dropped and counted done; the taken one still counts.
        #expect(queue.unfinishedTasks == 1)
        expectCode(.timedOut) { try queue.join(timeout: .milliseconds(20)) }
        #expect(joiner.isAlive)
        try queue.taskDone()
        try joiner.join(timeout: .seconds(60))
        #expect(joiner.error == nil, "\(String(describing: joiner.error))")
        try queue.join(timeout: .seconds(5))
        expectCode(.misuse) { try queue.taskDone() }
        // A plain shutdown drops nothing: join still waits for the items to be taken and done.
        let plain = try JoinableQueue<Int>()
        try plain.put(1)
        plain.shutdown()
        expectCode(.timedOut) { try plain.join(timeout: .milliseconds(20)) }
        #expect(try plain.get() == 1)
        try plain.taskDone()
        try plain.join(timeout: .seconds(5))
    }

    @Test("a child blocked in JoinableQueue.join returns after this process's immediate shutdown",
          arguments: [StartMethod.spawn, .forkServer])
    func joinAcrossProcesses(_ method: StartMethod) throws {
        let queue = try JoinableQueue<Int>()
        for i in 1...5 { try queue.put(i) }
        let joiner = ChildProcess(JoinQueue(queue: queue), startMethod: method)
        try joiner.start()
        #expect(eventually(within: .seconds(60)) { queue.storage.waitingJoiners == 1 })
        queue.shutdown(immediate: true)
        #expect(try joiner.value(timeout: .seconds(60)) == "joined")
        #expect(queue.unfinishedTasks == 0)
    }
}
