public import Multiprocessing

/// An event flag held by a manager's server: Python's `manager.Event()`.
///
/// It has the shape of the module's own `Event`
/// (`EventProtocol`): a wait that times out throws
/// `MultiprocessingError/Code/timedOut`.
public struct ManagedEvent: EventProtocol, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Sets the flag and wakes every waiter.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func set() throws { _ = try reference.call(.evSet) }

    /// Clears the flag.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func clear() throws { _ = try reference.call(.evClear) }

    /// Whether the flag is set: Python's `is_set()`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isSet: Bool {
        get throws {
            var reply = try reference.call(.evIsSet)
            return try reply.bool()
        }
    }

    /// Waits until the flag is set.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut` when the flag stayed clear (Python returns
    ///   `False`); `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func wait(timeout: Duration? = nil) throws {
        try wait(timeout: timeout, interrupt: nil)
    }

    /// Waits without blocking the cooperative pool; see ``wait(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as ``wait(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    public func wait(timeout: Duration? = nil) async throws {
        try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, interrupt: CallInterrupt?) throws {
        var reply = try reference.call(.evWait, interrupt: interrupt) { try $0.timeout(timeout) }
        guard try reply.bool() else {
            throw MultiprocessingError(.timedOut, "ManagedEvent.wait timed out\(timeout.map { " after \($0)" } ?? "") with the flag still clear.")
        }
    }
}
