public import Multiprocessing

/// A FIFO queue held by a manager's server that counts unfinished tasks: Python's
/// `manager.JoinableQueue(maxsize)`, typed.
///
/// Every `put` adds a task; a consumer calls ``taskDone()`` once per item it has finished with;
/// `join(timeout:)` waits until every task put so far is done, as the module's own
/// `JoinableQueue`. Everything else is the ``ManagedQueue`` it wraps (``queue``), so it goes
/// wherever a `QueueProtocol` is taken. The server counts tasks for every queue, so a joinable
/// proxy may also be made for a queue created by `Manager.queue(_:maximumSize:name:)` of the
/// same name.
public struct ManagedJoinableQueue<Element: Codable & Sendable>: QueueProtocol, Codable, Hashable {
    /// The queue, as a plain ``ManagedQueue``.
    public let queue: ManagedQueue<Element>

    internal init(reference: ObjectReference) { queue = ManagedQueue(reference: reference) }

    /// The server object behind this proxy.
    public var reference: ObjectReference { queue.reference }

    /// Adds an item (and a task), waiting for room; see `ManagedQueue.put(_:timeout:)`.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever.
    /// - Throws: as `ManagedQueue.put(_:timeout:)`.
    public func put(_ item: Element, timeout: Duration? = nil) throws { try queue.put(item, timeout: timeout) }

    /// Adds an item without blocking the cooperative pool; see `put(_:timeout:)`.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever.
    /// - Throws: as `put(_:timeout:)`, and `MultiprocessingError/Code/cancelled`.
    public func put(_ item: Element, timeout: Duration? = nil) async throws { try await queue.put(item, timeout: timeout) }

    /// Adds an item without waiting.
    ///
    /// - Parameter item: the item.
    /// - Throws: `MultiprocessingError/Code/full` when there is no room.
    public func putNowait(_ item: Element) throws { try queue.putNowait(item) }

    /// Removes and returns the oldest item, waiting for one; see `ManagedQueue.get(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the item.
    /// - Throws: as `ManagedQueue.get(timeout:)`.
    public func get(timeout: Duration? = nil) throws -> Element { try queue.get(timeout: timeout) }

    /// Removes the oldest item without blocking the cooperative pool; see `get(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the item.
    /// - Throws: as `get(timeout:)`, and `MultiprocessingError/Code/cancelled`.
    public func get(timeout: Duration? = nil) async throws -> Element { try await queue.get(timeout: timeout) }

    /// Removes and returns the oldest item without waiting.
    ///
    /// - Returns: the item.
    /// - Throws: `MultiprocessingError/Code/empty` when there is none.
    public func getNowait() throws -> Element { try queue.getNowait() }

    /// The number of items waiting (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var qsize: Int { get throws { try queue.qsize } }

    /// Whether the queue holds no items (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var empty: Bool { get throws { try queue.empty } }

    /// The number of items waiting (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var count: Int { get throws { try queue.count } }

    /// Whether the queue holds no items (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isEmpty: Bool { get throws { try queue.isEmpty } }

    /// Whether a bounded queue is full (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isFull: Bool { get throws { try queue.isFull } }

    /// Marks one task done: call it once for every item taken, when the work on it is finished.
    ///
    /// - Throws: `MultiprocessingError/Code/misuse` when called more times than items were put;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func taskDone() throws {
        guard case .taskDone = try reference.call(QueueRequest.taskDone) else { throw unexpectedReply(to: QueueRequest.taskDone) }
    }

    /// Waits until every item put so far has been marked done with ``taskDone()``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut` when tasks were still unfinished at the
    ///   timeout; `MultiprocessingError/Code/misuse` for a negative timeout;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func join(timeout: Duration? = nil) throws {
        try join(timeout: timeout, interrupt: nil)
    }

    /// Waits off the cooperative pool until every task is done; see `join(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as `join(timeout:)`, and `MultiprocessingError/Code/cancelled`.
    public func join(timeout: Duration? = nil) async throws {
        try await managerRunBlocking { interrupt in try self.join(timeout: timeout, interrupt: interrupt) }
    }

    private func join(timeout: Duration?, interrupt: CallInterrupt?) throws {
        let request = QueueRequest.join(timeout: try wireTimeout(timeout))
        guard case .join(let done) = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        guard done else {
            throw MultiprocessingError(.timedOut, "ManagedJoinableQueue.join timed out\(timeout.map { " after \($0)" } ?? "") with tasks still unfinished.")
        }
    }

    /// The number of items put and not yet marked done (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var unfinishedTasks: Int { get throws { try queue.info().unfinishedTasks } }
}
