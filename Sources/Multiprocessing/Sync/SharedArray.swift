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

    /// A copy of the elements in `bounds`, taken under the lock: Python's `a[i:j]`.
    ///
    /// - Parameters:
    ///   - bounds: Indices from 0 to ``count`` (`2..<5`, `2...`, `..<5`); an index is never
    ///     negative (Python's `a[-k]` is `a[a.count - k]`).
    ///   - timeout: How long to wait for the lock; `nil` waits for ever.
    /// - Returns: the elements, in order.
    /// - Throws: `.misuse` for a range outside `0..<count`; as ``Lock/acquire(timeout:)``
    ///   (`.ownerDied` after the copy, with the lock released).
    public func load(_ bounds: some RangeExpression<Int>, timeout: Duration? = nil) throws -> [T] {
        let range = try SharedElements<T>.checked(bounds, count: count, "SharedArray.load(_:)")
        return try withLock(timeout: timeout) { _ in SharedElements(elements, count: count).copy(range) }
    }

    /// Replaces the elements in `bounds` with `values`, under one hold of the lock: Python's
    /// `a[i:j] = values`. Another process sees all of the new values or none of them.
    ///
    /// - Parameters:
    ///   - values: As many values as `bounds` has indices: the array's size is fixed.
    ///   - bounds: Indices from 0 to ``count``, never negative.
    ///   - timeout: How long to wait for the lock; `nil` waits for ever.
    /// - Throws: `.misuse`, before anything is written, for a range outside `0..<count` or a
    ///   count of `values` that is not the range's; as ``Lock/acquire(timeout:)`` (`.ownerDied`
    ///   after the write, with the lock released).
    public func store(_ values: some Collection<T>, at bounds: some RangeExpression<Int>, timeout: Duration? = nil) throws {
        let range = try SharedElements<T>.checked(bounds, count: count, "SharedArray.store(_:at:)")
        try SharedElements<T>.checkReplacement(count: values.count, range, "SharedArray.store(_:at:)")
        try withLock(timeout: timeout) { _ in SharedElements(elements, count: count).replace(range, with: values) }
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
              count <= (header.region.size - header.offset) / MemoryLayout<T>.stride,
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

extension SharedArray where T == UInt8 {
    /// The bytes before the first NUL (or all of them), as UTF-8 text, read under the lock:
    /// Python's `Array('c').value`, decoded. Bytes that are not UTF-8 read as U+FFFD. The bytes
    /// themselves, NULs and all (Python's `.raw`), are ``toArray()``.
    public var string: String {
        mutex.withInternalLock("SharedArray.string") { SharedElements(elements, count: count).string }
    }

    /// Writes `string`'s UTF-8 bytes from index 0, and a NUL after them when there is room, under
    /// the lock: Python's `a.value = b"..."`. The bytes after that NUL keep their values, as in
    /// Python. (Python's `a.raw = b"..."`, bytes without a NUL, is ``store(_:at:timeout:)``.)
    ///
    /// - Parameters:
    ///   - string: The text; at most ``count`` UTF-8 bytes.
    ///   - timeout: How long to wait for the lock; `nil` waits for ever.
    /// - Throws: `.misuse`, before anything is written, when the text is longer than the array;
    ///   as ``Lock/acquire(timeout:)``.
    public func store(string: String, timeout: Duration? = nil) throws {
        var text = string
        try text.withUTF8 { bytes in
            let elements = SharedElements(self.elements, count: count)
            try elements.checkString(bytes.count, "SharedArray.store(string:)")
            try withLock(timeout: timeout) { _ in elements.storeString(bytes) }
        }
    }
}
