/// One value in shared memory with no lock: Python's `multiprocessing.RawValue`, and
/// `Value(..., lock=False)`.
///
/// Like ``SharedValue`` it holds any bitwise-copyable `T` and travels to a child process inside a
/// task's arguments (`Codable`), so that both processes see one value. Unlike it, reads and writes
/// are plain memory accesses, with no lock and no system call, and the object is 48 bytes smaller.
/// It is for a value that one process writes while no other reads it, or that the program guards
/// with a lock of its own (a ``Lock`` passed beside it). Reading while another process writes may
/// see a torn value, as in Python; to wait for a change, use an ``Event`` or a ``Condition``, and
/// for a counter that several processes change at once, ``SharedValue``'s atomic operations (which
/// take no lock either).
///
/// ```swift
/// let total = try RawSharedValue(0.0)   // Python: RawValue('d', 0.0)
/// total.value += 1.5                    // no lock: one writer at a time
/// ```
public final class RawSharedValue<T: BitwiseCopyable>: Codable, @unchecked Sendable {
    // Layout: kind (4) | size of T (4) | padding | T.
    internal let memory: SharedAllocation
    internal static var valueOffset: Int {
        let alignment = max(8, MemoryLayout<T>.alignment)
        return (8 + alignment - 1) / alignment * alignment
    }
    internal static var size: Int { valueOffset + MemoryLayout<T>.size }
    internal var pointer: UnsafeMutablePointer<T> {
        (memory.base + RawSharedValue.valueOffset).assumingMemoryBound(to: T.self)
    }

    /// Creates a shared value with no lock.
    /// - Parameter initial: The first value.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public init(_ initial: T) throws {
        precondition(MemoryLayout<T>.alignment <= SharedArena.slotAlignment, "RawSharedValue: T is over-aligned")
        memory = try SharedArena.allocate(size: RawSharedValue.size)
        pointer.initialize(to: initial)
        memory.parameter.store(UInt32(MemoryLayout<T>.size))
        memory.kind.store(SharedKind.rawValue)
    }

    /// The value, read or written without a lock (Python's `.value`).
    public var value: T {
        get { pointer.pointee }
        set { pointer.pointee = newValue }
    }

    /// Encodes the value's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws {
        try memory.encode(to: encoder)
    }

    /// Decodes a raw shared value sent by another process; `T` must be the sender's `T`.
    public init(from decoder: any Decoder) throws {
        memory = try SharedAllocation(from: decoder, kind: SharedKind.rawValue, size: RawSharedValue.size, typeName: "RawSharedValue")
        guard memory.parameter.load() == UInt32(MemoryLayout<T>.size) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "The RawSharedValue holds a \(memory.parameter.load())-byte value, not a \(T.self)."))
        }
    }
}

/// A fixed-size array in shared memory with no lock: Python's `multiprocessing.RawArray`, and
/// `Array(..., lock=False)`.
///
/// Like ``SharedArray`` it holds bitwise-copyable elements and travels to child processes inside a
/// task's arguments. Subscripts, slices and ``withUnsafeMutableBufferPointer(_:)`` are plain memory
/// accesses with no lock: the program decides who writes what and when (each process its own part
/// of the array, say, or a ``Lock`` of its own around it). A `RawSharedArray<UInt8>` also reads and
/// writes text (``string``, ``store(string:)``), as Python's `RawArray('c', n)`.
///
/// ```swift
/// let pixels = try RawSharedArray<Float>(repeating: 0, count: 1 << 20)
/// // each worker process fills its own rows: no lock needed
/// try pixels.store(row, at: start..<start + row.count)
/// ```
public final class RawSharedArray<T: BitwiseCopyable>: RandomAccessCollection, Codable, @unchecked Sendable {
    // Layout: kind (4) | stride of T (4) | count (8) | padding | elements.
    internal let memory: SharedAllocation
    internal static var elementsOffset: Int {
        let alignment = Swift.max(16, MemoryLayout<T>.alignment)
        return (16 + alignment - 1) / alignment * alignment
    }
    internal static func size(count: Int) -> Int { elementsOffset + count * MemoryLayout<T>.stride }
    internal var elements: UnsafeMutablePointer<T> {
        (memory.base + RawSharedArray.elementsOffset).assumingMemoryBound(to: T.self)
    }
    private static func countPointer(_ memory: SharedAllocation) -> UnsafeMutablePointer<Int> {
        (memory.base + 8).assumingMemoryBound(to: Int.self)
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
        guard count >= 0, count <= (Int.max - RawSharedArray.elementsOffset - SharedArena.slotAlignment) / Swift.max(1, MemoryLayout<T>.stride) else {
            throw MultiprocessingError.misuse("RawSharedArray: count must be between 0 and what fits in memory (it was \(count)).")
        }
        precondition(MemoryLayout<T>.alignment <= SharedArena.slotAlignment, "RawSharedArray: T is over-aligned")
        self.count = count
        memory = try SharedArena.allocate(size: RawSharedArray.size(count: count))
        RawSharedArray.countPointer(memory).pointee = count
        fill(UnsafeMutableBufferPointer(start: elements, count: count))
        memory.parameter.store(UInt32(MemoryLayout<T>.stride))
        memory.kind.store(SharedKind.rawArray)
    }

    /// The first index: 0.
    public var startIndex: Int { 0 }
    /// One past the last index: ``count``.
    public var endIndex: Int { count }

    /// One element, read or written without a lock.
    public subscript(index: Int) -> T {
        get {
            precondition(index >= 0 && index < count, "RawSharedArray: index \(index) out of range 0..<\(count)")
            return elements[index]
        }
        set {
            precondition(index >= 0 && index < count, "RawSharedArray: index \(index) out of range 0..<\(count)")
            elements[index] = newValue
        }
    }

    /// A copy of the elements in `bounds`: Python's `a[i:j]`.
    ///
    /// - Parameter bounds: Indices from 0 to ``count`` (`2..<5`, `2...`, `..<5`); an index is never
    ///   negative (Python's `a[-k]` is `a[a.count - k]`).
    /// - Returns: the elements, in order.
    /// - Throws: `.misuse` for a range outside `0..<count`.
    public func load(_ bounds: some RangeExpression<Int>) throws -> [T] {
        let range = try SharedElements<T>.checked(bounds, count: count, "RawSharedArray.load(_:)")
        return SharedElements(elements, count: count).copy(range)
    }

    /// Replaces the elements in `bounds` with `values`: Python's `a[i:j] = values`.
    ///
    /// - Parameters:
    ///   - values: As many values as `bounds` has indices: the array's size is fixed.
    ///   - bounds: Indices from 0 to ``count``, never negative.
    /// - Throws: `.misuse`, before anything is written, for a range outside `0..<count` or a
    ///   count of `values` that is not the range's.
    public func store(_ values: some Collection<T>, at bounds: some RangeExpression<Int>) throws {
        let range = try SharedElements<T>.checked(bounds, count: count, "RawSharedArray.store(_:at:)")
        try SharedElements<T>.checkReplacement(count: values.count, range, "RawSharedArray.store(_:at:)")
        SharedElements(elements, count: count).replace(range, with: values)
    }

    /// Runs `body` on all elements, for bulk work (`sort()`, `update(repeating:)`…), with no lock,
    /// as `Array`'s method of that name does. `body` must not replace the buffer itself.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws.
    public func withUnsafeMutableBufferPointer<R>(_ body: (inout UnsafeMutableBufferPointer<T>) throws -> R) rethrows -> R {
        var buffer = UnsafeMutableBufferPointer(start: elements, count: count)
        return try body(&buffer)
    }

    /// A copy of all elements.
    public func toArray() -> [T] {
        Array(UnsafeBufferPointer(start: elements, count: count))
    }

    /// Encodes the array's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws {
        try memory.encode(to: encoder)
    }

    /// Decodes a raw shared array sent by another process; `T` must be the sender's `T`.
    public init(from decoder: any Decoder) throws {
        // The header first (to learn the count), then the whole extent is checked.
        let header = try SharedAllocation(from: decoder, kind: SharedKind.rawArray, size: RawSharedArray.elementsOffset, typeName: "RawSharedArray")
        let count = RawSharedArray.countPointer(header).pointee
        guard header.parameter.load() == UInt32(MemoryLayout<T>.stride), count >= 0,
              count <= (header.region.size - header.offset) / Swift.max(1, MemoryLayout<T>.stride),
              header.offset + RawSharedArray.size(count: count) <= header.region.size else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "The RawSharedArray's memory does not hold \(count) elements of \(T.self)."))
        }
        memory = header
        self.count = count
    }
}

extension RawSharedArray where T == UInt8 {
    /// The bytes before the first NUL (or all of them), as UTF-8 text: Python's
    /// `RawArray('c', n).value`, decoded. Bytes that are not UTF-8 read as U+FFFD. The bytes
    /// themselves, NULs and all (Python's `.raw`), are ``toArray()``.
    public var string: String { SharedElements(elements, count: count).string }

    /// Writes `string`'s UTF-8 bytes from index 0, and a NUL after them when there is room:
    /// Python's `a.value = b"..."`. The bytes after that NUL keep their values, as in Python.
    ///
    /// - Parameter string: The text; at most ``count`` UTF-8 bytes.
    /// - Throws: `.misuse`, before anything is written, when the text is longer than the array.
    public func store(string: String) throws {
        var text = string
        try text.withUTF8 { bytes in
            let elements = SharedElements(self.elements, count: count)
            try elements.checkString(bytes.count, "RawSharedArray.store(string:)")
            elements.storeString(bytes)
        }
    }
}
