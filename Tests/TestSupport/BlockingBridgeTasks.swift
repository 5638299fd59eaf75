// Task types for the blocking bridge's tests (issue 14, item 2). Each scenario runs in a child
// process of its own, so that the threads it counts (/proc/self/task) and the bridge it configures
// are nobody else's: the test runner runs other suites' threads and waits beside it.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
public import Multiprocessing

/// A value several tasks of a scenario update.
private final class Guarded<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func load() -> Value { mutex.withLock { $0 } }
    func update<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// The number of threads of this process: the entries of /proc/self/task.
public func threadsOfThisProcess() -> Int {
    guard let directory = opendir("/proc/self/task") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
    }
    return count
}

/// Polls `condition` every millisecond until it holds or `limit` passes; returns whether it held.
/// (A condition to wait for, not a sleep that hopes: the scenario goes on only once it holds.)
public func bridgeEventually(within limit: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + limit
    while clock.now < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}

/// Warms the child's executors up (the first `Task.sleep` starts Dispatch's timer and a worker
/// thread), so that the threads counted before the scenario are the ones it starts with.
private func warmUp() async {
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<4 { group.addTask { try? await Task.sleep(for: .milliseconds(2)) } }
    }
    try? await Task.sleep(for: .milliseconds(20))
}

public struct BridgeThreadCounts: Codable, Sendable {
    public var before = 0
    public var duringMax = 0
    public var afterWork = 0
    public var afterIdle = 0
    public var completed = 0
    public var failures: [String] = []
    public var helpersStarted = 0
    public var limit = 0
    public var slices = 0
    public var threadsAfterIdle = -1
    public init() {}
}

/// `waiters` tasks await, at once, a lock, an event and a queue that the parent holds, keeps
/// lowered and leaves empty until `phase` is 1; the child sets `phase` to 1 once every waiter
/// waits (all helpers busy; with more waiters than helpers, the rest waiting in slices).
public struct ManyContendedAsyncWaits: ProcessTask {
    public var lock: Lock
    public var event: Event
    public var queue: Queue<Int>
    public var phase: SharedValue<Int>
    public var waiters: Int
    public var idleTimeoutMilliseconds: Int
    public init(lock: Lock, event: Event, queue: Queue<Int>, phase: SharedValue<Int>, waiters: Int, idleTimeoutMilliseconds: Int) {
        self.lock = lock
        self.event = event
        self.queue = queue
        self.phase = phase
        self.waiters = waiters
        self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
    }

    public func run() async throws -> BridgeThreadCounts {
        let bridge = BlockingBridge.shared
        bridge.configure(idleTimeout: .milliseconds(idleTimeoutMilliseconds))
        await warmUp()
        var counts = BridgeThreadCounts()
        counts.before = threadsOfThisProcess()
        counts.limit = bridge.statistics.limit
        let started = Guarded(0)
        let completed = Guarded(0)
        let failures = Guarded<[String]>([])
        let (lock, event, queue, waiters) = (self.lock, self.event, self.queue, self.waiters)
        let duringMax = Guarded(0)
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<waiters {
                group.addTask {
                    started.update { $0 += 1 }
                    do {
                        switch index % 3 {
                        case 0: try await lock.withLock(timeout: .seconds(60)) {}
                        case 1: try await event.wait(timeout: .seconds(60))
                        default: _ = try await queue.get(timeout: .seconds(60))
                        }
                        completed.update { $0 += 1 }
                    } catch {
                        failures.update { $0.append("\(index): \(error)") }
                        completed.update { $0 += 1 }
                    }
                }
            }
            group.addTask { [phase] in
                // Every waiter has begun, every helper is busy, and (with more waiters than
                // helpers) the others wait in slices: the peak. Then the parent lets them go.
                let helpers = min(waiters, bridge.statistics.limit)
                _ = await bridgeEventually {
                    let statistics = bridge.statistics
                    return started.load() == waiters && statistics.busy >= helpers
                        && (waiters <= helpers || statistics.slices > 0)
                }
                duringMax.update { $0 = max($0, threadsOfThisProcess()) }
                phase.atomicStore(1)
                while completed.load() < waiters {
                    duringMax.update { $0 = max($0, threadsOfThisProcess()) }
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }
        }
        counts.duringMax = duringMax.load()
        counts.afterWork = threadsOfThisProcess()
        counts.completed = completed.load()
        counts.failures = failures.load()
        counts.helpersStarted = bridge.statistics.started
        counts.slices = bridge.statistics.slices
        _ = await bridgeEventually { bridge.statistics.threads == 0 }
        counts.threadsAfterIdle = bridge.statistics.threads
        counts.afterIdle = threadsOfThisProcess()
        return counts
    }
}

public struct BridgeBoundOutcome: Codable, Sendable {
    public var results: [String] = []
    public var threadsMax = 0
    public var extraSeen = 0
    public var slicesSeen = 0
    public init() {}
}

/// With a bound of two helpers, two barrier waits hold both and a third party must first get a
/// lock (held by the parent until `phase` is 1) before it reaches the barrier: a queue of waits
/// would deadlock, since the two can only end after the third, which would wait for their
/// helpers. The lock wait waits in slices on its task; the third barrier wait (which cannot wait
/// in slices) gets an extra thread.
public struct BridgeBoundNeverDeadlocks: ProcessTask {
    public var lock: Lock
    public var phase: SharedValue<Int>
    public init(lock: Lock, phase: SharedValue<Int>) {
        self.lock = lock
        self.phase = phase
    }

    public func run() async throws -> BridgeBoundOutcome {
        let bridge = BlockingBridge.shared
        bridge.configure(limit: 2, idleTimeout: .seconds(30))
        let barrier = try Barrier(parties: 3, timeout: .seconds(60))
        let event = try Event()
        let results = Guarded<[String]>([])
        let peaks = Guarded<[Int]>([0, 0])
        let lock = self.lock
        await withTaskGroup(of: Void.self) { group in
            for name in ["first", "second"] {
                group.addTask {
                    do {
                        _ = try await barrier.wait()
                        results.update { $0.append("\(name) passed the barrier") }
                    } catch { results.update { $0.append("\(name): \(error)") } }
                }
            }
            group.addTask { [phase] in
                _ = await bridgeEventually { bridge.statistics.busy == 2 }
                // Both helpers hold barrier waits: this one waits in slices.
                async let third: Void = {
                    do {
                        try await lock.withLock(timeout: .seconds(60)) {}
                        _ = try await barrier.wait()
                        event.set()
                        results.update { $0.append("third passed the barrier") }
                    } catch { results.update { $0.append("third: \(error)") } }
                }()
                _ = await bridgeEventually { bridge.statistics.slices > 0 }
                phase.atomicStore(1)
                while !event.isSet {
                    let statistics = bridge.statistics
                    peaks.update {
                        $0[0] = max($0[0], statistics.threads)
                        $0[1] = max($0[1], statistics.extra)
                    }
                    try? await Task.sleep(for: .milliseconds(1))
                }
                await third
            }
        }
        var outcome = BridgeBoundOutcome()
        outcome.results = results.update { $0 }.sorted()
        outcome.threadsMax = peaks.load()[0]
        outcome.extraSeen = bridge.statistics.extraStarted
        outcome.slicesSeen = bridge.statistics.slices
        return outcome
    }
}

public struct BridgeCancellation: Codable, Sendable {
    /// Per wait kind: the error code the cancelled wait threw, and how long it took to end.
    public var kinds: [String] = []
    public var codes: [String] = []
    public var milliseconds: [Int] = []
    public var busyAfter = -1
    public var helpersStarted = -1
    public var threadsAfter = -1
    public init() {}
}

/// Cancels a task in each kind of wait: a futex wait (a lock the parent holds), an eventfd wait
/// (a connection nobody writes to), a connection's turn (a futex attached to the interrupt), and a
/// futex wait in slices (bound zero). Each must end with `.cancelled` at once and leave no helper
/// busy; the helpers are reused (one started, for four waits).
public struct CancelEachBridgeWait: ProcessTask {
    public var lock: Lock
    public init(lock: Lock) { self.lock = lock }

    private func cancelled(_ bridge: BlockingBridge, once ready: @escaping () -> Bool,
                           _ body: @escaping @Sendable () async throws -> Void) async -> (String, Int) {
        let task = Task { try await body() }
        _ = await bridgeEventually(ready)
        let clock = ContinuousClock()
        let start = clock.now
        task.cancel()
        let code: String
        do {
            try await task.value
            code = "returned"
        } catch let error as MultiprocessingError {
            code = error.code.description
        } catch {
            code = "\(error)"
        }
        let elapsed = clock.now - start
        return (code, Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000))
    }

    public func run() async throws -> BridgeCancellation {
        let bridge = BlockingBridge.shared
        var outcome = BridgeCancellation()
        let lock = self.lock
        func record(_ kind: String, _ result: (String, Int)) {
            outcome.kinds.append(kind)
            outcome.codes.append(result.0)
            outcome.milliseconds.append(result.1)
        }
        record("futex", await cancelled(bridge, once: { bridge.statistics.busy == 1 }) { try await lock.withLock(timeout: .seconds(60)) {} })
        _ = await bridgeEventually { bridge.statistics.busy == 0 }
        let (mine, theirs) = try Connection.pipe()
        record("eventfd", await cancelled(bridge, once: { bridge.statistics.busy == 1 }) { _ = try await mine.receiveBytes(timeout: .seconds(60)) })
        _ = await bridgeEventually { bridge.statistics.busy == 0 }
        // A receive holds the connection's receiving turn; a second one waits for the turn.
        let holder = Task { try await mine.receiveBytes(timeout: .seconds(60)) }
        _ = await bridgeEventually { bridge.statistics.busy == 1 }
        record("turn", await cancelled(bridge, once: { bridge.statistics.busy == 2 }) {
            _ = try await mine.receiveBytes(timeout: .seconds(60))
        })
        // The blocking send (from a sync function: in async code the async twin is chosen), so
        // that no third helper is needed while the cancelled wait's helper goes idle.
        try sendBlocking(theirs, [1])
        _ = try await holder.value
        _ = await bridgeEventually { bridge.statistics.busy == 0 }
        bridge.configure(limit: 0)
        let slicesBefore = bridge.statistics.slices
        record("futex in slices", await cancelled(bridge, once: { bridge.statistics.slices > slicesBefore }) { try await lock.withLock(timeout: .seconds(60)) {} })
        bridge.configure(limit: 64)
        outcome.busyAfter = bridge.statistics.busy
        outcome.helpersStarted = bridge.statistics.started
        outcome.threadsAfter = bridge.statistics.threads
        _ = theirs
        return outcome
    }
}

private func sendBlocking(_ connection: Connection, _ bytes: [UInt8]) throws {
    try connection.sendBytes(bytes)
}

public struct BridgeWithoutThreads: Codable, Sendable {
    public var threadStart = ""
    public var lockWait = ""
    public var barrierWait = ""
    public var barrierMessage = ""
    public var slices = 0
    public init() {}
}

/// Waits where no thread can be created at all: the child drops to uid `nobody` and sets
/// RLIMIT_NPROC to 1 (root ignores the limit; `nobody` has no other process here), so every
/// pthread_create fails with EAGAIN. A lock wait (restartable) must still complete, in slices,
/// once the parent releases the lock (at `phase` 1); a barrier wait (which cannot wait in slices)
/// must fail with a clear `.systemCall` error, not crash or hang.
public struct WaitsWithoutThreads: ProcessTask {
    public var lock: Lock
    public var phase: SharedValue<Int>
    public init(lock: Lock, phase: SharedValue<Int>) {
        self.lock = lock
        self.phase = phase
    }

    public func run() async throws -> BridgeWithoutThreads {
        await warmUp()
        var outcome = BridgeWithoutThreads()
        guard setgid(65534) == 0, setuid(65534) == 0 else {
            outcome.threadStart = "setuid failed: errno \(errno)"
            return outcome
        }
        var limit = rlimit(rlim_cur: 1, rlim_max: 1)
        guard setrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &limit) == 0 else {
            outcome.threadStart = "setrlimit failed: errno \(errno)"
            return outcome
        }
        do {
            let thread = OSThread(name: "cannot-start") {}
            try thread.start()
            outcome.threadStart = "started"
        } catch let error as MultiprocessingError {
            outcome.threadStart = "\(error.code) \(error.underlyingErrno.map { "\($0.rawValue)" } ?? "-")"
        }
        let barrier = try Barrier(parties: 2, timeout: .seconds(30))
        do {
            _ = try await barrier.wait()
            outcome.barrierWait = "returned"
        } catch let error as MultiprocessingError {
            outcome.barrierWait = error.code.description
            outcome.barrierMessage = error.message
        }
        let lock = self.lock
        let phase = self.phase
        async let released: Void = {
            _ = await bridgeEventually { BlockingBridge.shared.statistics.slices > 0 }
            phase.atomicStore(1)
        }()
        do {
            try await lock.withLock(timeout: .seconds(60)) {}
            outcome.lockWait = "acquired"
        } catch let error as MultiprocessingError {
            outcome.lockWait = "\(error.code): \(error.message)"
        }
        await released
        outcome.slices = BlockingBridge.shared.statistics.slices
        return outcome
    }
}
