import MultiprocessingSystem

/// One value in shared memory, with a built-in lock: Python's `multiprocessing.Value`.
///
/// `T` is any bitwise-copyable type (integers, floating point, fixed-size structs of them): its bytes
/// are the value, so they mean the same in every process. Pass the `SharedValue` to a child in a
/// task's arguments (it is `Codable`) and both processes see one value.
///
/// Read and write it under its lock with ``value``, ``load(timeout:)``, ``store(_:timeout:)`` or
/// `withLock(timeout:_:)` (for read-modify-write, such as `+= 1`). For integers there are also
/// lock-free atomic operations (``add(_:)``, ``compareExchange(expected:desired:)``...). They do not
/// take the lock: use either the atomics or the lock for one value, not both at once.
///
/// ```swift
/// let counter = try SharedValue(0)
/// try counter.withLock { $0 += 1 }   // or: counter.add(1)
/// ```
public final class SharedValue<T: BitwiseCopyable>: Codable, @unchecked Sendable {
    // Layout: kind (4) | size of T (4) | robust lock (48) | padding | T.
    internal let memory: SharedAllocation
    internal let mutex: RobustMutex
    internal static var valueOffset: Int {
        let alignment = max(8, MemoryLayout<T>.alignment)
        return (8 + RobustMutex.size + alignment - 1) / alignment * alignment
    }
    internal static var size: Int { valueOffset + MemoryLayout<T>.size }
    internal var pointer: UnsafeMutablePointer<T> {
        (memory.base + SharedValue.valueOffset).assumingMemoryBound(to: T.self)
    }

    /// Creates a shared value.
    /// - Parameter initial: The first value.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public init(_ initial: T) throws {
        precondition(MemoryLayout<T>.alignment <= SharedArena.slotAlignment, "SharedValue: T is over-aligned")
        memory = try SharedArena.allocate(size: SharedValue.size)
        mutex = RobustMutex(memory.base + 8)
        // Re-entrant, as Python's `get_lock()` is an RLock: `lock.withLock { value += 1 }` re-enters it.
        try mutex.initialize(recursive: true)
        pointer.initialize(to: initial)
        memory.parameter.store(UInt32(MemoryLayout<T>.size))
        memory.kind.store(SharedKind.value)
    }

    /// The built-in lock (Python's `get_lock()`): the same lock ``value``, `withLock(timeout:_:)`
    /// and the other accessors take. It is re-entrant, as Python's is, so that the read-modify-write
    /// idiom `try counter.lock.withLock { counter.value += 1 }` (Python's
    /// `with v.get_lock(): v.value += 1`) is exact: the accessors inside take the lock once more.
    public var lock: RLock { RLock(viewing: memory) }

    /// The value, read or written under the lock.
    ///
    /// The lock is awaited without a timeout or cancellation, and a dead previous owner is ignored (a
    /// plain read or write needs no repair). Use ``load(timeout:)`` and ``store(_:timeout:)`` to see
    /// those errors. `value += 1` alone is a read and then a write, each under the lock: another
    /// process may write between them. Hold ``lock`` around it, or use `withLock(timeout:_:)`.
    public var value: T {
        get { mutex.withInternalLock("SharedValue.value") { pointer.pointee } }
        set { mutex.withInternalLock("SharedValue.value") { pointer.pointee = newValue } }
    }

    /// Reads the value under the lock.
    /// - Throws: as ``Lock/acquire(timeout:)``; on `.ownerDied` the lock is released again.
    public func load(timeout: Duration? = nil) throws -> T {
        try withLock(timeout: timeout) { $0 }
    }

    /// Writes the value under the lock.
    /// - Throws: as ``Lock/acquire(timeout:)``.
    public func store(_ newValue: T, timeout: Duration? = nil) throws {
        try withLock(timeout: timeout) { $0 = newValue }
    }

    /// Runs `body` on the value with the lock held: the way to read-modify-write.
    ///
    /// If the previous owner died holding the lock, `body` still runs (the value is whatever the dead
    /// owner left) and `.ownerDied` is thrown afterwards, so the caller learns of it.
    /// - Throws: as ``Lock/acquire(timeout:)``, or what `body` throws.
    public func withLock<R>(timeout: Duration? = nil, _ body: (inout T) throws -> R) throws -> R {
        try Deadline.validate(timeout, "SharedValue.withLock")
        let acquired = try mutex.lock(.current(timeout: timeout, "SharedValue.withLock"))
        defer { _ = try? mutex.unlock("SharedValue.withLock") }
        let result = try body(&pointer.pointee)
        if acquired == .afterOwnerDied { throw Lock.ownerDiedError("SharedValue.withLock") }
        return result
    }

    /// The async twin of ``withLock(timeout:_:)``, for a synchronous `body`.
    /// - Throws: as ``withLock(timeout:_:)``; `.cancelled` when the task is cancelled.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: (inout T) throws -> R) async throws -> R {
        let acquired = try await mutex.lockAsync(timeout: timeout, "SharedValue.withLock")
        defer { _ = try? mutex.unlock("SharedValue.withLock") }
        let result = try body(&pointer.pointee)
        if acquired == .afterOwnerDied { throw Lock.ownerDiedError("SharedValue.withLock") }
        return result
    }

    private enum CodingKeys: String, CodingKey { case memory }

    /// Encodes the value's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws {
        try memory.encode(to: encoder)
    }

    /// Decodes a shared value sent by another process; `T` must be the sender's `T`.
    public init(from decoder: any Decoder) throws {
        memory = try SharedAllocation(from: decoder, kind: SharedKind.value, size: SharedValue.size, typeName: "SharedValue")
        mutex = RobustMutex(memory.base + 8)
        guard memory.parameter.load() == UInt32(MemoryLayout<T>.size) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "The SharedValue holds a \(memory.parameter.load())-byte value, not a \(T.self)."))
        }
    }
}

extension SharedValue where T: FixedWidthInteger {
    /// Adds `delta` atomically (wrapping on overflow), without the lock.
    /// - Returns: The new value.
    @discardableResult
    public func add(_ delta: T) -> T {
        if let result = SharedAtomics.add(UnsafeMutableRawPointer(pointer), delta) { return result }
        return lockedFallback { $0 &+= delta; return $0 }
    }

    /// Subtracts `delta` atomically (wrapping), without the lock.
    /// - Returns: The new value.
    @discardableResult
    public func subtract(_ delta: T) -> T { add(0 &- delta) }

    /// Replaces the value with `desired` if it equals `expected`, atomically, without the lock.
    /// - Returns: Whether it was replaced, and the value found.
    public func compareExchange(expected: T, desired: T) -> (exchanged: Bool, original: T) {
        if let result = SharedAtomics.compareExchange(UnsafeMutableRawPointer(pointer), expected: expected, desired: desired) {
            return result
        }
        return lockedFallback { value in
            let original = value
            if value == expected { value = desired; return (true, original) }
            return (false, original)
        }
    }

    /// Stores `newValue` atomically, without the lock.
    /// - Returns: The previous value.
    @discardableResult
    public func exchange(_ newValue: T) -> T {
        if let result = SharedAtomics.exchange(UnsafeMutableRawPointer(pointer), newValue) { return result }
        return lockedFallback { value in defer { value = newValue }; return value }
    }

    /// Reads the value atomically, without the lock.
    public func atomicLoad() -> T {
        SharedAtomics.load(UnsafeMutableRawPointer(pointer), as: T.self) ?? lockedFallback { $0 }
    }

    /// Writes the value atomically, without the lock.
    public func atomicStore(_ newValue: T) {
        if !SharedAtomics.store(UnsafeMutableRawPointer(pointer), newValue) { lockedFallback { $0 = newValue } }
    }

    /// For widths with no atomic instruction (`Int128`): the lock, waited for without cancellation.
    private func lockedFallback<R>(_ body: (inout T) -> R) -> R {
        mutex.withInternalLock("SharedValue") { body(&pointer.pointee) }
    }
}
