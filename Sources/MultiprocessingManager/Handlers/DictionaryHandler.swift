import Multiprocessing

/// A dictionary's contents: encoded keys to encoded values.
internal final class DictionaryState {
    internal var entries: [[UInt8]: [UInt8]] = [:]
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
            let items = try locked(object) { Array(state.entries) }
            return .items(keys: items.map(\.key), values: items.map(\.value))
        case .removeAll:
            try locked(object) { state.entries = [:] }
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
        }
    }
}
