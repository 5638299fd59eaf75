// Task types for SyncCorrectnessTests: the documented read-modify-write idiom under the built-in
// lock of SharedValue and SharedArray, and barrier parties that a test stops with SIGSTOP.
public import Multiprocessing

/// Adds 1 to `counter`, and to `array[1]`, `iterations` times with Python's idiom
/// `with v.get_lock(): v.value += 1`: a read and then a write through the accessors, inside the
/// built-in lock. `array[0]` is set to a `toArray()` copy of `array[1]` under the lock as well.
public struct LockedIdiomIncrement: ProcessTask {
    public var counter: SharedValue<Int>
    public var array: SharedArray<Int>
    public var iterations: Int
    public var ready: Barrier
    public init(counter: SharedValue<Int>, array: SharedArray<Int>, iterations: Int, ready: Barrier) {
        self.counter = counter
        self.array = array
        self.iterations = iterations
        self.ready = ready
    }
    public func run() throws {
        try ready.wait(timeout: .seconds(60))
        for _ in 0..<iterations {
            try counter.lock.withLock { counter.value += 1 }
            try array.lock.withLock {
                array[1] += 1
                array[0] = array.toArray()[1]
            }
        }
    }
}

/// Waits at `barrier` and returns its arrival index.
public struct WaitAtBarrier: ProcessTask {
    public var barrier: Barrier
    public init(barrier: Barrier) { self.barrier = barrier }
    public func run() throws -> Int {
        try barrier.wait(timeout: .seconds(120))
    }
}

/// Builds one primitive from a bad argument, in a child process: a trap there ends the child
/// (seen by the parent as `.childDied`), not the test runner.
public struct MakeBadPrimitive: ProcessTask {
    public var kind: String
    public init(kind: String) { self.kind = kind }
    public func run() throws -> String {
        switch kind {
        case "Semaphore(-1)": _ = try Semaphore(-1)
        case "BoundedSemaphore(-1)": _ = try BoundedSemaphore(-1)
        case "Barrier(parties: 0)": _ = try Barrier(parties: 0)
        case "Barrier(parties: -1)": _ = try Barrier(parties: -1)
        default: return "unknown kind \(kind)"
        }
        return "constructed"
    }
}
