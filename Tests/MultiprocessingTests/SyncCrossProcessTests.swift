import Testing
import TestHarness
import Multiprocessing
import TestSupport

@Suite("SyncCrossProcess", .serialized)
struct SyncCrossProcessTests {

    @Test("two processes hammer a shared counter under a shared Lock: the count is exact")
    func hammer() throws {
        let lock = try Lock()
        let counter = try SharedValue(0)
        let ready = try Barrier(parties: 2)
        let iterations = 20_000
        let child = ChildProcess(HammerCounter(lock: lock, counter: counter, iterations: iterations, ready: ready))
        try child.start()
        try HammerCounter(lock: lock, counter: counter, iterations: iterations, ready: ready).run()
        try child.join(timeout: .seconds(30))
        #expect(child.exitCode == 0)
        #expect(counter.atomicLoad() == 2 * iterations)
    }

    @Test("a process dies holding the lock: the next acquirer gets .ownerDied, with the lock")
    func ownerDies() throws {
        let lock = try Lock()
        let value = try SharedValue(5)
        let child = ChildProcess(DieHoldingLock(lock: lock, value: value))
        try child.start()
        try child.join(timeout: .seconds(30))
        #expect(value.atomicLoad() == -1)
        // The kernel cleared the dead owner's TID and marked the lock: free, but not yet consistent.
        #expect(!lock.isLocked)
        expectCode(.ownerDied) { try lock.acquire(timeout: .seconds(5)) }
        value.atomicStore(5)   // the repair
        try lock.release()
        try lock.withLock { #expect(value.atomicLoad() == 5) }
    }

    @Test("a waiter blocked in acquire wakes when the owner process dies")
    func waiterWakesOnOwnerDeath() throws {
        let lock = try Lock()
        let value = try SharedValue(0)
        let gate = try Lock()
        // The child takes `lock` and blocks on `gate`, which the parent holds; the parent then
        // waits for `lock` and kills the child.
        try gate.acquire()
        let child = ChildProcess(HoldUntilGate(lock: lock, gate: gate, value: value))
        try child.start()
        #expect(eventually { value.atomicLoad() == 1 })
        let waiter = OSThread { try lock.acquire(timeout: .seconds(20)) }
        try waiter.start()
        try child.kill()
        try waiter.join(timeout: .seconds(20))
        #expect((waiter.error as? MultiprocessingError)?.code == .ownerDied)
        try gate.release()
    }

    @Test("Event, Condition, Semaphore and Barrier work between processes")
    func signals() throws {
        let go = try Event()
        let condition = try Condition()
        let count = try SharedValue(0)
        let semaphore = try Semaphore(0)
        let barrier = try Barrier(parties: 3)
        let children = (0..<2).map { _ in
            ChildProcess(CrossProcessSignals(go: go, condition: condition, count: count, semaphore: semaphore, barrier: barrier))
        }
        for child in children { try child.start() }
        go.set()
        try condition.withLock {
            try condition.wait(for: { count.atomicLoad() == 2 }, timeout: .seconds(20))
        }
        try semaphore.release(2)
        let mine = try barrier.wait(timeout: .seconds(20))
        let indices = try children.map { try $0.value(timeout: .seconds(20)) } + [mine]
        #expect(indices.sorted() == [0, 1, 2])
    }

    @Test("a process does not exit while a non-daemon OSThread runs; daemon threads die with it")
    func exitSemantics() throws {
        let flag = try SharedValue(0)
        let never = try Event()
        let child = ChildProcess(ExitWaitsForThreads(flag: flag, never: never))
        try child.start()
        try child.join(timeout: .seconds(20))
        #expect(child.exitCode == 0)
        #expect(flag.atomicLoad() == 1)
    }
}
