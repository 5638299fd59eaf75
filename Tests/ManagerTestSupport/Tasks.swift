// Task types for the manager tests, known to both the test runner and mp-manager-helper.
#if canImport(Glibc)
import Glibc
#endif
public import Distributed
public import Multiprocessing
public import MultiprocessingManager

/// Increments `counters[key]` `times` times.
public struct IncrementTask: ProcessTask {
    public var counters: ManagedDictionary<String, Int>
    public var key: String
    public var times: Int
    public init(counters: ManagedDictionary<String, Int>, key: String, times: Int) {
        self.counters = counters
        self.key = key
        self.times = times
    }
    public func run() throws -> Int {
        var last = 0
        for _ in 0..<times { last = try counters.increment(key) }
        return last
    }
}

/// A state struct for the namespace test.
public struct Settings: Codable, Sendable, Equatable {
    public var name: String
    public var count: Int
    public var tags: [String]
    public init(name: String, count: Int, tags: [String]) {
        self.name = name
        self.count = count
        self.tags = tags
    }
}

/// Every built-in type, used from a child.
public struct Proxies: Codable, Sendable {
    public var dictionary: ManagedDictionary<String, [Int]>
    public var list: ManagedList<String>
    public var value: ManagedValue<Double>
    public var namespace: ManagedNamespace<Settings>
    public var queue: ManagedQueue<String>
    public var replies: ManagedQueue<String>
    public var lock: ManagedLock
    public var rLock: ManagedLock
    public var semaphore: ManagedSemaphore
    public var event: ManagedEvent
    public var condition: ManagedCondition
    public var barrier: ManagedBarrier
    public init(dictionary: ManagedDictionary<String, [Int]>, list: ManagedList<String>, value: ManagedValue<Double>,
                namespace: ManagedNamespace<Settings>, queue: ManagedQueue<String>, replies: ManagedQueue<String>,
                lock: ManagedLock, rLock: ManagedLock, semaphore: ManagedSemaphore, event: ManagedEvent,
                condition: ManagedCondition, barrier: ManagedBarrier) {
        self.dictionary = dictionary
        self.list = list
        self.value = value
        self.namespace = namespace
        self.queue = queue
        self.replies = replies
        self.lock = lock
        self.rLock = rLock
        self.semaphore = semaphore
        self.event = event
        self.condition = condition
        self.barrier = barrier
    }
}

/// Uses every proxy from a child process and reports what it saw.
public struct UseEveryType: ProcessTask {
    public var proxies: Proxies
    public var index: Int
    public init(proxies: Proxies, index: Int) {
        self.proxies = proxies
        self.index = index
    }
    public func run() throws -> String {
        let p = proxies
        try p.dictionary.append(index, to: "seen")
        try p.list.append("child \(index)")
        try p.value.increment(by: 0.5)
        try p.namespace.update { $0.count += 1; $0.tags.append("c\(index)") }
        // A queue: read the parent's message, answer on the other queue.
        let message = try p.queue.get(timeout: .seconds(10))
        try p.replies.put("\(message) -> \(index)")
        // Locks: hold each briefly; the RLock twice.
        try p.lock.withLock { }
        try p.rLock.acquire()
        try p.rLock.acquire()
        try p.rLock.release()
        try p.rLock.release()
        // Semaphore: take a permit and give it back.
        try p.semaphore.acquire(timeout: .seconds(10))
        try p.semaphore.release()
        // Event: wait for the parent's go.
        try p.event.wait(timeout: .seconds(10))
        // Condition: wait until the parent's namespace says "go", then confirm.
        try p.condition.acquire()
        try p.condition.wait(for: { try p.namespace.get().name == "go" }, timeout: .seconds(10))
        try p.condition.notifyAll()
        try p.condition.release()
        // Barrier: all children and the parent meet.
        let arrival = try p.barrier.wait(timeout: .seconds(10))
        return "ok \(index) \(arrival >= 0)"
    }
}

/// Takes a lock, reports it on a queue, and waits to be killed.
public struct HoldLockTask: ProcessTask {
    public var lock: ManagedLock
    public var ready: ManagedQueue<Int32>
    public init(lock: ManagedLock, ready: ManagedQueue<Int32>) {
        self.lock = lock
        self.ready = ready
    }
    public func run() throws {
        try lock.acquire()
        try ready.put(CurrentProcess.pid)
        while true { pause() }
    }
}

/// Blocks in a queue get that never completes (the server is killed under it).
public struct BlockedGetTask: ProcessTask {
    public var queue: ManagedQueue<Int>
    public init(queue: ManagedQueue<Int>) { self.queue = queue }
    public func run() throws -> String {
        do {
            _ = try queue.get()
            return "got"
        } catch let error as MultiprocessingError {
            return "\(error.code)"
        }
    }
}

/// A distributed actor served by the manager.
public distributed actor Counter: ManagedActor {
    public typealias ActorSystem = ManagerActorSystem
    var total = 0
    var log: [String] = []
    public init(actorSystem: ManagerActorSystem) { self.actorSystem = actorSystem }
    public distributed func add(_ n: Int, note: String) -> Int {
        total += n
        log.append(note)
        return total
    }
    public distributed func notes() -> [String] { log }
    public distributed func fail(_ reason: String) throws -> Int {
        throw CounterError(reason: reason)
    }
}

public struct CounterError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { "CounterError: \(reason)" }
}

/// Calls a Counter actor from a child.
public struct CallCounter: ProcessTask {
    public var id: ManagedActorID
    public var times: Int
    public init(id: ManagedActorID, times: Int) {
        self.id = id
        self.times = times
    }
    public func run() async throws -> Int {
        guard let address = id.address else { return -1 }
        let counter = try Counter.resolve(id: id, using: ManagerActorSystem(address: address))
        var last = 0
        for i in 0..<times { last = try await counter.add(1, note: "child \(i)") }
        return last
    }
}
