import MultiprocessingSystem

/// A lock shared by threads and processes: Python's `threading.Lock` and `multiprocessing.Lock`.
///
/// The lock lives in shared memory, so the same `Lock` can be passed to a child process inside a
/// task's arguments (it is `Codable`: its encoding carries the memory's descriptor) and both
/// processes then exclude each other. Acquiring and releasing an uncontended lock makes no system
/// call; a waiter sleeps on a futex in the shared memory.
///
/// Beyond Python, a lock survives the death of its owner. If a thread or process dies while holding
/// it, the next acquirer gets the lock and is told: ``acquire(timeout:)`` throws
/// ``MultiprocessingError/Code/ownerDied`` **with the lock held**, so the caller can repair the data
/// the dead owner left half-changed, then call ``release()``.
///
/// Unlike Python's `Lock`, this lock is owned by the thread that acquired it: only that thread can
/// release it (another thread's ``release()`` throws ``MultiprocessingError/Code/misuse``), and
/// acquiring it again from its owner throws `.misuse` instead of deadlocking. The reason is the robust
/// lock underneath, which is how the kernel knows whom to watch for death. Keep a reference to a
/// lock while a thread holds it: the holding thread's robust list points into the lock's memory,
/// which is unmapped when the last object using it goes.
///
/// In async code, a task may resume on another thread after any `await`, so a lock held across an
/// `await` would belong to the wrong thread. That mistake cannot be written: ``acquire(timeout:)``,
/// ``tryAcquire()`` and ``release()`` are unavailable from async contexts, and the async
/// `withLock(timeout:_:)` waits off the cooperative pool but runs a *synchronous* body, as
/// Swift's `Mutex` does.
///
/// ```swift
/// let lock = try Lock()
/// try lock.withLock { counter += 1 }
/// ```
public final class Lock: Locking, Codable, @unchecked Sendable {
    internal let core: LockCore<PlainLockFlavor>
    internal var mutex: RobustMutex { core.mutex }

    /// Creates an unlocked lock in shared memory.
    /// - Throws: ``MultiprocessingError`` with `.systemCall` when shared memory cannot be created.
    public init() throws {
        core = try LockCore()
    }

    /// Acquires the lock, waiting until it is free.
    ///
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: ``MultiprocessingError`` with code
    ///   - `.ownerDied`: the previous owner died holding the lock. **The lock is now held by the
    ///     caller**; repair the shared data, then ``release()``.
    ///   - `.timedOut`: the lock stayed held for `timeout`.
    ///   - `.cancelled`: the waiting ``OSThread`` was cancelled.
    ///   - `.misuse`: the calling thread already holds the lock, or `timeout` is negative.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func acquire(timeout: Duration? = nil) throws {
        try core.acquire(timeout: timeout)
    }

    /// Acquires the lock if it is free, without waiting.
    /// - Returns: true when the caller now holds the lock.
    /// - Throws: `.ownerDied` (lock held, as in ``acquire(timeout:)``) or `.misuse` when the calling
    ///   thread already holds it.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func tryAcquire() throws -> Bool {
        try core.tryAcquire()
    }

    /// Releases the lock.
    /// - Throws: `.misuse` when the calling thread does not hold the lock.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func release() throws {
        try core.release()
    }

    /// Runs `body` with the lock held, releasing it afterwards even when `body` throws.
    ///
    /// If the previous owner died holding the lock, `body` does not run: the lock is marked usable
    /// again, released, and `.ownerDied` is thrown, so that a retry succeeds. Use
    /// ``acquire(timeout:)`` to repair data while still holding the lock.
    /// - Parameters:
    ///   - timeout: How long to wait for the lock; `nil` waits forever.
    ///   - body: The critical section.
    /// - Throws: what ``acquire(timeout:)`` throws, or what `body` throws.
    @inlinable
    public func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        // Inlinable, so that the caller's closure is not called through a generic thunk; the lock
        // itself stays behind the two non-generic entry points.
        try enterWithLock(timeout)
        defer { exitWithLock() }
        return try body()
    }

    @usableFromInline
    internal func enterWithLock(_ timeout: Duration?) throws {
        try core.enterWithLock(timeout)
    }

    @usableFromInline
    internal func exitWithLock() {
        core.exitWithLock()
    }

    /// Whether some thread (in any process) holds the lock: Python's `locked()`.
    public var isLocked: Bool { core.isLocked }

    /// Runs a synchronous `body` with the lock held, waiting for it without blocking the cooperative
    /// pool; the async twin of ``withLock(timeout:_:)``.
    ///
    /// The wait happens on a helper thread; the lock is then taken on the caller's own thread and
    /// `body` runs there. Because `body` cannot `await`, the lock is released on the thread that took
    /// it: there is no async `acquire`/`release` pair, so a lock cannot be held across an `await`.
    /// - Throws: as ``withLock(timeout:_:)``; `.cancelled` when the task is cancelled.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) async throws -> R {
        try await core.withLock(timeout: timeout, body)
    }

    internal static func ownerDiedError(_ operation: StaticString) -> MultiprocessingError {
        MultiprocessingError(.ownerDied, "\(operation): the previous owner died while holding the lock. The lock is now held by the caller: repair the shared data, then release it.")
    }

    /// Encodes the lock's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws {
        try core.encode(to: encoder)
    }

    /// Decodes a lock sent by another process: both then use the same shared memory.
    public init(from decoder: any Decoder) throws {
        core = try LockCore(from: decoder)
    }
}
