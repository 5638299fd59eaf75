import Multiprocessing

/// A list held by a manager's server: Python's `manager.list()`, typed.
public struct ManagedList<Element: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Appends an element.
    ///
    /// - Parameter element: the element.
    /// - Returns: the new count.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    @discardableResult
    public func append(_ element: Element) throws -> Int {
        let e = try ValueCoding.encode(element)
        var reply = try reference.call(.lAppend) { $0.blob(e) }
        return try reply.int()
    }

    /// Appends several elements at once.
    ///
    /// - Parameter elements: the elements.
    /// - Returns: the new count.
    /// - Throws: as ``append(_:)``.
    @discardableResult
    public func append(contentsOf elements: [Element]) throws -> Int {
        let encoded = try elements.map { try ValueCoding.encode($0) }
        var reply = try reference.call(.lExtend) { writer in
            writer.varint(UInt64(encoded.count))
            for e in encoded { writer.blob(e) }
        }
        return try reply.int()
    }

    /// The element at `index` (negative counts from the end).
    ///
    /// - Parameter index: the position.
    /// - Returns: the element.
    /// - Throws: `MultiprocessingError/Code/misuse` for an index out of range; as ``append(_:)``.
    public func get(_ index: Int) throws -> Element {
        var reply = try reference.call(.lGet) { $0.signed(Int64(index)) }
        return try ValueCoding.decode(Element.self, try reply.blob())
    }

    /// Replaces the element at `index`.
    ///
    /// - Parameters:
    ///   - index: the position (negative counts from the end).
    ///   - element: the new element.
    /// - Throws: as ``get(_:)``.
    public func set(_ index: Int, _ element: Element) throws {
        let e = try ValueCoding.encode(element)
        _ = try reference.call(.lSet) {
            $0.signed(Int64(index))
            $0.blob(e)
        }
    }

    /// Inserts an element before `index` (clamped to the list, as Python's `insert`).
    ///
    /// - Parameters:
    ///   - element: the element.
    ///   - index: the position.
    /// - Throws: as ``append(_:)``.
    public func insert(_ element: Element, at index: Int) throws {
        let e = try ValueCoding.encode(element)
        _ = try reference.call(.lInsert) {
            $0.signed(Int64(index))
            $0.blob(e)
        }
    }

    /// Removes and returns the element at `index` (the last by default): Python's `pop`.
    ///
    /// - Parameter index: the position (negative counts from the end).
    /// - Returns: the element removed.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func remove(at index: Int = -1) throws -> Element {
        var reply = try reference.call(.lRemoveAt) { $0.signed(Int64(index)) }
        return try ValueCoding.decode(Element.self, try reply.blob())
    }

    /// The number of elements.
    ///
    /// - Returns: the count.
    /// - Throws: as ``append(_:)``.
    public func count() throws -> Int {
        var reply = try reference.call(.lCount)
        return try reply.int()
    }

    /// Every element, taken atomically.
    ///
    /// - Returns: the list's contents.
    /// - Throws: as ``append(_:)``.
    public func snapshot() throws -> [Element] {
        var reply = try reference.call(.lSnapshot)
        let n = try reply.int()
        var result: [Element] = []
        result.reserveCapacity(min(n, 1 << 16))
        for _ in 0..<n { result.append(try ValueCoding.decode(Element.self, try reply.blob())) }
        return result
    }

    /// Removes every element.
    ///
    /// - Throws: as ``append(_:)``.
    public func removeAll() throws {
        _ = try reference.call(.lClear)
    }
}
