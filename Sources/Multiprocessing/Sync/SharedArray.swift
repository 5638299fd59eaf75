import MultiprocessingSystem

/// A fixed-size array in shared memory, with a built-in lock: Python's `multiprocessing.Array`.
///
/// Elements are any bitwise-copyable type. Subscripts read and write one element under the lock;
/// `withLock(timeout:_:)` gives the whole buffer under the lock, for bulk work. For integer
/// elements there are lock-free atomic operations (``add(_:at:)``...), which do not take the lock:
/// use either the atomics or the lock for one element, not both at once.
///
/// ```swift
/// let squares = try SharedArray<Int>(repeating: 0, count: 10)
/// squares[3] = 9
/// ```
public final class SharedArray<T: BitwiseCopyable>: RandomAccessCollection, Codable, @unchecked Sendable {
    // Layout: kind (4) | stride of T (4) | robust lock (48) | count (8) | padding to 64 | elements.
    internal let memory: SharedAllocation
    internal let mutex: RobustMutex
    internal static var elementsOffset: Int { 64 }
    internal static func size(count: Int) -> Int { elementsOffset + count * MemoryLayout<T>.stride }
    internal var elements: UnsafeMutablePointer<T> {
        (memory.base + SharedArray.elementsOffset).assumingMemoryBound(to: T.self)
    }
    private var countPointer: UnsafeMutablePointer<Int> {
        (memory.base + 8 + RobustMutex.size).assumingMemoryBound(to: Int.self)
    }

    /// The number of elements (fixed at creation).
    public let count: Int

    /// Creates an array of `count` copies of `value`.
    /// - Throws: `.misuse` for a negative `count` or one too large to address; `.systemCall` when
    ///   shared memory cannot be created.
    public convenience init(repeating value: T, count: Int) throws {
        try self.init(count: count) { buffer in buffer.initialize(repeating: value) }
    }

    /// Creates an array holding `elements`.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public convenience init(_ elements: [T]) throws {
        try self.init(count: elements.count) { buffer in _ = buffer.initialize(from: elements) }
    }

    private init(count: Int, fill: (UnsafeMutableBufferPointer<T>) -> Void) throws {
        guard count >= 0, count <= (Int.max - SharedArray.elementsOffset - SharedArena.slotAlignment) / MemoryLayout<T>.stride else {
            throw MultiprocessingError.misuse("SharedArray: count must be between 0 and what fits in memory (it was \(count)).")
        }
        precondition(MemoryLayout<T>.alignment <= SharedArena.slotAlignment, "SharedArray: T is over-aligned")
        precondition(8 + RobustMutex.size + 8 <= SharedArray.elementsOffset, "SharedArray: header too large")
        self.count = count
        memory = try SharedArena.allocate(size: SharedArray.size(count: count))
        mutex = RobustMutex(memory.base + 8)
        // Re-entrant, as Python's `get_lock()` is an RLock (see SharedValue.lock).
        try mutex.initialize(recursive: true)
        countPointer.pointee = count
        fill(UnsafeMutableBufferPointer(start: elements, count: count))
        memory.parameter.store(UInt32(MemoryLayout<T>.stride))
        memory.kind.store(SharedKind.array)
    }

    /// The first index: 0.
    public var startIndex: Int { 0 }
    /// One past the last index: ``count``.
    public var endIndex: Int { count }

    /// The built-in lock (Python's `get_lock()`): the same lock subscripts, ``toArray()`` and
    /// `withLock(timeout:_:)` take. It is re-entrant, as Python's is, so that
    /// `try array.lock.withLock { array[0] += 1 }` is exact.
    public var lock: RLock { RLock(viewing: memory) }

    /// One element, read or written under the lock (waited for without timeout or cancellation).
    /// `array[i] += 1` alone is a read and then a write: hold ``lock`` around it for a
    /// read-modify-write.
    public subscript(index: Int) -> T {
        get {
            precondition(index >= 0 && index < count, "SharedArray: index \(index) out of range 0..<\(count)")
            return mutex.withInternalLock("SharedArray.subscript") { elements[index] }
        }
        set {
            precondition(index >= 0 && index < count, "SharedArray: index \(index) out of range 0..<\(count)")
            mutex.withInternalLock("SharedArray.subscript") { elements[index] = newValue }
        }
    }

    /// Runs `body` on all elements with the lock held.
    ///
    /// If the previous owner died holding the lock, `body` still runs and `.ownerDied` is thrown
    /// afterwards.
    /// - Throws: as ``Lock/acquire(timeout:)``, or what `body` throws.
    public func withLock<R>(timeout: Duration? = nil, _ body: (UnsafeMutableBufferPointer<T>) throws -> R) throws -> R {
        try Deadline.validate(timeout, "SharedArray.withLock")
        let acquired = try mutex.lock(.current(timeout: timeout, "SharedArray.withLock"))
        defer { _ = try? mutex.unlock("SharedArray.withLock") }
        let result = try body(UnsafeMutableBufferPointer(start: elements, count: count))
        if acquired == .afterOwnerDied { throw Lock.ownerDiedError("SharedArray.withLock") }
        return result
    }

    /// The async twin of ``withLock(timeout:_:)``, for a synchronous `body`.
    /// - Throws: as ``withLock(timeout:_:)``; `.cancelled` when the task is cancelled.
    public nonisolated(nonsending) func withLock<R>(timeout: Duration? = nil, _ body: (UnsafeMutableBufferPointer<T>) throws -> R) async throws -> R {
        let acquired = try await mutex.lockAsync(timeout: timeout, "SharedArray.withLock")
        defer { _ = try? mutex.unlock("SharedArray.withLock") }
        let result = try body(UnsafeMutableBufferPointer(start: elements, count: count))
        if acquired == .afterOwnerDied { throw Lock.ownerDiedError("SharedArray.withLock") }
        return result
    }

    /// A copy of all elements, taken under the lock.
    public func toArray() -> [T] {
        mutex.withInternalLock("SharedArray.toArray") { Array(UnsafeBufferPointer(start: elements, count: count)) }
    }

    /// Encodes the array's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws {
        try memory.encode(to: encoder)
    }

    /// Decodes a shared array sent by another process; `T` must be the sender's `T`.
    public init(from decoder: any Decoder) throws {
        // The header first (to learn the count), then the whole extent is checked.
        let header = try SharedAllocation(from: decoder, kind: SharedKind.array, size: SharedArray.elementsOffset, typeName: "SharedArray")
        let count = (header.base + 8 + RobustMutex.size).assumingMemoryBound(to: Int.self).pointee
        guard header.parameter.load() == UInt32(MemoryLayout<T>.stride), count >= 0,
              header.offset + SharedArray.size(count: count) <= header.region.size else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "The SharedArray's memory does not hold \(count) elements of \(T.self)."))
        }
        memory = header
        mutex = RobustMutex(memory.base + 8)
        self.count = count
    }
}

extension SharedArray where T: FixedWidthInteger {
    private func slot(_ index: Int) -> UnsafeMutableRawPointer {
        precondition(index >= 0 && index < count, "SharedArray: index \(index) out of range 0..<\(count)")
        return UnsafeMutableRawPointer(elements + index)
    }

    /// Adds `delta` to element `index` atomically (wrapping), without the lock.
    /// - Returns: The new value.
    @discardableResult
    public func add(_ delta: T, at index: Int) -> T {
        let p = slot(index)
        if let result = SharedAtomics.add(p, delta) { return result }
        return lockedFallback(index) { $0 &+= delta; return $0 }
    }

    /// Replaces element `index` with `desired` if it equals `expected`, atomically, without the lock.
    /// - Returns: Whether it was replaced, and the value found.
    public func compareExchange(at index: Int, expected: T, desired: T) -> (exchanged: Bool, original: T) {
        if let result = SharedAtomics.compareExchange(slot(index), expected: expected, desired: desired) { return result }
        return lockedFallback(index) { value in
            let original = value
            if value == expected { value = desired; return (true, original) }
            return (false, original)
        }
    }

    /// Stores `newValue` in element `index` atomically, without the lock.
    /// - Returns: The previous value.
    @discardableResult
    public func exchange(_ newValue: T, at index: Int) -> T {
        if let result = SharedAtomics.exchange(slot(index), newValue) { return result }
        return lockedFallback(index) { value in defer { value = newValue }; return value }
    }

    /// Reads element `index` atomically, without the lock.
    public func atomicLoad(at index: Int) -> T {
        SharedAtomics.load(slot(index), as: T.self) ?? lockedFallback(index) { $0 }
    }

    private func lockedFallback<R>(_ index: Int, _ body: (inout T) -> R) -> R {
        mutex.withInternalLock("SharedArray") { body(&elements[index]) }
    }
}
