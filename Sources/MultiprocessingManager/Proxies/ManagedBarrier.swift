public import Multiprocessing

/// A barrier held by a manager's server: Python's `manager.Barrier(parties)`.
///
/// It has the shape of the module's own `Barrier`
/// (`BarrierProtocol`); ``state()`` reads all three properties in one call.
public struct ManagedBarrier: BarrierProtocol, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Waits until `parties` callers have arrived.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: this caller's arrival index, 0 ..< parties.
    /// - Throws: `MultiprocessingError/Code/broken` when the barrier is or becomes broken
    ///   (aborted, reset, or another waiter timed out); `MultiprocessingError/Code/timedOut`
    ///   (and the barrier breaks); `MultiprocessingError/Code/endOfStream`.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Int {
        try wait(timeout: timeout, interrupt: nil)
    }

    /// Waits without blocking the cooperative pool; see ``wait(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the arrival index.
    /// - Throws: as ``wait(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Int {
        try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, interrupt: CallInterrupt?) throws -> Int {
        var reply = try reference.call(.bWait, interrupt: interrupt) { try $0.timeout(timeout) }
        return try reply.int()
    }

    /// Returns the barrier to its initial state; callers waiting now get
    /// `MultiprocessingError/Code/broken`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func reset() throws { _ = try reference.call(.bReset) }

    /// Breaks the barrier: every waiter, now and later, gets `MultiprocessingError/Code/broken`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func abort() throws { _ = try reference.call(.bAbort) }

    /// The parties, the callers waiting now, and whether the barrier is broken.
    ///
    /// - Returns: the barrier's state.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func state() throws -> (parties: Int, waiting: Int, broken: Bool) {
        var reply = try reference.call(.bInfo)
        return (try reply.int(), try reply.int(), try reply.bool())
    }

    /// How many must wait before all continue.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var parties: Int { get throws { try state().parties } }

    /// How many wait now (Python's `n_waiting`).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var waitingCount: Int { get throws { try state().waiting } }

    /// Whether the barrier is broken.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isBroken: Bool { get throws { try state().broken } }
}
