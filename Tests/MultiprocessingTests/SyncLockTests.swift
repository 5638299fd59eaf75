import Testing
import TestHarness
import Synchronization
import Glibc
@testable import Multiprocessing
import MultiprocessingSystem

/// A counter that is deliberately not atomic: only a lock keeps its updates exact.
final class UnsafeCounter: @unchecked Sendable {
    var value: Int
    init(_ value: Int) { self.value = value }
}

/// `eventually` for async tests: it sleeps with `Task.sleep`, so it never holds one of the
/// cooperative pool's threads (two on this machine) while the task it waits for needs one.
///
/// The bound is long on purpose. Swift Testing runs synchronous tests on the same two pool
/// threads, and the end-to-end suites block in them for minutes while a child process runs; the
/// task this waits for may get no thread for that long. The bound only limits how long a real
/// failure takes to report: a condition that holds returns at once.
func eventuallyAsync(within limit: Duration = .seconds(600), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return condition()
}

func expectCode(_ code: MultiprocessingError.Code, _ body: () throws -> Void,
                sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected \(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as MultiprocessingError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

func expectCode(_ code: MultiprocessingError.Code, _ body: () async throws -> Void,
                sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected \(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as MultiprocessingError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("SyncLock")
struct SyncLockTests {
    @Test("the seed: 100 threads decrement a counter under a Lock and leave exactly 0")
    func hundredThreadsDecrement() throws {
        let lock = try Lock()
        let counter = UnsafeCounter(100 * 1000)
        let threads = (0..<100).map { _ in
            OSThread {
                for _ in 0..<1000 {
                    try lock.withLock {
                        let seen = counter.value
                        counter.value = seen - 1
                    }
                }
            }
        }
        for thread in threads { try thread.start() }
        for thread in threads { try thread.join() }
        #expect(counter.value == 0)
        #expect(threads.allSatisfy { $0.error == nil })
        #expect(!lock.isLocked)
    }

    @Test("tryAcquire, isLocked, and the owner's second acquire is misuse, not a deadlock")
    func ownership() throws {
        let lock = try Lock()
        #expect(try lock.tryAcquire())
        #expect(lock.isLocked)
        expectCode(.misuse) { try lock.acquire(timeout: .seconds(5)) }
        expectCode(.misuse) { _ = try lock.tryAcquire() }
        try lock.release()
        #expect(!lock.isLocked)
        expectCode(.misuse) { try lock.release() }
    }

    @Test("another thread cannot release the lock: misuse")
    func releaseFromOtherThread() throws {
        let lock = try Lock()
        try lock.acquire()
        let other = OSThread { try lock.release() }
        try other.start()
        try other.join()
        #expect((other.error as? MultiprocessingError)?.code == .misuse)
        #expect(lock.isLocked)
        try lock.release()
    }

    @Test("acquire times out while another thread holds the lock")
    func timeout() throws {
        let lock = try Lock()
        let held = try Event(), done = try Event()
        let holder = OSThread {
            try lock.withLock { held.set(); try done.wait() }
        }
        try holder.start()
        try held.wait(timeout: .seconds(10))
        let start = ContinuousClock.now
        expectCode(.timedOut) { try lock.acquire(timeout: .milliseconds(50)) }
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(50) && waited < .seconds(2))
        #expect(try lock.tryAcquire() == false)
        done.set()
        try holder.join()
        try lock.acquire(timeout: .seconds(5))
        try lock.release()
    }

    @Test("cancelling a thread wakes its blocked acquire with .cancelled")
    func cancellation() throws {
        let lock = try Lock()
        try lock.acquire()
        let waiter = OSThread { try lock.acquire() }
        try waiter.start()
        // Cancel once the waiter sleeps (it has set FUTEX_WAITERS): cancel must wake it.
        #expect(eventually { lock.mutex.word.load() & system_futexWaitersBit != 0 })
        waiter.cancel()
        try waiter.join(timeout: .seconds(5))
        #expect((waiter.error as? MultiprocessingError)?.code == .cancelled)
        try lock.release()
    }

    @Test("a thread that exits holding the lock: the next acquirer gets .ownerDied with the lock held")
    func threadOwnerDied() throws {
        let lock = try Lock()
        let owner = OSThread { try lock.acquire() }   // exits without releasing
        try owner.start()
        try owner.join()
        expectCode(.ownerDied) { try lock.acquire(timeout: .seconds(5)) }
        #expect(lock.isLocked)
        try lock.release()
        // Consistent again: a plain acquire works.
        try lock.withLock {}
    }

    @Test("waiters sleep and are woken: contended hand-offs stay exact")
    func contendedHandOff() throws {
        let lock = try Lock()
        let counter = UnsafeCounter(0)
        let threads = (0..<4).map { _ in
            OSThread {
                for _ in 0..<20_000 { try lock.withLock { counter.value += 1 } }
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        #expect(counter.value == 80_000)
    }

    @Test("async withLock waits off the pool, honours its timeout and Task cancellation")
    func asyncTwins() async throws {
        let lock = try Lock()
        let counter = UnsafeCounter(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<500 { try await lock.withLock { counter.value += 1 } }
                }
            }
            try await group.waitForAll()
        }
        #expect(counter.value == 4000)

        let held = try Event(), done = try Event()
        // The holder keeps the lock until `done`, with no timeout: under load a bounded wait ended
        // first, the lock came free, and the task below took it instead of waiting (seen once).
        let holder = OSThread { try lock.withLock { held.set(); try done.wait() } }
        try holder.start()
        try await held.wait()
        await expectCode(.timedOut) { try await lock.withLock(timeout: .milliseconds(30)) {} }
        let task = Task { try await lock.withLock {} }
        #expect(await eventuallyAsync { lock.mutex.word.load() & system_futexWaitersBit != 0 })
        task.cancel()
        await expectCode(.cancelled) { try await task.value }
        done.set()
        try await holder.join()
        try await lock.withLock(timeout: .seconds(5)) {}
        #expect(!lock.isLocked)
    }
}

/// A robust glibc mutex in private memory, to share the thread's robust list with our locks.
final class GlibcRobustMutex: @unchecked Sendable {
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() {
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_setrobust(&attr, Int32(PTHREAD_MUTEX_ROBUST))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
    }
    deinit { mutex.deallocate() }
}

@Suite("SyncLockRobustList")
struct SyncLockRobustListTests {
    @Test("our locks and glibc's robust mutexes share a thread's robust list: both are reported when it dies")
    func interleavedWithGlibc() throws {
        let a = GlibcRobustMutex(), b = try Lock(), c = try Lock(), d = try RLock()
        let owner = OSThread { () throws -> [Int32] in
            var results: [Int32] = []
            results.append(pthread_mutex_lock(a.mutex))   // glibc's node first
            try b.acquire()                                  // ours in front of it
            results.append(pthread_mutex_unlock(a.mutex)) // glibc unlinks beside our node
            results.append(pthread_mutex_lock(a.mutex))
            try b.release()                                  // we unlink beside glibc's node
            try b.acquire()
            try c.acquire()
            try d.acquire(); try d.acquire()
            try b.release()                                  // unlink from the middle
            return results                                   // exits holding a, c and d
        }
        try owner.start()
        try owner.join()
        #expect(try owner.result(as: [Int32].self) == [0, 0, 0])
        // The kernel walked the whole list: every lock the thread held is marked. (join returns
        // when the target has returned; the kernel walks the list a moment later, when the thread
        // exits, so wait for the mark with blocking calls.)
        #expect(pthread_mutex_lock(a.mutex) == EOWNERDEAD)
        pthread_mutex_consistent(a.mutex)
        pthread_mutex_unlock(a.mutex)
        expectCode(.ownerDied) { try c.acquire(timeout: .seconds(1)) }
        expectCode(.ownerDied) { try d.acquire(timeout: .seconds(1)) }
        #expect(d.recursionDepth == 1)
        #expect(try b.tryAcquire())
        try b.release(); try c.release(); try d.release()
        // And this thread's own list is intact after all of it.
        for _ in 0..<3 {
            #expect(pthread_mutex_lock(a.mutex) == 0)
            try b.acquire(); try c.acquire()
            #expect(pthread_mutex_unlock(a.mutex) == 0)
            try c.release(); try b.release()
        }
    }
}
