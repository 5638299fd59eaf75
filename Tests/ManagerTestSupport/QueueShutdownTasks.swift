// The child half of the managed queue's shutdown tests (Tests/ManagerTests/ManagedQueueShutdownTests.swift).
public import Multiprocessing
public import MultiprocessingManager

/// Blocks in a `get` (an empty queue) or a `put` (a full one) until another process shuts the
/// queue down, and says how the call ended.
public struct QueueShutdownWaiter: ProcessTask {
    public var queue: ManagedQueue<Int>
    public var put: Bool
    /// Set just before the call that waits.
    public var calling: ManagedEvent
    public init(queue: ManagedQueue<Int>, put: Bool, calling: ManagedEvent) {
        self.queue = queue
        self.put = put
        self.calling = calling
    }
    public func run() throws -> String {
        try calling.set()
        return shapeOutcome {
            if put { try queue.put(7) } else { _ = try queue.get() }
        }
    }
}
