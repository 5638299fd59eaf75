import Multiprocessing

// A dictionary: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/DictionaryHandler.swift.

internal enum DictionaryRequest: Codable, Sendable, Equatable {
    case get(key: [UInt8])
    case set(key: [UInt8], value: [UInt8])
    case removeValue(key: [UInt8])
    case contains(key: [UInt8])
    case count
    case items
    case removeAll
    case setIfAbsent(key: [UInt8], value: [UInt8])
    /// `expected` nil: swaps only if the key is absent.
    case compareAndSwap(key: [UInt8], expected: [UInt8]?, new: [UInt8])
    /// Removes the entry only if it is still `expected` (nil: only if still absent, which
    /// removes nothing).
    case compareAndDelete(key: [UInt8], expected: [UInt8]?)
    /// Adds to a stored zigzag-varint integer (absent is 0).
    case increment(key: [UInt8], by: Int64)
    /// Adds to a stored Double (absent is 0).
    case incrementDouble(key: [UInt8], by: Double)
    /// Appends a one-element array (`single`, encoded by the client) to a stored array.
    case append(key: [UInt8], single: [UInt8])
    /// Sets `keys[i]` to `values[i]`, all at once (Python's `update`); with `ifVersion`, only if
    /// the dictionary's version (which every change moves) is still that.
    case update(ifVersion: UInt64?, keys: [[UInt8]], values: [[UInt8]])
    /// The values of `keys` (nil where absent), with the dictionary's version.
    case getMany(keys: [[UInt8]])
    /// Removes and returns the entry inserted last (Python's `popitem`).
    case popLast
}

internal enum DictionaryReply: Codable, Sendable, Equatable {
    case get(value: [UInt8]?)
    case set
    case removeValue(old: [UInt8]?)
    case contains(Bool)
    case count(Int)
    /// Entry `i` is `keys[i]`, `values[i]`.
    case items(keys: [[UInt8]], values: [[UInt8]])
    case removeAll
    case setIfAbsent(inserted: Bool, current: [UInt8])
    case compareAndSwap(swapped: Bool, current: [UInt8]?)
    case compareAndDelete(deleted: Bool, current: [UInt8]?)
    case increment(Int64)
    case incrementDouble(Double)
    /// The array's element count after the append.
    case append(count: Int)
    /// Whether the entries were set, and the version now.
    case update(updated: Bool, version: UInt64)
    case getMany(version: UInt64, values: [[UInt8]?])
    /// `key` nil: the dictionary was empty.
    case popLast(key: [UInt8]?, value: [UInt8])
}

extension DictionaryRequest: ObjectRequest {
    typealias Reply = DictionaryReply
    static var kindName: String { "dictionary" }
    var operation: String {
        switch self {
        case .get: "get"
        case .set: "set"
        case .removeValue: "removeValue"
        case .contains: "contains"
        case .count: "count"
        case .items: "items"
        case .removeAll: "removeAll"
        case .setIfAbsent: "setIfAbsent"
        case .compareAndSwap: "compareAndSwap"
        case .compareAndDelete: "compareAndDelete"
        case .increment: "increment"
        case .incrementDouble: "incrementDouble"
        case .append: "append"
        case .update: "update"
        case .getMany: "getMany"
        case .popLast: "popLast"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .dictionary(object: id, self) }
}

// MARK: layout

extension DictionaryRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .get(let key):
            w = ByteWriter(op: .dGet, object: id)
            w.blob(key)
        case .set(let key, let value):
            w = ByteWriter(op: .dSet, object: id)
            w.blob(key)
            w.blob(value)
        case .removeValue(let key):
            w = ByteWriter(op: .dDelete, object: id)
            w.blob(key)
        case .contains(let key):
            w = ByteWriter(op: .dContains, object: id)
            w.blob(key)
        case .count: w = ByteWriter(op: .dCount, object: id)
        case .items: w = ByteWriter(op: .dItems, object: id)
        case .removeAll: w = ByteWriter(op: .dClear, object: id)
        case .setIfAbsent(let key, let value):
            w = ByteWriter(op: .dSetIfAbsent, object: id)
            w.blob(key)
            w.blob(value)
        case .compareAndSwap(let key, let expected, let new):
            w = ByteWriter(op: .dCompareAndSwap, object: id)
            w.blob(key)
            w.optionalBlob(expected)
            w.blob(new)
        case .compareAndDelete(let key, let expected):
            w = ByteWriter(op: .dCompareAndDelete, object: id)
            w.blob(key)
            w.optionalBlob(expected)
        case .increment(let key, let delta):
            w = ByteWriter(op: .dAddInt, object: id)
            w.blob(key)
            w.signed(delta)
        case .incrementDouble(let key, let delta):
            w = ByteWriter(op: .dAddDouble, object: id)
            w.blob(key)
            w.double(delta)
        case .append(let key, let single):
            w = ByteWriter(op: .dAppend, object: id)
            w.blob(key)
            w.blob(single)
        case .update(let version, let keys, let values):
            w = ByteWriter(op: .dUpdate, object: id)
            w.bool(version != nil)
            w.varint(version ?? 0)
            w.blobs(keys)
            w.blobs(values)
        case .getMany(let keys):
            w = ByteWriter(op: .dGetMany, object: id)
            w.blobs(keys)
        case .popLast: w = ByteWriter(op: .dPopLast, object: id)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .dGet: self = .get(key: try r.blob())
        case .dSet: self = .set(key: try r.blob(), value: try r.blob())
        case .dDelete: self = .removeValue(key: try r.blob())
        case .dContains: self = .contains(key: try r.blob())
        case .dCount: self = .count
        case .dItems: self = .items
        case .dClear: self = .removeAll
        case .dSetIfAbsent: self = .setIfAbsent(key: try r.blob(), value: try r.blob())
        case .dCompareAndSwap: self = .compareAndSwap(key: try r.blob(), expected: try r.optionalBlob(), new: try r.blob())
        case .dCompareAndDelete: self = .compareAndDelete(key: try r.blob(), expected: try r.optionalBlob())
        case .dAddInt: self = .increment(key: try r.blob(), by: try r.signed())
        case .dAddDouble: self = .incrementDouble(key: try r.blob(), by: try r.double())
        case .dAppend: self = .append(key: try r.blob(), single: try r.blob())
        case .dUpdate:
            let conditional = try r.bool()
            let version = try r.varint()
            self = .update(ifVersion: conditional ? version : nil, keys: try r.blobs(), values: try r.blobs())
        case .dGetMany: self = .getMany(keys: try r.blobs())
        case .dPopLast: self = .popLast
        default: throw unknownOperation(op, "a dictionary")
        }
    }
}

extension DictionaryReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .get(let value): w.optionalBlob(value)
        case .set, .removeAll: break
        case .removeValue(let old): w.optionalBlob(old)
        case .contains(let found): w.bool(found)
        case .count(let n): w.count(n)
        case .items(let keys, let values):
            w.count(min(keys.count, values.count))
            for (key, value) in zip(keys, values) {
                w.blob(key)
                w.blob(value)
            }
        case .setIfAbsent(let inserted, let current):
            w.bool(inserted)
            w.blob(current)
        case .compareAndSwap(let done, let current), .compareAndDelete(let done, let current):
            w.bool(done)
            w.optionalBlob(current)
        case .increment(let sum): w.signed(sum)
        case .incrementDouble(let sum): w.double(sum)
        case .append(let n): w.count(n)
        case .update(let updated, let version):
            w.bool(updated)
            w.varint(version)
        case .getMany(let version, let values):
            w.varint(version)
            w.count(values.count)
            for value in values { w.optionalBlob(value) }
        case .popLast(let key, let value):
            w.optionalBlob(key)
            w.blob(value)
        }
    }

    internal init(_ r: inout ByteReader, answering request: DictionaryRequest) throws {
        switch request {
        case .get: self = .get(value: try r.optionalBlob())
        case .set: self = .set
        case .removeValue: self = .removeValue(old: try r.optionalBlob())
        case .contains: self = .contains(try r.bool())
        case .count: self = .count(try r.int())
        case .items:
            var keys: [[UInt8]] = []
            var values: [[UInt8]] = []
            for _ in 0..<(try r.int()) {
                keys.append(try r.blob())
                values.append(try r.blob())
            }
            self = .items(keys: keys, values: values)
        case .removeAll: self = .removeAll
        case .setIfAbsent: self = .setIfAbsent(inserted: try r.bool(), current: try r.blob())
        case .compareAndSwap: self = .compareAndSwap(swapped: try r.bool(), current: try r.optionalBlob())
        case .compareAndDelete: self = .compareAndDelete(deleted: try r.bool(), current: try r.optionalBlob())
        case .increment: self = .increment(try r.signed())
        case .incrementDouble: self = .incrementDouble(try r.double())
        case .append: self = .append(count: try r.int())
        case .update: self = .update(updated: try r.bool(), version: try r.varint())
        case .getMany:
            let version = try r.varint()
            var values: [[UInt8]?] = []
            for _ in 0..<(try r.int()) { values.append(try r.optionalBlob()) }
            self = .getMany(version: version, values: values)
        case .popLast: self = .popLast(key: try r.optionalBlob(), value: try r.blob())
        }
    }
}
