import Multiprocessing

/// A condition variable held by a manager's server, with its own recursive lock: Python's
/// `manager.Condition()`. Hold the lock (``acquire(timeout:)``) around ``wait(timeout:)`` and
/// ``notify(_:)``; the owner is the calling thread.
public struct ManagedCondition: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// The condition's lock, as a recursive ``ManagedLock``.
    public var lock: ManagedLock { ManagedLock(reference: reference) }

    /// Takes the condition's lock; see ``ManagedLock/acquire(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as ``ManagedLock/acquire(timeout:)``.
    public func acquire(timeout: Duration? = nil) throws { try lock.acquire(timeout: timeout) }

    /// Releases the condition's lock.
    ///
    /// - Throws: as ``ManagedLock/release()``.
    public func release() throws { try lock.release() }

    /// Releases the lock, waits for a notification, and takes the lock back.
    ///
    /// - Parameter timeout: how long to wait for the notification; nil waits for ever.
    /// - Returns: false when the timeout passed first.
    /// - Throws: ``MultiprocessingError/Code/misuse`` when the thread does not hold the lock;
    ///   ``MultiprocessingError/Code/endOfStream`` when the server is gone.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        try wait(timeout: timeout, thread: callerThread(), interrupt: nil)
    }

    /// Waits for a notification without blocking the cooperative pool; see ``wait(timeout:)``.
    /// The lock's owner is the thread that calls, so acquire, wait and release from the same task
    /// without suspending elsewhere in between.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: false when the timeout passed first.
    /// - Throws: as ``wait(timeout:)``, and ``MultiprocessingError/Code/cancelled``.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Bool {
        let thread = callerThread()
        return try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, thread: thread, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, thread: UInt64, interrupt: CallInterrupt?) throws -> Bool {
        let request = ConditionRequest.wait(thread: thread, timeout: try wireTimeout(timeout))
        guard case .wait(let notified) = try reference.call(request, interrupt: interrupt) else { throw unexpectedReply(to: request) }
        return notified
    }

    /// Waits until `predicate` holds, re-checking after each notification.
    ///
    /// - Parameters:
    ///   - timeout: the total time to wait; nil waits for ever.
    ///   - predicate: the condition, evaluated with the lock held.
    /// - Returns: the predicate's last value.
    /// - Throws: as ``wait(timeout:)``, and what `predicate` throws.
    @discardableResult
    public func wait(for predicate: () throws -> Bool, timeout: Duration? = nil) throws -> Bool {
        if let timeout, timeout < .zero {
            throw MultiprocessingError(.misuse, "ManagedCondition.wait(for:): the timeout must not be negative (it was \(timeout)).")
        }
        let clock = ContinuousClock()
        // Capped at 292 years, so that `now +` cannot overflow Duration's 128 bits.
        let end = timeout.map { clock.now + min($0, .nanoseconds(Int64.max)) }
        while try !predicate() {
            var left: Duration?
            if let end {
                left = end - clock.now
                if let l = left, l <= .zero { return try predicate() }
            }
            try wait(timeout: left)
        }
        return true
    }

    /// Wakes up to `count` waiters.
    ///
    /// - Parameter count: how many.
    /// - Throws: ``MultiprocessingError/Code/misuse`` when the thread does not hold the lock, or
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
