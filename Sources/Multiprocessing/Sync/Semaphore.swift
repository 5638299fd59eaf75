/// The shared state of ``Semaphore`` and ``BoundedSemaphore``.
///
/// Layout: kind (4) | bound (4, UInt32.max when unbounded) | count (4) | sleepers (4). The count is a
/// futex word: taking and giving units are compare-and-swaps, and only a waiter that must sleep, or
/// a release that sees sleepers, makes a system call.
internal struct SemaphoreCore: @unchecked Sendable {
    internal let memory: SharedAllocation
    internal var count: SharedWord { SharedWord(memory.base + 8) }
    internal var sleepers: SharedWord { SharedWord(memory.base + 12) }
    internal var bound: UInt32 { memory.parameter.load() }
    internal static let size = 16
    internal static let unbounded = UInt32.max

    internal init(value: Int, bound: UInt32) throws {
        precondition(value >= 0 && value < Int(UInt32.max), "Semaphore: the initial value must be between 0 and 2^32 - 2")
        memory = try SharedArena.allocate(size: SemaphoreCore.size)
        count.store(UInt32(value))
        memory.parameter.store(bound)
        memory.kind.store(SharedKind.semaphore)
    }

    internal init(from decoder: any Decoder, bounded: Bool) throws {
        let typeName: StaticString = bounded ? "BoundedSemaphore" : "Semaphore"
        memory = try SharedAllocation(from: decoder, kind: SharedKind.semaphore, size: SemaphoreCore.size, typeName: typeName)
        guard (memory.parameter.load() != SemaphoreCore.unbounded) == bounded else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "The shared memory sent as a \(typeName) holds the other kind of semaphore."))
        }
    }

    @inline(__always)
    internal func tryTake() -> Bool {
        var current = count.load()
        while current > 0 {
            if count.compareExchange(&current, current - 1) { return true }
        }
        return false
    }

    @inline(__always)
    internal func acquire(timeout: Duration?, _ operation: StaticString) throws(MultiprocessingError) {
        if tryTake() { return }
        try acquireSlow(.current(timeout: timeout, operation))
    }

    internal func acquireAsync(timeout: Duration?, _ operation: StaticString) async throws {
        if tryTake() { return }
        let core = self
        try await waitOffPool(operation) { cancellation in
            try core.acquireSlow(WaitContext(timeout: timeout, cancellation: cancellation, operation: operation))
        }
    }

    internal func acquireSlow(_ context: WaitContext) throws(MultiprocessingError) {
        sleepers.add(1)
        defer { sleepers.subtract(1) }
        while !tryTake() {
            do {
                try context.wait(on: count, expected: 0)
            } catch {
                // A release may have woken this waiter just as it gave up: pass the wake-up on.
                if count.load() > 0 { count.wake(1) }
                throw error
            }
        }
    }

    internal func release(_ n: Int, _ operation: StaticString) throws(MultiprocessingError) {
        precondition(n >= 1, "Semaphore.release: n must be at least 1")
        let bound = self.bound
        if bound == SemaphoreCore.unbounded {
            count.add(UInt32(n))
        } else {
            var current = count.load()
            repeat {
                if Int(current) + n > Int(bound) {
                    throw .misuse("\(operation): released too many times; the count would exceed the initial value \(bound).")
                }
            } while !count.compareExchange(&current, current + UInt32(n))
        }
        // Sequentially consistent: either a sleeper counted itself before this read, or it sees the new count.
        if sleepers.load() > 0 { count.wake(Int32(clamping: n)) }
    }
}

/// A counting semaphore shared by threads and processes: Python's `threading.Semaphore` and
/// `multiprocessing.Semaphore`.
///
/// ``acquire(timeout:)`` takes one unit, waiting while the count is 0, and ``release(_:)`` gives
/// units back. It lives in shared memory and travels to child processes (`Codable`).
///
/// Swift's Glibc overlay (which Foundation re-exports on Linux) also declares a `Semaphore`, a
/// pointer type for `sem_open`. In a file that imports Foundation or Glibc, write
/// `Multiprocessing.Semaphore` or use the alias ``CountingSemaphore``.
public final class Semaphore: Codable, @unchecked Sendable {
    internal let core: SemaphoreCore

    /// Creates a semaphore holding `value` units.
    /// - Parameter value: The initial count (Python's default is 1).
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public init(_ value: Int = 1) throws {
        core = try SemaphoreCore(value: value, bound: SemaphoreCore.unbounded)
    }

    /// The current count (a snapshot; other threads may change it at once).
    public var value: Int { Int(core.count.load()) }

    /// Takes one unit, waiting while the count is 0.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: `.timedOut`, or `.cancelled` when the waiting ``OSThread`` was cancelled.
    public func acquire(timeout: Duration? = nil) throws {
        try core.acquire(timeout: timeout, "Semaphore.acquire")
    }

    /// Takes one unit if the count is above 0, without waiting.
    /// - Returns: true when a unit was taken.
    public func tryAcquire() -> Bool { core.tryTake() }

    /// The async twin of ``acquire(timeout:)``: waits on a helper thread, never on the cooperative pool.
    /// - Throws: `.timedOut`, or `.cancelled` when the task is cancelled.
    public func acquire(timeout: Duration? = nil) async throws {
        try await core.acquireAsync(timeout: timeout, "Semaphore.acquire")
    }

    /// Gives back `n` units, waking up to `n` waiters.
    /// - Parameter n: How many units (Python's `release(n)`), at least 1.
    public func release(_ n: Int = 1) {
        // An unbounded semaphore cannot fail to release.
        try? core.release(n, "Semaphore.release")
    }

    /// Runs `body` holding one unit, giving it back afterwards.
    /// - Throws: what ``acquire(timeout:)`` throws, or what `body` throws.
    public func withPermit<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        try acquire(timeout: timeout)
        defer { release() }
        return try body()
    }

    /// Encodes the semaphore's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws { try core.memory.encode(to: encoder) }

    /// Decodes a semaphore sent by another process.
    public init(from decoder: any Decoder) throws {
        core = try SemaphoreCore(from: decoder, bounded: false)
    }
}

/// Another name for ``Semaphore``, free of the clash with Glibc's `Semaphore` pointer type.
public typealias CountingSemaphore = Semaphore

/// A semaphore whose count may not rise above its initial value: Python's `BoundedSemaphore`.
///
/// Releasing it more often than it was acquired throws ``MultiprocessingError/Code/misuse``.
public final class BoundedSemaphore: Codable, @unchecked Sendable {
    internal let core: SemaphoreCore

    /// Creates a bounded semaphore holding `value` units, which is also its upper bound.
    /// - Parameter value: The initial count and bound (Python's default is 1).
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public init(_ value: Int = 1) throws {
        core = try SemaphoreCore(value: value, bound: UInt32(value))
    }

    /// The current count (a snapshot).
    public var value: Int { Int(core.count.load()) }

    /// The bound: the initial value.
    public var bound: Int { Int(core.bound) }

    /// Takes one unit, waiting while the count is 0.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: `.timedOut`, or `.cancelled` when the waiting ``OSThread`` was cancelled.
    public func acquire(timeout: Duration? = nil) throws {
        try core.acquire(timeout: timeout, "BoundedSemaphore.acquire")
    }

    /// Takes one unit if the count is above 0, without waiting.
    /// - Returns: true when a unit was taken.
    public func tryAcquire() -> Bool { core.tryTake() }

    /// The async twin of ``acquire(timeout:)``.
    /// - Throws: `.timedOut`, or `.cancelled` when the task is cancelled.
    public func acquire(timeout: Duration? = nil) async throws {
        try await core.acquireAsync(timeout: timeout, "BoundedSemaphore.acquire")
    }

    /// Gives back `n` units, waking up to `n` waiters.
    /// - Parameter n: How many units, at least 1.
    /// - Throws: `.misuse` when the count would exceed the bound (more releases than acquires).
    public func release(_ n: Int = 1) throws {
        try core.release(n, "BoundedSemaphore.release")
    }

    /// Runs `body` holding one unit, giving it back afterwards.
    /// - Throws: what ``acquire(timeout:)`` throws, or what `body` throws.
    public func withPermit<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        try acquire(timeout: timeout)
        defer { _ = try? release() }
        return try body()
    }

    /// Encodes the semaphore's shared memory.
    public func encode(to encoder: any Encoder) throws { try core.memory.encode(to: encoder) }

    /// Decodes a bounded semaphore sent by another process.
    public init(from decoder: any Decoder) throws {
        core = try SemaphoreCore(from: decoder, bounded: true)
    }
}
