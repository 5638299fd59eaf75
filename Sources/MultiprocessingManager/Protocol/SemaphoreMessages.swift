import Multiprocessing

// A semaphore: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/SemaphoreHandler.swift.

internal enum SemaphoreRequest: Codable, Sendable, Equatable {
    case acquire(timeout: Int64?)
    case release(count: Int)
    case value
}

internal enum SemaphoreReply: Codable, Sendable, Equatable {
    /// false: no permit came before the timeout.
    case acquire(acquired: Bool)
    case release
    case value(Int)
}

extension SemaphoreRequest: ObjectRequest {
    typealias Reply = SemaphoreReply
    static var kindName: String { "semaphore" }
    var operation: String {
        switch self {
        case .acquire: "acquire"
        case .release: "release"
        case .value: "value"
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
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .semAcquire: self = .acquire(timeout: try r.timeout())
        case .semRelease: self = .release(count: try r.int())
        case .semValue: self = .value
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
        }
    }

    internal init(_ r: inout ByteReader, answering request: SemaphoreRequest) throws {
        switch request {
        case .acquire: self = .acquire(acquired: try r.bool())
        case .release: self = .release
        case .value: self = .value(try r.int())
        }
    }
}
