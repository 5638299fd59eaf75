import Multiprocessing

// A fixed-length array (ManagedArray, issue 18): requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/ArrayHandler.swift.

internal enum ArrayRequest: Codable, Sendable, Equatable {
    /// A negative index counts from the end.
    case get(index: Int64)
    case set(index: Int64, element: [UInt8])
    case count
    case snapshot
    /// Replaces `elements.count` elements from `start` on (Python's slice assignment, whose
    /// length may not change an array's).
    case setSlice(start: Int64, elements: [[UInt8]])
    /// Adds to a stored zigzag-varint integer.
    case increment(index: Int64, by: Int64)
    /// Adds to a stored Double.
    case incrementDouble(index: Int64, by: Double)
}

internal enum ArrayReply: Codable, Sendable, Equatable {
    case get(element: [UInt8])
    case set
    case count(Int)
    case snapshot(elements: [[UInt8]])
    case setSlice
    case increment(Int64)
    case incrementDouble(Double)
}

extension ArrayRequest: ObjectRequest {
    typealias Reply = ArrayReply
    static var kindName: String { "array" }
    var operation: String {
        switch self {
        case .get: "get"
        case .set: "set"
        case .count: "count"
        case .snapshot: "snapshot"
        case .setSlice: "setSlice"
        case .increment: "increment"
        case .incrementDouble: "incrementDouble"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .array(object: id, self) }
}

// MARK: layout

extension ArrayRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .get(let index):
            w = ByteWriter(op: .aGet, object: id)
            w.signed(index)
        case .set(let index, let element):
            w = ByteWriter(op: .aSet, object: id)
            w.signed(index)
            w.blob(element)
        case .count: w = ByteWriter(op: .aCount, object: id)
        case .snapshot: w = ByteWriter(op: .aSnapshot, object: id)
        case .setSlice(let start, let elements):
            w = ByteWriter(op: .aSetSlice, object: id)
            w.signed(start)
            w.blobs(elements)
        case .increment(let index, let delta):
            w = ByteWriter(op: .aAddInt, object: id)
            w.signed(index)
            w.signed(delta)
        case .incrementDouble(let index, let delta):
            w = ByteWriter(op: .aAddDouble, object: id)
            w.signed(index)
            w.double(delta)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .aGet: self = .get(index: try r.signed())
        case .aSet:
            let index = try r.signed()
            self = .set(index: index, element: try r.blob())
        case .aCount: self = .count
        case .aSnapshot: self = .snapshot
        case .aSetSlice:
            let start = try r.signed()
            self = .setSlice(start: start, elements: try r.blobs())
        case .aAddInt:
            let index = try r.signed()
            self = .increment(index: index, by: try r.signed())
        case .aAddDouble:
            let index = try r.signed()
            self = .incrementDouble(index: index, by: try r.double())
        default: throw unknownOperation(op, "an array")
        }
    }
}

extension ArrayReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .get(let element): w.blob(element)
        case .set, .setSlice: break
        case .count(let n): w.count(n)
        case .snapshot(let elements): w.blobs(elements)
        case .increment(let sum): w.signed(sum)
        case .incrementDouble(let sum): w.double(sum)
        }
    }

    internal init(_ r: inout ByteReader, answering request: ArrayRequest) throws {
        switch request {
        case .get: self = .get(element: try r.blob())
        case .set: self = .set
        case .count: self = .count(try r.int())
        case .snapshot: self = .snapshot(elements: try r.blobs())
        case .setSlice: self = .setSlice
        case .increment: self = .increment(try r.signed())
        case .incrementDouble: self = .incrementDouble(try r.double())
        }
    }
}
