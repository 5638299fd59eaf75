public import Multiprocessing

/// A semaphore held by a manager's server whose count may not rise above its initial value:
/// Python's `manager.BoundedSemaphore(value)`.
///
/// It has the shape of the module's own `BoundedSemaphore` (`SemaphoreProtocol`, `withPermit`
/// included): releasing it more often than it was acquired throws
/// `MultiprocessingError/Code/misuse` (Python raises `ValueError`), and the server checks the
/// bound, so the check holds whichever processes release it.
public struct ManagedBoundedSemaphore: SemaphoreProtocol, Codable, Hashable {
    /// The semaphore, as a plain ``ManagedSemaphore`` (its releases are still bounded: the
    /// server checks).
    public let semaphore: ManagedSemaphore

    internal init(reference: ObjectReference) { semaphore = ManagedSemaphore(reference: reference) }

    /// The server object behind this proxy.
    public var reference: ObjectReference { semaphore.reference }

    /// Takes one permit, waiting for one.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut`; `MultiprocessingError/Code/endOfStream`.
    public func acquire(timeout: Duration? = nil) throws { try semaphore.acquire(timeout: timeout) }

    /// Takes one permit without blocking the cooperative pool; see ``acquire(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as ``acquire(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    public func acquire(timeout: Duration? = nil) async throws { try await semaphore.acquire(timeout: timeout) }

    /// Takes one permit if there is one now: Python's `acquire(blocking=False)`.
    ///
    /// - Returns: whether a permit was taken.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func tryAcquire() throws -> Bool { try semaphore.tryAcquire() }

    /// Returns `count` permits.
    ///
    /// - Parameter count: how many, at least 1.
    /// - Throws: `MultiprocessingError/Code/misuse` for a `count` below 1, or when the count
    ///   would rise above ``bound`` (more releases than acquires; nothing is released then);
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func release(_ count: Int = 1) throws { try semaphore.release(count) }

    /// The permits available now (a snapshot).
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var value: Int { get throws { try semaphore.value } }

    /// The bound: the initial value.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var bound: Int {
        get throws {
            guard case .info(_, let bound) = try reference.call(SemaphoreRequest.info) else { throw unexpectedReply(to: SemaphoreRequest.info) }
            guard let bound else {
                throw MultiprocessingError(.misuse, "ManagedBoundedSemaphore.bound: the manager's object \(reference.id) is a semaphore without a bound.")
            }
            return bound
        }
    }
}
