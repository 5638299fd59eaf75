import Testing
import TestHarness
import Multiprocessing
import TestSupport
import MultiprocessingSystem

/// The blocking bridge (issue 14, item 2). Each scenario runs in a child of its own, which counts
/// its own threads and configures its own bridge; the parent holds what the child waits for.
@Suite("BlockingBridge", .serialized)
struct BlockingBridgeTests {

    @Test("200 concurrent contended async waits (lock, event, queue held by another process) all complete on a bounded, reused set of helper threads, reclaimed when idle")
    func manyWaitsReuseBoundedThreads() throws {
        let lock = try Lock()
        let event = try Event()
        let queue = try Queue<Int>()
        let phase = try SharedValue(0)
        let waiters = 200
        try lock.acquire()
        let child = ChildProcess(ManyContendedAsyncWaits(lock: lock, event: event, queue: queue, phase: phase,
                                                         waiters: waiters, idleTimeoutMilliseconds: 300))
        try child.start()
        let parked = eventually(within: .seconds(60)) { phase.atomicLoad() == 1 }
        try lock.release()
        event.set()
        for index in 0..<waiters where index % 3 == 2 { try queue.put(index) }
        #expect(parked)
        let counts = try child.value(timeout: .seconds(120))
        #expect(counts.completed == waiters)
        #expect(counts.failures.isEmpty, "\(counts.failures.prefix(3))")
        // 64 helpers at most, the rest waited in slices; a few threads of slack for Dispatch's
        // timer and workers, which the slices' Task.sleep may wake.
        #expect(counts.limit == 64)
        #expect(counts.helpersStarted <= counts.limit)
        #expect(counts.slices > 0)
        #expect(counts.duringMax - counts.before <= counts.limit + 4,
                "threads: \(counts.before) before, \(counts.duringMax) at most during, \(counts.afterWork) after")
        #expect(counts.threadsAfterIdle == 0)
        #expect(counts.afterIdle - counts.before <= 4,
                "threads: \(counts.before) before, \(counts.afterIdle) after the idle timeout")
    }

    @Test("at the bound no wait queues behind others: two barrier waits hold both helpers, and the third party's lock wait (in slices) and barrier wait (an extra thread) still get through")
    func boundNeverDeadlocks() throws {
        let lock = try Lock()
        let phase = try SharedValue(0)
        try lock.acquire()
        let child = ChildProcess(BridgeBoundNeverDeadlocks(lock: lock, phase: phase))
        try child.start()
        let parked = eventually(within: .seconds(60)) { phase.atomicLoad() == 1 }
        try lock.release()
        #expect(parked)
        let outcome = try child.value(timeout: .seconds(120))
        #expect(outcome.results == ["first passed the barrier", "second passed the barrier", "third passed the barrier"])
        #expect(outcome.threadsMax <= 2)
        #expect(outcome.extraSeen >= 1)
        #expect(outcome.slicesSeen > 0)
    }

    @Test("cancelling a task ends its wait at once in each wait kind (futex, eventfd, a connection's turn, futex in slices) and leaves no helper busy; two helpers serve all five waits")
    func cancellationOfEachKind() throws {
        let lock = try Lock()
        try lock.acquire()
        defer { try? lock.release() }
        let child = ChildProcess(CancelEachBridgeWait(lock: lock))
        try child.start()
        let outcome = try child.value(timeout: .seconds(120))
        #expect(outcome.kinds == ["futex", "eventfd", "turn", "futex in slices"])
        #expect(outcome.codes == Array(repeating: "cancelled", count: 4))
        // Each wait ends within a few milliseconds of the cancel; 2 s is far above any scheduling
        // delay on the loaded machine, and far below the waits' own 60 s timeouts.
        for (kind, milliseconds) in zip(outcome.kinds, outcome.milliseconds) {
            #expect(milliseconds < 2000, "\(kind) took \(milliseconds) ms to end after its cancel")
        }
        #expect(outcome.busyAfter == 0)
        // The turn scenario has two waits at once, so two helpers; every other wait reused one.
        #expect(outcome.helpersStarted == 2)
    }

    @Test("where no thread can be created (uid nobody, RLIMIT_NPROC 1): a lock wait completes in slices and a barrier wait fails with a clear error")
    func waitsWithoutThreads() throws {
        let lock = try Lock()
        let phase = try SharedValue(0)
        try lock.acquire()
        let child = ChildProcess(WaitsWithoutThreads(lock: lock, phase: phase))
        try child.start()
        let parked = eventually(within: .seconds(60)) { phase.atomicLoad() == 1 }
        try lock.release()
        #expect(parked)
        let outcome = try child.value(timeout: .seconds(120))
        #expect(outcome.threadStart == "systemCall 11")
        #expect(outcome.barrierWait == "systemCall")
        #expect(outcome.barrierMessage.contains("Barrier.wait"), "\(outcome.barrierMessage)")
        #expect(outcome.barrierMessage.contains("pthread_create"), "\(outcome.barrierMessage)")
        #expect(outcome.lockWait == "acquired")
        #expect(outcome.slices > 0)
    }
}
