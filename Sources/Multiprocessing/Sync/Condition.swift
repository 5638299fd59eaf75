import Synchronization
import MultiprocessingSystem

/// A condition variable shared by threads and processes: Python's `threading.Condition` and
/// `multiprocessing.Condition`.
///
/// A condition pairs a lock (an ``RLock`` by default, as in Python, or a ``Lock``) with a way to
/// sleep until another thread or process calls ``notify(_:)``. Hold the lock to call ``wait(timeout:)``,
/// ``notify(_:)`` and ``notifyAll()``; `wait` releases it while sleeping and takes it back before
/// returning (also when it throws).
///
/// `notify(n)` wakes at most `n` waiters: each notification is a token that exactly one waiter
/// consumes, so a notification is never lost to, nor shared by, a waiter that had not yet started to
/// sleep. The tokens and the waiter count live in shared memory beside a futex word.
///
/// ```swift
/// let condition = try Condition()
/// try condition.withLock {
///     try condition.wait(for: { !queue.isEmpty })
/// }
/// // In async code (the lock is never held across an await):
/// let item = try await condition.withLock(waitingFor: { !queue.isEmpty }) { queue.removeFirst() }
/// ```
public final class Condition: ConditionProtocol, Codable, @unchecked Sendable {
    // Layout: kind (4) | unused (4) | sequence (4, futex word) | unused (4) | waiters << 32 | tokens (8).
    internal let memory: SharedAllocation
    private var sequence: SharedWord { SharedWord(memory.base + 8) }
    private var counts: SharedWord64 { SharedWord64(memory.base + 16) }
    internal static let size = 24

    private enum Underlying {
        case lock(Lock)
        case rlock(RLock)
    }
    private let underlying: Underlying

    private var mutex: RobustMutex {
        switch underlying {
        case .lock(let lock): return lock.mutex
        case .rlock(let rlock): return rlock.mutex
        }
    }

    /// Creates a condition over a new ``RLock``, as Python's `Condition()` does.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public convenience init() throws {
        try self.init(RLock())
    }

    /// Creates a condition over `lock`.
    /// - Parameter lock: The re-entrant lock to pair with.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public convenience init(_ lock: RLock) throws {
        try self.init(underlying: .rlock(lock))
    }

    /// Creates a condition over a plain ``Lock``.
    /// - Parameter lock: The lock to pair with.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public convenience init(lock: Lock) throws {
        try self.init(underlying: .lock(lock))
    }

    private init(underlying: Underlying) throws {
        self.underlying = underlying
        memory = try SharedArena.allocate(size: Condition.size)
        memory.kind.store(SharedKind.condition)
    }

    // MARK: the lock

    /// Acquires the condition's lock.
    /// - Throws: as ``Lock/acquire(timeout:)`` (`.ownerDied` with the lock held, `.timedOut`, `.cancelled`).
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func acquire(timeout: Duration? = nil) throws {
        try mutex.acquire(timeout: timeout, "Condition.acquire")
    }

    /// Takes the condition's lock if it is free (or, for an ``RLock``, held by the calling thread).
    /// - Returns: true when the caller now holds the lock.
    /// - Throws: `.ownerDied` with the lock held, as ``Lock/tryAcquire()``.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func tryAcquire() throws -> Bool {
        try mutex.tryAcquire("Condition.tryAcquire")
    }

    /// Whether some thread, in any process, holds the condition's lock.
    public var isLocked: Bool { mutex.ownerTID != 0 }

    /// Releases the condition's lock.
    /// - Throws: `.misuse` when the calling thread does not hold it.
    @available(*, noasync, message: "a task can resume on another thread after an await, and a lock belongs to a thread: use withLock, whose body is synchronous")
    public func release() throws {
        try mutex.unlock("Condition.release")
    }

    /// Runs `body` holding the condition's lock.
    /// - Throws: as `Lock/withLock(timeout:_:)`.
    public func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        switch underlying {
        case .lock(let lock): return try lock.withLock(timeout: timeout, body)
        case .rlock(let rlock): return try rlock.withLock(timeout: timeout, body)
        }
    }

    /// The async twin of ``withLock(timeout:_:)``, for a synchronous `body`.
    /// - Throws: as `Lock/withLock(timeout:_:)`; `.cancelled` when the task is cancelled.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) async throws -> R {
        switch underlying {
        case .lock(let lock): return try await lock.withLock(timeout: timeout, body)
        case .rlock(let rlock): return try await rlock.withLock(timeout: timeout, body)
        }
    }

    // MARK: waiting

    /// Releases the lock, sleeps until notified, and takes the lock back.
    ///
    /// The lock is held again when this returns *or throws*. Like POSIX and Python, check the state you
    /// wait for in a loop (or use ``wait(for:timeout:)``): another thread may have changed it between
    /// the notification and the re-acquisition.
    /// - Parameter timeout: How long to sleep; `nil` sleeps until notified.
    /// - Throws: `.misuse` when the calling thread does not hold the lock; `.timedOut`; `.cancelled`
    ///   when the waiting ``OSThread`` was cancelled; `.ownerDied` when the lock's owner died while
    ///   this thread re-took it (the lock is held).
    public func wait(timeout: Duration? = nil) throws {
        // The context first: a bad timeout is refused before the lock is let go.
        let context = try WaitContext.current(timeout: timeout, "Condition.wait")
        let (ticket, depth) = try prepareWait("Condition.wait")
        var failure: MultiprocessingError?
        do {
            try sleep(ticket, context)
        } catch {
            failure = error
        }
        let died = try reacquire(depth: depth, .uncancellable("Condition.wait"))
        if let failure { throw failure }
        if died { throw Lock.ownerDiedError("Condition.wait") }
    }

    /// Waits until `predicate` is true, re-checking it after each notification: Python's `wait_for`.
    /// - Parameters:
    ///   - predicate: Evaluated with the lock held.
    ///   - timeout: The total time to wait; `nil` waits for ever.
    /// - Throws: `.timedOut` when `predicate` is still false at the deadline, and what
    ///   ``wait(timeout:)`` or `predicate` throw.
    public func wait(for predicate: () throws -> Bool, timeout: Duration? = nil) throws {
        let deadline = try Deadline(timeout: timeout, "Condition.wait(for:)")
        while try !predicate() {
            let left = deadline.remainingNanoseconds
            if let left, left == 0 {
                throw MultiprocessingError(.timedOut, "Condition.wait(for:) timed out after \(timeout.map { "\($0)" } ?? "") with the predicate still false.")
            }
            do {
                try wait(timeout: left.map { .nanoseconds($0) })
            } catch let error as MultiprocessingError where error.code == .timedOut {
                if try predicate() { return }
                throw MultiprocessingError(.timedOut, "Condition.wait(for:) timed out after \(timeout.map { "\($0)" } ?? "") with the predicate still false.")
            }
        }
    }

    /// Waits until `predicate` is true, then runs `body` with the lock held: Python's
    /// `with condition: condition.wait_for(predicate); body()`, for async code.
    ///
    /// Takes the lock (waiting off the cooperative pool), evaluates `predicate` with it held and, while
    /// that is false, releases it and sleeps on a helper thread until notified, then takes it again.
    /// Once `predicate` holds, `body` runs with the lock held and the lock is released. `predicate`
    /// and `body` are synchronous and run on the caller's thread, so the lock is never held across
    /// an `await`: this replaces an async `acquire`, `wait` and `release`, which could not be used
    /// safely (a task may resume on another thread after each `await`, and the lock belongs to a
    /// thread).
    /// - Parameters:
    ///   - predicate: The state to wait for, evaluated with the lock held.
    ///   - timeout: The total time to wait, for the lock and for the predicate; `nil` waits for ever.
    ///   - body: Runs with the lock held once `predicate` is true.
    /// - Throws: `.timedOut` when `predicate` is still false at the deadline (the lock is released);
    ///   `.cancelled` when the task is cancelled; `.ownerDied` when the lock's previous owner died
    ///   (the lock is released and neither closure runs on what it left, as in
    ///   `Lock/withLock(timeout:_:)`); `.misuse` for a negative `timeout`; what `predicate` or
    ///   `body` throw.
    public nonisolated(nonsending) func withLock<R>(waitingFor predicate: () throws -> Bool, timeout: Duration? = nil,
                                                    _ body: () throws -> R) async throws -> R {
        let operation: StaticString = "Condition.withLock(waitingFor:)"
        let deadline = try Deadline(timeout: timeout, operation)
        let mutex = self.mutex
        while true {
            if try await mutex.lockAsync(deadline: deadline, timeout: timeout, operation) == .afterOwnerDied {
                try mutex.unlock(operation)
                throw Lock.ownerDiedError(operation)
            }
            // The lock is held, on this thread, until the next unlock: nothing here awaits.
            let ticket: UInt32
            do {
                if try predicate() {
                    defer { _ = try? mutex.unlock(operation) }
                    return try body()
                }
                if deadline.hasPassed {
                    throw MultiprocessingError(.timedOut, "\(operation) timed out\(timeout.map { " after \($0)" } ?? "") with the predicate still false.")
                }
                ticket = try prepareWait(operation).ticket
            } catch {
                if mutex.ownerTID == ThreadID.current { _ = try? mutex.unlock(operation) }
                throw error
            }
            // Unlocked: sleep off the pool until notified, then take the lock and look again.
            let slept = SleptFlag()
            do {
                try await waitOffPool(operation) { [self] cancellation in
                    slept.value.store(true, ordering: .sequentiallyConsistent)
                    try self.sleep(ticket, WaitContext(deadline: deadline, timeout: timeout,
                                                       cancellation: cancellation, operation: operation))
                }
            } catch let error as MultiprocessingError where error.code == .timedOut {
                // As Python's wait_for: one last look at the predicate, under the lock.
                if try await mutex.lockAsync(timeout: nil, cancellable: false, operation) == .afterOwnerDied {
                    try mutex.unlock(operation)
                    throw Lock.ownerDiedError(operation)
                }
                defer { _ = try? mutex.unlock(operation) }
                if try predicate() { return try body() }
                throw error
            } catch {
                // Cancelled before the helper ran: this waiter is still registered. If it was
                // notified meanwhile it takes its token (the notification is not lost) and looks
                // at the predicate again; otherwise it leaves.
                if !slept.value.load(ordering: .sequentiallyConsistent), leave() { continue }
                throw error
            }
        }
    }

    /// Registers the caller as a waiter and releases the lock completely.
    private func prepareWait(_ operation: StaticString) throws(MultiprocessingError) -> (ticket: UInt32, depth: Int) {
        let depth = try ownedDepth(operation)
        // Register before releasing: a notify that follows the release sees this waiter.
        var current = counts.load()
        while !counts.compareExchange(&current, current &+ (1 << 32)) {}
        let ticket = sequence.load()
        for _ in 0..<depth { try mutex.unlock(operation) }
        return (ticket, depth)
    }

    /// Sleeps until this waiter has consumed a notification token. On timeout or cancellation it
    /// unregisters, unless every remaining waiter (itself included) was notified, in which case it
    /// takes its token and returns normally so that no notification is lost.
    private func sleep(_ ticket: UInt32, _ context: WaitContext) throws(MultiprocessingError) {
        var seen = ticket
        while true {
            if takeToken() { return }
            do {
                try context.wait(on: sequence, expected: seen)
            } catch {
                if leave() { return }
                throw error
            }
            seen = sequence.load()
        }
    }

    private func takeToken() -> Bool {
        var current = counts.load()
        while current & 0xFFFF_FFFF > 0 {
            if counts.compareExchange(&current, current &- (1 << 32) &- 1) { return true }
        }
        return false
    }

    /// Unregisters a waiter that gave up; returns true when it had to take a token instead.
    private func leave() -> Bool {
        var current = counts.load()
        while true {
            let waiters = current >> 32, tokens = current & 0xFFFF_FFFF
            let takeToken = tokens > 0 && tokens >= waiters
            let next = takeToken ? current &- (1 << 32) &- 1 : current &- (1 << 32)
            if counts.compareExchange(&current, next) { return takeToken }
        }
    }

    private func reacquire(depth: Int, _ context: WaitContext) throws(MultiprocessingError) -> Bool {
        var died = false
        for _ in 0..<depth {
            if try mutex.lock(context) == .afterOwnerDied { died = true }
        }
        return died
    }

    /// How many times the calling thread holds the lock; throws `.misuse` when it does not.
    private func ownedDepth(_ operation: StaticString) throws(MultiprocessingError) -> Int {
        guard mutex.ownerTID == ThreadID.current else {
            throw .misuse("\(operation): the calling thread must hold the condition's lock.")
        }
        switch underlying {
        case .lock: return 1
        case .rlock(let rlock): return max(1, Int(rlock.mutex.count))
        }
    }

    /// How many waiters are registered (asleep or about to sleep), for tests and diagnostics.
    internal var registeredWaiters: Int { Int(counts.load() >> 32) }

    /// Whether the calling thread holds the lock, for tests.
    internal var isOwnedByCurrentThreadForTests: Bool { mutex.ownerTID == ThreadID.current }

    // MARK: notifying

    /// Wakes up to `n` threads or processes waiting on this condition.
    /// - Parameter n: How many waiters to wake (Python's default is 1).
    /// - Throws: `.misuse` when the calling thread does not hold the lock, or `n` is negative.
    public func notify(_ n: Int = 1) throws {
        _ = try ownedDepth("Condition.notify")
        guard n >= 0 else {
            throw MultiprocessingError.misuse("Condition.notify: the number of waiters to wake must not be negative (it was \(n)).")
        }
        var current = counts.load()
        var granted: UInt64 = 0
        while true {
            let waiters = current >> 32, tokens = current & 0xFFFF_FFFF
            // More tokens than waiters only if another process wrote the word: nothing to grant.
            granted = min(UInt64(n), waiters > tokens ? waiters - tokens : 0)
            if granted == 0 { return }
            if counts.compareExchange(&current, current &+ granted) { break }
        }
        sequence.add(1)
        sequence.wake(Int32(clamping: granted))
    }

    /// Wakes every thread or process waiting on this condition.
    /// - Throws: `.misuse` when the calling thread does not hold the lock.
    public func notifyAll() throws {
        _ = try ownedDepth("Condition.notifyAll")
        var current = counts.load()
        while true {
            let waiters = current >> 32
            if waiters == current & 0xFFFF_FFFF { return }
            if counts.compareExchange(&current, (waiters << 32) | waiters) { break }
        }
        sequence.add(1)
        sequence.wakeAll()
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey { case memory, lock, rlock }

    /// Encodes the condition's shared memory and its lock.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(SharedAllocationBox<ConditionMemory>(memory), forKey: .memory)
        switch underlying {
        case .lock(let lock): try container.encode(lock, forKey: .lock)
        case .rlock(let rlock): try container.encode(rlock, forKey: .rlock)
        }
    }

    /// Decodes a condition (and its lock) sent by another process.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let rlock = try container.decodeIfPresent(RLock.self, forKey: .rlock) {
            underlying = .rlock(rlock)
        } else {
            underlying = .lock(try container.decode(Lock.self, forKey: .lock))
        }
        let box = try container.decode(SharedAllocationBox<ConditionMemory>.self, forKey: .memory)
        memory = box.allocation
    }
}

private final class SleptFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// Describes one kind of shared object for ``SharedAllocationBox``.
internal protocol SharedMemoryKind {
    static var kind: UInt32 { get }
    static var size: Int { get }
    static var typeName: StaticString { get }
}

internal enum ConditionMemory: SharedMemoryKind {
    static var kind: UInt32 { SharedKind.condition }
    static var size: Int { Condition.size }
    static var typeName: StaticString { "Condition" }
}

/// A ``SharedAllocation`` as a nested Codable value.
internal struct SharedAllocationBox<Kind: SharedMemoryKind>: Codable, @unchecked Sendable {
    let allocation: SharedAllocation
    init(_ allocation: SharedAllocation) { self.allocation = allocation }
    func encode(to encoder: any Encoder) throws { try allocation.encode(to: encoder) }
    init(from decoder: any Decoder) throws {
        allocation = try SharedAllocation(from: decoder, kind: Kind.kind, size: Kind.size, typeName: Kind.typeName)
    }
}
