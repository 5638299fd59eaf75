import Multiprocessing

// A barrier: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/BarrierHandler.swift.

internal enum BarrierRequest: Codable, Sendable, Equatable {
    case wait(timeout: Int64?)
    case reset
    case abort
    case state
}

internal enum BarrierReply: Codable, Sendable, Equatable {
    /// This caller's arrival index.
    case wait(index: Int)
    case reset
    case abort
    case state(parties: Int, waiting: Int, broken: Bool)
}

extension BarrierRequest: ObjectRequest {
    typealias Reply = BarrierReply
    static var kindName: String { "barrier" }
    var operation: String {
        switch self {
        case .wait: "wait"
        case .reset: "reset"
        case .abort: "abort"
        case .state: "state"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .barrier(object: id, self) }
}

// MARK: layout

extension BarrierRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .wait(let timeout):
            w = ByteWriter(op: .bWait, object: id)
            w.timeout(timeout)
        case .reset: w = ByteWriter(op: .bReset, object: id)
        case .abort: w = ByteWriter(op: .bAbort, object: id)
        case .state: w = ByteWriter(op: .bInfo, object: id)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .bWait: self = .wait(timeout: try r.timeout())
        case .bReset: self = .reset
        case .bAbort: self = .abort
        case .bInfo: self = .state
        default: throw unknownOperation(op, "a barrier")
        }
    }
}

extension BarrierReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .wait(let index): w.count(index)
        case .reset, .abort: break
        case .state(let parties, let waiting, let broken):
            w.count(parties)
            w.count(waiting)
            w.bool(broken)
        }
    }

    internal init(_ r: inout ByteReader, answering request: BarrierRequest) throws {
        switch request {
        case .wait: self = .wait(index: try r.int())
        case .reset: self = .reset
        case .abort: self = .abort
        case .state: self = .state(parties: try r.int(), waiting: try r.int(), broken: try r.bool())
        }
    }
}
