import MultiprocessingSystem

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

    /// The largest count: the count is a 32-bit futex word, and `UInt32.max` marks "unbounded".
    internal static let maximumValue = Int(UInt32.max - 1)

    internal init(value: Int, bounded: Bool, _ typeName: StaticString) throws {
        guard value >= 0 && value <= SemaphoreCore.maximumValue else {
            throw MultiprocessingError.misuse("\(typeName)(_ value:): value must be between 0 and \(SemaphoreCore.maximumValue) (it was \(value)).")
        }
        memory = try SharedArena.allocate(size: SemaphoreCore.size)
        count.store(UInt32(value))
        memory.parameter.store(bounded ? UInt32(value) : SemaphoreCore.unbounded)
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
        try Deadline.validate(timeout, operation)
        if tryTake() { return }
        try acquireSlow(.current(timeout: timeout, operation))
    }

    internal func acquireAsync(timeout: Duration?, _ operation: StaticString) async throws {
        try Deadline.validate(timeout, operation)
        if tryTake() { return }
        let context = try WaitContext(timeout: timeout, cancellation: .never, operation: operation)
        let core = self
        try await waitOffPool(operation, restartable: true) { cancellation in
            try core.acquireSlow(WaitContext(deadline: context.deadline, timeout: timeout,
                                             cancellation: cancellation, operation: operation))
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
        guard n >= 1 else {
            throw .misuse("\(operation)(_ n:): n must be at least 1 (it was \(n)).")
        }
        let bound = self.bound
        let limit = bound == SemaphoreCore.unbounded ? SemaphoreCore.maximumValue : Int(bound)
        var current = count.load()
        repeat {
            // n may be huge: compare without adding first.
            if n > limit - Int(current) {
                if bound == SemaphoreCore.unbounded {
                    throw .misuse("\(operation): releasing \(n) would take the count from \(current) past \(SemaphoreCore.maximumValue), the largest count a semaphore holds (a 32-bit word); the count is unchanged.")
                }
                throw .misuse("\(operation): released too many times; the count would exceed the initial value \(bound).")
            }
        } while !count.compareExchange(&current, current + UInt32(n))
        // Sequentially consistent: either a sleeper counted itself before this read, or it sees the new count.
        if sleepers.load() > 0 { count.wake(Int32(clamping: n)) }
    }
}

/// A counting semaphore shared by threads and processes: Python's `threading.Semaphore` and
/// `multiprocessing.Semaphore`.
///
/// `acquire(timeout:)` takes one unit, waiting while the count is 0, and ``release(_:)`` gives
/// units back. It lives in shared memory and travels to child processes (`Codable`).
///
/// Swift's Glibc overlay (which Foundation re-exports on Linux) also declares a `Semaphore`, a
/// pointer type for `sem_open`. In a file that imports Foundation or Glibc, write
/// `Multiprocessing.Semaphore` or use the alias ``CountingSemaphore``.
public final class Semaphore: SemaphoreProtocol, Codable, @unchecked Sendable {
    internal let core: SemaphoreCore

    /// Creates a semaphore holding `value` units.
    /// - Parameter value: The initial count (Python's default is 1), from 0 to 4,294,967,294.
    /// - Throws: `.misuse` naming `value` when it is out of that range (Python raises `ValueError`);
    ///   `.systemCall` when shared memory cannot be created.
    public init(_ value: Int = 1) throws {
        core = try SemaphoreCore(value: value, bounded: false, "Semaphore")
    }

    /// The current count (a snapshot; other threads may change it at once).
    public var value: Int { Int(core.count.load()) }

    /// Takes one unit, waiting while the count is 0.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: `.timedOut`, `.cancelled` when the waiting ``OSThread`` was cancelled, or `.misuse`
    ///   when `timeout` is negative.
    public func acquire(timeout: Duration? = nil) throws {
        try core.acquire(timeout: timeout, "Semaphore.acquire")
    }

    /// Takes one unit if the count is above 0, without waiting.
    /// - Returns: true when a unit was taken.
    public func tryAcquire() -> Bool { core.tryTake() }

    /// The async twin of ``acquire(timeout:)``: waits on a helper thread, never on the cooperative pool.
    /// - Throws: `.timedOut`, `.cancelled` when the task is cancelled, or `.misuse` when `timeout`
    ///   is negative.
    public func acquire(timeout: Duration? = nil) async throws {
        try await core.acquireAsync(timeout: timeout, "Semaphore.acquire")
    }

    /// Gives back `n` units, waking up to `n` waiters.
    /// - Parameter n: How many units (Python's `release(n)`), at least 1.
    /// - Throws: `.misuse` when `n` is below 1, or when the count would pass
    ///   4,294,967,294 (the count is a 32-bit word; it never wraps). The count is then unchanged.
    public func release(_ n: Int = 1) throws {
        try core.release(n, "Semaphore.release")
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
public final class BoundedSemaphore: SemaphoreProtocol, Codable, @unchecked Sendable {
    internal let core: SemaphoreCore

    /// Creates a bounded semaphore holding `value` units, which is also its upper bound.
    /// - Parameter value: The initial count and bound (Python's default is 1), from 0 to 4,294,967,294.
    /// - Throws: `.misuse` naming `value` when it is out of that range; `.systemCall` when shared
    ///   memory cannot be created.
    public init(_ value: Int = 1) throws {
        core = try SemaphoreCore(value: value, bounded: true, "BoundedSemaphore")
    }

    /// The current count (a snapshot).
    public var value: Int { Int(core.count.load()) }

    /// The bound: the initial value.
    public var bound: Int { Int(core.bound) }

    /// Takes one unit, waiting while the count is 0.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: `.timedOut`, `.cancelled` when the waiting ``OSThread`` was cancelled, or `.misuse`
    ///   when `timeout` is negative.
    public func acquire(timeout: Duration? = nil) throws {
        try core.acquire(timeout: timeout, "BoundedSemaphore.acquire")
    }

    /// Takes one unit if the count is above 0, without waiting.
    /// - Returns: true when a unit was taken.
    public func tryAcquire() -> Bool { core.tryTake() }

    /// The async twin of ``acquire(timeout:)``.
    /// - Throws: `.timedOut`, `.cancelled` when the task is cancelled, or `.misuse` when `timeout`
    ///   is negative.
    public func acquire(timeout: Duration? = nil) async throws {
        try await core.acquireAsync(timeout: timeout, "BoundedSemaphore.acquire")
    }

    /// Gives back `n` units, waking up to `n` waiters.
    /// - Parameter n: How many units, at least 1.
    /// - Throws: `.misuse` when `n` is below 1, or when the count would exceed the bound (more
    ///   releases than acquires).
    public func release(_ n: Int = 1) throws {
        try core.release(n, "BoundedSemaphore.release")
    }


    /// Encodes the semaphore's shared memory.
    public func encode(to encoder: any Encoder) throws { try core.memory.encode(to: encoder) }

    /// Decodes a bounded semaphore sent by another process.
    public init(from decoder: any Decoder) throws {
        core = try SemaphoreCore(from: decoder, bounded: true)
    }
}
