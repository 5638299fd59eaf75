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
/// ``withLock(timeout:_:)`` waits off the cooperative pool but runs a *synchronous* body, as
/// Swift's `Mutex` does.
///
/// ```swift
/// let lock = try Lock()
/// try lock.withLock { counter += 1 }
/// ```
public final class Lock: Codable, @unchecked Sendable {
    // Layout: kind (4) | unused (4) | robust lock (48; see RobustMutex).
    internal let memory: SharedAllocation
    internal let mutex: RobustMutex

    internal static var size: Int { 8 + RobustMutex.size }

    /// Creates an unlocked lock in shared memory.
    /// - Throws: ``MultiprocessingError`` with `.systemCall` when shared memory cannot be created.
    public init() throws {
        memory = try SharedArena.allocate(size: Lock.size)
        mutex = RobustMutex(memory.base + 8)
        try mutex.initialize(recursive: false)
        memory.kind.store(SharedKind.lock)
    }

    private init(memory: SharedAllocation) {
        self.memory = memory
        self.mutex = RobustMutex(memory.base + 8)
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
        try mutex.acquire(timeout: timeout, "Lock.acquire")
    }

    /// Acquires the lock if it is free, without waiting.
    /// - Returns: true when the caller now holds the lock.
    /// - Throws: `.ownerDied` (lock held, as in ``acquire(timeout:)``) or `.misuse` when the calling
    ///   thread already holds it.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func tryAcquire() throws -> Bool {
        try mutex.tryAcquire("Lock.tryAcquire")
    }

    /// Releases the lock.
    /// - Throws: `.misuse` when the calling thread does not hold the lock.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func release() throws {
        try mutex.unlock("Lock.release")
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
        try mutex.enterCriticalSection(timeout: timeout, "Lock.withLock")
    }

    @usableFromInline
    internal func exitWithLock() {
        _ = try? mutex.unlock("Lock.withLock")
    }

    /// Whether some thread (in any process) holds the lock: Python's `locked()`.
    public var isLocked: Bool { mutex.ownerTID != 0 }

    /// Runs a synchronous `body` with the lock held, waiting for it without blocking the cooperative
    /// pool; the async twin of ``withLock(timeout:_:)``.
    ///
    /// The wait happens on a helper thread; the lock is then taken on the caller's own thread and
    /// `body` runs there. Because `body` cannot `await`, the lock is released on the thread that took
    /// it: there is no async `acquire`/`release` pair, so a lock cannot be held across an `await`.
    /// - Throws: as ``withLock(timeout:_:)``; `.cancelled` when the task is cancelled.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) async throws -> R {
        try await mutex.enterCriticalSection(timeout: timeout, "Lock.withLock")
        defer { _ = try? mutex.unlock("Lock.withLock") }
        return try body()
    }

    internal static func ownerDiedError(_ operation: StaticString) -> MultiprocessingError {
        MultiprocessingError(.ownerDied, "\(operation): the previous owner died while holding the lock. The lock is now held by the caller: repair the shared data, then release it.")
    }

    /// Encodes the lock's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws {
        try memory.encode(to: encoder)
    }

    /// Decodes a lock sent by another process: both then use the same shared memory.
    public convenience init(from decoder: any Decoder) throws {
        self.init(memory: try SharedAllocation(from: decoder, kind: SharedKind.lock, size: Lock.size, typeName: "Lock"))
    }
}

extension RobustMutex {
    // What `Lock` and `RLock` (and the primitives built on them) do on acquisition, in one place.

    /// Takes the mutex for `acquire`. When the previous owner died, throws `.ownerDied` with the
    /// mutex held, so that the caller can repair the data and then release it.
    internal func acquire(timeout: Duration?, _ operation: StaticString) throws {
        try Deadline.validate(timeout, operation)
        if try lock(.current(timeout: timeout, operation)) == .afterOwnerDied {
            throw Lock.ownerDiedError(operation)
        }
    }

    /// `tryLock` for `tryAcquire`: whether the caller now holds the mutex; `.ownerDied` as in ``acquire(timeout:_:)``.
    internal func tryAcquire(_ operation: StaticString) throws -> Bool {
        switch try tryLock(operation) {
        case nil: return false
        case .normally?: return true
        case .afterOwnerDied?: throw Lock.ownerDiedError(operation)
        }
    }

    /// Takes the mutex for a `withLock` body. When the previous owner died, the body must not run
    /// on what it left half-changed: the mutex is released again and `.ownerDied` thrown, so that a
    /// retry succeeds.
    internal func enterCriticalSection(timeout: Duration?, _ operation: StaticString) throws {
        try Deadline.validate(timeout, operation)
        if try lock(.current(timeout: timeout, operation)) == .afterOwnerDied {
            try unlock(operation)
            throw Lock.ownerDiedError(operation)
        }
    }

    /// The async twin of ``enterCriticalSection(timeout:_:)``.
    internal nonisolated(nonsending) func enterCriticalSection(timeout: Duration?, _ operation: StaticString) async throws {
        if try await lockAsync(timeout: timeout, operation) == .afterOwnerDied {
            try unlock(operation)
            throw Lock.ownerDiedError(operation)
        }
    }

    /// The async acquisition: try on the caller's thread, wait off the pool until the mutex looks
    /// free, and try again on the caller's thread (a pthread mutex belongs to the thread that locks it).
    internal nonisolated(nonsending) func lockAsync(timeout: Duration?, cancellable: Bool = true,
                                                     _ operation: StaticString) async throws -> Acquired {
        try Deadline.validate(timeout, operation)
        if let acquired = try tryLock(operation) { return acquired }
        return try await lockAsync(deadline: Deadline(timeout: timeout, operation), timeout: timeout,
                                   cancellable: cancellable, operation)
    }

    /// ``lockAsync(timeout:cancellable:_:)`` against a deadline computed earlier (a condition's
    /// `withLock(waitingFor:)` takes its lock several times within one timeout).
    internal nonisolated(nonsending) func lockAsync(deadline: Deadline, timeout: Duration?, cancellable: Bool = true,
                                                     _ operation: StaticString) async throws -> Acquired {
        if let acquired = try tryLock(operation) { return acquired }
        if let acquired = try tryLockAfterSpinning(operation) { return acquired }
        let mutex = self
        while true {
            try await waitOffPool(operation, cancellable: cancellable, restartable: true) { cancellation in
                try mutex.waitUntilFree(WaitContext(deadline: deadline, timeout: timeout,
                                                    cancellation: cancellation, operation: operation))
            }
            if let acquired = try mutex.tryLockAfterSleeping(operation) { return acquired }
        }
    }
}
