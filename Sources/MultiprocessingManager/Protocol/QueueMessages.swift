import Multiprocessing

// A queue: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/QueueHandler.swift.

internal enum QueueRequest: Codable, Sendable, Equatable {
    case put(item: [UInt8], timeout: Int64?)
    case get(timeout: Int64?)
    case count
    /// The count, the bound and the unfinished tasks in one reply (isEmpty, isFull, count).
    case info
    /// Marks one task done (the joinable queue's `taskDone`).
    case taskDone
    /// Waits until every item put so far is marked done; answers `.join(done: false)` at the timeout.
    case join(timeout: Int64?)
    /// Python 3.13's `shutdown(immediate)`: puts are refused from now on, gets drain what is
    /// left (nothing, with `immediate`) and then fail; waiters wake.
    case shutdown(immediate: Bool)
}

/// A put or get that times out is an error reply (`full`, `empty`).
internal enum QueueReply: Codable, Sendable, Equatable {
    case put
    case get(item: [UInt8])
    case count(Int)
    /// `maximumSize` 0 is unbounded; `unfinished` counts items put and not marked done.
    case info(count: Int, maximumSize: Int, unfinished: Int)
    case taskDone
    /// false: tasks were still unfinished at the timeout.
    case join(done: Bool)
    case shutdown
}

extension QueueRequest: ObjectRequest {
    typealias Reply = QueueReply
    static var kindName: String { "queue" }
    var operation: String {
        switch self {
        case .put: "put"
        case .get: "get"
        case .count: "count"
        case .info: "info"
        case .taskDone: "taskDone"
        case .join: "join"
        case .shutdown: "shutdown"
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
        case .info: w = ByteWriter(op: .qInfo, object: id)
        case .taskDone: w = ByteWriter(op: .qTaskDone, object: id)
        case .join(let timeout):
            w = ByteWriter(op: .qJoin, object: id)
            w.timeout(timeout)
        case .shutdown(let immediate):
            w = ByteWriter(op: .qShutdown, object: id)
            w.bool(immediate)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .qPut: self = .put(item: try r.blob(), timeout: try r.timeout())
        case .qGet: self = .get(timeout: try r.timeout())
        case .qCount: self = .count
        case .qInfo: self = .info
        case .qTaskDone: self = .taskDone
        case .qJoin: self = .join(timeout: try r.timeout())
        case .qShutdown: self = .shutdown(immediate: try r.bool())
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
        case .info(let count, let maximumSize, let unfinished):
            w.count(count)
            w.count(maximumSize)
            w.count(unfinished)
        case .taskDone: break
        case .join(let done): w.bool(done)
        case .shutdown: break
        }
    }

    internal init(_ r: inout ByteReader, answering request: QueueRequest) throws {
        switch request {
        case .put: self = .put
        case .get: self = .get(item: try r.blob())
        case .count: self = .count(try r.int())
        case .info: self = .info(count: try r.int(), maximumSize: try r.int(), unfinished: try r.int())
        case .taskDone: self = .taskDone
        case .join: self = .join(done: try r.bool())
        case .shutdown: self = .shutdown
        }
    }
}
