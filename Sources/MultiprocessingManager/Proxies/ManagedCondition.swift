public import Multiprocessing

/// A condition variable held by a manager's server, with its own recursive lock: Python's
/// `manager.Condition()`. Hold the lock (``acquire(timeout:)``) around `wait(timeout:)` and
/// ``notify(_:)``; the owner is the calling thread.
///
/// It has the shape of the module's own `Condition`
/// (`ConditionProtocol`): a wait that times out throws
/// `MultiprocessingError/Code/timedOut`, with the lock held again.
public struct ManagedCondition: ConditionProtocol, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// The condition's lock, as a recursive ``ManagedLock``.
    public var lock: ManagedLock { ManagedLock(reference: reference) }

    /// Takes the condition's lock; see `ManagedLock.acquire(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as `ManagedLock.acquire(timeout:)`.
    public func acquire(timeout: Duration? = nil) throws { try lock.acquire(timeout: timeout) }

    /// Takes the condition's lock if it is free now (or held by the calling thread).
    ///
    /// - Returns: whether the caller now holds it.
    /// - Throws: as ``ManagedLock/tryAcquire()``.
    public func tryAcquire() throws -> Bool { try lock.tryAcquire() }

    /// Releases the condition's lock.
    ///
    /// - Throws: as ``ManagedLock/release()``.
    public func release() throws { try lock.release() }

    /// Whether some thread holds the condition's lock now.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public var isLocked: Bool { get throws { try lock.isLocked } }

    /// Runs `body` holding the condition's lock; see `ManagedLock/withLock(timeout:_:)`.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for the lock.
    ///   - body: the critical section.
    /// - Returns: what `body` returns.
    /// - Throws: as `ManagedLock/withLock(timeout:_:)`.
    public func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        try lock.withLock(timeout: timeout, body)
    }

    /// The async twin of `withLock(timeout:_:)`, for a synchronous `body`.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for the lock.
    ///   - body: the critical section.
    /// - Returns: what `body` returns.
    /// - Throws: as `ManagedLock/withLock(timeout:_:)`, and `MultiprocessingError/Code/cancelled`.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) async throws -> R {
        try await lock.withLock(timeout: timeout, body)
    }

    /// Releases the lock, waits for a notification, and takes the lock back (also when it throws).
    ///
    /// - Parameter timeout: how long to wait for the notification; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut` when no notification came in time (Python
    ///   returns `False`); `MultiprocessingError/Code/misuse` when the thread does not hold the
    ///   lock; `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func wait(timeout: Duration? = nil) throws {
        try wait(timeout: timeout, thread: callerThread(), interrupt: nil)
    }

    /// Waits for a notification without blocking the cooperative pool; see `wait(timeout:)`.
    /// The lock's owner is the thread that calls, so acquire, wait and release from the same task
    /// without suspending elsewhere in between, or use ``withLock(waitingFor:timeout:_:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as `wait(timeout:)`, and `MultiprocessingError/Code/cancelled`.
    public func wait(timeout: Duration? = nil) async throws {
        let thread = callerThread()
        try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, thread: thread, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, thread: UInt64, interrupt: CallInterrupt?) throws {
        let request = ConditionRequest.wait(thread: thread, timeout: try wireTimeout(timeout))
        guard case .wait(let notified) = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        guard notified else {
            throw MultiprocessingError(.timedOut, "ManagedCondition.wait timed out\(timeout.map { " after \($0)" } ?? "") without a notification.")
        }
    }

    /// Waits until `predicate` holds, re-checking after each notification: Python's `wait_for`.
    ///
    /// - Parameters:
    ///   - predicate: the condition, evaluated with the lock held.
    ///   - timeout: the total time to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut` when `predicate` is still false at the
    ///   deadline (the lock is held); as `wait(timeout:)`, and what `predicate` throws.
    public func wait(for predicate: () throws -> Bool, timeout: Duration? = nil) throws {
        let deadline = try ManagedDeadline(timeout, "ManagedCondition.wait(for:)")
        let thread = callerThread()
        while try !predicate() {
            let left = deadline.remaining
            if let left, left <= .zero { throw deadline.predicateTimedOut() }
            do {
                try wait(timeout: left, thread: thread, interrupt: nil)
            } catch let error as MultiprocessingError where error.code == .timedOut {
                if try predicate() { return }
                throw deadline.predicateTimedOut()
            }
        }
    }

    /// Takes the lock, waits until `predicate` is true, runs `body` with the lock held and
    /// releases it: the async form of `with condition: condition.wait_for(predicate); body()`, as
    /// `Condition/withLock(waitingFor:timeout:_:)`. Every wait happens off the
    /// cooperative pool, and the lock is held by one owner of this call's own (see
    /// `ManagedLock.withLock(timeout:_:)`), whatever threads the task runs on.
    ///
    /// - Parameters:
    ///   - predicate: the state to wait for, evaluated with the lock held.
    ///   - timeout: the total time to wait, for the lock and for the predicate; nil waits for ever.
    ///   - body: runs with the lock held once `predicate` is true.
    /// - Returns: what `body` returns.
    /// - Throws: `MultiprocessingError/Code/timedOut` when `predicate` is still false at the
    ///   deadline (the lock is released); `MultiprocessingError/Code/ownerDied` when the lock's
    ///   previous owner died (released; neither closure runs); `MultiprocessingError/Code/cancelled`;
    ///   what `predicate` or `body` throw.
    public nonisolated(nonsending) func withLock<R>(waitingFor predicate: () throws -> Bool, timeout: Duration? = nil,
                                                    _ body: () throws -> R) async throws -> R {
        let deadline = try ManagedDeadline(timeout, "ManagedCondition.withLock(waitingFor:)")
        let thread = asyncLockOwner()
        let lock = self.lock
        do {
            let limit = deadline.remaining
            try await managerRunBlocking { interrupt in try lock.acquire(timeout: limit, thread: thread, interrupt: interrupt) }
        } catch let error as MultiprocessingError where error.code == .ownerDied {
            try? lock.release(thread: thread)
            throw error
        }
        // Released on every way out; a wait the server abandoned (a cancelled call) already gave
        // the lock up, and the release then finds nothing of this thread's to release.
        defer { try? lock.release(thread: thread) }
        while try !predicate() {
            let left = deadline.remaining
            if let left, left <= .zero { throw deadline.predicateTimedOut() }
            do {
                try await managerRunBlocking { interrupt in try self.wait(timeout: left, thread: thread, interrupt: interrupt) }
            } catch let error as MultiprocessingError where error.code == .timedOut {
                if try predicate() { break }
                throw deadline.predicateTimedOut()
            }
        }
        return try AsyncLockOwner.$current.withValue(thread) { try body() }
    }

    /// Wakes up to `count` waiters.
    ///
    /// - Parameter count: how many.
    /// - Throws: `MultiprocessingError/Code/misuse` when the thread does not hold the lock, or
    ///   `count` is negative (as the module's own `Condition.notify`).
    public func notify(_ count: Int = 1) throws {
        guard count >= 0 else {
            throw MultiprocessingError(.misuse, "ManagedCondition.notify: the number of waiters to wake must not be negative (it was \(count)).")
        }
        let request = ConditionRequest.notify(thread: callerThread(), count: count)
        guard case .notify = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Wakes every waiter.
    ///
    /// - Throws: as ``notify(_:)``.
    public func notifyAll() throws { try notify(Int(Int32.max)) }
}

/// The end of a proxy's wait that spans several calls (a condition's `wait(for:)`).
private struct ManagedDeadline {
    let timeout: Duration?
    let end: ContinuousClock.Instant?
    let operation: String

    init(_ timeout: Duration?, _ operation: String) throws {
        if let timeout, timeout < .zero {
            throw MultiprocessingError(.misuse, "\(operation): the timeout must not be negative (it was \(timeout)).")
        }
        self.timeout = timeout
        self.operation = operation
        // Capped at 292 years, so that `now +` cannot overflow Duration's 128 bits.
        end = timeout.map { ContinuousClock.now + min($0, .nanoseconds(Int64.max)) }
    }

    /// The time left: nil for no deadline, `.zero` once it has passed.
    var remaining: Duration? { end.map { max(.zero, $0 - ContinuousClock.now) } }

    func predicateTimedOut() -> MultiprocessingError {
        MultiprocessingError(.timedOut, "\(operation) timed out\(timeout.map { " after \($0)" } ?? "") with the predicate still false.")
    }
}
