public import Multiprocessing
import Synchronization

private let asyncOwners = Atomic<UInt64>(0)

/// The owner an async `withLock` takes a manager lock as: its own, never a thread's (thread ids
/// fit in 32 bits). Two tasks that started on one pool thread are then two owners, so a recursive
/// lock does not let the second in while the first, suspended between the server's grant and its
/// body, holds it.
internal func asyncLockOwner() -> UInt64 {
    (1 << 32) | asyncOwners.add(1, ordering: .relaxed).newValue
}

/// A lock held by a manager's server: Python's `manager.Lock()` (``ManagedKind/lock``) or
/// `manager.RLock()` (``ManagedKind/rLock``, recursive: the owning thread may acquire it again).
///
/// The owner is the calling thread of the calling process. When a process dies holding it, the
/// server frees it, and the next `acquire(timeout:)` throws `MultiprocessingError/Code/ownerDied`
/// **with the lock held**, so that the caller repairs the shared data and then releases it.
///
/// It has the shape of the module's own `Lock` (`Locking`), so
/// code written for a lock takes either.
public struct ManagedLock: Locking, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Whether this is a recursive lock.
    public var isRecursive: Bool { reference.kind == .rLock }

    /// Takes the lock, waiting for it.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut`; `MultiprocessingError/Code/ownerDied`
    ///   (lock held); `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func acquire(timeout: Duration? = nil) throws {
        try acquire(timeout: timeout, thread: callerThread(), interrupt: nil)
    }

    /// Takes the lock without blocking the cooperative pool; see `acquire(timeout:)`. The owner
    /// is the thread that called, so release it from the same task before it suspends elsewhere,
    /// or use a non-recursive lock (which any thread may release).
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as `acquire(timeout:)`, and `MultiprocessingError/Code/cancelled`.
    public func acquire(timeout: Duration? = nil) async throws {
        let thread = callerThread()
        try await managerRunBlocking { interrupt in try self.acquire(timeout: timeout, thread: thread, interrupt: interrupt) }
    }

    /// Takes the lock if it is free now.
    ///
    /// - Returns: whether the lock was taken.
    /// - Throws: `MultiprocessingError/Code/ownerDied` (lock held); as `acquire(timeout:)`.
    public func tryAcquire() throws -> Bool {
        do {
            try acquire(timeout: .zero)
            return true
        } catch let error as MultiprocessingError where error.code == .timedOut {
            return false
        }
    }

    internal func acquire(timeout: Duration?, thread: UInt64, interrupt: CallInterrupt?) throws {
        let request = LockRequest.acquire(thread: thread, timeout: try wireTimeout(timeout))
        guard case .acquire(let outcome) = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        switch outcome {
        case .acquired: return
        case .acquiredAfterOwnerDied:
            throw MultiprocessingError(.ownerDied, "The manager lock's previous owner died while holding it. The lock is now held by the caller: repair the shared data, then release it.")
        case .timedOut:
            throw MultiprocessingError(.timedOut, "Acquiring the manager lock timed out\(timeout.map { " after \($0)" } ?? "").")
        }
    }

    /// Releases the lock.
    ///
    /// - Throws: `MultiprocessingError/Code/misuse` when it is not held (or, for a recursive
    ///   lock, held by another thread); `MultiprocessingError/Code/endOfStream`.
    public func release() throws {
        try release(thread: callerThread())
    }

    internal func release(thread: UInt64) throws {
        let request = LockRequest.release(thread: thread)
        guard case .release = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Whether some thread holds the lock now: Python's `locked()`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isLocked: Bool {
        get throws {
            guard case .isLocked(let locked) = try reference.call(LockRequest.isLocked) else { throw unexpectedReply(to: LockRequest.isLocked) }
            return locked
        }
    }

    /// Runs `body` holding the lock. When the previous owner died, the lock is released and
    /// `MultiprocessingError/Code/ownerDied` is thrown without running `body`.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for the lock.
    ///   - body: the critical section.
    /// - Returns: what `body` returns.
    /// - Throws: as `acquire(timeout:)`, and what `body` throws.
    public func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        do {
            try acquire(timeout: timeout)
        } catch let error as MultiprocessingError where error.code == .ownerDied {
            try? release()
            throw error
        }
        defer { try? release() }
        return try body()
    }

    /// Runs a synchronous `body` holding the lock, waiting for it without blocking the
    /// cooperative pool: the async twin of `withLock(timeout:_:)`. The lock is taken and released
    /// by one owner of this call's own, whatever threads the task runs on in between; so `body`
    /// must not take the same lock again with a blocking `acquire`, even a recursive one.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for the lock.
    ///   - body: the critical section.
    /// - Returns: what `body` returns.
    /// - Throws: as `withLock(timeout:_:)`, and `MultiprocessingError/Code/cancelled`.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) async throws -> R {
        let thread = asyncLockOwner()
        do {
            try await managerRunBlocking { interrupt in try self.acquire(timeout: timeout, thread: thread, interrupt: interrupt) }
        } catch let error as MultiprocessingError where error.code == .ownerDied {
            try? release(thread: thread)
            throw error
        }
        defer { try? release(thread: thread) }
        return try AsyncLockOwner.$current.withValue(thread) { try body() }
    }
}
