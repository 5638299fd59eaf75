import Crypto
import MultiprocessingSystem
package import Multiprocessing
package import SystemPackage

/// The two ends of a handshake read and write through this: the manager's `FrameSocket`, and the
/// listener's and client's ``HandshakeSocket``.
package protocol HandshakeChannel {
    /// Exactly `count` bytes. Throws `endOfStream` when the peer closed before the first,
    /// `malformedFrame` when it closed after it, `timedOut` past the handshake's deadline.
    func readExactly(_ count: Int) throws -> [UInt8]
    /// All of `bytes`.
    func write(_ bytes: [UInt8]) throws(Errno)
}

/// Mutual HMAC-SHA256 challenge–response, run on every new connection before any request or
/// message: the manager's (dialect ``Dialect/manager``) and a listener's and client's
/// (``Dialect/connection``), which differ only in the greeting's magic and the labels the tags
/// cover, so that neither can be mistaken for, or replayed as, the other.
///
///     server → client   magic ("MPMG" or "MPCN") version 0 0 0, server nonce (32 random bytes)   40 bytes
///     client → server   client nonce (32), client id (8, little-endian),
///                       HMAC(key, "<label> client" ‖ server nonce ‖ client nonce ‖ client id)   72 bytes
///     server → client   status (0 = accepted, 1 = refused),
///                       HMAC(key, "<label> server" ‖ client nonce ‖ server nonce ‖ client id)   33 bytes
///
/// Each side proves it knows the key by tagging the other side's fresh nonce, so a recorded
/// exchange cannot be replayed, and the two tags use different labels so one side's answer can
/// never be reflected back as the other's. Tags are checked with swift-crypto's constant-time
/// comparison. The server sends its tag only after the client's checked out, and the client sends
/// no request until the server's tag checked out: neither reads a request from an unauthenticated
/// peer. The client id lets the server tell when every connection of a client process has gone
/// (to release the locks that process held); a connection's client sends its pid.
package enum Handshake {
    /// What tells one protocol's handshake from another's, and how its messages name the peers.
    package struct Dialect: Sendable {
        package let magic: [UInt8]
        package let label: String
        /// The server, in messages: "manager server", "listener".
        package let server: String
        /// What holds the key, in the server's messages: "manager", "listener".
        package let keyHolder: String
        /// The connection, in messages: "manager connection", "connection".
        package let connection: String

        /// The manager's handshake.
        package static let manager = Dialect(magic: [0x4D, 0x50, 0x4D, 0x47], label: "mp-manager", server: "manager server",
                                             keyHolder: "manager", connection: "manager connection")
        /// A listener's and client's handshake (MultiprocessingConnection).
        package static let connection = Dialect(magic: [0x4D, 0x50, 0x43, 0x4E], label: "mp-connection", server: "listener",
                                                keyHolder: "listener", connection: "connection")
    }

    package static let version: UInt8 = 1
    package static let serverHelloSize = 40
    package static let clientAnswerSize = 72
    package static let serverAnswerSize = 33

    private static func nonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    private static func tag(_ key: AuthKey, label: String, _ parts: [UInt8]...) -> [UInt8] {
        var mac = HMAC<SHA256>(key: SymmetricKey(data: key.bytes))
        mac.update(data: Array(label.utf8))
        for part in parts { mac.update(data: part) }
        return Array(mac.finalize())
    }

    private static func check(_ key: AuthKey, label: String, tag received: [UInt8], _ parts: [UInt8]...) -> Bool {
        var message = Array(label.utf8)
        for part in parts { message.append(contentsOf: part) }
        return HMAC<SHA256>.isValidAuthenticationCode(received, authenticating: message, using: SymmetricKey(data: key.bytes))
    }

    private static func idBytes(_ id: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: id >> (8 * UInt64($0))) }
    }

    /// Why a server turns a connection away (the answer's status byte: 2 and 3; 1 is a wrong key).
    package enum Refusal {
        /// The client proved its key, but `maximumConnections` authenticated connections are open.
        case connectionsFull(limit: Int)
        /// `maximumPendingHandshakes` newer connections arrived while this one was in the
        /// handshake, and it was the oldest: the client may try again.
        case handshakesFull(limit: Int)
    }

    private static func limitBytes(_ limit: Int) -> [UInt8] { idBytes(UInt64(max(0, limit))) }

    private static func readLimit(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var value: UInt64 = 0
        for (i, b) in bytes.prefix(8).enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
        return value
    }

    /// The server's answer for a refusal: status, the limit (8 bytes, little-endian), zeros.
    package static func refusalAnswer(_ refusal: Refusal) -> [UInt8] {
        let (status, limit): (UInt8, Int)
        switch refusal {
        case .connectionsFull(let n): (status, limit) = (2, n)
        case .handshakesFull(let n): (status, limit) = (3, n)
        }
        return [status] + limitBytes(limit) + [UInt8](repeating: 0, count: serverAnswerSize - 9)
    }

    /// The greeting of a server that cannot take one more connection into the handshake at all
    /// (its handshake threads are at twice `maximumPendingHandshakes`): "MPMG", the version, a 1
    /// where a greeting has 0, then the limit in place of the nonce.
    package static func busyGreeting(limit: Int) -> [UInt8] {
        Dialect.manager.magic + [version, 1, 0, 0] + limitBytes(limit) + [UInt8](repeating: 0, count: serverHelloSize - 16)
    }

    /// A refusal a client may retry: the server was only busy with other handshakes.
    package struct RetryableRefusal: Error {
        package let error: MultiprocessingError
    }

    private static func pendingMessage(_ address: some CustomStringConvertible, _ limit: UInt64) -> String {
        "The manager server at \(address) turned the connection away: too many connections were in the handshake at once (ManagerLimits.maximumPendingHandshakes = \(limit)). Unauthenticated peers may be flooding it."
    }

    /// The server's side. Returns the client id, or throws `authenticationFailed` (after telling
    /// the client), `serverBusy` (after telling the client why: `admit`, called once the client
    /// proved its key, returned a refusal), `timedOut`, `endOfStream` or `malformedFrame`.
    package static func serve(_ socket: some HandshakeChannel, key: AuthKey, dialect: Dialect = .manager, admit: () -> Refusal?) throws -> UInt64 {
        let serverNonce = nonce()
        var hello: [UInt8] = dialect.magic + [version, 0, 0, 0]
        hello.append(contentsOf: serverNonce)
        try write(socket, hello, dialect)
        let answer = try socket.readExactly(clientAnswerSize)
        let clientNonce = Array(answer[0..<32])
        let idRaw = Array(answer[32..<40])
        let clientTag = Array(answer[40..<72])
        guard check(key, label: dialect.label + " client", tag: clientTag, serverNonce, clientNonce, idRaw) else {
            try? write(socket, [1] + [UInt8](repeating: 0, count: 32), dialect)
            throw MultiprocessingError(.authenticationFailed, "A client failed authentication: it does not hold this \(dialect.keyHolder)'s key.")
        }
        if let refusal = admit() {
            try? write(socket, refusalAnswer(refusal), dialect)
            throw MultiprocessingError(.serverBusy, "A client was turned away: \(refusal).")
        }
        try write(socket, [0] + tag(key, label: dialect.label + " server", clientNonce, serverNonce, idRaw), dialect)
        var id: UInt64 = 0
        for (i, b) in idRaw.enumerated() { id |= UInt64(b) << (8 * UInt64(i)) }
        return id
    }

    /// The client's side. Throws `authenticationFailed` when either side's proof fails,
    /// `serverBusy` when the server serves its maximum of authenticated connections, and
    /// `RetryableRefusal` when it was only busy with other handshakes.
    package static func connect(_ socket: some HandshakeChannel, key: AuthKey, clientID: UInt64, address: some CustomStringConvertible,
                                dialect: Dialect = .manager) throws {
        let hello = try socket.readExactly(serverHelloSize)
        guard Array(hello[0..<4]) == dialect.magic else {
            throw MultiprocessingError(.malformedFrame, "The server at \(address) is not a \(dialect.server) (it did not send the \(dialect.keyHolder)'s greeting).")
        }
        guard hello[4] == version else {
            throw MultiprocessingError(.malformedFrame, "The \(dialect.server) at \(address) speaks protocol version \(hello[4]); this library speaks \(version).")
        }
        if hello[5] == 1 {
            throw RetryableRefusal(error: MultiprocessingError(.serverBusy, pendingMessage(address, readLimit(hello[8...]))))
        }
        let serverNonce = Array(hello[8..<40])
        let clientNonce = nonce()
        let idRaw = idBytes(clientID)
        // A server that cut this handshake short may have written its reason and closed before
        // the answer arrived: the write then fails, and the reason is still there to read.
        var writeFailure: (any Error)?
        do {
            try write(socket, clientNonce + idRaw + tag(key, label: dialect.label + " client", serverNonce, clientNonce, idRaw), dialect)
        } catch {
            writeFailure = error
        }
        let reply: [UInt8]
        do {
            reply = try socket.readExactly(serverAnswerSize)
        } catch let error as MultiprocessingError where error.code == .endOfStream || error.code == .malformedFrame {
            if let writeFailure { throw writeFailure }
            // A server that refuses a key says so (status 1); one that just vanished died.
            throw MultiprocessingError(.endOfStream, "The \(dialect.server) at \(address) closed the connection during the handshake (it died or shut down).")
        }
        if reply[0] == 2 {
            throw MultiprocessingError(.serverBusy, "The manager server at \(address) refused the connection: it already serves its maximum of \(readLimit(reply[1...])) authenticated connections (ManagerLimits.maximumConnections). Close idle clients, or start the server with a higher limit.")
        }
        if reply[0] == 3 {
            throw RetryableRefusal(error: MultiprocessingError(.serverBusy, pendingMessage(address, readLimit(reply[1...]))))
        }
        if let writeFailure { throw writeFailure }
        guard reply[0] == 0 else {
            throw MultiprocessingError(.authenticationFailed, "Authentication with the \(dialect.keyHolder) at \(address) failed: the server refused this process's key. Pass the server's key with authKey:.")
        }
        guard check(key, label: dialect.label + " server", tag: Array(reply[1..<33]), clientNonce, serverNonce, idRaw) else {
            throw MultiprocessingError(.authenticationFailed, "Authentication with the \(dialect.keyHolder) at \(address) failed: the server could not prove it holds the key (a different server, or a different key).")
        }
    }

    private static func write(_ socket: some HandshakeChannel, _ bytes: [UInt8], _ dialect: Dialect) throws {
        do throws(Errno) {
            try socket.write(bytes)
        } catch {
            throw MultiprocessingError(.endOfStream, "The \(dialect.connection) closed during the handshake: \(error)", errno: error)
        }
    }
}
