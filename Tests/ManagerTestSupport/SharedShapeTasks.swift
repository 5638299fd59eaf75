// The child halves of the shared-shape tests (Tests/ManagerTests/SharedShapeTests.swift): each is
// generic over a protocol of the Multiprocessing module, and runs unchanged against a local
// primitive (shared memory between parent and child) and a manager's proxy (a real server).
// Each reports its steps on a queue, itself generic over QueueProtocol.
public import Multiprocessing

/// What a timed call threw: its code's name, or "returned" when it did not throw.
public func shapeOutcome(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "returned"
    } catch let error as MultiprocessingError {
        return error.code.description
    } catch {
        return "\(type(of: error))"
    }
}

/// While the parent holds `lock`: reports `tryAcquire()` and a short timed `acquire`, then waits
/// for the lock, takes it and releases it.
public struct LockingPeer<L: Locking & Codable, Q: QueueProtocol<String> & Codable>: ProcessTask {
    public var lock: L
    public var channel: Q
    public init(lock: L, channel: Q) {
        self.lock = lock
        self.channel = channel
    }
    public func run() throws {
        try channel.put("try \(try lock.tryAcquire())", timeout: nil)
        try channel.put("timed \(shapeOutcome { try lock.acquire(timeout: .milliseconds(20)) })", timeout: nil)
        try channel.put("locked \(try lock.isLocked)", timeout: nil)
        try lock.acquire(timeout: .seconds(60))
        try channel.put("acquired", timeout: nil)
        try lock.release()
        try lock.withLock(timeout: .seconds(60)) {}
        try channel.put("released", timeout: nil)
    }
}

/// Reports, then waits for `event` and reports what it saw.
public struct EventPeer<E: EventProtocol & Codable, Q: QueueProtocol<String> & Codable>: ProcessTask {
    public var event: E
    public var channel: Q
    public init(event: E, channel: Q) {
        self.event = event
        self.channel = channel
    }
    public func run() throws {
        try channel.put("ready", timeout: nil)
        try event.wait(timeout: .seconds(60))
        try channel.put("woken \(try event.isSet)", timeout: nil)
    }
}

/// Gives `units` units to a semaphore that the parent waits on.
public struct SemaphorePeer<S: SemaphoreProtocol & Codable>: ProcessTask {
    public var semaphore: S
    public var units: Int
    public init(semaphore: S, units: Int) {
        self.semaphore = semaphore
        self.units = units
    }
    public func run() throws {
        try semaphore.release(units)
    }
}

/// Takes one item from `requests` and puts it back on `replies`, changed.
public struct QueuePeer<Q: QueueProtocol<String> & Codable, R: QueueProtocol<String> & Codable>: ProcessTask {
    public var requests: Q
    public var replies: R
    public init(requests: Q, replies: R) {
        self.requests = requests
        self.replies = replies
    }
    public func run() throws {
        let item = try requests.get(timeout: .seconds(60))
        try replies.put("echo \(item)", timeout: .seconds(60))
    }
}

/// Waits at `barrier` and returns its arrival index.
public struct BarrierPeer<B: BarrierProtocol & Codable>: ProcessTask {
    public var barrier: B
    public init(barrier: B) { self.barrier = barrier }
    public func run() throws -> Int {
        try barrier.wait(timeout: .seconds(60))
    }
}

/// Holds `condition`'s lock, reports, and waits (releasing the lock) until `go` is set; the
/// parent can only take the lock to notify once this wait has let it go.
public struct ConditionPeer<C: ConditionProtocol & Codable, E: EventProtocol & Codable,
                            Q: QueueProtocol<String> & Codable>: ProcessTask {
    public var condition: C
    public var go: E
    public var channel: Q
    public init(condition: C, go: E, channel: Q) {
        self.condition = condition
        self.go = go
        self.channel = channel
    }
    public func run() throws {
        try condition.acquire(timeout: .seconds(60))
        try channel.put("waiting", timeout: nil)
        try condition.wait(for: { try go.isSet }, timeout: .seconds(60))
        try channel.put("done \(try condition.isLocked)", timeout: nil)
        try condition.release()
    }
}
