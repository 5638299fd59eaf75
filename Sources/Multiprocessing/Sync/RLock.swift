import MultiprocessingSystem

/// A re-entrant lock shared by threads and processes: Python's `threading.RLock`.
///
/// The thread that holds it can acquire it again; it is free once released as many times as it was
/// acquired. Releasing an `RLock` the calling thread does not hold throws
/// ``MultiprocessingError/Code/misuse``. Like ``Lock`` it lives in shared memory, travels to child
/// processes (`Codable`), makes no system call when uncontended, and survives its owner's death:
/// the next acquirer gets it (at depth 1) and ``acquire(timeout:)`` throws `.ownerDied` with the
/// lock held. As for ``Lock``, ``acquire(timeout:)`` and ``release()`` are unavailable from async
/// contexts: async code uses the async `withLock(timeout:_:)`, whose body cannot `await`.
public final class RLock: Locking, Codable, @unchecked Sendable {
    internal let core: LockCore<RecursiveLockFlavor>
    internal var mutex: RobustMutex { core.mutex }

    /// Creates an unlocked re-entrant lock in shared memory.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public init() throws {
        core = try LockCore()
    }

    /// A view of a recursive mutex that another object's memory holds at offset 8 (the built-in lock
    /// of ``SharedValue`` and ``SharedArray``). Encoding it sends the whole object's memory, and
    /// decoding that as an `RLock` fails on the kind check: send the owning object instead.
    internal init(viewing memory: SharedAllocation) {
        core = LockCore(viewing: memory)
    }

    /// Acquires the lock, or acquires it once more when the calling thread holds it.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: `.ownerDied` (the previous owner died; the lock is now held by the caller),
    ///   `.timedOut`, `.cancelled` when the waiting ``OSThread`` was cancelled, or `.misuse` when
    ///   `timeout` is negative.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func acquire(timeout: Duration? = nil) throws {
        try core.acquire(timeout: timeout)
    }

    /// Acquires the lock if it is free or already held by the calling thread, without waiting.
    /// - Returns: true when the caller now holds the lock.
    /// - Throws: `.ownerDied`, with the lock held.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func tryAcquire() throws -> Bool {
        try core.tryAcquire()
    }

    /// Releases one level of the lock.
    /// - Throws: `.misuse` when the calling thread does not hold the lock.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func release() throws {
        try core.release()
    }

    /// Runs `body` with the lock held (once more), releasing that level afterwards.
    ///
    /// If the previous owner died, `body` does not run: the lock is released and `.ownerDied` thrown
    /// (see `Lock/withLock(timeout:_:)`).
    /// - Throws: what ``acquire(timeout:)`` throws, or what `body` throws.
    @inlinable
    public func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
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

    /// Whether some thread (in any process) holds the lock.
    public var isLocked: Bool { core.isLocked }

    /// Whether the calling thread holds the lock.
    public var isOwnedByCurrentThread: Bool { core.isOwnedByCurrentThread }

    /// How many times the calling thread holds the lock (0 when it does not).
    public var recursionDepth: Int {
        isOwnedByCurrentThread ? Int(mutex.count) : 0
    }

    /// The async twin of ``withLock(timeout:_:)``, for a synchronous `body`: waits off the
    /// cooperative pool, then takes the lock and runs `body` on the caller's thread. There is no
    /// async `acquire`/`release` pair, so the lock cannot be held across an `await` (see ``Lock``).
    /// - Throws: as ``withLock(timeout:_:)``; `.cancelled` when the task is cancelled.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) async throws -> R {
        try await core.withLock(timeout: timeout, body)
    }

    /// Encodes the lock's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws {
        try core.encode(to: encoder)
    }

    /// Decodes a lock sent by another process.
    public init(from decoder: any Decoder) throws {
        core = try LockCore(from: decoder)
    }
}
