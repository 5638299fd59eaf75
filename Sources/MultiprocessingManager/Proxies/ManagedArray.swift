import Multiprocessing

/// A fixed-length array held by a manager's server: Python's `manager.Array(typecode, sequence)`,
/// typed, for any `Codable` element.
///
/// Its length is set when it is made and never changes, as a Python array's: element and
/// slice assignment (``set(_:_:)``, ``set(_:at:)``) replace elements in place, and
/// `increment(at:by:)` adds atomically on the server (for `Int` and `Double` elements). Each
/// call is atomic; ``snapshot()`` reads every element at one moment, and iteration
/// (`for try await element in array`) walks such a snapshot, read at its first step. For an
/// array of plain numbers shared on one machine, the module's own `SharedArray` (shared memory,
/// no server) is faster.
public struct ManagedArray<Element: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// The element at `index` (negative counts from the end).
    ///
    /// - Parameter index: the position.
    /// - Returns: the element.
    /// - Throws: `MultiprocessingError/Code/misuse` for an index out of range;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func get(_ index: Int) throws -> Element {
        let request = ArrayRequest.get(index: Int64(index))
        guard case .get(let element) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return try ValueCoding.decode(Element.self, element)
    }

    /// The element at `index`: `try array[0]`. Write with ``set(_:_:)``.
    ///
    /// - Parameter index: the position (negative counts from the end).
    public subscript(index: Int) -> Element {
        get throws { try get(index) }
    }

    /// Replaces the element at `index`: Python's `array[i] = x`.
    ///
    /// - Parameters:
    ///   - index: the position (negative counts from the end).
    ///   - element: the new element.
    /// - Throws: as ``get(_:)``.
    public func set(_ index: Int, _ element: Element) throws {
        let request = ArrayRequest.set(index: Int64(index), element: try ValueCoding.encode(element))
        guard case .set = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Replaces `elements.count` elements from `start` on, atomically: Python's
    /// `array[start:start + n] = elements`.
    ///
    /// - Parameters:
    ///   - elements: the new elements.
    ///   - start: the first position replaced.
    /// - Throws: `MultiprocessingError/Code/misuse` when they do not fit (the length of an array
    ///   never changes); as ``get(_:)``.
    public func set(_ elements: some Sequence<Element>, at start: Int) throws {
        let request = ArrayRequest.setSlice(start: Int64(start), elements: try elements.map { try ValueCoding.encode($0) })
        guard case .setSlice = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// The number of elements: Python's `len(array)`.
    ///
    /// - Returns: the length, fixed when the array was made.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func count() throws -> Int {
        guard case .count(let n) = try reference.call(ArrayRequest.count) else { throw unexpectedReply(to: ArrayRequest.count) }
        return n
    }

    /// Every element, taken atomically: Python's `array[:]`.
    ///
    /// - Returns: the array's contents.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func snapshot() throws -> [Element] {
        guard case .snapshot(let elements) = try reference.call(ArrayRequest.snapshot) else { throw unexpectedReply(to: ArrayRequest.snapshot) }
        return try elements.map { try ValueCoding.decode(Element.self, $0) }
    }
}

extension ManagedArray where Element == Int {
    /// Adds `delta` to the element at `index`, atomically on the server.
    ///
    /// - Parameters:
    ///   - index: the position (negative counts from the end).
    ///   - delta: the amount.
    /// - Returns: the new value.
    /// - Throws: `MultiprocessingError/Code/misuse` on overflow or an index out of range; as ``get(_:)``.
    @discardableResult
    public func increment(at index: Int, by delta: Int = 1) throws -> Int {
        let request = ArrayRequest.increment(index: Int64(index), by: Int64(delta))
        guard case .increment(let sum) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return Int(sum)
    }
}

extension ManagedArray where Element == Double {
    /// Adds `delta` to the element at `index`, atomically on the server.
    ///
    /// - Parameters:
    ///   - index: the position (negative counts from the end).
    ///   - delta: the amount.
    /// - Returns: the new value.
    /// - Throws: `MultiprocessingError/Code/misuse` for an index out of range; as ``get(_:)``.
    @discardableResult
    public func increment(at index: Int, by delta: Double = 1) throws -> Double {
        let request = ArrayRequest.incrementDouble(index: Int64(index), by: delta)
        guard case .incrementDouble(let sum) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return sum
    }
}

extension ManagedArray: AsyncSequence {
    /// Walks a snapshot of the array, read at the first step (one call, off the cooperative pool).
    public struct AsyncIterator: AsyncIteratorProtocol {
        private let array: ManagedArray
        private var elements: [Element]?
        private var position = 0

        internal init(array: ManagedArray) { self.array = array }

        /// The next element of the snapshot.
        ///
        /// - Returns: the element, or nil after the last.
        /// - Throws: what ``ManagedArray/snapshot()`` throws, at the first step.
        public mutating func next() async throws -> Element? {
            if elements == nil {
                let array = self.array
                elements = try await managerRunBlocking { _ in try array.snapshot() }
            }
            guard let elements, position < elements.count else { return nil }
            defer { position += 1 }
            return elements[position]
        }
    }

    /// An iterator over a snapshot of the array.
    ///
    /// - Returns: the iterator; it reads the array at its first step.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(array: self) }
}
