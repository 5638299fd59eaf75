import Multiprocessing

/// A dictionary's contents: encoded keys to encoded values, in insertion order (Python's).
internal final class DictionaryState {
    /// Every change bumps ``version`` (the observer runs after in-place changes too), so that a
    /// client's read-combine-write (`merge`) writes only over what it read.
    internal var entries = OrderedEntries() {
        didSet { version &+= 1 }
    }
    internal private(set) var version: UInt64 = 0
}

/// Keys to values in insertion order, as CPython's dict keeps them: the keys in an array in the
/// order they were first set (a removed key leaves a hole, compacted once holes are half the
/// array), and a hash table from each key to its slot and value. Setting an existing key keeps
/// its place; `popLast` takes the last key inserted (Python's `popitem`).
internal struct OrderedEntries {
    private var slots: [[UInt8]?] = []
    private var table: [[UInt8]: (slot: Int, value: [UInt8])] = [:]
    private var holes = 0

    internal var count: Int { table.count }

    internal subscript(key: [UInt8]) -> [UInt8]? {
        get { table[key]?.value }
        set {
            if let newValue {
                if let entry = table[key] {
                    table[key] = (entry.slot, newValue)
                } else {
                    slots.append(key)
                    table[key] = (slots.count - 1, newValue)
                }
            } else {
                removeValue(forKey: key)
            }
        }
    }

    @discardableResult
    internal mutating func removeValue(forKey key: [UInt8]) -> [UInt8]? {
        guard let entry = table.removeValue(forKey: key) else { return nil }
        slots[entry.slot] = nil
        holes += 1
        if holes > 32 && holes * 2 > slots.count { compact() }
        return entry.value
    }

    /// Removes and returns the entry inserted last.
    internal mutating func popLast() -> (key: [UInt8], value: [UInt8])? {
        while let last = slots.popLast() {
            guard let key = last else {
                holes -= 1
                continue
            }
            if let entry = table.removeValue(forKey: key) { return (key, entry.value) }
        }
        return nil
    }

    /// Every entry, in insertion order.
    internal var items: [(key: [UInt8], value: [UInt8])] {
        var result: [(key: [UInt8], value: [UInt8])] = []
        result.reserveCapacity(table.count)
        for case let key? in slots {
            if let entry = table[key] { result.append((key, entry.value)) }
        }
        return result
    }

    private mutating func compact() {
        var kept: [[UInt8]?] = []
        kept.reserveCapacity(table.count)
        for case let key? in slots {
            guard let entry = table[key] else { continue }
            table[key] = (kept.count, entry.value)
            kept.append(key)
        }
        slots = kept
        holes = 0
    }
}

extension ManagerServer {
    internal func serve(_ request: DictionaryRequest, _ object: ServerObject, _ state: DictionaryState) throws -> DictionaryReply {
        switch request {
        case .get(let key):
            return .get(value: try locked(object) { state.entries[key] })
        case .set(let key, let value):
            try locked(object) { state.entries[key] = value }
            return .set
        case .removeValue(let key):
            return .removeValue(old: try locked(object) { state.entries.removeValue(forKey: key) })
        case .contains(let key):
            return .contains(try locked(object) { state.entries[key] != nil })
        case .count:
            return .count(try locked(object) { state.entries.count })
        case .items:
            let items = try locked(object) { state.entries.items }
            return .items(keys: items.map(\.key), values: items.map(\.value))
        case .removeAll:
            try locked(object) { state.entries = OrderedEntries() }
            return .removeAll
        case .setIfAbsent(let key, let value):
            let (inserted, current) = try locked(object) { () -> (Bool, [UInt8]) in
                if let existing = state.entries[key] { return (false, existing) }
                state.entries[key] = value
                return (true, value)
            }
            return .setIfAbsent(inserted: inserted, current: current)
        case .compareAndSwap(let key, let expected, let new):
            let (swapped, current) = try locked(object) { () -> (Bool, [UInt8]?) in
                let current = state.entries[key]
                guard current == expected else { return (false, current) }
                state.entries[key] = new
                return (true, new)
            }
            return .compareAndSwap(swapped: swapped, current: current)
        case .compareAndDelete(let key, let expected):
            let (deleted, current) = try locked(object) { () -> (Bool, [UInt8]?) in
                let current = state.entries[key]
                guard current == expected else { return (false, current) }
                state.entries[key] = nil
                return (true, nil)
            }
            return .compareAndDelete(deleted: deleted, current: current)
        case .increment(let key, let delta):
            return .increment(try locked(object) { () -> Int64 in
                let (sum, overflow) = try wireStoredInteger(state.entries[key]).addingReportingOverflow(delta)
                guard !overflow else { throw MultiprocessingError(.misuse, "increment: the result overflows a 64-bit integer.") }
                var bytes = ByteWriterRaw()
                bytes.signed(sum)
                state.entries[key] = bytes.bytes
                return sum
            })
        case .incrementDouble(let key, let delta):
            return .incrementDouble(try locked(object) { () -> Double in
                let sum = try wireStoredDouble(state.entries[key]) + delta
                state.entries[key] = wireDoubleBytes(sum)
                return sum
            })
        case .append(let key, let single):
            return .append(count: try locked(object) { () -> Int in
                let (list, count) = try wireAppendToList(state.entries[key], single)
                state.entries[key] = list
                return count
            })
        case .update(let version, let keys, let values):
            guard keys.count == values.count else {
                throw MultiprocessingError(.misuse, "update: \(keys.count) keys came with \(values.count) values.")
            }
            return try locked(object) { () -> DictionaryReply in
                if let version, version != state.version { return .update(updated: false, version: state.version) }
                for (key, value) in zip(keys, values) { state.entries[key] = value }
                return .update(updated: true, version: state.version)
            }
        case .getMany(let keys):
            return try locked(object) { .getMany(version: state.version, values: keys.map { state.entries[$0] }) }
        case .popLast:
            let entry = try locked(object) { state.entries.popLast() }
            return .popLast(key: entry?.key, value: entry?.value ?? [])
        }
    }
}
