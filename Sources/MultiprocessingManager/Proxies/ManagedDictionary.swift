import Multiprocessing

/// A dictionary held by a manager's server: Python's `manager.dict()`, typed.
///
/// Every call travels to the server and runs there under one lock, so each is atomic; the
/// read-modify-write calls (`increment(_:by:)`, ``append(_:to:)``, ``setIfAbsent(_:_:)``,
/// ``compareAndSwap(_:expected:new:)``, ``update(_:_:)``) never lose an update between processes,
/// where Python's `d[k] += 1` does. Keys are compared by their encoded bytes: use keys whose
/// encoding is deterministic (strings, numbers, and structs and enums of them; not `Set` or
/// `Dictionary`). The proxy is `Sendable` and `Codable`: pass it to a child in its task.
///
/// Entries keep their insertion order, as Python's dicts do: ``items()``, ``keys()``,
/// ``values()`` and iteration list them in the order their keys were first set (setting an
/// existing key keeps its place; removing one and setting it again moves it to the end), and
/// ``popItem()`` takes the last one inserted. Iterating is a snapshot per iteration:
/// `for try await (key, value) in dictionary` reads every entry in one call at the first step,
/// then walks that copy, so it sees the dictionary as it was at one moment and never fails
/// because another process changed it meanwhile (where Python's `for k in d` over a changing
/// dict raises `RuntimeError`). The blocking form is `for (key, value) in try dictionary.items()`.
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

    /// Every entry as pairs, taken atomically (for keys that are not `Hashable`): Python's `items()`.
    ///
    /// - Returns: the entries in insertion order.
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

extension ManagedDictionary {
    /// Every key, in insertion order, taken atomically: Python's `keys()` (a copy, not a view).
    ///
    /// - Returns: the keys.
    /// - Throws: as ``get(_:)``.
    public func keys() throws -> [Key] { try items().map(\.key) }

    /// Every value, in the insertion order of their keys, taken atomically: Python's `values()`.
    ///
    /// - Returns: the values.
    /// - Throws: as ``get(_:)``.
    public func values() throws -> [Value] { try items().map(\.value) }

    /// The value for `key`, or `defaultValue`: Python's `get(key, default)`.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - defaultValue: what to return when the key has no value.
    /// - Returns: the value stored, or `defaultValue`.
    /// - Throws: as ``get(_:)``.
    public func get(_ key: Key, default defaultValue: @autoclosure () -> Value) throws -> Value {
        try get(key) ?? defaultValue()
    }

    /// Sets every entry of `other`, all in one atomic call: Python's `update(other)` and `d |= other`.
    ///
    /// - Parameter other: the entries; new keys are inserted in `other`'s iteration order.
    /// - Throws: as ``get(_:)``.
    public func update(_ other: [Key: Value]) throws where Key: Hashable {
        try update(contentsOf: other.map { ($0.key, $0.value) })
    }

    /// Sets every pair, in order, all in one atomic call: Python's `update(iterable_of_pairs)`.
    /// A key that comes more than once ends with its last value, in its first place.
    ///
    /// - Parameter pairs: the keys and values.
    /// - Throws: as ``get(_:)``.
    public func update(contentsOf pairs: some Sequence<(Key, Value)>) throws {
        var keys: [[UInt8]] = []
        var values: [[UInt8]] = []
        for (key, value) in pairs {
            keys.append(try ValueCoding.encode(key))
            values.append(try ValueCoding.encode(value))
        }
        let request = DictionaryRequest.update(ifVersion: nil, keys: keys, values: values)
        guard case .update = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Merges `other` in, combining the values of keys present on both sides, atomically:
    /// Swift's `Dictionary.merge(_:uniquingKeysWith:)` (Python's `d |= other` is ``update(_:)``,
    /// where `other` wins). It reads the current values of `other`'s keys, combines them here
    /// (the server never decodes values), and writes them only if nothing changed the dictionary
    /// in between; otherwise it reads and combines again.
    ///
    /// - Parameters:
    ///   - other: the entries to merge in.
    ///   - combine: the value to keep for a key on both sides: `combine(current, new)`; it may
    ///     run more than once.
    /// - Throws: what `combine` throws (nothing is changed then), and as ``get(_:)``.
    public func merge(_ other: [Key: Value], uniquingKeysWith combine: (Value, Value) throws -> Value) throws where Key: Hashable {
        let entries = Array(other)
        let keys = try entries.map { try ValueCoding.encode($0.key) }
        while true {
            let read = DictionaryRequest.getMany(keys: keys)
            guard case .getMany(let version, let current) = try reference.call(read), current.count == keys.count else {
                throw unexpectedReply(to: read)
            }
            var values: [[UInt8]] = []
            for (entry, stored) in zip(entries, current) {
                let value = try stored.map { try combine(try ValueCoding.decode(Value.self, $0), entry.value) } ?? entry.value
                values.append(try ValueCoding.encode(value))
            }
            let write = DictionaryRequest.update(ifVersion: version, keys: keys, values: values)
            guard case .update(let updated, _) = try reference.call(write) else { throw unexpectedReply(to: write) }
            if updated { return }
        }
    }

    /// Removes and returns the entry inserted last: Python's `popitem()`, which raises `KeyError`
    /// where this returns nil.
    ///
    /// - Returns: the entry removed, or nil when the dictionary is empty.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func popItem() throws -> (key: Key, value: Value)? {
        guard case .popLast(let key, let value) = try reference.call(DictionaryRequest.popLast) else {
            throw unexpectedReply(to: DictionaryRequest.popLast)
        }
        guard let key else { return nil }
        return (try ValueCoding.decode(Key.self, key), try ValueCoding.decode(Value.self, value))
    }
}

extension ManagedDictionary: AsyncSequence {
    /// Walks a snapshot of the entries, in insertion order, read at the first step (one call,
    /// off the cooperative pool).
    public struct AsyncIterator: AsyncIteratorProtocol {
        private let dictionary: ManagedDictionary
        private var entries: [(key: Key, value: Value)]?
        private var position = 0

        internal init(dictionary: ManagedDictionary) { self.dictionary = dictionary }

        /// The next entry of the snapshot.
        ///
        /// - Returns: the entry, or nil after the last.
        /// - Throws: what ``ManagedDictionary/items()`` throws, at the first step.
        public mutating func next() async throws -> (key: Key, value: Value)? {
            if entries == nil {
                let dictionary = self.dictionary
                entries = try await managerRunBlocking { _ in try dictionary.items() }
            }
            guard let entries, position < entries.count else { return nil }
            defer { position += 1 }
            return entries[position]
        }
    }

    /// An iterator over a snapshot of the entries.
    ///
    /// - Returns: the iterator; it reads the dictionary at its first step.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(dictionary: self) }
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
