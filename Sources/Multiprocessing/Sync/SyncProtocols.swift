/// The shapes that local primitives and queues share with a manager's proxies, so that code which
/// takes "a lock", "an event" or "a queue" takes either kind: ``Lock`` or `ManagedLock`, ``Event``
/// or `ManagedEvent`, ``Queue`` or `ManagedQueue` (of `MultiprocessingManager`).
///
/// One convention for every one of them (`docs/python-to-swift.md`, "Timeouts"):
/// - A timed wait that runs out throws ``MultiprocessingError`` with code
///   ``MultiprocessingError/Code/timedOut``: acquiring a lock or a semaphore, waiting for an event,
///   a condition or a barrier, and a queue's `put` or `get` alike. `nil` waits for ever; a negative
///   timeout is ``MultiprocessingError/Code/misuse``.
/// - A form that does not wait says so in its name: `tryAcquire()` returns `false`, a queue's
///   `getNowait()` and `putNowait(_:)` throw ``MultiprocessingError/Code/empty`` and
///   ``MultiprocessingError/Code/full`` (Python's `get_nowait()` and `put_nowait()`).
/// - Requirements are `throws`, because a proxy's call can fail on its way to the server
///   (``MultiprocessingError/Code/endOfStream``); a local type meets them without throwing where it
///   cannot fail (``Event/set()``, ``Event/isSet``).
/// - Async twins share the names of the blocking calls and never block the cooperative pool.

/// A lock: ``Lock``, ``RLock`` and ``Condition`` here; `ManagedLock` and `ManagedCondition` in
/// `MultiprocessingManager`. Python's `Lock`/`RLock` protocol (`acquire`, `release`, `locked`,
/// `with`).
///
/// A lock belongs to the thread that took it, so the acquire-and-release pair is unavailable from
/// async code; async code uses the async `withLock(timeout:_:)`, whose body cannot `await`.
public protocol Locking: Sendable {
    /// Takes the lock, waiting at most `timeout` (`nil`: for ever).
    /// - Throws: `.timedOut`, `.ownerDied` (the lock is then held), `.cancelled`, `.misuse`.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    func acquire(timeout: Duration?) throws

    /// Takes the lock if it is free now.
    /// - Returns: whether the caller now holds it.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    func tryAcquire() throws -> Bool

    /// Releases the lock (one level of a recursive lock).
    /// - Throws: `.misuse` when the caller does not hold it.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    func release() throws

    /// Runs `body` holding the lock. When its previous owner died, `body` does not run: the lock
    /// is released and `.ownerDied` thrown.
    func withLock<R>(timeout: Duration?, _ body: () throws -> R) throws -> R

    /// The async twin of `withLock(timeout:_:)`: waits off the cooperative pool, then runs
    /// the synchronous `body` holding the lock.
    nonisolated(nonsending) func withLock<R>(timeout: Duration?, _ body: () throws -> R) async throws -> R

    /// Whether some thread, in any process, holds the lock: Python's `locked()`.
    var isLocked: Bool { get throws }
}

extension Locking {
    /// Takes the lock, waiting for ever.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func acquire() throws { try acquire(timeout: nil) }

    /// Runs `body` holding the lock, waiting for it for ever.
    public func withLock<R>(_ body: () throws -> R) throws -> R { try withLock(timeout: nil, body) }

    /// Runs `body` holding the lock, waiting for it for ever off the cooperative pool.
    public nonisolated(nonsending) func withLock<R>(_ body: () throws -> R) async throws -> R {
        try await withLock(timeout: nil, body)
    }
}

/// A flag that threads and processes wait for: ``Event`` here, `ManagedEvent` in
/// `MultiprocessingManager`. Python's `Event`.
public protocol EventProtocol: Sendable {
    /// Raises the flag and wakes every waiter.
    func set() throws
    /// Lowers the flag.
    func clear() throws
    /// Whether the flag is raised: Python's `is_set()`.
    var isSet: Bool { get throws }
    /// Waits until the flag is raised.
    /// - Throws: `.timedOut` when it stayed lowered for `timeout` (Python returns `False`).
    func wait(timeout: Duration?) throws
    /// The async twin of `wait(timeout:)`.
    func wait(timeout: Duration?) async throws
}

extension EventProtocol {
    /// Waits for ever until the flag is raised.
    public func wait() throws { try wait(timeout: nil) }
    /// Waits for ever, off the cooperative pool, until the flag is raised.
    public func wait() async throws { try await wait(timeout: nil) }
}

/// A counting semaphore: ``Semaphore`` and ``BoundedSemaphore`` here, `ManagedSemaphore` in
/// `MultiprocessingManager`. Python's `Semaphore`.
public protocol SemaphoreProtocol: Sendable {
    /// Takes one unit, waiting while there is none.
    /// - Throws: `.timedOut` when none came within `timeout`.
    func acquire(timeout: Duration?) throws
    /// The async twin of `acquire(timeout:)`.
    func acquire(timeout: Duration?) async throws
    /// Takes one unit if there is one now.
    /// - Returns: whether a unit was taken.
    func tryAcquire() throws -> Bool
    /// Gives back `n` units (at least 1).
    /// - Throws: `.misuse` when `n` is below 1, or the count would pass its limit.
    func release(_ n: Int) throws
    /// The units available now (a snapshot).
    var value: Int { get throws }
}

extension SemaphoreProtocol {
    /// Takes one unit, waiting for ever.
    public func acquire() throws { try acquire(timeout: nil) }
    /// Takes one unit, waiting for ever off the cooperative pool.
    public func acquire() async throws { try await acquire(timeout: nil) }
    /// Gives back one unit.
    public func release() throws { try release(1) }

    /// Runs `body` holding one unit, giving it back afterwards (Python's `with semaphore:`).
    /// - Parameters:
    ///   - timeout: How long to wait for a unit; `nil` waits for ever.
    ///   - body: The work.
    /// - Throws: what `acquire(timeout:)` throws, or what `body` throws.
    public func withPermit<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        try acquire(timeout: timeout)
        // Giving back the unit just taken cannot pass the limit; a proxy whose server is gone
        // has nothing to give it back to.
        defer { _ = try? release(1) }
        return try body()
    }

    /// The async twin of `withPermit(timeout:_:)`, for a synchronous `body`: waits for the
    /// unit off the cooperative pool. (Without it, async code passing a synchronous closure would
    /// pick the blocking form.)
    public nonisolated(nonsending) func withPermit<R>(timeout: Duration? = nil, _ body: () throws -> R) async throws -> R {
        try await acquire(timeout: timeout)
        defer { _ = try? release(1) }
        return try body()
    }

    /// Runs an async `body` holding one unit: a unit is not owned by a thread, so `body` may
    /// `await` (a limit on how many tasks, in any processes, do something at once).
    public nonisolated(nonsending) func withPermit<R>(timeout: Duration? = nil, _ body: () async throws -> R) async throws -> R {
        try await acquire(timeout: timeout)
        defer { _ = try? release(1) }
        return try await body()
    }
}

/// A condition variable with its lock: ``Condition`` here, `ManagedCondition` in
/// `MultiprocessingManager`. Python's `Condition`.
public protocol ConditionProtocol: Locking {
    /// Releases the lock, sleeps until notified, and takes the lock back (also when it throws).
    /// - Throws: `.timedOut` when no notification came within `timeout`; `.misuse` when the caller
    ///   does not hold the lock.
    func wait(timeout: Duration?) throws
    /// Waits until `predicate`, evaluated with the lock held, is true: Python's `wait_for`.
    /// - Throws: `.timedOut` when it is still false after `timeout`.
    func wait(for predicate: () throws -> Bool, timeout: Duration?) throws
    /// Wakes up to `n` waiters.
    func notify(_ n: Int) throws
    /// Wakes every waiter.
    func notifyAll() throws
    /// Takes the lock, waits until `predicate` is true, and runs `body` with the lock held: the
    /// async form of `with condition: condition.wait_for(predicate); body()`. Neither closure can
    /// `await`, so the lock is never held across one.
    /// - Throws: `.timedOut` when `predicate` is still false after `timeout`.
    nonisolated(nonsending) func withLock<R>(waitingFor predicate: () throws -> Bool, timeout: Duration?,
                                             _ body: () throws -> R) async throws -> R
}

extension ConditionProtocol {
    /// Waits for ever for a notification.
    public func wait() throws { try wait(timeout: nil) }
    /// Waits for ever until `predicate` is true.
    public func wait(for predicate: () throws -> Bool) throws { try wait(for: predicate, timeout: nil) }
    /// Wakes one waiter.
    public func notify() throws { try notify(1) }
}

/// A rendezvous of a fixed number of parties: ``Barrier`` here, `ManagedBarrier` in
/// `MultiprocessingManager`. Python's `Barrier`.
public protocol BarrierProtocol: Sendable {
    /// Waits until every party has arrived. `nil` waits for ever, or for a local ``Barrier``'s
    /// default timeout when it has one.
    /// - Returns: this party's arrival index, from 0 to `parties - 1`.
    /// - Throws: `.timedOut` (which breaks the barrier), `.broken`.
    @discardableResult func wait(timeout: Duration?) throws -> Int
    /// The async twin of `wait(timeout:)`.
    @discardableResult func wait(timeout: Duration?) async throws -> Int
    /// Returns the barrier to its initial state; parties waiting now get `.broken`.
    func reset() throws
    /// Breaks the barrier: every waiter, now and later, gets `.broken` until ``reset()``.
    func abort() throws
    /// How many must wait before all continue.
    var parties: Int { get throws }
    /// How many wait now (Python's `n_waiting`).
    var waitingCount: Int { get throws }
    /// Whether the barrier is broken.
    var isBroken: Bool { get throws }
}
