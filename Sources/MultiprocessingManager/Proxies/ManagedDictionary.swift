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
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dGet) { $0.blob(k) }
        guard try reply.bool() else { return nil }
        return try ValueCoding.decode(Value.self, try reply.blob())
    }

    /// Stores `value` under `key`.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value.
    /// - Throws: as ``get(_:)``.
    public func set(_ key: Key, _ value: Value) throws {
        let k = try ValueCoding.encode(key)
        let v = try ValueCoding.encode(value)
        _ = try reference.call(.dSet) {
            $0.blob(k)
            $0.blob(v)
        }
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
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dDelete) { $0.blob(k) }
        guard try reply.bool() else { return nil }
        return try ValueCoding.decode(Value.self, try reply.blob())
    }

    /// Whether `key` has a value.
    ///
    /// - Parameter key: the key.
    /// - Returns: true when the dictionary holds the key.
    /// - Throws: as ``get(_:)``.
    public func contains(_ key: Key) throws -> Bool {
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dContains) { $0.blob(k) }
        return try reply.bool()
    }

    /// The number of entries.
    ///
    /// - Returns: the count.
    /// - Throws: as ``get(_:)``.
    public func count() throws -> Int {
        var reply = try reference.call(.dCount)
        return try reply.int()
    }

    /// A snapshot of every entry, taken atomically.
    ///
    /// - Returns: the dictionary's contents.
    /// - Throws: as ``get(_:)``.
    public func snapshot() throws -> [Key: Value] where Key: Hashable {
        var reply = try reference.call(.dItems)
        let n = try reply.int()
        var result: [Key: Value] = [:]
        for _ in 0..<n {
            let k = try ValueCoding.decode(Key.self, try reply.blob())
            result[k] = try ValueCoding.decode(Value.self, try reply.blob())
        }
        return result
    }

    /// Every entry as pairs, taken atomically (for keys that are not `Hashable`).
    ///
    /// - Returns: the entries in no particular order.
    /// - Throws: as ``get(_:)``.
    public func items() throws -> [(key: Key, value: Value)] {
        var reply = try reference.call(.dItems)
        let n = try reply.int()
        var result: [(key: Key, value: Value)] = []
        for _ in 0..<n {
            let k = try ValueCoding.decode(Key.self, try reply.blob())
            result.append((k, try ValueCoding.decode(Value.self, try reply.blob())))
        }
        return result
    }

    /// Removes every entry.
    ///
    /// - Throws: as ``get(_:)``.
    public func removeAll() throws {
        _ = try reference.call(.dClear)
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
        let k = try ValueCoding.encode(key)
        let v = try ValueCoding.encode(value)
        var reply = try reference.call(.dSetIfAbsent) {
            $0.blob(k)
            $0.blob(v)
        }
        let inserted = try reply.bool()
        return (inserted, try ValueCoding.decode(Value.self, try reply.blob()))
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
        let k = try ValueCoding.encode(key)
        let e = try expected.map { try ValueCoding.encode($0) }
        let n = try ValueCoding.encode(new)
        var reply = try reference.call(.dCompareAndSwap) {
            $0.blob(k)
            $0.bool(e != nil)
            $0.blob(e ?? [])
            $0.blob(n)
        }
        let swapped = try reply.bool()
        let present = try reply.bool()
        let current = try reply.blob()
        return (swapped, present ? try ValueCoding.decode(Value.self, current) : nil)
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
        let k = try ValueCoding.encode(key)
        let e = try expected.map { try ValueCoding.encode($0) }
        var reply = try reference.call(.dCompareAndDelete) {
            $0.blob(k)
            $0.bool(e != nil)
            $0.blob(e ?? [])
        }
        let deleted = try reply.bool()
        let present = try reply.bool()
        let current = try reply.blob()
        return (deleted, present ? try ValueCoding.decode(Value.self, current) : nil)
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
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dAddInt) {
            $0.blob(k)
            $0.signed(Int64(delta))
        }
        return Int(try reply.signed())
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
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dAddDouble) {
            $0.blob(k)
            $0.double(delta)
        }
        return try reply.double()
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
        let k = try ValueCoding.encode(key)
        let single = try ValueCoding.encode([element])
        var reply = try reference.call(.dAppend) {
            $0.blob(k)
            $0.blob(single)
        }
        return try reply.int()
    }
}
