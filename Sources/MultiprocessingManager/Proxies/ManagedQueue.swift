public import Multiprocessing

/// A FIFO queue held by a manager's server: Python's `manager.Queue(maxsize)`, typed.
///
/// It has the shape of the module's own `Queue` (`QueueProtocol`):
/// a timed `put` or `get` that runs out throws `MultiprocessingError/Code/timedOut`, and
/// ``putNowait(_:)`` and ``getNowait()`` throw `MultiprocessingError/Code/full` and
/// `MultiprocessingError/Code/empty`.
public struct ManagedQueue<Element: Codable & Sendable>: QueueProtocol, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Adds an item, waiting for room in a bounded queue.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut` when no room came in time (Python raises
    ///   `queue.Full`); `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        try put(item, timeout: timeout, nowait: false, interrupt: nil)
    }

    /// Adds an item without blocking the cooperative pool; see `put(_:timeout:)`.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever.
    /// - Throws: as `put(_:timeout:)`, and `MultiprocessingError/Code/cancelled`.
    public func put(_ item: Element, timeout: Duration? = nil) async throws {
        try await managerRunBlocking { interrupt in try self.put(item, timeout: timeout, nowait: false, interrupt: interrupt) }
    }

    /// Adds an item without waiting: Python's `put_nowait()`.
    ///
    /// - Parameter item: the item.
    /// - Throws: `MultiprocessingError/Code/full` when there is no room; as `put(_:timeout:)`.
    public func putNowait(_ item: Element) throws {
        try put(item, timeout: .zero, nowait: true, interrupt: nil)
    }

    private func put(_ item: Element, timeout: Duration?, nowait: Bool, interrupt: CallInterrupt?) throws {
        let request = QueueRequest.put(item: try ValueCoding.encode(item), timeout: try wireTimeout(timeout))
        do {
            guard case .put = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        } catch let error as MultiprocessingError where error.code == .full && !nowait {
            throw MultiprocessingError(.timedOut, "ManagedQueue.put timed out\(timeout.map { " after \($0)" } ?? "") with the queue still full.")
        }
    }

    /// Removes and returns the oldest item, waiting for one.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the item.
    /// - Throws: `MultiprocessingError/Code/timedOut` when none came in time (Python raises
    ///   `queue.Empty`); `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func get(timeout: Duration? = nil) throws -> Element {
        try get(timeout: timeout, nowait: false, interrupt: nil)
    }

    /// Removes the oldest item without blocking the cooperative pool; see `get(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the item.
    /// - Throws: as `get(timeout:)`, and `MultiprocessingError/Code/cancelled`.
    public func get(timeout: Duration? = nil) async throws -> Element {
        try await managerRunBlocking { interrupt in try self.get(timeout: timeout, nowait: false, interrupt: interrupt) }
    }

    /// Removes and returns the oldest item without waiting: Python's `get_nowait()`.
    ///
    /// - Returns: the item.
    /// - Throws: `MultiprocessingError/Code/empty` when there is none; as `get(timeout:)`.
    public func getNowait() throws -> Element {
        try get(timeout: .zero, nowait: true, interrupt: nil)
    }

    private func get(timeout: Duration?, nowait: Bool, interrupt: CallInterrupt?) throws -> Element {
        let request = QueueRequest.get(timeout: try wireTimeout(timeout))
        let item: [UInt8]
        do {
            guard case .get(let bytes) = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
            item = bytes
        } catch let error as MultiprocessingError where error.code == .empty && !nowait {
            throw MultiprocessingError(.timedOut, "ManagedQueue.get timed out\(timeout.map { " after \($0)" } ?? "") with the queue still empty.")
        }
        return try ValueCoding.decode(Element.self, item)
    }

    /// The number of items waiting (a snapshot): Python's `qsize()`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var qsize: Int {
        get throws {
            guard case .count(let n) = try reference.call(QueueRequest.count) else { throw unexpectedReply(to: QueueRequest.count) }
            return n
        }
    }

    /// Whether the queue holds no items (a snapshot): Python's `empty()`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var empty: Bool {
        get throws { try qsize == 0 }
    }

    /// The queue's count, bound and unfinished tasks, read in one call (a snapshot).
    ///
    /// - Returns: the items queued, the bound (0: unbounded) and the items put and not yet
    ///   marked done (see ``ManagedJoinableQueue``).
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func info() throws -> (count: Int, maximumSize: Int, unfinishedTasks: Int) {
        guard case .info(let count, let maximumSize, let unfinished) = try reference.call(QueueRequest.info) else {
            throw unexpectedReply(to: QueueRequest.info)
        }
        return (count, maximumSize, unfinished)
    }

    /// The number of items queued (a snapshot): the same as ``qsize``.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var count: Int {
        get throws { try qsize }
    }

    /// Whether the queue holds no items (a snapshot): the same as ``empty``.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isEmpty: Bool {
        get throws { try qsize == 0 }
    }

    /// Whether a bounded queue holds its maximum number of items (a snapshot): Python's `full()`.
    /// An unbounded queue is never full.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isFull: Bool {
        get throws {
            let (count, maximumSize, _) = try info()
            return maximumSize > 0 && count >= maximumSize
        }
    }

    /// Whether the queue is full: the local `Queue`'s name for ``isFull``.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var full: Bool {
        get throws { try isFull }
    }

    /// Shuts the queue down, as Python 3.13's `shutdown(immediate)`: from now on every `put`, in
    /// every process, throws `MultiprocessingError/Code/shutDown`; a `get` takes what is left and
    /// then throws it (at once with `immediate`, which drops the items left and counts them as
    /// done for a joinable queue's `join`). Callers blocked in `put`, `get` or `join` wake.
    ///
    /// - Parameter immediate: drop the items still queued.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func shutdown(immediate: Bool = false) throws {
        let request = QueueRequest.shutdown(immediate: immediate)
        guard case .shutdown = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Shuts the queue down without blocking the cooperative pool; see `shutdown(immediate:)`.
    ///
    /// - Parameter immediate: drop the items still queued.
    /// - Throws: as `shutdown(immediate:)`.
    public func shutdown(immediate: Bool = false) async throws {
        try await managerRunBlocking { interrupt in
            let request = QueueRequest.shutdown(immediate: immediate)
            guard case .shutdown = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        }
    }

    /// The most items the queue holds (0: unbounded): Python's `maxsize`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var maxsize: Int {
        get throws { try info().maximumSize }
    }
}
