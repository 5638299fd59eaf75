import Multiprocessing

/// A FIFO queue held by a manager's server: Python's `manager.Queue(maxsize)`, typed.
public struct ManagedQueue<Element: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Adds an item, waiting for room in a bounded queue.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever, `.zero` does not wait.
    /// - Throws: ``MultiprocessingError/Code/full`` when no room came in time;
    ///   ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        try put(item, timeout: timeout, interrupt: nil)
    }

    /// Adds an item without blocking the cooperative pool; see ``put(_:timeout:)``.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever.
    /// - Throws: as ``put(_:timeout:)``, and ``MultiprocessingError/Code/cancelled``.
    public func put(_ item: Element, timeout: Duration? = nil) async throws {
        try await managerRunBlocking { interrupt in try self.put(item, timeout: timeout, interrupt: interrupt) }
    }

    private func put(_ item: Element, timeout: Duration?, interrupt: CallInterrupt?) throws {
        let request = QueueRequest.put(item: try ValueCoding.encode(item), timeout: try wireTimeout(timeout))
        guard case .put = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
    }

    /// Removes and returns the oldest item, waiting for one.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever, `.zero` does not wait.
    /// - Returns: the item.
    /// - Throws: ``MultiprocessingError/Code/empty`` when none came in time;
    ///   ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    public func get(timeout: Duration? = nil) throws -> Element {
        try get(timeout: timeout, interrupt: nil)
    }

    /// Removes the oldest item without blocking the cooperative pool; see ``get(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the item.
    /// - Throws: as ``get(timeout:)``, and ``MultiprocessingError/Code/cancelled``.
    public func get(timeout: Duration? = nil) async throws -> Element {
        try await managerRunBlocking { interrupt in try self.get(timeout: timeout, interrupt: interrupt) }
    }

    private func get(timeout: Duration?, interrupt: CallInterrupt?) throws -> Element {
        let request = QueueRequest.get(timeout: try wireTimeout(timeout))
        guard case .get(let item) = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        return try ValueCoding.decode(Element.self, item)
    }

    /// The number of items waiting.
    ///
    /// - Returns: the count.
    /// - Throws: ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    public func count() throws -> Int {
        guard case .count(let n) = try reference.call(QueueRequest.count) else { throw unexpectedReply(to: QueueRequest.count) }
        return n
    }
}
