import Multiprocessing

// A distributed actor: requests, replies, and their byte layout.
// The protocol's shape: Messages.swift and Layout.swift. The server's side: Handlers/ActorHandler.swift.

internal enum ActorRequest: Codable, Sendable, Equatable {
    /// A distributed method: its mangled name, generic substitutions and encoded arguments.
    case call(target: String, genericSubstitutions: [String], arguments: [[UInt8]])
    /// Checks that the actor exists.
    case resolve
}

internal enum ActorReply: Codable, Sendable, Equatable {
    /// The method's encoded result.
    case call(result: [UInt8])
    case resolve
}

extension ActorRequest: ObjectRequest {
    typealias Reply = ActorReply
    static var kindName: String { "actor" }
    var operation: String {
        switch self {
        case .call: "call"
        case .resolve: "resolve"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .actor(object: id, self) }
}

// MARK: layout

extension ActorRequest {
    internal func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .call(let target, let generics, let arguments):
            w = ByteWriter(op: .actorCall, object: id)
            w.string(target)
            w.count(generics.count)
            for name in generics { w.string(name) }
            w.blobs(arguments)
        case .resolve: w = ByteWriter(op: .actorResolve, object: id)
        }
        return w
    }

    internal init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .actorCall: self = .call(target: try r.string(), genericSubstitutions: try r.strings(), arguments: try r.blobs())
        case .actorResolve: self = .resolve
        default: throw unknownOperation(op, "an actor")
        }
    }
}

extension ActorReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .call(let result): w.blob(result)
        case .resolve: break
        }
    }

    internal init(_ r: inout ByteReader, answering request: ActorRequest) throws {
        switch request {
        case .call: self = .call(result: try r.blob())
        case .resolve: self = .resolve
        }
    }
}
