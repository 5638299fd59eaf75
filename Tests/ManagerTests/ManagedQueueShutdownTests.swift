import Testing
import Multiprocessing
@testable import MultiprocessingManager
import ManagerTestSupport

// Issue 18: a managed queue's shutdown(immediate:), as Python 3.13's, with a real manager server
// process and real client processes blocked in its calls.

extension ManagerTests {
    @Test func aShutDownManagedQueueRefusesPutsAndDrainsThenRefusesGets() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let queue = try manager.queue(Int.self)
        try queue.put(1)
        try queue.put(2)
        try queue.shutdown()
        #expect(shapeOutcome { try queue.put(3) } == "shutDown")
        #expect(try queue.get() == 1)
        #expect(try queue.get(timeout: .seconds(60)) == 2)
        #expect(shapeOutcome { _ = try queue.get() } == "shutDown")
        #expect(shapeOutcome { _ = try queue.getNowait() } == "shutDown")
        try queue.shutdown()    // twice is harmless, as in Python
    }

    @Test func theAsyncShutdownRefusesPutsToo() async throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let queue = try manager.queue(Int.self)
        try await queue.shutdown()
        await #expect(throws: MultiprocessingError.self) { try await queue.put(1) }
    }

    @Test func anImmediateShutdownDropsTheItemsAndEndsAJoin() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let jobs = try manager.joinableQueue(Int.self)
        for i in 0..<5 { try jobs.put(i) }
        _ = try jobs.get()
        try jobs.taskDone()
        try jobs.queue.shutdown(immediate: true)
        #expect(shapeOutcome { _ = try jobs.get() } == "shutDown")
        #expect(try jobs.unfinishedTasks == 0)
        try jobs.join(timeout: .seconds(60))    // the four dropped count as done
    }

    @Test(arguments: [false, true])
    func aShutdownWakesAnotherProcessBlockedInTheQueue(put: Bool) throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let queue = try manager.queue(Int.self, maximumSize: 1)
        if put { try queue.put(0) }     // full: the child's put waits
        let calling = try manager.event()
        let child = ChildProcess(QueueShutdownWaiter(queue: queue, put: put, calling: calling))
        try child.start()
        // Until the child is about to wait in the server. Either order ends the same way (a call
        // after the shutdown fails at once), but most runs test the wake-up of a waiting call.
        try calling.wait(timeout: .seconds(60))
        try queue.shutdown()
        #expect(try child.value(timeout: .seconds(60)) == "shutDown")
    }
}
