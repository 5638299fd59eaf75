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
        default: throw unknownOperation(op, "a list")
        }
    }
}

extension ListReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .append(let n), .extend(let n), .count(let n): w.count(n)
        case .get(let element), .remove(let element): w.blob(element)
        case .set, .insert, .removeAll: break
        case .snapshot(let elements): w.blobs(elements)
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
        }
    }
}
