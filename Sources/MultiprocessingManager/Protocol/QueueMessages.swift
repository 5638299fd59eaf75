import Multiprocessing

// A queue: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/QueueHandler.swift.

internal enum QueueRequest: Codable, Sendable, Equatable {
    case put(item: [UInt8], timeout: Int64?)
    case get(timeout: Int64?)
    case count
}

/// A put or get that times out is an error reply (`full`, `empty`).
internal enum QueueReply: Codable, Sendable, Equatable {
    case put
    case get(item: [UInt8])
    case count(Int)
}

extension QueueRequest: ObjectRequest {
    typealias Reply = QueueReply
    static var kindName: String { "queue" }
    var operation: String {
        switch self {
        case .put: "put"
        case .get: "get"
        case .count: "count"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .queue(object: id, self) }
}

// MARK: layout

extension QueueRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .put(let item, let timeout):
            w = ByteWriter(op: .qPut, object: id)
            w.blob(item)
            w.timeout(timeout)
        case .get(let timeout):
            w = ByteWriter(op: .qGet, object: id)
            w.timeout(timeout)
        case .count: w = ByteWriter(op: .qCount, object: id)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .qPut: self = .put(item: try r.blob(), timeout: try r.timeout())
        case .qGet: self = .get(timeout: try r.timeout())
        case .qCount: self = .count
        default: throw unknownOperation(op, "a queue")
        }
    }
}

extension QueueReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .put: break
        case .get(let item): w.blob(item)
        case .count(let n): w.count(n)
        }
    }

    internal init(_ r: inout ByteReader, answering request: QueueRequest) throws {
        switch request {
        case .put: self = .put
        case .get: self = .get(item: try r.blob())
        case .count: self = .count(try r.int())
        }
    }
}
