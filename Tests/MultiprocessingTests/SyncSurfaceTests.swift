// Issue 18, "Synchronisation and shared values": RLock.isLocked and Condition.tryAcquire, seen from
// other threads and from other processes.
import Testing
import TestHarness
@testable import Multiprocessing
import TestSupport

/// Joins a started thread and returns its value.
private func joined<T>(_ thread: OSThread, as type: T.Type = T.self) throws -> T {
    try thread.join(timeout: .seconds(60))
    return try thread.result(as: T.self)
}

@Suite("SyncSurface")
struct SyncSurfaceTests {

    @Test("RLock.isLocked: true at every depth for every thread, false once each level is released")
    func rlockIsLockedThreads() throws {
        let rlock = try RLock()
        #expect(!rlock.isLocked)
        try rlock.acquire()
        try rlock.acquire()
        let probe: @Sendable () throws -> [Bool] = {
            let got = try rlock.tryAcquire()
            if got { try rlock.release() }
            return [rlock.isLocked, got, rlock.isOwnedByCurrentThread]
        }
        let atTwo = OSThread { try probe() }
        try atTwo.start()
        #expect(try joined(atTwo, as: [Bool].self) == [true, false, false])
        try rlock.release()
        #expect(rlock.isLocked && rlock.recursionDepth == 1)
        let atOne = OSThread { try probe() }
        try atOne.start()
        #expect(try joined(atOne, as: [Bool].self) == [true, false, false])
        try rlock.release()
        #expect(!rlock.isLocked)
        let free = OSThread { try probe() }
        try free.start()
        #expect(try joined(free, as: [Bool].self) == [false, true, false])
        expectCode(.misuse) { try rlock.release() }
    }

    @Test("RLock.isLocked across processes: a child's hold is seen here, ours is seen there")
    func rlockIsLockedProcesses() throws {
        let rlock = try RLock()
        let held = try Event(), release = try Event()
        let child = ChildProcess(HoldRLockUntilReleased(rlock: rlock, depth: 2, held: held, release: release))
        try child.start()
        try held.wait(timeout: .seconds(60))
        #expect(rlock.isLocked)
        #expect(try !rlock.tryAcquire())
        #expect(rlock.recursionDepth == 0)
        release.set()
        // The child saw it locked at depth 2, and free after its two releases.
        #expect(try child.value(timeout: .seconds(60)) == [1, 2, 0])
        #expect(!rlock.isLocked)

        try rlock.acquire()
        try rlock.acquire()
        let probe = ChildProcess(ProbeRLock(rlock: rlock))
        try probe.start()
        #expect(try probe.value(timeout: .seconds(60)) == [true, false])
        try rlock.release()
        try rlock.release()
        let again = ChildProcess(ProbeRLock(rlock: rlock))
        try again.start()
        #expect(try again.value(timeout: .seconds(60)) == [false, true])
        #expect(!rlock.isLocked)
    }

    @Test("Condition.tryAcquire: false while another thread holds the lock, true when free; re-entrant over an RLock")
    func conditionTryAcquireThreads() throws {
        let condition = try Condition()
        #expect(try condition.tryAcquire())
        // Over an RLock (the default, as Python's), the owner takes it once more.
        #expect(try condition.tryAcquire())
        let other = OSThread { try condition.tryAcquire() }
        try other.start()
        #expect(try joined(other, as: Bool.self) == false)
        // A lock taken by tryAcquire is a real hold: wait may release it and takes it back.
        expectCode(.timedOut) { try condition.wait(timeout: .milliseconds(1)) }
        #expect(condition.isOwnedByCurrentThreadForTests)
        try condition.release()
        #expect(condition.isLocked)
        try condition.release()
        #expect(!condition.isLocked)
        let free = OSThread {
            let got = try condition.tryAcquire()
            if got { try condition.release() }
            return got
        }
        try free.start()
        #expect(try joined(free, as: Bool.self) == true)
        expectCode(.misuse) { try condition.release() }

        // Over a plain Lock, taking it again is a deadlock the lock refuses.
        let plain = try Condition(lock: try Lock())
        #expect(try plain.tryAcquire())
        expectCode(.misuse) { _ = try plain.tryAcquire() }
        try plain.release()
        #expect(!plain.isLocked)
    }

    @Test("Condition.tryAcquire across processes: refused while a child holds the lock, taken while it waits")
    func conditionTryAcquireProcesses() throws {
        let condition = try Condition()
        let flag = try SharedValue(0)
        let held = try Event(), release = try Event()
        let child = ChildProcess(HoldConditionThenWait(condition: condition, flag: flag, held: held, release: release))
        try child.start()
        try held.wait(timeout: .seconds(60))
        #expect(condition.isLocked)
        #expect(try !condition.tryAcquire())
        let probe = ChildProcess(ProbeCondition(condition: condition))
        try probe.start()
        #expect(try probe.value(timeout: .seconds(60)) == false)
        release.set()
        // The child's wait releases the lock: tryAcquire gets it once the child sleeps.
        #expect(eventually(within: .seconds(60)) { condition.registeredWaiters == 1 })
        #expect(eventually(within: .seconds(60)) { (try? condition.tryAcquire()) == true })
        flag.atomicStore(1)
        try condition.notifyAll()
        try condition.release()
        #expect(try child.value(timeout: .seconds(60)) == true)
        #expect(!condition.isLocked)
    }
}
