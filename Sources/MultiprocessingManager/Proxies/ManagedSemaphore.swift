public import Multiprocessing

/// A counting semaphore held by a manager's server: Python's `manager.Semaphore(value)`.
///
/// It has the shape of the module's own `Semaphore`
/// (`SemaphoreProtocol`), `withPermit` included.
public struct ManagedSemaphore: SemaphoreProtocol, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Takes one permit, waiting for one.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut`; `MultiprocessingError/Code/endOfStream`.
    public func acquire(timeout: Duration? = nil) throws {
        try acquire(timeout: timeout, interrupt: nil)
    }

    /// Takes one permit without blocking the cooperative pool; see ``acquire(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as ``acquire(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    public func acquire(timeout: Duration? = nil) async throws {
        try await managerRunBlocking { interrupt in try self.acquire(timeout: timeout, interrupt: interrupt) }
    }

    /// Takes one permit if there is one now.
    ///
    /// - Returns: whether a permit was taken.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func tryAcquire() throws -> Bool {
        do {
            try acquire(timeout: .zero, interrupt: nil)
            return true
        } catch let error as MultiprocessingError where error.code == .timedOut {
            return false
        }
    }

    private func acquire(timeout: Duration?, interrupt: CallInterrupt?) throws {
        var reply = try reference.call(.semAcquire, interrupt: interrupt) { try $0.timeout(timeout) }
        guard try reply.bool() else {
            throw MultiprocessingError(.timedOut, "Acquiring the manager semaphore timed out\(timeout.map { " after \($0)" } ?? "").")
        }
    }

    /// Returns `count` permits.
    ///
    /// - Parameter count: how many, at least 1 (Python's `release(n)` raises `ValueError` below 1).
    /// - Throws: `MultiprocessingError/Code/misuse` for a `count` below 1, or one that would
    ///   overflow the count; `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func release(_ count: Int = 1) throws {
        guard count >= 1 else {
            throw MultiprocessingError(.misuse, "ManagedSemaphore.release(_ count:): count must be at least 1 (it was \(count)).")
        }
        _ = try reference.call(.semRelease) { $0.varint(UInt64(count)) }
    }

    /// The permits available now (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var value: Int {
        get throws {
            var reply = try reference.call(.semValue)
            return try reply.int()
        }
    }
}
