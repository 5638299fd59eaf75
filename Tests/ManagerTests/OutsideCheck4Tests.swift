import Testing
import Distributed
import Multiprocessing
import MultiprocessingManager
import ManagerTestSupport

// Outside checks after issue 14 items 4 and 5 (shared protocols, typed manager protocol).

extension ManagerTests {
    /// `create(_:name:)` for an actor under a name that another kind of object holds was given
    /// that object's id, as if it were the actor: the mistake surfaced only at the first call,
    /// as "object N is a semaphore, not an actor". Every other kind's create refuses such a
    /// name with `.misuse`; an actor's create now does too.
    @Test func anActorCreatedUnderANameAnotherKindHoldsIsRefused() async throws {
        let manager = Manager()
        manager.register(Counter.self)
        try await manager.start()
        defer { try? manager.shutdown() }
        _ = try manager.semaphore(value: 1, name: "shared-name")
        #expect(performing: { _ = try manager.create(Counter.self, name: "shared-name") },
                throws: { ($0 as? MultiprocessingError)?.code == .misuse && "\($0)".contains("semaphore") })
        // The other way round already held: a semaphore under an actor's name is refused.
        let counter = try manager.create(Counter.self, name: "counter")
        #expect(try await counter.add(2, note: "x") == 2)
        #expect(performing: { _ = try manager.semaphore(value: 1, name: "counter") },
                throws: { ($0 as? MultiprocessingError)?.code == .misuse })
        // And the named actor is still found by its name.
        #expect(try await manager.create(Counter.self, name: "counter").add(1, note: "y") == 3)
    }
}

/// What `threading.Condition` users write (`with cond: cond.notify()`), through the shared
/// protocol: the body of an async `withLock` calls the condition's synchronous methods.
private func notifyUnderTheLock<C: ConditionProtocol>(_ condition: C) async throws -> Bool {
    try await condition.withLock {
        try condition.notify()
        try condition.notifyAll()
        return try condition.isLocked
    }
}

private func notifyOnceThePredicateHolds<C: ConditionProtocol>(_ condition: C) async throws {
    try await condition.withLock(waitingFor: { true }, timeout: .seconds(60)) {
        try condition.notifyAll()
    }
}

extension ManagerTests {
    /// An async `withLock` on a manager lock took it as an owner of its own (not a thread), but
    /// the synchronous calls its body makes on the same object spoke as the calling thread, so
    /// the server said the caller did not hold the lock: `notify` in `withLock` threw `.misuse`
    /// for a ManagedCondition where a local Condition does it, and an RLock could not be taken
    /// again inside its own async `withLock`. The body's calls now speak as the owner that
    /// holds the lock.
    @Test func theBodyOfAnAsyncWithLockOnAManagedLockActsAsItsOwner() async throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        // The local condition: the reference behaviour.
        #expect(try await notifyUnderTheLock(try Condition()))
        try await notifyOnceThePredicateHolds(try Condition())
        let condition = try manager.condition()
        #expect(try await notifyUnderTheLock(condition))
        try await notifyOnceThePredicateHolds(condition)
        #expect(try !condition.isLocked)
        // A recursive lock is taken again by the body that holds it, as a local RLock is.
        let rlock = try manager.rLock()
        let local = try RLock()
        for lock in [rlock as any Locking, local as any Locking] {
            let again = try await lock.withLock {
                let got = try lock.tryAcquire()
                if got { try lock.release() }
                return got
            }
            #expect(again)
            #expect(try !lock.isLocked)
        }
        // Outside the body, the thread is again its own owner: a plain acquire and release work.
        try condition.acquire()
        try condition.notify()
        try condition.release()
    }
}

private func code(_ body: () throws -> Void) -> MultiprocessingError.Code? {
    do { try body(); return nil } catch { return (error as? MultiprocessingError)?.code }
}

private func code(_ body: () async throws -> Void) async -> MultiprocessingError.Code? {
    do { try await body(); return nil } catch { return (error as? MultiprocessingError)?.code }
}

/// One timeout convention through the shared protocols, for a local and a managed object alike:
/// `.zero` on a wait that cannot finish at once throws `.timedOut`, a negative timeout `.misuse`,
/// and the `Nowait` calls `.empty` and `.full`.
private func expectTheTimeoutConvention<E: EventProtocol, S: SemaphoreProtocol, C: ConditionProtocol,
                                        B: BarrierProtocol, Q: QueueProtocol<Int>>(
    _ event: E, _ semaphore: S, _ condition: C, _ barrier: B, _ queue: Q, full: Q) async throws {
    #expect(code { try event.wait(timeout: .zero) } == .timedOut)
    #expect(await code { try await event.wait(timeout: .zero) } == .timedOut)
    #expect(code { try event.wait(timeout: .nanoseconds(-1)) } == .misuse)
    #expect(await code { try await event.wait(timeout: .seconds(-5)) } == .misuse)

    #expect(code { try semaphore.acquire(timeout: .zero) } == .timedOut)
    #expect(await code { try await semaphore.acquire(timeout: .zero) } == .timedOut)
    #expect(code { try semaphore.acquire(timeout: .nanoseconds(-1)) } == .misuse)
    #expect(await code { try await semaphore.acquire(timeout: .nanoseconds(-1)) } == .misuse)
    #expect(try !semaphore.tryAcquire())
    #expect(code { try semaphore.release(0) } == .misuse)
    #expect(code { try semaphore.release(-1) } == .misuse)

    #expect(code { try condition.withLock { try condition.wait(timeout: .zero) } } == .timedOut)
    #expect(code { try condition.withLock { try condition.wait(for: { false }, timeout: .zero) } } == .timedOut)
    #expect(code { try condition.withLock { try condition.wait(timeout: .nanoseconds(-1)) } } == .misuse)
    #expect(code { try condition.withLock { try condition.notify(-1) } } == .misuse)
    #expect(await code { _ = try await condition.withLock(waitingFor: { false }, timeout: .zero) { 1 } } == .timedOut)
    #expect(await code { _ = try await condition.withLock(waitingFor: { true }, timeout: .nanoseconds(-1)) { 1 } } == .misuse)
    #expect(try !condition.isLocked)

    #expect(code { _ = try queue.get(timeout: .zero) } == .timedOut)
    #expect(await code { _ = try await queue.get(timeout: .zero) } == .timedOut)
    #expect(code { _ = try queue.getNowait() } == .empty)
    #expect(code { _ = try queue.get(timeout: .nanoseconds(-1)) } == .misuse)
    try full.putNowait(1)
    #expect(code { try full.put(2, timeout: .zero) } == .timedOut)
    #expect(await code { try await full.put(2, timeout: .zero) } == .timedOut)
    #expect(code { try full.putNowait(2) } == .full)
    #expect(code { try full.put(2, timeout: .nanoseconds(-1)) } == .misuse)
    #expect(try full.qsize == 1)

    #expect(code { try barrier.wait(timeout: .nanoseconds(-1)) } == .misuse)
    #expect(try !barrier.isBroken)
    #expect(code { try barrier.wait(timeout: .zero) } == .timedOut)
    #expect(try barrier.isBroken)
    #expect(code { try barrier.wait(timeout: .zero) } == .broken)
    try barrier.reset()
    #expect(try !barrier.isBroken && barrier.waitingCount == 0)
}

extension ManagerTests {
    @Test func localAndManagedObjectsKeepOneTimeoutConvention() async throws {
        try await expectTheTimeoutConvention(try Event(), try Semaphore(0), try Condition(),
                                             try Barrier(parties: 2), try Queue<Int>(), full: try Queue<Int>(maxsize: 1))
        let manager = try started()
        defer { try? manager.shutdown() }
        try await expectTheTimeoutConvention(try manager.event(), try manager.semaphore(value: 0), try manager.condition(),
                                             try manager.barrier(parties: 2), try manager.queue(Int.self),
                                             full: try manager.queue(Int.self, maximumSize: 1))
    }
}
