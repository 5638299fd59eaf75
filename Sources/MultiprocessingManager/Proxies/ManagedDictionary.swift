import Multiprocessing

/// A dictionary held by a manager's server: Python's `manager.dict()`, typed.
///
/// Every call travels to the server and runs there under one lock, so each is atomic; the
/// read-modify-write calls (`increment(_:by:)`, ``append(_:to:)``, ``setIfAbsent(_:_:)``,
/// ``compareAndSwap(_:expected:new:)``, ``update(_:_:)``) never lose an update between processes,
/// where Python's `d[k] += 1` does. Keys are compared by their encoded bytes: use keys whose
/// encoding is deterministic (strings, numbers, and structs and enums of them; not `Set` or
/// `Dictionary`). The proxy is `Sendable` and `Codable`: pass it to a child in its task.
public struct ManagedDictionary<Key: Codable & Sendable, Value: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// The value for `key`, or nil.
    ///
    /// - Parameter key: the key.
    /// - Returns: the value stored, or nil when there is none.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone;
    ///   `MultiprocessingError/Code/coding` when the stored value is not a `Value`.
    public func get(_ key: Key) throws -> Value? {
        let request = DictionaryRequest.get(key: try ValueCoding.encode(key))
        guard case .get(let value) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return try value.map { try ValueCoding.decode(Value.self, $0) }
    }

    /// Stores `value` under `key`.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value.
    /// - Throws: as ``get(_:)``.
    public func set(_ key: Key, _ value: Value) throws {
        let request = DictionaryRequest.set(key: try ValueCoding.encode(key), value: try ValueCoding.encode(value))
        guard case .set = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// The value for `key`, or nil: `try counts["k"]`. Write with ``set(_:_:)``.
    ///
    /// - Parameter key: the key.
    public subscript(key: Key) -> Value? {
        get throws { try get(key) }
    }

    /// Removes the entry for `key`.
    ///
    /// - Parameter key: the key.
    /// - Returns: the value that was stored, or nil.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func removeValue(forKey key: Key) throws -> Value? {
        let request = DictionaryRequest.removeValue(key: try ValueCoding.encode(key))
        guard case .removeValue(let old) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return try old.map { try ValueCoding.decode(Value.self, $0) }
    }

    /// Whether `key` has a value.
    ///
    /// - Parameter key: the key.
    /// - Returns: true when the dictionary holds the key.
    /// - Throws: as ``get(_:)``.
    public func contains(_ key: Key) throws -> Bool {
        let request = DictionaryRequest.contains(key: try ValueCoding.encode(key))
        guard case .contains(let found) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return found
    }

    /// The number of entries.
    ///
    /// - Returns: the count.
    /// - Throws: as ``get(_:)``.
    public func count() throws -> Int {
        guard case .count(let n) = try reference.call(DictionaryRequest.count) else { throw unexpectedReply(to: DictionaryRequest.count) }
        return n
    }

    /// A snapshot of every entry, taken atomically.
    ///
    /// - Returns: the dictionary's contents.
    /// - Throws: as ``get(_:)``.
    public func snapshot() throws -> [Key: Value] where Key: Hashable {
        var result: [Key: Value] = [:]
        for (key, value) in try items() { result[key] = value }
        return result
    }

    /// Every entry as pairs, taken atomically (for keys that are not `Hashable`).
    ///
    /// - Returns: the entries in no particular order.
    /// - Throws: as ``get(_:)``.
    public func items() throws -> [(key: Key, value: Value)] {
        guard case .items(let keys, let values) = try reference.call(DictionaryRequest.items) else {
            throw unexpectedReply(to: DictionaryRequest.items)
        }
        var result: [(key: Key, value: Value)] = []
        for (key, value) in zip(keys, values) {
            result.append((try ValueCoding.decode(Key.self, key), try ValueCoding.decode(Value.self, value)))
        }
        return result
    }

    /// Removes every entry.
    ///
    /// - Throws: as ``get(_:)``.
    public func removeAll() throws {
        guard case .removeAll = try reference.call(DictionaryRequest.removeAll) else { throw unexpectedReply(to: DictionaryRequest.removeAll) }
    }

    /// Stores `value` only if `key` has none: Python's `setdefault`, atomically.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value to store when the key is absent.
    /// - Returns: whether it was stored, and the value the key now holds.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func setIfAbsent(_ key: Key, _ value: Value) throws -> (inserted: Bool, current: Value) {
        let request = DictionaryRequest.setIfAbsent(key: try ValueCoding.encode(key), value: try ValueCoding.encode(value))
        guard case .setIfAbsent(let inserted, let current) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return (inserted, try ValueCoding.decode(Value.self, current))
    }

    /// Replaces the value of `key` with `new` only if it is `expected` (nil: only if absent).
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - expected: the value the caller last saw, or nil for "no value".
    ///   - new: the replacement.
    /// - Returns: whether it swapped, and the value the key holds now.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func compareAndSwap(_ key: Key, expected: Value?, new: Value) throws -> (swapped: Bool, current: Value?) {
        let request = DictionaryRequest.compareAndSwap(key: try ValueCoding.encode(key), expected: try expected.map { try ValueCoding.encode($0) },
                                                       new: try ValueCoding.encode(new))
        guard case .compareAndSwap(let swapped, let current) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return (swapped, try current.map { try ValueCoding.decode(Value.self, $0) })
    }

    /// Applies `body` to the value of `key` atomically: an optimistic loop of read, apply,
    /// compare-and-swap that retries when another process changed the value in between.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - body: the change; it receives nil for an absent key, may run more than once, and
    ///     leaves the entry absent if it leaves nil.
    /// - Returns: the value stored.
    /// - Throws: what `body` throws, and as ``get(_:)``.
    @discardableResult
    public func update(_ key: Key, _ body: (inout Value?) throws -> Void) throws -> Value? {
        var current = try get(key)
        while true {
            var next = current
            try body(&next)
            guard let next else {
                // Delete only what `body` saw: another process's change in between makes it
                // run again on the new value.
                let (deleted, now) = try compareAndDelete(key, expected: current)
                if deleted { return nil }
                current = now
                continue
            }
            let (swapped, now) = try compareAndSwap(key, expected: current, new: next)
            if swapped { return next }
            current = now
        }
    }

    /// Removes the entry of `key` only if its value is `expected` (nil: only if absent, which
    /// removes nothing).
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - expected: the value the caller last saw, or nil for "no value".
    /// - Returns: whether the key is now absent because of this call's compare, and the value it
    ///   holds when the compare failed.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func compareAndDelete(_ key: Key, expected: Value?) throws -> (deleted: Bool, current: Value?) {
        let request = DictionaryRequest.compareAndDelete(key: try ValueCoding.encode(key), expected: try expected.map { try ValueCoding.encode($0) })
        guard case .compareAndDelete(let deleted, let current) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return (deleted, try current.map { try ValueCoding.decode(Value.self, $0) })
    }
}

extension ManagedDictionary where Value == Int {
    /// Adds `delta` to the integer under `key` (absent counts as 0), atomically on the server.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - delta: the amount to add.
    /// - Returns: the new value.
    /// - Throws: `MultiprocessingError/Code/misuse` on overflow; as ``get(_:)``.
    @discardableResult
    public func increment(_ key: Key, by delta: Int = 1) throws -> Int {
        let request = DictionaryRequest.increment(key: try ValueCoding.encode(key), by: Int64(delta))
        guard case .increment(let sum) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return Int(sum)
    }
}

extension ManagedDictionary where Value == Double {
    /// Adds `delta` to the number under `key` (absent counts as 0), atomically on the server.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - delta: the amount to add.
    /// - Returns: the new value.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func increment(_ key: Key, by delta: Double = 1) throws -> Double {
        let request = DictionaryRequest.incrementDouble(key: try ValueCoding.encode(key), by: delta)
        guard case .incrementDouble(let sum) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return sum
    }
}

extension ManagedDictionary {
    /// Appends `element` to the list stored under `key` (absent starts an empty list), atomically
    /// on the server, without the list ever leaving it.
    ///
    /// - Parameters:
    ///   - element: the element.
    ///   - key: the key.
    /// - Returns: the list's new length.
    /// - Throws: `MultiprocessingError/Code/coding` when the stored value is not such a list.
    @discardableResult
    public func append<Element: Codable>(_ element: Element, to key: Key) throws -> Int where Value == [Element] {
        let request = DictionaryRequest.append(key: try ValueCoding.encode(key), single: try ValueCoding.encode([element]))
        guard case .append(let count) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return count
    }
}
