import Multiprocessing

// A lock, an RLock, and a condition's own lock: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/LockHandler.swift.

/// A request to a lock, a recursive lock, or a condition's own (recursive) lock. `thread` is the calling thread
/// in the calling process (which the server knows by its connection).
internal enum LockRequest: Codable, Sendable, Equatable {
    case acquire(thread: UInt64, timeout: Int64?)
    case release(thread: UInt64)
    case isLocked
}

internal enum LockReply: Codable, Sendable, Equatable {
    case acquire(LockAcquisition)
    case release
    case isLocked(Bool)
}

/// How an acquire ended.
internal enum LockAcquisition: UInt8, Codable, Sendable, Equatable {
    case acquired = 0
    case timedOut = 1
    /// Acquired, after the previous owner's process died holding the lock.
    case acquiredAfterOwnerDied = 2
}

extension LockRequest: ObjectRequest {
    typealias Reply = LockReply
    static var kindName: String { "lock" }
    var operation: String {
        switch self {
        case .acquire: "acquire"
        case .release: "release"
        case .isLocked: "isLocked"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .lock(object: id, self) }
}

// MARK: layout

extension LockRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .acquire(let thread, let timeout):
            w = ByteWriter(op: .acquire, object: id)
            w.varint(thread)
            w.timeout(timeout)
        case .release(let thread):
            w = ByteWriter(op: .release, object: id)
            w.varint(thread)
        case .isLocked: w = ByteWriter(op: .isLocked, object: id)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .acquire: self = .acquire(thread: try r.varint(), timeout: try r.timeout())
        case .release: self = .release(thread: try r.varint())
        case .isLocked: self = .isLocked
        default: throw unknownOperation(op, "a lock")
        }
    }
}

extension LockReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .acquire(let outcome): w.byte(outcome.rawValue)
        case .release: break
        case .isLocked(let locked): w.bool(locked)
        }
    }

    internal init(_ r: inout ByteReader, answering request: LockRequest) throws {
        switch request {
        case .acquire:
            let raw = try r.byte()
            guard let outcome = LockAcquisition(rawValue: raw) else { throw ByteReader.malformed("acquire outcome \(raw) is unknown") }
            self = .acquire(outcome)
        case .release: self = .release
        case .isLocked: self = .isLocked(try r.bool())
        }
    }
}
