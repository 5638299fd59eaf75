// Issue 18, "Queues": large items at default settings. Past 8 MiB of backlog a blocking put waits
// (at most 1 ms) for a get, while consumers take items, so that the ring stays in warm, cached
// memory; with no consumer taking items it never waits more than once; it never times out or
// refuses for pacing; putNowait never paces.
import Testing
import TestHarness
@testable import Multiprocessing
import TestSupport

private let item64k = [UInt8](repeating: 1, count: 64 << 10)

/// Items to put for a backlog past the pacing threshold.
private let pastThreshold = QueueStorage.pacedBacklog / item64k.count + 2

@Suite("QueuePacing")
struct QueuePacingTests {

    @Test("no consumer yet: a producer fills an unbounded queue far past the threshold without pacing")
    func noConsumerNoPacing() throws {
        let queue = try Queue<[UInt8]>()
        for _ in 0..<(2 * pastThreshold) { try queue.put(item64k) }
        let fields = queue.storage.header.fields
        // No get ever happened, so pacing never engaged (a paced put that saw no get would have
        // recorded that it gave up).
        #expect(fields.pointee.gets == 0 && fields.pointee.unpaced_at == 0)
        #expect(queue.qsize == 2 * pastThreshold)
    }

    @Test("after a get, a put past the threshold waits for the next one at most once, then goes ahead")
    func pacesOnceWithoutGets() throws {
        let queue = try Queue<[UInt8]>()
        for _ in 0..<pastThreshold { try queue.put(item64k) }
        _ = try queue.get()
        let fields = queue.storage.header.fields
        #expect(fields.pointee.gets == 1 && fields.pointee.unpaced_at == 0)
        let clock = ContinuousClock()
        let start = clock.now
        try queue.put(item64k)
        // It waited for a get (the whole pacing wait: none came), then put the item and noted that
        // no consumer is taking items, so the next puts do not wait.
        #expect(clock.now - start >= QueueStorage.pacingWait)
        #expect(fields.pointee.unpaced_at == 1)
        for _ in 0..<10 { try queue.put(item64k) }
        #expect(fields.pointee.unpaced_at == 1 && queue.qsize == pastThreshold + 10)
        // A get turns pacing back on.
        _ = try queue.get()
        try queue.put(item64k)
        #expect(fields.pointee.unpaced_at == 2)
    }

    @Test("pacing never makes a put fail: a put with a zero or tiny timeout goes ahead; putNowait never paces")
    func pacingNeverFails() throws {
        let queue = try Queue<[UInt8]>()
        for _ in 0..<pastThreshold { try queue.put(item64k) }
        _ = try queue.get()
        let fields = queue.storage.header.fields
        // putNowait: no wait at all, so pacing is still on afterwards.
        try queue.putNowait(item64k)
        #expect(fields.pointee.unpaced_at == 0)
        // A timed put whose timeout is shorter than the pacing wait is paced up to its timeout and
        // then puts the item: there was room, so it does not time out.
        try queue.put(item64k, timeout: .zero)
        try queue.put(item64k, timeout: .microseconds(10))
        #expect(queue.qsize == pastThreshold + 2)
        // SimpleQueue and JoinableQueue share the storage, and pacing.
        let joinable = try JoinableQueue<[UInt8]>()
        for _ in 0..<pastThreshold { try joinable.put(item64k) }
        _ = try joinable.get()
        try joinable.taskDone()
        try joinable.put(item64k, timeout: .zero)
        #expect(joinable.unfinishedTasks == pastThreshold)
    }

    @Test("a producer here and a consumer in a child: 64 MiB of 64 KiB items arrive whole and in order",
          arguments: [StartMethod.spawn, .forkServer])
    func pacedAcrossProcesses(_ method: StartMethod) throws {
        let queue = try Queue<[UInt8]>()
        let count = 1024, size = 64 << 10
        let consumer = ChildProcess(ConsumeNumberedItems(queue: queue, count: count, size: size), startMethod: method)
        try consumer.start()
        for i in 0..<count {
            try queue.put([UInt8](repeating: UInt8(truncatingIfNeeded: i), count: size))
        }
        #expect(try consumer.value(timeout: .seconds(120)) == count)
        #expect(queue.qsize == 0)
        #expect(queue.storage.header.fields.pointee.gets == UInt64(count))
    }

    @Test("async puts are paced off the cooperative pool, and get their items through")
    func asyncPaced() async throws {
        let queue = try Queue<[UInt8]>()
        for _ in 0..<pastThreshold { try await queue.put(item64k) }
        _ = try await queue.get()
        // Paced (the first try on the task's thread defers to a helper), no get comes, goes ahead.
        try await queue.put(item64k)
        #expect(queue.storage.header.fields.pointee.unpaced_at == 1)
        #expect(queue.qsize == pastThreshold)
    }
}
