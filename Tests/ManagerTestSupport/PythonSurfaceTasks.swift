// The child halves of the manager tests of issue 18 (the rest of Python's manager surface):
// Tests/ManagerTests/ManagerPythonSurfaceTests.swift.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing
public import MultiprocessingManager

/// What a call threw: its code's name, or "returned".
public func surfaceOutcome(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "returned"
    } catch let error as MultiprocessingError {
        return error.code.description
    } catch {
        return "\(type(of: error))"
    }
}

/// Takes `count` items from a joinable queue, records each in `seen` and marks it done; then
/// calls `taskDone()` once too often and returns what that threw.
public struct JoinableConsumer: ProcessTask {
    public var queue: ManagedJoinableQueue<String>
    public var seen: ManagedList<String>
    public var count: Int
    public init(queue: ManagedJoinableQueue<String>, seen: ManagedList<String>, count: Int) {
        self.queue = queue
        self.seen = seen
        self.count = count
    }
    public func run() throws -> String {
        for _ in 0..<count {
            let item = try queue.get(timeout: .seconds(60))
            try seen.append(item)
            try queue.taskDone()
        }
        return surfaceOutcome { try queue.taskDone() }
    }
}

/// Reads a queue's state from another process: what `isEmpty`, `isFull`, `count` and the
/// non-blocking forms say there.
public struct QueueStateReader: ProcessTask {
    public var queue: ManagedQueue<Int>
    public init(queue: ManagedQueue<Int>) { self.queue = queue }
    public func run() throws -> String {
        let state = "empty \(try queue.isEmpty) full \(try queue.isFull) count \(try queue.count)"
        let put = surfaceOutcome { try queue.putNowait(99) }
        let timedPut = surfaceOutcome { try queue.put(98, timeout: .milliseconds(20)) }
        var got: [Int] = []
        while let item = try? queue.getNowait() { got.append(item) }
        let get = surfaceOutcome { _ = try queue.getNowait() }
        let timedGet = surfaceOutcome { _ = try queue.get(timeout: .milliseconds(20)) }
        return "\(state); putNowait \(put), put \(timedPut); got \(got); getNowait \(get), get \(timedGet); empty \(try queue.isEmpty)"
    }
}

/// Uses a bounded semaphore from another process: takes its permits, tries once more, gives them
/// back, and releases once too often.
public struct BoundedSemaphoreUser: ProcessTask {
    public var semaphore: ManagedBoundedSemaphore
    public init(semaphore: ManagedBoundedSemaphore) { self.semaphore = semaphore }
    public func run() throws -> String {
        try semaphore.acquire(timeout: .seconds(60))
        let second = try semaphore.tryAcquire()
        let third = try semaphore.tryAcquire()
        let emptyValue = try semaphore.value
        try semaphore.release(2)
        let over = surfaceOutcome { try semaphore.release() }
        return "bound \(try semaphore.bound) try \(second) \(third) value \(emptyValue) -> \(try semaphore.value) over \(over)"
    }
}

/// Reports whether `tryAcquire()` got a permit of a semaphore in this process, without waiting.
public struct TryAcquirer<S: SemaphoreProtocol & Codable>: ProcessTask {
    public var semaphore: S
    public init(semaphore: S) { self.semaphore = semaphore }
    public func run() throws -> Bool { try semaphore.tryAcquire() }
}

/// A manager initializer that appends its process id to the file at `path`, one line per run.
public struct RecordingInitializer: ProcessTask {
    public var path: String
    public init(path: String) { self.path = path }
    public func run() throws {
        guard let file = fopen(path, "a") else { throw InitializerRefusal(reason: "cannot open \(path)") }
        fputs("\(getpid())\n", file)
        fclose(file)
    }
}

/// What ``FailingInitializer`` throws.
public struct InitializerRefusal: Error, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "the initializer refused: \(reason)" }
}

/// A manager initializer that throws.
public struct FailingInitializer: ProcessTask {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public func run() throws { throw InitializerRefusal(reason: reason) }
}

/// Changes a namespace in another process and returns its text as that process prints it.
public struct NamespacePrinter: ProcessTask {
    public var namespace: ManagedNamespace<Settings>
    public init(namespace: ManagedNamespace<Settings>) { self.namespace = namespace }
    public func run() throws -> String {
        try namespace.update {
            $0.count += 1
            $0.tags.append("child")
        }
        return "\(namespace)"
    }
}
