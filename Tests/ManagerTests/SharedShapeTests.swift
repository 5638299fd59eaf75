import Testing
import Multiprocessing
import MultiprocessingManager
import ManagerTestSupport

// One shape for local and managed objects (issue 14, item 4). Each test body below is generic
// over a protocol of the Multiprocessing module and runs twice, unchanged: against the local
// primitive, shared with a real child process through shared memory, and against a manager's
// proxy, shared with a real child through a real server. The children are the generic tasks of
// Tests/ManagerTestSupport/SharedShapeTasks.swift.

/// Which kind of object a run of a shape test uses.
enum Side: String, CaseIterable, CustomTestStringConvertible {
    case local, managed
    var testDescription: String { rawValue }
}

/// Makes each object of a test on one side: the local type, or a proxy from a manager started
/// for the test (and shut down by ``close()``).
final class Objects {
    let manager: Manager?

    init(_ side: Side) throws {
        if side == .managed {
            let manager = Manager()
            try manager.start()
            self.manager = manager
        } else {
            manager = nil
        }
    }

    func close() { try? manager?.shutdown() }

    func lock() throws -> any Locking & Codable { try manager.map { try $0.lock() } ?? Lock() }
    func rLock() throws -> any Locking & Codable { try manager.map { try $0.rLock() } ?? RLock() }
    func event() throws -> any EventProtocol & Codable { try manager.map { try $0.event() } ?? Event() }
    func semaphore(_ value: Int) throws -> any SemaphoreProtocol & Codable {
        try manager.map { try $0.semaphore(value: value) } ?? Semaphore(value)
    }
    func condition() throws -> any ConditionProtocol & Codable { try manager.map { try $0.condition() } ?? Condition() }
    func barrier(_ parties: Int) throws -> any BarrierProtocol & Codable {
        try manager.map { try $0.barrier(parties: parties) } ?? Barrier(parties: parties)
    }
    /// A string queue: the objects' channel to the child, and the queue under test.
    func queue(maxsize: Int = 0) throws -> any QueueProtocol<String> & Codable {
        try manager.map { try $0.queue(String.self, maximumSize: maxsize) } ?? Queue<String>(maxsize: maxsize)
    }
}

/// What `body` threw: the code's name, or "returned".
func outcome(_ body: () throws -> Void) -> String { shapeOutcome(body) }

/// The channel's next line, waiting long enough for a loaded machine.
func next<Q: QueueProtocol<String>>(_ channel: Q) throws -> String { try channel.get(timeout: .seconds(60)) }

@Suite(.serialized)
struct SharedShapeTests {
    // MARK: the generic bodies

    func checkLocking<L: Locking & Codable, Q: QueueProtocol<String> & Codable>(_ lock: L, _ channel: Q) throws {
        #expect(try lock.isLocked == false)
        try lock.acquire(timeout: .seconds(60))
        #expect(try lock.isLocked)
        let child = ChildProcess(LockingPeer(lock: lock, channel: channel))
        try child.start()
        #expect(try next(channel) == "try false")
        #expect(try next(channel) == "timed timedOut")
        #expect(try next(channel) == "locked true")
        try lock.release()
        #expect(try next(channel) == "acquired")
        #expect(try next(channel) == "released")
        try child.join(timeout: .seconds(60))
        #expect(child.exitStatus == .exited(0))
        #expect(try lock.isLocked == false)
        #expect(try lock.tryAcquire())
        try lock.release()
        #expect(try lock.withLock(timeout: .zero) { 7 } == 7)
        #expect(outcome { try lock.acquire(timeout: .seconds(-1)) } == "misuse")
    }

    func checkEvent<E: EventProtocol & Codable, Q: QueueProtocol<String> & Codable>(_ event: E, _ channel: Q) throws {
        #expect(try event.isSet == false)
        #expect(outcome { try event.wait(timeout: .milliseconds(20)) } == "timedOut")
        let child = ChildProcess(EventPeer(event: event, channel: channel))
        try child.start()
        #expect(try next(channel) == "ready")
        try event.set()
        #expect(try next(channel) == "woken true")
        try child.join(timeout: .seconds(60))
        #expect(child.exitStatus == .exited(0))
        try event.wait(timeout: .zero)
        try event.clear()
        #expect(try event.isSet == false)
        #expect(outcome { try event.wait(timeout: .zero) } == "timedOut")
    }

    func checkSemaphore<S: SemaphoreProtocol & Codable>(_ semaphore: S) throws {
        #expect(try semaphore.value == 0)
        #expect(try semaphore.tryAcquire() == false)
        #expect(outcome { try semaphore.acquire(timeout: .milliseconds(20)) } == "timedOut")
        #expect(outcome { try semaphore.release(0) } == "misuse")
        let child = ChildProcess(SemaphorePeer(semaphore: semaphore, units: 2))
        try child.start()
        try semaphore.acquire(timeout: .seconds(60))
        try child.join(timeout: .seconds(60))
        #expect(child.exitStatus == .exited(0))
        #expect(try semaphore.value == 1)
        #expect(try semaphore.withPermit(timeout: .zero) { try semaphore.value } == 0)
        #expect(try semaphore.tryAcquire())
        try semaphore.release(1)
        #expect(try semaphore.value == 1)
    }

    func checkQueue<Q: QueueProtocol<String> & Codable, R: QueueProtocol<String> & Codable>(_ requests: Q, _ replies: R) throws {
        #expect(try requests.empty)
        #expect(outcome { _ = try requests.getNowait() } == "empty")
        #expect(outcome { _ = try requests.get(timeout: .milliseconds(20)) } == "timedOut")
        #expect(outcome { _ = try requests.get(timeout: .zero) } == "timedOut")
        try requests.put("a", timeout: .seconds(60))
        #expect(try requests.qsize == 1)
        #expect(outcome { try requests.putNowait("b") } == "full")
        #expect(outcome { try requests.put("b", timeout: .milliseconds(20)) } == "timedOut")
        let child = ChildProcess(QueuePeer(requests: requests, replies: replies))
        try child.start()
        #expect(try replies.get(timeout: .seconds(60)) == "echo a")
        try child.join(timeout: .seconds(60))
        #expect(child.exitStatus == .exited(0))
        try requests.putNowait("c")
        #expect(try requests.getNowait() == "c")
        #expect(try requests.empty)
    }

    func checkBarrier<B: BarrierProtocol & Codable>(_ barrier: B) throws {
        #expect(try barrier.parties == 2)
        #expect(try barrier.isBroken == false)
        let child = ChildProcess(BarrierPeer(barrier: barrier))
        try child.start()
        let mine = try barrier.wait(timeout: .seconds(60))
        let theirs = try child.value(timeout: .seconds(60))
        #expect(Set([mine, theirs]) == [0, 1])
        // Alone at a barrier for two: the wait times out and breaks it.
        #expect(outcome { try barrier.wait(timeout: .milliseconds(20)) } == "timedOut")
        #expect(try barrier.isBroken)
        #expect(outcome { try barrier.wait(timeout: .zero) } == "broken")
        try barrier.reset()
        #expect(try barrier.isBroken == false)
        #expect(try barrier.waitingCount == 0)
        try barrier.abort()
        #expect(outcome { try barrier.wait(timeout: .seconds(60)) } == "broken")
    }

    func checkCondition<C: ConditionProtocol & Codable, E: EventProtocol & Codable, Q: QueueProtocol<String> & Codable>(
        _ condition: C, _ go: E, _ channel: Q
    ) throws {
        #expect(outcome { try condition.notify(1) } == "misuse")
        let (timed, predicate, heldAfter) = try condition.withLock(timeout: .seconds(60)) { () throws -> (String, String, Bool) in
            let timed = outcome { try condition.wait(timeout: .milliseconds(20)) }
            let predicate = outcome { try condition.wait(for: { false }, timeout: .milliseconds(20)) }
            // Both take the lock back before they throw.
            return (timed, predicate, try condition.isLocked)
        }
        #expect(timed == "timedOut")
        #expect(predicate == "timedOut")
        #expect(heldAfter)
        let child = ChildProcess(ConditionPeer(condition: condition, go: go, channel: channel))
        try child.start()
        #expect(try next(channel) == "waiting")
        // Taking the lock waits until the child's wait has released it.
        try condition.withLock(timeout: .seconds(60)) {
            try go.set()
            try condition.notifyAll()
        }
        #expect(try next(channel) == "done true")
        try child.join(timeout: .seconds(60))
        #expect(child.exitStatus == .exited(0))
        #expect(try condition.isLocked == false)
    }

    // MARK: the runs, one local and one managed each

    @Test("Locking: Lock and ManagedLock", arguments: Side.allCases)
    func lock(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkLocking(objects.lock(), objects.queue())
    }

    @Test("Locking: RLock and a manager's RLock", arguments: Side.allCases)
    func rLock(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkLocking(objects.rLock(), objects.queue())
    }

    @Test("Locking: a Condition's lock and a ManagedCondition's", arguments: Side.allCases)
    func conditionAsLock(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkLocking(objects.condition(), objects.queue())
    }

    @Test("EventProtocol: Event and ManagedEvent", arguments: Side.allCases)
    func event(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkEvent(objects.event(), objects.queue())
    }

    @Test("SemaphoreProtocol: Semaphore and ManagedSemaphore", arguments: Side.allCases)
    func semaphore(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkSemaphore(objects.semaphore(0))
    }

    @Test("QueueProtocol: Queue and ManagedQueue", arguments: Side.allCases)
    func queue(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkQueue(objects.queue(maxsize: 1), objects.queue())
    }

    @Test("BarrierProtocol: Barrier and ManagedBarrier", arguments: Side.allCases)
    func barrier(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkBarrier(objects.barrier(2))
    }

    @Test("ConditionProtocol: Condition and ManagedCondition", arguments: Side.allCases)
    func condition(_ side: Side) throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try checkCondition(objects.condition(), objects.event(), objects.queue())
    }

    @Test("JoinableQueue is a Queue: it goes where a Queue or a QueueProtocol goes, and stays joinable")
    func joinableQueueIsAQueue() throws {
        let tasks = try JoinableQueue<String>(maxsize: 1)
        let plain: Queue<String> = tasks
        // The child decodes it as a plain Queue; its get and the parent's puts still count tasks.
        try checkQueue(plain, try Queue<String>())
        #expect(tasks.unfinishedTasks == 2)
        #expect(outcome { try tasks.join(timeout: .milliseconds(20)) } == "timedOut")
        try tasks.taskDone()
        try tasks.taskDone()
        try tasks.join(timeout: .seconds(60))
        #expect(outcome { try tasks.taskDone() } == "misuse")
    }
}

/// The async twins of the protocols, with one generic body for both sides.
@Suite(.serialized)
struct SharedShapeAsyncTests {
    func checkAsyncTwins<L: Locking, E: EventProtocol, S: SemaphoreProtocol, Q: QueueProtocol<String>, B: BarrierProtocol>(
        _ lock: L, _ event: E, _ semaphore: S, _ queue: Q, _ barrier: B
    ) async throws {
        #expect(try await lock.withLock(timeout: .seconds(60)) { 5 } == 5)
        #expect(try await lock.withLock { try lock.isLocked })
        await #expect(throws: MultiprocessingError.self) { try await event.wait(timeout: .milliseconds(20)) }
        try event.set()
        try await event.wait(timeout: .seconds(60))
        do {
            try await semaphore.acquire(timeout: .milliseconds(20))
            Issue.record("an empty semaphore's acquire returned")
        } catch let error as MultiprocessingError {
            #expect(error.code == .timedOut)
        }
        try semaphore.release(1)
        #expect(try await semaphore.withPermit(timeout: .seconds(60)) { try semaphore.value } == 0)
        do {
            _ = try await queue.get(timeout: .milliseconds(20))
            Issue.record("an empty queue's get returned")
        } catch let error as MultiprocessingError {
            #expect(error.code == .timedOut)
        }
        try await queue.put("q", timeout: .seconds(60))
        #expect(try await queue.get(timeout: .seconds(60)) == "q")
        #expect(try await barrier.wait(timeout: .seconds(60)) == 0)
    }

    @Test("The async twins: local and managed", arguments: Side.allCases)
    func asyncTwins(_ side: Side) async throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try await checkAsyncTwins(objects.lock(), objects.event(), objects.semaphore(0), objects.queue(), objects.barrier(1))
    }

    @Test("ConditionProtocol's async withLock(waitingFor:): local and managed", arguments: Side.allCases)
    func conditionWaitingFor(_ side: Side) async throws {
        let objects = try Objects(side)
        defer { objects.close() }
        try await checkWaitingFor(objects.condition())
    }

    func checkWaitingFor<C: ConditionProtocol>(_ condition: C) async throws {
        #expect(try await condition.withLock(waitingFor: { true }, timeout: .seconds(60)) { try condition.isLocked })
        #expect(try condition.isLocked == false)
        do {
            _ = try await condition.withLock(waitingFor: { false }, timeout: .milliseconds(20)) { 1 }
            Issue.record("a false predicate's wait returned")
        } catch let error as MultiprocessingError {
            #expect(error.code == .timedOut)
        }
        // The lock is released on the way out of a timed-out wait.
        #expect(try condition.isLocked == false)
    }
}

/// A manager lock's async `withLock` holds the lock as an owner of its own, not as the thread it
/// started on: a task that starts on a pool thread while another task, begun on the same thread,
/// is between the server's grant and its body must not be let into a recursive lock.
@Suite(.serialized)
struct ManagedAsyncOwnerTests {
    /// Takes `lock` as the calling thread, with the blocking call.
    func acquireAsThisThread(_ lock: ManagedLock) throws { try lock.acquire(timeout: .seconds(60)) }

    @Test("An async withLock of a recursive manager lock is not let in by its thread's hold")
    func asyncWithLockIsItsOwnOwner() async throws {
        let objects = try Objects(.managed)
        defer { objects.close() }
        let rLock = try #require(objects.manager).rLock()
        // Held by this thread, and the async call below starts on it (nothing suspends in
        // between): as the thread's own call, it would re-enter at once.
        try acquireAsThisThread(rLock)
        var entered = "entered"
        do {
            try await rLock.withLock(timeout: .milliseconds(50)) {}
        } catch let error as MultiprocessingError {
            entered = error.code.description
        }
        #expect(entered == "timedOut")
        // The thread's hold ends with the manager.
    }
}
