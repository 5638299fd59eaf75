import Multiprocessing

/// An event flag held by a manager's server: Python's `manager.Event()`.
public struct ManagedEvent: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Sets the flag and wakes every waiter.
    ///
    /// - Throws: ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    public func set() throws {
        guard case .set = try reference.call(EventRequest.set) else { throw unexpectedReply(to: EventRequest.set) }
    }

    /// Clears the flag.
    ///
    /// - Throws: ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    public func clear() throws {
        guard case .clear = try reference.call(EventRequest.clear) else { throw unexpectedReply(to: EventRequest.clear) }
    }

    /// Whether the flag is set.
    ///
    /// - Returns: the flag.
    /// - Throws: ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    public func isSet() throws -> Bool {
        guard case .isSet(let flag) = try reference.call(EventRequest.isSet) else { throw unexpectedReply(to: EventRequest.isSet) }
        return flag
    }

    /// Waits until the flag is set.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: true when the flag is set, false when the timeout passed first (as Python).
    /// - Throws: ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        try wait(timeout: timeout, interrupt: nil)
    }

    /// Waits without blocking the cooperative pool; see ``wait(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: true when the flag is set, false on timeout.
    /// - Throws: as ``wait(timeout:)``, and ``MultiprocessingError/Code/cancelled``.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Bool {
        try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, interrupt: CallInterrupt?) throws -> Bool {
        let request = EventRequest.wait(timeout: try wireTimeout(timeout))
        guard case .wait(let set) = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        return set
    }
}
