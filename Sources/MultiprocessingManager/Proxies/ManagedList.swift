import Multiprocessing

/// A list held by a manager's server: Python's `manager.list()`, typed.
///
/// Each call is atomic on the server. Elements are compared by their encoded bytes
/// (``count(of:)``, ``index(of:from:to:)``, ``contains(_:)``), as a ``ManagedDictionary``'s keys:
/// use element types whose encoding is deterministic. A change that needs the values themselves
/// (``sort(by:)``, ``update(_:)``) reads the list, changes it here and replaces it only if no
/// other change came in between (else it runs again on the new contents).
///
/// Iterating is a snapshot per iteration: `for try await element in list` reads every element in
/// one call at the first step, and then walks that copy, so it sees the list as it was at one
/// moment, whatever other processes do meanwhile (Python's proxy also copies the list, on each
/// `iter()`). The blocking form is `for element in try list.snapshot()`.
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

    /// Appends several elements at once, atomically: Python's `extend(iterable)` and `+=`.
    ///
    /// - Parameter elements: the elements, of any sequence (read here, sent in one call).
    /// - Returns: the new count.
    /// - Throws: as ``append(_:)``.
    @discardableResult
    public func append(contentsOf elements: some Sequence<Element>) throws -> Int {
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

    /// The element at `index` (negative counts from the end): `try list[0]`. Write with ``set(_:_:)``.
    ///
    /// - Parameter index: the position.
    public subscript(index: Int) -> Element {
        get throws { try get(index) }
    }

    /// How many elements equal `element` (by their encoding): Python's `count(x)`.
    ///
    /// - Parameter element: the element to count.
    /// - Returns: the number of equal elements.
    /// - Throws: as ``append(_:)``.
    public func count(of element: Element) throws -> Int {
        let request = ListRequest.countOf(element: try ValueCoding.encode(element))
        guard case .countOf(let n) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return n
    }

    /// The first position of an element equal to `element` (by its encoding) within
    /// `start ..< end`: Python's `index(x, start, stop)`, which raises `ValueError` where this
    /// returns nil. The bounds are read as a slice's: negative counts from the end, and both are
    /// clamped to the list.
    ///
    /// - Parameters:
    ///   - element: the element to find.
    ///   - start: where to start looking.
    ///   - end: where to stop (not included); nil for the end of the list.
    /// - Returns: the position, or nil when there is none in the range.
    /// - Throws: as ``append(_:)``.
    public func index(of element: Element, from start: Int = 0, to end: Int? = nil) throws -> Int? {
        let request = ListRequest.indexOf(element: try ValueCoding.encode(element), start: Int64(start), end: end.map { Int64($0) })
        guard case .indexOf(let index) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return index
    }

    /// Whether an element equals `element` (by its encoding): Python's `x in list`.
    ///
    /// - Parameter element: the element to find.
    /// - Returns: true when the list holds it.
    /// - Throws: as ``append(_:)``.
    public func contains(_ element: Element) throws -> Bool {
        try index(of: element) != nil
    }

    /// Reverses the list in place, on the server: Python's `reverse()`.
    ///
    /// - Throws: as ``append(_:)``.
    public func reverse() throws {
        guard case .reverse = try reference.call(ListRequest.reverse) else { throw unexpectedReply(to: ListRequest.reverse) }
    }

    /// Every element and the list's version (which every change moves), read atomically.
    internal func versionedSnapshot() throws -> (version: UInt64, elements: [Element]) {
        guard case .versionedSnapshot(let version, let elements) = try reference.call(ListRequest.versionedSnapshot) else {
            throw unexpectedReply(to: ListRequest.versionedSnapshot)
        }
        return (version, try elements.map { try ValueCoding.decode(Element.self, $0) })
    }

    /// Changes the whole list atomically: reads it, applies `body` here, and replaces the
    /// contents only if no other change came in between; otherwise `body` runs again on the new
    /// contents.
    ///
    /// - Parameter body: the change; it may run more than once.
    /// - Returns: the contents stored.
    /// - Throws: what `body` throws (nothing is changed then), and as ``append(_:)``.
    @discardableResult
    public func update(_ body: (inout [Element]) throws -> Void) throws -> [Element] {
        while true {
            var (version, elements) = try versionedSnapshot()
            try body(&elements)
            let request = ListRequest.replace(version: version, elements: try elements.map { try ValueCoding.encode($0) })
            guard case .replace(let replaced, _) = try reference.call(request) else { throw unexpectedReply(to: request) }
            if replaced { return elements }
        }
    }

    /// Sorts the list in place: Python's `sort(key=...)`, with a comparison. The elements are
    /// compared here, in the calling process (the server never decodes them), and the sorted
    /// list replaces the contents only if no other change came in between (see ``update(_:)``).
    ///
    /// - Parameter areInIncreasingOrder: the order; it may run on the list more than once.
    /// - Throws: what `areInIncreasingOrder` throws, and as ``append(_:)``.
    public func sort(by areInIncreasingOrder: (Element, Element) throws -> Bool) throws {
        try update { try $0.sort(by: areInIncreasingOrder) }
    }
}

extension ManagedList where Element: Comparable {
    /// Sorts the list in increasing order: Python's `sort()`; see ``sort(by:)``.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func sort() throws {
        try sort(by: <)
    }
}

extension ManagedList: AsyncSequence {
    /// Walks a snapshot of the list, read at the first step (one call, off the cooperative pool).
    public struct AsyncIterator: AsyncIteratorProtocol {
        private let list: ManagedList
        private var elements: [Element]?
        private var position = 0

        internal init(list: ManagedList) { self.list = list }

        /// The next element of the snapshot.
        ///
        /// - Returns: the element, or nil after the last.
        /// - Throws: what ``ManagedList/snapshot()`` throws, at the first step.
        public mutating func next() async throws -> Element? {
            if elements == nil {
                let list = self.list
                elements = try await managerRunBlocking { _ in try list.snapshot() }
            }
            guard let elements, position < elements.count else { return nil }
            defer { position += 1 }
            return elements[position]
        }
    }

    /// An iterator over a snapshot of the list.
    ///
    /// - Returns: the iterator; it reads the list at its first step.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(list: self) }
}
