import Testing
import Synchronization
import Foundation
@testable import Multiprocessing

@Suite("Threads")
struct ThreadsTests {
    @Test("a thread's result, or its thrown error, is available after join")
    func resultAndError() throws {
        let square = OSThread(name: "square") { 12 * 12 }
        #expect(!square.isAlive)
        #expect(square.ident == 0 && square.nativeID == 0)
        try square.start()
        #expect(square.ident != 0)
        #expect(square.nativeID > 0 && square.nativeID != getpid())
        try square.join()
        #expect(!square.isAlive)
        #expect(try square.result(as: Int.self) == 144)
        #expect(square.error == nil)

        struct Oops: Error, Equatable { var code: Int }
        let failing = OSThread { () throws -> Int in throw Oops(code: 7) }
        try failing.start()
        try failing.join()
        #expect(failing.error as? Oops == Oops(code: 7))
        #expect(throws: Oops(code: 7)) { try failing.result(as: Int.self) }
    }

    @Test("start twice, join before start, join self, and result before the end are misuse")
    func misuse() throws {
        // The thread waits with no timeout, however long a loaded machine keeps the test from
        // running: a bounded wait could end first and make "result before the end" pass by luck.
        let gate = try Event()
        defer { gate.set() }
        let thread = OSThread { try gate.wait() }
        expectCode(.misuse) { try thread.join() }
        try thread.start()
        expectCode(.misuse) { try thread.start() }
        expectCode(.misuse) { _ = try thread.result(as: Void.self) }
        gate.set()
        try thread.join()
        let selfJoin = OSThread { try OSThread.current.join() }
        try selfJoin.start(); try selfJoin.join()
        #expect((selfJoin.error as? MultiprocessingError)?.code == .misuse)
    }

    @Test("join times out while the thread runs, then succeeds; the async twin works too")
    func joinTimeout() async throws {
        // No timeout on the thread's side: on a loaded machine the test can be held off the CPU
        // for longer than any bound, and the thread must still be running when it is checked.
        let gate = try Event()
        defer { gate.set() }
        let thread = OSThread { try gate.wait() }
        try thread.start()
        expectCode(.timedOut) { try thread.join(timeout: .milliseconds(30)) }
        await expectCode(.timedOut) { try await thread.join(timeout: .milliseconds(30)) }
        #expect(thread.isAlive)
        gate.set()
        try await thread.join()
        #expect(!thread.isAlive)
    }

    @Test("name, daemon, current, main, enumerate and activeCount")
    func identity() throws {
        let gate = try Event()
        defer { gate.set() }
        let seen = Mutex<(String, Bool, Int32)>(("", false, 0))
        let thread = OSThread(name: "painter", daemon: true) {
            let me = OSThread.current
            seen.withLock { $0 = (me.name, me.daemon, me.nativeID) }
            try gate.wait()
        }
        try thread.start()
        #expect(OSThread.enumerate().contains { $0 === thread })
        #expect(OSThread.enumerate().contains { $0 === OSThread.main })
        #expect(OSThread.activeCount >= 2)
        // The kernel knows the name too (PR_SET_NAME).
        let comm = try String(contentsOfFile: "/proc/self/task/\(thread.nativeID)/comm", encoding: .utf8)
        #expect(comm.trimmingCharacters(in: .whitespacesAndNewlines) == "painter")
        gate.set()
        try thread.join()
        #expect(seen.withLock { $0.0 } == "painter")
        #expect(seen.withLock { $0.1 } == true)
        #expect(seen.withLock { $0.2 } == thread.nativeID)
        #expect(!OSThread.enumerate().contains { $0 === thread })
        #expect(OSThread.main.name == "MainThread")
        #expect(OSThread.main.nativeID == getpid())
        #expect(!OSThread.main.daemon)
        #expect(OSThread(target: {}).name.hasPrefix("Thread-"))
    }

    @Test("cooperative cancellation: isCancelled and checkCancellation in the thread")
    func cancellation() throws {
        let started = try Event()
        let loops = Atomic<Int>(0)
        let worker = OSThread {
            started.set()
            while true {
                try OSThread.checkCancellation()
                loops.wrappingAdd(1, ordering: .relaxed)
            }
        }
        try worker.start()
        try started.wait()
        #expect(!worker.isCancelled)
        worker.cancel()
        #expect(worker.isCancelled)
        try worker.join(timeout: .seconds(5))
        #expect((worker.error as? MultiprocessingError)?.code == .cancelled)
        #expect(!OSThread.current.isCancelled)
    }
}

@Suite("ThreadsTimerAndLocal")
struct ThreadsTimerAndLocalTests {
    @Test("OSTimer fires after its interval")
    func fires() throws {
        let fired = try Event()
        let start = ContinuousClock.now
        let timer = OSTimer(after: .milliseconds(50)) { fired.set() }
        try timer.start()
        try fired.wait(timeout: .seconds(5))
        #expect(ContinuousClock.now - start >= .milliseconds(50))
        try timer.join()
        #expect(timer.didFire)
    }

    @Test("a cancelled OSTimer never runs its action, and ends at once")
    func cancel() throws {
        let fired = Atomic<Bool>(false)
        let timer = OSTimer(after: .seconds(30)) { fired.store(true, ordering: .relaxed) }
        try timer.start()
        timer.cancel()
        try timer.join(timeout: .seconds(5))
        #expect(!timer.didFire)
        let didRun = fired.load(ordering: .relaxed)
        #expect(!didRun)
        #expect(!timer.isAlive)
    }

    @Test("ThreadLocal: each thread has its own value, starting from the default")
    func threadLocal() throws {
        let local = try ThreadLocal(default: 0)
        local.value = 42
        let results = Mutex<[Int]>([])
        let threads = (1...4).map { n in
            OSThread {
                let initial = local.value
                for _ in 0..<n { local.value += 1 }
                results.withLock { $0.append(initial * 100 + local.value) }
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        #expect(results.withLock { $0.sorted() } == [1, 2, 3, 4])
        #expect(local.value == 42)
        local.withValue { $0 += 1 }
        #expect(local.value == 43)
    }

    @Test("ThreadLocal values are released when their thread exits")
    func release() throws {
        final class Tracked: Sendable {
            let gone: Event
            init(_ gone: Event) { self.gone = gone }
            deinit { gone.set() }
        }
        let gone = try Event()
        let local = try ThreadLocal<Tracked?>(default: nil)
        let thread = OSThread { local.value = Tracked(gone) }
        try thread.start()
        try thread.join()
        try gone.wait(timeout: .seconds(5))
    }
}
