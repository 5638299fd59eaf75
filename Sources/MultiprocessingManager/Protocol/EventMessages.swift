import Multiprocessing

// An event: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/EventHandler.swift.

internal enum EventRequest: Codable, Sendable, Equatable {
    case set
    case clear
    case isSet
    case wait(timeout: Int64?)
}

internal enum EventReply: Codable, Sendable, Equatable {
    case set
    case clear
    case isSet(Bool)
    /// false: the timeout passed with the flag clear.
    case wait(set: Bool)
}

extension EventRequest: ObjectRequest {
    typealias Reply = EventReply
    static var kindName: String { "event" }
    var operation: String {
        switch self {
        case .set: "set"
        case .clear: "clear"
        case .isSet: "isSet"
        case .wait: "wait"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .event(object: id, self) }
}

// MARK: layout

extension EventRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .set: w = ByteWriter(op: .evSet, object: id)
        case .clear: w = ByteWriter(op: .evClear, object: id)
        case .isSet: w = ByteWriter(op: .evIsSet, object: id)
        case .wait(let timeout):
            w = ByteWriter(op: .evWait, object: id)
            w.timeout(timeout)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .evSet: self = .set
        case .evClear: self = .clear
        case .evIsSet: self = .isSet
        case .evWait: self = .wait(timeout: try r.timeout())
        default: throw unknownOperation(op, "an event")
        }
    }
}

extension EventReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .set, .clear: break
        case .isSet(let flag), .wait(let flag): w.bool(flag)
        }
    }

    internal init(_ r: inout ByteReader, answering request: EventRequest) throws {
        switch request {
        case .set: self = .set
        case .clear: self = .clear
        case .isSet: self = .isSet(try r.bool())
        case .wait: self = .wait(set: try r.bool())
        }
    }
}
