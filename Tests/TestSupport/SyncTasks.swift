// Task types for the Sync and Threads tests: a child process uses a primitive it received in its
// arguments (the primitive's memfd travels beside the task's bytes).
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing

/// Adds 1 to `counter` `iterations` times, each a non-atomic read then write, under the shared `lock`.
public struct HammerCounter: ProcessTask {
    public var lock: Lock
    public var counter: SharedValue<Int>
    public var iterations: Int
    public var ready: Barrier
    public init(lock: Lock, counter: SharedValue<Int>, iterations: Int, ready: Barrier) {
        self.lock = lock
        self.counter = counter
        self.iterations = iterations
        self.ready = ready
    }
    public func run() throws {
        try ready.wait(timeout: .seconds(20))
        for _ in 0..<iterations {
            try lock.withLock {
                let seen = counter.atomicLoad()
                counter.atomicStore(seen + 1)
            }
        }
    }
}

/// Takes the lock and exits without releasing it: the process dies holding the lock.
public struct DieHoldingLock: ProcessTask {
    public var lock: Lock
    public var value: SharedValue<Int>
    public init(lock: Lock, value: SharedValue<Int>) {
        self.lock = lock
        self.value = value
    }
    public func run() throws {
        try lock.acquire()
        value.atomicStore(-1)   // a half-done update the next owner must repair
        _exit(0)
    }
}

/// Waits for `go`, bumps `count` under the condition's lock, notifies, and passes a semaphore.
public struct CrossProcessSignals: ProcessTask {
    public var go: Event
    public var condition: Condition
    public var count: SharedValue<Int>
    public var semaphore: CountingSemaphore
    public var barrier: Barrier
    public init(go: Event, condition: Condition, count: SharedValue<Int>, semaphore: CountingSemaphore, barrier: Barrier) {
        self.go = go
        self.condition = condition
        self.count = count
        self.semaphore = semaphore
        self.barrier = barrier
    }
    public func run() throws -> Int {
        try go.wait(timeout: .seconds(20))
        try condition.withLock {
            count.add(1)
            try condition.notifyAll()
        }
        try semaphore.acquire(timeout: .seconds(20))
        return try barrier.wait(timeout: .seconds(20))
    }
}

/// Returns from its task while a non-daemon thread still works and a daemon thread blocks forever:
/// the process must wait for the first and not for the second.
public struct ExitWaitsForThreads: ProcessTask {
    public var flag: SharedValue<Int>
    public var never: Event
    public init(flag: SharedValue<Int>, never: Event) {
        self.flag = flag
        self.never = never
    }
    public func run() throws {
        let worker = OSThread(name: "late-worker", daemon: false) {
            usleep(200_000)   // the work: it ends after run() has returned
            flag.atomicStore(1)
        }
        let daemon = OSThread(name: "forever", daemon: true) { try never.wait() }
        try worker.start()
        try daemon.start()
    }
}

/// Takes `lock`, says so through `value`, then blocks on `gate` until killed.
public struct HoldUntilGate: ProcessTask {
    public var lock: Lock
    public var gate: Lock
    public var value: SharedValue<Int>
    public init(lock: Lock, gate: Lock, value: SharedValue<Int>) {
        self.lock = lock
        self.gate = gate
        self.value = value
    }
    public func run() throws {
        try lock.acquire()
        value.atomicStore(1)
        try gate.acquire(timeout: .seconds(30))
    }
}
