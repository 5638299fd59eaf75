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
        let e = try ValueCoding.encode(item)
        do {
            _ = try reference.call(.qPut, interrupt: interrupt) {
                $0.blob(e)
                try $0.timeout(timeout)
            }
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
        var reply: ByteReader
        do {
            reply = try reference.call(.qGet, interrupt: interrupt) { try $0.timeout(timeout) }
        } catch let error as MultiprocessingError where error.code == .empty && !nowait {
            throw MultiprocessingError(.timedOut, "ManagedQueue.get timed out\(timeout.map { " after \($0)" } ?? "") with the queue still empty.")
        }
        return try ValueCoding.decode(Element.self, try reply.blob())
    }

    /// The number of items waiting (a snapshot): Python's `qsize()`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var qsize: Int {
        get throws {
            var reply = try reference.call(.qCount)
            return try reply.int()
        }
    }

    /// Whether the queue holds no items (a snapshot): Python's `empty()`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var empty: Bool {
        get throws { try qsize == 0 }
    }
}
