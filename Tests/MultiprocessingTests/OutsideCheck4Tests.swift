import Testing
import Multiprocessing
import TestSupport

// Outside checks after issue 14 item 4 (JoinableQueue a subclass of Queue).

@Suite("OutsideCheck4Queues", .serialized)
struct OutsideCheck4QueueTests {
    @Test("a JoinableQueue decoded as a Queue in a child: its puts count as unfinished tasks, and join waits for their taskDone")
    func aJoinableQueueUsedAsAQueueInAChildKeepsTheTaskCount() throws {
        let tasks = try JoinableQueue<Int>()
        let child = ChildProcess(PutThroughTheQueueView(queue: tasks, count: 5))
        try child.start()
        try child.join(timeout: .seconds(60))
        #expect(child.exitCode == 0)
        #expect(tasks.unfinishedTasks == 5)
        var sum = 0
        for _ in 1...5 { sum += try tasks.get(timeout: .seconds(10)) }
        #expect(sum == 15)
        #expect(throws: MultiprocessingError.self) { try tasks.join(timeout: .zero) }
        for _ in 1...5 { try tasks.taskDone() }
        try tasks.join(timeout: .zero)
        #expect(throws: MultiprocessingError.self) { try tasks.taskDone() }
    }
}
