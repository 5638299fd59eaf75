import Multiprocessing

// A value (ManagedValue, ManagedNamespace): requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/ValueHandler.swift.

internal enum ValueRequest: Codable, Sendable, Equatable {
    case get
    case set(value: [UInt8])
    case compareAndSwap(expected: [UInt8], new: [UInt8])
    case increment(by: Int64)
    case incrementDouble(by: Double)
}

internal enum ValueReply: Codable, Sendable, Equatable {
    case get(value: [UInt8])
    case set
    case compareAndSwap(swapped: Bool, current: [UInt8])
    case increment(Int64)
    case incrementDouble(Double)
}

extension ValueRequest: ObjectRequest {
    typealias Reply = ValueReply
    static var kindName: String { "value" }
    var operation: String {
        switch self {
        case .get: "get"
        case .set: "set"
        case .compareAndSwap: "compareAndSwap"
        case .increment: "increment"
        case .incrementDouble: "incrementDouble"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .value(object: id, self) }
}

// MARK: layout

extension ValueRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .get: w = ByteWriter(op: .vGet, object: id)
        case .set(let value):
            w = ByteWriter(op: .vSet, object: id)
            w.blob(value)
        case .compareAndSwap(let expected, let new):
            w = ByteWriter(op: .vCompareAndSwap, object: id)
            w.blob(expected)
            w.blob(new)
        case .increment(let delta):
            w = ByteWriter(op: .vAddInt, object: id)
            w.signed(delta)
        case .incrementDouble(let delta):
            w = ByteWriter(op: .vAddDouble, object: id)
            w.double(delta)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .vGet: self = .get
        case .vSet: self = .set(value: try r.blob())
        case .vCompareAndSwap: self = .compareAndSwap(expected: try r.blob(), new: try r.blob())
        case .vAddInt: self = .increment(by: try r.signed())
        case .vAddDouble: self = .incrementDouble(by: try r.double())
        default: throw unknownOperation(op, "a value")
        }
    }
}

extension ValueReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .get(let value): w.blob(value)
        case .set: break
        case .compareAndSwap(let swapped, let current):
            w.bool(swapped)
            w.blob(current)
        case .increment(let sum): w.signed(sum)
        case .incrementDouble(let sum): w.double(sum)
        }
    }

    internal init(_ r: inout ByteReader, answering request: ValueRequest) throws {
        switch request {
        case .get: self = .get(value: try r.blob())
        case .set: self = .set
        case .compareAndSwap: self = .compareAndSwap(swapped: try r.bool(), current: try r.blob())
        case .increment: self = .increment(try r.signed())
        case .incrementDouble: self = .incrementDouble(try r.double())
        }
    }
}
