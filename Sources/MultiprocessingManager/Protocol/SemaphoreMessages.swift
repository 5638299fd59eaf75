import Multiprocessing

// A semaphore: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/SemaphoreHandler.swift.

internal enum SemaphoreRequest: Codable, Sendable, Equatable {
    case acquire(timeout: Int64?)
    case release(count: Int)
    case value
    /// The count and the bound (nil: not bounded) in one reply.
    case info
}

internal enum SemaphoreReply: Codable, Sendable, Equatable {
    /// false: no permit came before the timeout.
    case acquire(acquired: Bool)
    case release
    case value(Int)
    case info(value: Int, bound: Int?)
}

extension SemaphoreRequest: ObjectRequest {
    typealias Reply = SemaphoreReply
    static var kindName: String { "semaphore" }
    var operation: String {
        switch self {
        case .acquire: "acquire"
        case .release: "release"
        case .value: "value"
        case .info: "info"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .semaphore(object: id, self) }
}

// MARK: layout

extension SemaphoreRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .acquire(let timeout):
            w = ByteWriter(op: .semAcquire, object: id)
            w.timeout(timeout)
        case .release(let count):
            w = ByteWriter(op: .semRelease, object: id)
            w.count(count)
        case .value: w = ByteWriter(op: .semValue, object: id)
        case .info: w = ByteWriter(op: .semInfo, object: id)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .semAcquire: self = .acquire(timeout: try r.timeout())
        case .semRelease: self = .release(count: try r.int())
        case .semValue: self = .value
        case .semInfo: self = .info
        default: throw unknownOperation(op, "a semaphore")
        }
    }
}

extension SemaphoreReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .acquire(let acquired): w.bool(acquired)
        case .release: break
        case .value(let n): w.count(n)
        case .info(let value, let bound):
            w.count(value)
            w.bool(bound != nil)
            w.count(bound ?? 0)
        }
    }

    internal init(_ r: inout ByteReader, answering request: SemaphoreRequest) throws {
        switch request {
        case .acquire: self = .acquire(acquired: try r.bool())
        case .release: self = .release
        case .value: self = .value(try r.int())
        case .info:
            let value = try r.int()
            let bounded = try r.bool()
            let bound = try r.int()
            self = .info(value: value, bound: bounded ? bound : nil)
        }
    }
}
