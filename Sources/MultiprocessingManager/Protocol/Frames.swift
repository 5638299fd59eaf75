import Multiprocessing
import MultiprocessingSystem

/// Requests and replies as frames: the frame header (see `ManagerPlatform.frameHeaderSize`), then
/// the body (Layout.swift).
internal enum ManagerWire {
    /// A request's body (no frame header): what `ManagerServer.handle` reads.
    internal static func encodeRequest(_ request: ManagerRequest) -> [UInt8] {
        Array(request.frame().dropFirst(ManagerPlatform.frameHeaderSize))
    }

    /// A reply frame for status ok, ready to send.
    internal static func replyFrame<Reply: ReplyLayout>(_ reply: Reply) -> [UInt8] {
        var w = ByteWriter(status: .ok)
        reply.write(to: &w)
        return w.finish()
    }

    /// A reply frame for status ok, ready to send.
    internal static func replyFrame(_ reply: ManagerReply) -> [UInt8] {
        var w = ByteWriter(status: .ok)
        reply.write(to: &w)
        return w.finish()
    }
}

extension ManagerClient {
    /// Sends one of the manager's own requests and decodes its reply.
    ///
    /// - Throws: what ``call(_:interrupt:)`` throws; `malformedFrame` for a reply that ends early.
    internal func request(_ request: ManagerRequest) throws -> ManagerReply {
        var reader = try call(request.frame())
        return try ManagerReply(&reader, answering: request)
    }

    /// Sends a request to object `id` and decodes its typed reply.
    internal func request<Request: ObjectRequest>(_ request: Request, object id: UInt64,
                                                 interrupt: CallInterrupt? = nil) throws -> Request.Reply {
        var reader = try call(request.envelope(object: id).frame(), interrupt: interrupt)
        return try Request.Reply(&reader, answering: request)
    }
}

extension ObjectReference {
    /// Sends a request about this object and returns its typed reply.
    internal func call<Request: ObjectRequest>(_ request: Request, interrupt: CallInterrupt? = nil) throws -> Request.Reply {
        try client.request(request, object: id, interrupt: interrupt)
    }

    /// How many calls are blocked on this object on the server now (tests and diagnostics).
    internal func waiterCount() throws -> Int {
        guard case .waiters(let count) = try client.request(.waiters(object: id)) else {
            throw unexpectedReply(to: "waiters")
        }
        return count
    }
}

/// A timeout for a request: nil for ever, else whole nanoseconds (rounded up, saturating).
///
/// - Throws: `MultiprocessingError/Code/misuse` for a negative timeout (Python raises
///   ValueError), before anything is sent.
internal func wireTimeout(_ value: Duration?) throws -> Int64? {
    guard let value else { return nil }
    guard value >= .zero else {
        throw MultiprocessingError(.misuse, "A manager call's timeout must not be negative (it was \(value)); pass nil to wait for ever.")
    }
    return wireTimeoutNanoseconds(value)
}

/// The error for a reply of the wrong case: the server and this client disagree about the
/// protocol (which the handshake's version check should have caught).
internal func unexpectedReply(to request: some ObjectRequest) -> MultiprocessingError {
    unexpectedReply(to: "\(type(of: request).kindName) \(request.operation)")
}

internal func unexpectedReply(to what: String) -> MultiprocessingError {
    MultiprocessingError(.malformedFrame, "The manager server's reply to \(what) is the reply to another request.")
}
