import Multiprocessing

// A condition variable: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/ConditionHandler.swift.

/// A condition's own lock takes `LockRequest`s.
internal enum ConditionRequest: Codable, Sendable, Equatable {
    case wait(thread: UInt64, timeout: Int64?)
    case notify(thread: UInt64, count: Int)
}

internal enum ConditionReply: Codable, Sendable, Equatable {
    /// false: the timeout passed before a notify.
    case wait(notified: Bool)
    case notify
}

extension ConditionRequest: ObjectRequest {
    typealias Reply = ConditionReply
    static var kindName: String { "condition" }
    var operation: String {
        switch self {
        case .wait: "wait"
        case .notify: "notify"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .condition(object: id, self) }
}

// MARK: layout

extension ConditionRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .wait(let thread, let timeout):
            w = ByteWriter(op: .cWait, object: id)
            w.varint(thread)
            w.timeout(timeout)
        case .notify(let thread, let count):
            w = ByteWriter(op: .cNotify, object: id)
            w.varint(thread)
            w.count(count)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .cWait: self = .wait(thread: try r.varint(), timeout: try r.timeout())
        case .cNotify: self = .notify(thread: try r.varint(), count: try r.int())
        default: throw unknownOperation(op, "a condition")
        }
    }
}

extension ConditionReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .wait(let notified): w.bool(notified)
        case .notify: break
        }
    }

    internal init(_ r: inout ByteReader, answering request: ConditionRequest) throws {
        switch request {
        case .wait: self = .wait(notified: try r.bool())
        case .notify: self = .notify
        }
    }
}
