import Testing
import TestHarness
import Synchronization
@testable import Multiprocessing

@Suite("SyncRLock")
struct SyncRLockTests {
    @Test("the seed: RLock nesting; the lock is free only after as many releases as acquires")
    func nesting() throws {
        let rlock = try RLock()
        try rlock.acquire()
        try rlock.acquire()
        try rlock.withLock {
            #expect(rlock.recursionDepth == 3)
        }
        #expect(rlock.recursionDepth == 2)
        let other = OSThread { try rlock.tryAcquire() }
        try other.start(); try other.join()
        #expect(try other.result(as: Bool.self) == false)
        try rlock.release()
        try rlock.release()
        #expect(rlock.recursionDepth == 0)
        let again = OSThread { () throws -> Bool in
            let got = try rlock.tryAcquire()
            if got { try rlock.release() }
            return got
        }
        try again.start(); try again.join()
        #expect(try again.result(as: Bool.self) == true)
    }

    @Test("releasing an RLock the thread does not hold is misuse")
    func ownerChecked() throws {
        let rlock = try RLock()
        expectCode(.misuse) { try rlock.release() }
        try rlock.acquire()
        let thief = OSThread { try rlock.release() }
        try thief.start(); try thief.join()
        #expect((thief.error as? MultiprocessingError)?.code == .misuse)
        try rlock.release()
    }

    @Test("RLock acquire times out, and a dead owner is reported")
    func timeoutAndOwnerDied() throws {
        let rlock = try RLock()
        let owner = OSThread { try rlock.acquire(); try rlock.acquire() }   // exits holding it twice
        try owner.start(); try owner.join()
        expectCode(.ownerDied) { try rlock.acquire() }
        #expect(rlock.recursionDepth == 1)
        let waiter = OSThread { try rlock.acquire(timeout: .milliseconds(30)) }
        try waiter.start(); try waiter.join()
        #expect((waiter.error as? MultiprocessingError)?.code == .timedOut)
        try rlock.release()
    }
}

@Suite("SyncSemaphore")
struct SyncSemaphoreTests {
    @Test("the seed: 22 threads through BoundedSemaphore(5), never more than 5 inside")
    func twentyTwoThroughFive() throws {
        let semaphore = try BoundedSemaphore(5)
        let inside = Atomic<Int>(0)
        let most = Atomic<Int>(0)
        let entered = Atomic<Int>(0)
        let threads = (0..<22).map { _ in
            OSThread {
                try semaphore.withPermit {
                    let now = inside.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
                    most.max(now, ordering: .sequentiallyConsistent)
                    entered.wrappingAdd(1, ordering: .relaxed)
                    // Stay inside a little, so that threads overlap.
                    for _ in 0..<20_000 { _ = inside.load(ordering: .relaxed) }
                    inside.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                }
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        #expect(threads.allSatisfy { $0.error == nil })
        #expect(entered.load(ordering: .relaxed) == 22)
        #expect(most.load(ordering: .relaxed) <= 5)
        #expect(most.load(ordering: .relaxed) >= 1)
        #expect(semaphore.value == 5)
    }

    @Test("BoundedSemaphore over-release is misuse; Semaphore counts freely")
    func overRelease() throws {
        let bounded = try BoundedSemaphore(2)
        expectCode(.misuse) { try bounded.release() }
        #expect(bounded.tryAcquire())
        try bounded.release()
        #expect(bounded.value == 2)
        let plain = try Semaphore(0)
        try plain.release(3)
        #expect(plain.value == 3)
    }

    @Test("acquire times out at 0, is cancelled, and release wakes a sleeper")
    func waits() throws {
        let semaphore = try Semaphore(0)
        let start = ContinuousClock.now
        expectCode(.timedOut) { try semaphore.acquire(timeout: .milliseconds(40)) }
        #expect(ContinuousClock.now - start >= .milliseconds(40))

        let sleeper = OSThread { try semaphore.acquire() }
        try sleeper.start()
        #expect(eventually { semaphore.core.sleepers.load() == 1 })
        sleeper.cancel()
        try sleeper.join(timeout: .seconds(5))
        #expect((sleeper.error as? MultiprocessingError)?.code == .cancelled)

        let woken = OSThread { try semaphore.acquire(timeout: .seconds(10)) }
        try woken.start()
        #expect(eventually { semaphore.core.sleepers.load() == 1 })
        try semaphore.release()
        try woken.join(timeout: .seconds(5))
        #expect(woken.error == nil)
        #expect(semaphore.value == 0)
    }

    @Test("async acquire waits off the pool and honours Task cancellation")
    func asyncAcquire() async throws {
        let semaphore = try Semaphore(0)
        let task = Task { try await semaphore.acquire() }
        #expect(await eventuallyAsync { semaphore.core.sleepers.load() == 1 })
        task.cancel()
        await expectCode(.cancelled) { try await task.value }
        async let got: Void = semaphore.acquire(timeout: .seconds(10))
        try semaphore.release()
        try await got
        await expectCode(.timedOut) { try await semaphore.acquire(timeout: .milliseconds(20)) }
    }
}

@Suite("SyncEvent")
struct SyncEventTests {
    @Test("the seed's traffic light: cars wait for green, within a bounded time")
    func trafficLight() throws {
        let green = try Event()
        let passed = Atomic<Int>(0)
        let stop = try Event()
        let light = OSThread(name: "light") {
            // Red, green, red, green... until every car has passed.
            while !stop.isSet {
                green.clear()
                green.set()
            }
        }
        let cars = (0..<10).map { n in
            OSThread(name: "car-\(n)") {
                try green.wait(timeout: .seconds(5))
                passed.wrappingAdd(1, ordering: .relaxed)
            }
        }
        let start = ContinuousClock.now
        for car in cars { try car.start() }
        try light.start()
        for car in cars { try car.join(timeout: .seconds(10)) }
        stop.set()
        try light.join(timeout: .seconds(5))
        #expect(cars.allSatisfy { $0.error == nil })
        #expect(passed.load(ordering: .relaxed) == 10)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("set wakes every waiter; a waiter woken by set returns even if clear follows")
    func setWakesAll() throws {
        let event = try Event()
        let waiters = (0..<5).map { _ in OSThread { try event.wait(timeout: .seconds(10)) } }
        for w in waiters { try w.start() }
        #expect(eventually { event.sleepers.load() == 5 })
        event.set()
        event.clear()
        for w in waiters { try w.join(timeout: .seconds(10)) }
        #expect(waiters.allSatisfy { $0.error == nil })
        #expect(!event.isSet)
    }

    @Test("wait times out while clear, and is cancelled")
    func timeoutAndCancel() async throws {
        let event = try Event()
        expectCode(.timedOut) { try event.wait(timeout: .milliseconds(30)) }
        let waiter = OSThread { try event.wait() }
        try waiter.start()
        #expect(await eventuallyAsync { event.sleepers.load() == 1 })
        waiter.cancel()
        try await waiter.join(timeout: .seconds(5))
        #expect((waiter.error as? MultiprocessingError)?.code == .cancelled)
        let task = Task { try await event.wait() }
        #expect(await eventuallyAsync { event.sleepers.load() == 1 })
        task.cancel()
        await expectCode(.cancelled) { try await task.value }
        event.set()
        try await event.wait(timeout: .seconds(1))
    }
}

@Suite("SyncCondition")
struct SyncConditionTests {
    @Test("producer and consumer: wait(for:) sees every item")
    func producerConsumer() throws {
        let condition = try Condition()
        let queue = UnsafeCounter(0)   // items available
        let consumed = UnsafeCounter(0)
        let consumers = (0..<3).map { _ in
            OSThread {
                for _ in 0..<100 {
                    try condition.withLock {
                        try condition.wait(for: { queue.value > 0 }, timeout: .seconds(10))
                        queue.value -= 1
                        consumed.value += 1
                    }
                }
            }
        }
        for c in consumers { try c.start() }
        for _ in 0..<300 {
            try condition.withLock {
                queue.value += 1
                try condition.notify()
            }
        }
        for c in consumers { try c.join(timeout: .seconds(20)) }
        #expect(consumers.allSatisfy { $0.error == nil })
        #expect(consumed.value == 300)
        #expect(queue.value == 0)
    }

    @Test("notify(n) wakes exactly n sleepers; notifyAll wakes the rest")
    func notifyCounts() throws {
        let condition = try Condition(lock: try Lock())
        let woken = Atomic<Int>(0)
        let sleepers = (0..<5).map { _ in
            OSThread {
                try condition.withLock {
                    try condition.wait(timeout: .seconds(10))
                    woken.wrappingAdd(1, ordering: .sequentiallyConsistent)
                }
            }
        }
        for s in sleepers { try s.start() }
        #expect(eventually { condition.registeredWaiters == 5 })
        try condition.withLock { try condition.notify(2) }
        #expect(eventually { woken.load(ordering: .sequentiallyConsistent) == 2 })
        // The other three are still asleep: no notification leaks to them.
        #expect(condition.registeredWaiters == 3)
        #expect(woken.load(ordering: .sequentiallyConsistent) == 2)
        try condition.withLock { try condition.notifyAll() }
        for s in sleepers { try s.join(timeout: .seconds(10)) }
        #expect(woken.load(ordering: .sequentiallyConsistent) == 5)
    }

    @Test("wait needs the lock, times out holding it again, and is cancelled")
    func misuseTimeoutCancel() throws {
        let condition = try Condition()
        expectCode(.misuse) { try condition.wait(timeout: .milliseconds(1)) }
        expectCode(.misuse) { try condition.notify() }
        try condition.withLock {
            expectCode(.timedOut) { try condition.wait(timeout: .milliseconds(30)) }
            expectCode(.timedOut) { try condition.wait(for: { false }, timeout: .milliseconds(30)) }
            // Still held (re-entrantly) after the timeouts.
            try condition.notifyAll()
        }
        let waiter = OSThread { try condition.withLock { try condition.wait() } }
        try waiter.start()
        #expect(eventually { condition.registeredWaiters == 1 })
        waiter.cancel()
        try waiter.join(timeout: .seconds(5))
        #expect((waiter.error as? MultiprocessingError)?.code == .cancelled)
        #expect(condition.registeredWaiters == 0)
    }

    @Test("async withLock(waitingFor:) sleeps off the pool and runs its body under the lock")
    func asyncWait() async throws {
        let condition = try Condition()
        let ready = UnsafeCounter(0)
        let notifier = OSThread {
            _ = eventually { condition.registeredWaiters == 1 }
            try condition.withLock { ready.value = 1; try condition.notify() }
        }
        try await condition.withLock {}   // the async twin of withLock
        try notifier.start()
        let seen = try await condition.withLock(waitingFor: { ready.value == 1 }, timeout: .seconds(10)) {
            #expect(condition.isOwnedByCurrentThreadForTests)
            return ready.value
        }
        #expect(seen == 1)
        try await notifier.join()

        // A cancelled task's wait ends with .cancelled, without the lock, and unregisters.
        let task = Task {
            try await condition.withLock(waitingFor: { false }) {}
        }
        #expect(await eventuallyAsync { condition.registeredWaiters == 1 })
        task.cancel()
        await expectCode(.cancelled) { try await task.value }
        #expect(condition.registeredWaiters == 0)
        try await condition.withLock { try condition.notifyAll() }   // the lock was released by the task
        await expectCode(.timedOut) {
            try await condition.withLock(waitingFor: { false }, timeout: .milliseconds(20)) {}
        }
        try await condition.withLock {}
    }
}

@Suite("SyncBarrier")
struct SyncBarrierTests {
    @Test("parties meet, each gets a distinct index, the action runs once per round")
    func rounds() throws {
        let actions = Atomic<Int>(0)
        let barrier = try Barrier(parties: 3, action: { actions.wrappingAdd(1, ordering: .relaxed) })
        let indices = Mutex<[Int]>([])
        let threads = (0..<3).map { _ in
            OSThread {
                for _ in 0..<10 {
                    let i = try barrier.wait(timeout: .seconds(10))
                    indices.withLock { $0.append(i) }
                }
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join(timeout: .seconds(20)) }
        #expect(threads.allSatisfy { $0.error == nil })
        #expect(actions.load(ordering: .relaxed) == 10)
        #expect(indices.withLock { $0.sorted() } == (0..<3).flatMap { Array(repeating: $0, count: 10) })
        #expect(barrier.waitingCount == 0)
    }

    @Test("a timed-out party breaks the barrier: the others get .broken, until reset")
    func breaking() throws {
        let barrier = try Barrier(parties: 3)
        let patient = OSThread { try barrier.wait(timeout: .seconds(10)) }
        try patient.start()
        #expect(eventually { barrier.waitingCount == 1 })
        expectCode(.timedOut) { try barrier.wait(timeout: .milliseconds(30)) }
        try patient.join(timeout: .seconds(5))
        #expect((patient.error as? MultiprocessingError)?.code == .broken)
        #expect(barrier.isBroken)
        expectCode(.broken) { try barrier.wait(timeout: .seconds(1)) }
        barrier.reset()
        #expect(!barrier.isBroken)
        let pair = (0..<2).map { _ in OSThread { try barrier.wait(timeout: .seconds(10)) } }
        for t in pair { try t.start() }
        try barrier.wait(timeout: .seconds(10))
        for t in pair { try t.join() }
        #expect(pair.allSatisfy { $0.error == nil })
    }

    @Test("abort, a throwing action, and cancellation break the barrier")
    func abortAndAction() async throws {
        let barrier = try Barrier(parties: 2)
        let waiter = OSThread { try barrier.wait() }
        try waiter.start()
        #expect(await eventuallyAsync { barrier.waitingCount == 1 })
        barrier.abort()
        try await waiter.join(timeout: .seconds(5))
        #expect((waiter.error as? MultiprocessingError)?.code == .broken)

        struct Boom: Error {}
        let throwing = try Barrier(parties: 1, action: { throw Boom() })
        #expect(throws: Boom.self) { try throwing.wait() }
        #expect(throwing.isBroken)

        let cancelled = try Barrier(parties: 2)
        let task = Task { try await cancelled.wait() }
        #expect(await eventuallyAsync { cancelled.waitingCount == 1 })
        task.cancel()
        await expectCode(.cancelled) { _ = try await task.value }
        #expect(cancelled.isBroken)
    }
}
