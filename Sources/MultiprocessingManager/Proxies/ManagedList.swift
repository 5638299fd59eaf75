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
        let request = ListRequest.append(element: try ValueCoding.encode(element))
        guard case .append(let count) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return count
    }

    /// Appends several elements at once.
    ///
    /// - Parameter elements: the elements.
    /// - Returns: the new count.
    /// - Throws: as ``append(_:)``.
    @discardableResult
    public func append(contentsOf elements: [Element]) throws -> Int {
        let request = ListRequest.extend(elements: try elements.map { try ValueCoding.encode($0) })
        guard case .extend(let count) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return count
    }

    /// The element at `index` (negative counts from the end).
    ///
    /// - Parameter index: the position.
    /// - Returns: the element.
    /// - Throws: `MultiprocessingError/Code/misuse` for an index out of range; as ``append(_:)``.
    public func get(_ index: Int) throws -> Element {
        let request = ListRequest.get(index: Int64(index))
        guard case .get(let element) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return try ValueCoding.decode(Element.self, element)
    }

    /// Replaces the element at `index`.
    ///
    /// - Parameters:
    ///   - index: the position (negative counts from the end).
    ///   - element: the new element.
    /// - Throws: as ``get(_:)``.
    public func set(_ index: Int, _ element: Element) throws {
        let request = ListRequest.set(index: Int64(index), element: try ValueCoding.encode(element))
        guard case .set = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Inserts an element before `index` (clamped to the list, as Python's `insert`).
    ///
    /// - Parameters:
    ///   - element: the element.
    ///   - index: the position.
    /// - Throws: as ``append(_:)``.
    public func insert(_ element: Element, at index: Int) throws {
        let request = ListRequest.insert(element: try ValueCoding.encode(element), index: Int64(index))
        guard case .insert = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Removes and returns the element at `index` (the last by default): Python's `pop`.
    ///
    /// - Parameter index: the position (negative counts from the end).
    /// - Returns: the element removed.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func remove(at index: Int = -1) throws -> Element {
        let request = ListRequest.remove(index: Int64(index))
        guard case .remove(let element) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return try ValueCoding.decode(Element.self, element)
    }

    /// The number of elements.
    ///
    /// - Returns: the count.
    /// - Throws: as ``append(_:)``.
    public func count() throws -> Int {
        guard case .count(let n) = try reference.call(ListRequest.count) else { throw unexpectedReply(to: ListRequest.count) }
        return n
    }

    /// Every element, taken atomically.
    ///
    /// - Returns: the list's contents.
    /// - Throws: as ``append(_:)``.
    public func snapshot() throws -> [Element] {
        guard case .snapshot(let elements) = try reference.call(ListRequest.snapshot) else { throw unexpectedReply(to: ListRequest.snapshot) }
        return try elements.map { try ValueCoding.decode(Element.self, $0) }
    }

    /// Removes every element.
    ///
    /// - Throws: as ``append(_:)``.
    public func removeAll() throws {
        guard case .removeAll = try reference.call(ListRequest.removeAll) else { throw unexpectedReply(to: ListRequest.removeAll) }
    }
}
