import Multiprocessing

// A list: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/ListHandler.swift.

internal enum ListRequest: Codable, Sendable, Equatable {
    case append(element: [UInt8])
    case extend(elements: [[UInt8]])
    /// A negative index counts from the end.
    case get(index: Int64)
    case set(index: Int64, element: [UInt8])
    case count
    case snapshot
    case remove(index: Int64)
    /// An index past either end inserts at that end.
    case insert(element: [UInt8], index: Int64)
    case removeAll
    /// How many elements have these bytes (Python's `count(x)`).
    case countOf(element: [UInt8])
    /// The first position from `start` up to `end` (nil: the end) of an element with these bytes
    /// (Python's `index(x, start, stop)`; negative bounds count from the end, as a slice's).
    case indexOf(element: [UInt8], start: Int64, end: Int64?)
    /// Reverses the list in place.
    case reverse
    /// Every element, with the list's version (bumped by every change).
    case versionedSnapshot
    /// Replaces every element, only if the list's version is still `version`.
    case replace(version: UInt64, elements: [[UInt8]])
}

internal enum ListReply: Codable, Sendable, Equatable {
    case append(count: Int)
    case extend(count: Int)
    case get(element: [UInt8])
    case set
    case count(Int)
    case snapshot(elements: [[UInt8]])
    case remove(element: [UInt8])
    case insert
    case removeAll
    case countOf(Int)
    /// nil: no such element in the range.
    case indexOf(Int?)
    case reverse
    case versionedSnapshot(version: UInt64, elements: [[UInt8]])
    /// Whether the elements were replaced, and the version now.
    case replace(replaced: Bool, version: UInt64)
}

extension ListRequest: ObjectRequest {
    typealias Reply = ListReply
    static var kindName: String { "list" }
    var operation: String {
        switch self {
        case .append: "append"
        case .extend: "extend"
        case .get: "get"
        case .set: "set"
        case .count: "count"
        case .snapshot: "snapshot"
        case .remove: "remove"
        case .insert: "insert"
        case .removeAll: "removeAll"
        case .countOf: "countOf"
        case .indexOf: "indexOf"
        case .reverse: "reverse"
        case .versionedSnapshot: "versionedSnapshot"
        case .replace: "replace"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .list(object: id, self) }
}

// MARK: layout

extension ListRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .append(let element):
            w = ByteWriter(op: .lAppend, object: id)
            w.blob(element)
        case .extend(let elements):
            w = ByteWriter(op: .lExtend, object: id)
            w.blobs(elements)
        case .get(let index):
            w = ByteWriter(op: .lGet, object: id)
            w.signed(index)
        case .set(let index, let element):
            w = ByteWriter(op: .lSet, object: id)
            w.signed(index)
            w.blob(element)
        case .count: w = ByteWriter(op: .lCount, object: id)
        case .snapshot: w = ByteWriter(op: .lSnapshot, object: id)
        case .remove(let index):
            w = ByteWriter(op: .lRemoveAt, object: id)
            w.signed(index)
        case .insert(let element, let index):
            w = ByteWriter(op: .lInsert, object: id)
            w.signed(index)
            w.blob(element)
        case .removeAll: w = ByteWriter(op: .lClear, object: id)
        case .countOf(let element):
            w = ByteWriter(op: .lCountOf, object: id)
            w.blob(element)
        case .indexOf(let element, let start, let end):
            w = ByteWriter(op: .lIndexOf, object: id)
            w.blob(element)
            w.signed(start)
            w.bool(end != nil)
            w.signed(end ?? 0)
        case .reverse: w = ByteWriter(op: .lReverse, object: id)
        case .versionedSnapshot: w = ByteWriter(op: .lVersionedSnapshot, object: id)
        case .replace(let version, let elements):
            w = ByteWriter(op: .lReplace, object: id)
            w.varint(version)
            w.blobs(elements)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .lAppend: self = .append(element: try r.blob())
        case .lExtend: self = .extend(elements: try r.blobs())
        case .lGet: self = .get(index: try r.signed())
        case .lSet:
            let index = try r.signed()
            self = .set(index: index, element: try r.blob())
        case .lCount: self = .count
        case .lSnapshot: self = .snapshot
        case .lRemoveAt: self = .remove(index: try r.signed())
        case .lInsert:
            let index = try r.signed()
            self = .insert(element: try r.blob(), index: index)
        case .lClear: self = .removeAll
        case .lCountOf: self = .countOf(element: try r.blob())
        case .lIndexOf:
            let element = try r.blob()
            let start = try r.signed()
            let bounded = try r.bool()
            let end = try r.signed()
            self = .indexOf(element: element, start: start, end: bounded ? end : nil)
        case .lReverse: self = .reverse
        case .lVersionedSnapshot: self = .versionedSnapshot
        case .lReplace: self = .replace(version: try r.varint(), elements: try r.blobs())
        default: throw unknownOperation(op, "a list")
        }
    }
}

extension ListReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .append(let n), .extend(let n), .count(let n): w.count(n)
        case .get(let element), .remove(let element): w.blob(element)
        case .set, .insert, .removeAll, .reverse: break
        case .snapshot(let elements): w.blobs(elements)
        case .countOf(let n): w.count(n)
        case .indexOf(let index):
            w.bool(index != nil)
            w.count(index ?? 0)
        case .versionedSnapshot(let version, let elements):
            w.varint(version)
            w.blobs(elements)
        case .replace(let replaced, let version):
            w.bool(replaced)
            w.varint(version)
        }
    }

    internal init(_ r: inout ByteReader, answering request: ListRequest) throws {
        switch request {
        case .append: self = .append(count: try r.int())
        case .extend: self = .extend(count: try r.int())
        case .get: self = .get(element: try r.blob())
        case .set: self = .set
        case .count: self = .count(try r.int())
        case .snapshot: self = .snapshot(elements: try r.blobs())
        case .remove: self = .remove(element: try r.blob())
        case .insert: self = .insert
        case .removeAll: self = .removeAll
        case .countOf: self = .countOf(try r.int())
        case .indexOf:
            let found = try r.bool()
            let index = try r.int()
            self = .indexOf(found ? index : nil)
        case .reverse: self = .reverse
        case .versionedSnapshot: self = .versionedSnapshot(version: try r.varint(), elements: try r.blobs())
        case .replace: self = .replace(replaced: try r.bool(), version: try r.varint())
        }
    }
}
