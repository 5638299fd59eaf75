import Multiprocessing
import MultiprocessingConnection
import Synchronization
import SystemPackage
import MultiprocessingSystem

/// This process's identity towards manager servers: a random id, made anew in a forked child, so
/// that a server can tell when every connection of one process has gone.
internal enum ClientIdentity {
    private static let state = Mutex<(pid: Int32, id: UInt64)>((0, 0))

    internal static var current: UInt64 {
        let pid = ManagerPlatform.processID()
        return state.withLock { state in
            if state.pid != pid {
                var generator = SystemRandomNumberGenerator()
                state = (pid, generator.next())
            }
            return state.id
        }
    }
}

/// Lets another thread (an async twin's cancellation handler) end a call in progress: the core's
/// one interrupt, whose wake source here is the call's socket (``WakeSource/socket(_:)``).
internal typealias CallInterrupt = WaitInterrupt

extension WaitInterrupt {
    /// Attaches the call's socket (nil detaches it). Triggering shuts the socket down: its blocked
    /// read ends, and the server sees the client leave (so a lock it was about to grant is not
    /// granted to a caller that gave up).
    internal func attach(_ socket: FrameSocket?) {
        setSource(socket.map { .socket($0.descriptor) })
    }
}

/// The connections of this process to one server, with one key. Calls take a connection from the
/// pool (or open and authenticate a new one), send one request, read one reply and put it back;
/// threads calling at once use different connections.
internal final class ManagerClient: Sendable {
    internal let address: ManagerAddress
    internal let key: AuthKey
    internal let maximumMessageSize = 256 << 20

    private struct Pool {
        var pid: Int32 = 0
        var idle: [FrameSocket] = []
        /// A connection never used for calls, open for as long as this process uses the server.
        /// The server frees a client's locks when its last connection closes; this one keeps a call
        /// that is cancelled (by closing its own connection) from looking like the process leaving.
        var presence: FrameSocket?
    }
    // Locked, not Mutex: a hundred threads of one client process take and return connections
    // here at once (see ThreadMonitor).
    private let pool = Locked(Pool())

    private init(address: ManagerAddress, key: AuthKey) {
        self.address = address
        self.key = key
    }

    private struct RegistryKey: Hashable {
        var address: ManagerAddress
        var key: AuthKey
    }
    private static let registry = Mutex<[RegistryKey: ManagerClient]>([:])
    /// The key that last authenticated with each address in this process: a proxy that arrives
    /// without a key (decoded from a manager's own dictionary, say) uses it. Only a key the
    /// server accepted is recorded, so a failed connect with a wrong key changes nothing.
    private static let keyring = Mutex<[ManagerAddress: AuthKey]>([:])

    /// Records `key` as the one that works for `address`: after a handshake succeeded with it,
    /// or for a server this process started with it.
    internal static func remember(_ key: AuthKey, for address: ManagerAddress) {
        keyring.withLock { $0[address] = key }
    }

    /// The one client of this process for `address` and `key`.
    internal static func shared(_ address: ManagerAddress, key: AuthKey) -> ManagerClient {
        registry.withLock { registry in
            let registryKey = RegistryKey(address: address, key: key)
            if let existing = registry[registryKey] { return existing }
            let client = ManagerClient(address: address, key: key)
            registry[registryKey] = client
            return client
        }
    }

    /// The key this process knows for `address`, else the process default key.
    internal static func knownKey(for address: ManagerAddress) -> AuthKey {
        keyring.withLock { $0[address] } ?? AuthKey.processDefault
    }

    /// Forgets idle connections (after the manager shut down).
    internal func dropIdle() {
        let sockets = pool.withLock { pool -> [FrameSocket] in
            defer {
                pool.idle = []
                pool.presence = nil
            }
            return pool.idle + (pool.presence.map { [$0] } ?? [])
        }
        for socket in sockets { socket.close() }
    }

    /// Opens and authenticates a new connection. A handshake the server cut short because too
    /// many were pending (peers flooding it, or a burst of clients) is tried again, with a
    /// growing pause, for up to 10 s; then the refusal is thrown, naming the limit.
    internal func open() throws -> FrameSocket {
        let giveUp = ManagerPlatform.monotonicNanoseconds() + 10_000_000_000
        var pause: Int64 = 1_000_000
        while true {
            do {
                return try openOnce()
            } catch let refusal as Handshake.RetryableRefusal {
                guard ManagerPlatform.monotonicNanoseconds() + pause < giveUp else { throw refusal.error }
                ManagerPlatform.sleep(nanoseconds: pause)
                pause = min(pause * 2, 100_000_000)
            }
        }
    }

    private func openOnce() throws -> FrameSocket {
        let fd: CInt
        do throws(Errno) {
            switch address {
            case .unix(let path):
                fd = try ManagerPlatform.unixSocket()
                do throws(Errno) { try ManagerPlatform.connectUnix(fd, path: path) } catch {
                    ManagerPlatform.close(fd)
                    throw error
                }
            case .tcp(let host, let port):
                fd = try ManagerPlatform.tcpSocket(host: host)
                do throws(Errno) { try ManagerPlatform.connectTCP(fd, host: host, port: port) } catch {
                    ManagerPlatform.close(fd)
                    throw error
                }
            }
        } catch {
            throw MultiprocessingError(.endOfStream, "Cannot reach the manager server at \(address): \(error). Is it running?", errno: error)
        }
        let socket = FrameSocket(descriptor: fd, maximumMessageSize: maximumMessageSize)
        // A server that accepts but never answers must not hang the client for ever.
        ManagerPlatform.setIOTimeout(fd, nanoseconds: 10_000_000_000)
        // Absolute, like the server's: a server that trickles its bytes cannot hold this either.
        socket.readDeadline = ManagerPlatform.monotonicNanoseconds() + 10_000_000_000
        do {
            try Handshake.connect(socket, key: key, clientID: ClientIdentity.current, address: address)
        } catch let error as MultiprocessingError where error.code == .timedOut {
            socket.close()
            throw MultiprocessingError(.timedOut, "The manager server at \(address) did not complete the handshake in 10 s.")
        } catch {
            socket.close()
            throw error
        }
        ManagerClient.remember(key, for: address)
        socket.readDeadline = nil
        ManagerPlatform.setIOTimeout(fd, nanoseconds: nil)
        socket.spinNanoseconds = 50_000
        return socket
    }

    private func take() throws -> FrameSocket {
        let pid = ManagerPlatform.processID()
        let (socket, inherited, needsPresence) = pool.withLock { pool -> (FrameSocket?, [FrameSocket], Bool) in
            if pool.pid != pid {
                // A forked child holds copies of the parent's connections: never share them.
                let inherited = pool.idle + (pool.presence.map { [$0] } ?? [])
                pool.idle = []
                pool.presence = nil
                pool.pid = pid
                return (nil, inherited, true)
            }
            return (pool.idle.popLast(), [], pool.presence == nil)
        }
        for socket in inherited { socket.close() }
        if needsPresence {
            let presence = try open()
            let spare = pool.withLock { pool -> FrameSocket? in
                if pool.presence == nil {
                    pool.presence = presence
                    return nil
                }
                return presence // another thread opened one first: use this one for the call
            }
            if let spare, socket == nil { return spare }
            spare?.close()
        }
        if let socket { return socket }
        return try open()
    }

    private func putBack(_ socket: FrameSocket) {
        let keep = pool.withLock { pool -> Bool in
            guard pool.idle.count < 256 else { return false }
            pool.idle.append(socket)
            return true
        }
        if !keep { socket.close() }
    }

    /// The error reply a server queued before it closed the connection, if there is one: read
    /// with a short deadline, since the server has already closed its end.
    private static func queuedRefusal(_ socket: FrameSocket) -> MultiprocessingError? {
        socket.readDeadline = ManagerPlatform.monotonicNanoseconds() &+ 1_000_000_000
        defer { socket.readDeadline = nil }
        guard let frame = try? socket.readFrame() else { return nil }
        var reader = ByteReader(frame)
        guard let status = try? reader.byte(), status == ReplyStatus.error.rawValue || status == ReplyStatus.closing.rawValue,
              let code = try? reader.string(), let message = try? reader.string() else { return nil }
        return MultiprocessingError(.named(code), message)
    }

    /// Sends one request frame and returns a reader over the reply's payload.
    ///
    /// - Throws: the server's error reply as a `MultiprocessingError` with its code;
    ///   `endOfStream` when the server is gone (a dead server fails every call at once, never
    ///   hangs it); `cancelled` when `interrupt` triggered.
    internal func call(_ frame: [UInt8], interrupt: CallInterrupt? = nil) throws -> ByteReader {
        let socket = try take()
        interrupt?.attach(socket)
        let reply: [UInt8]
        do {
            do throws(Errno) {
                try socket.write(frame)
            } catch {
                // A server that refused the request (one over its size limit) said why before it
                // closed: that reply is still queued on a Unix socket.
                if let refusal = Self.queuedRefusal(socket) { throw refusal }
                throw MultiprocessingError(.endOfStream, "The manager server at \(address) closed the connection (it died or shut down): \(error).", errno: error)
            }
            do {
                reply = try socket.readFrame()
            } catch let tooLarge as FrameTooLarge {
                throw MultiprocessingError(.misuse, "The manager server at \(address) sent a reply of \(tooLarge.announced) bytes, more than a client reads (\(tooLarge.limit) bytes); it was not read and the call's connection was closed. Read large objects in parts (a list's elements by index, a dictionary's values by key).")
            }
        } catch let error as MultiprocessingError {
            interrupt?.attach(nil)
            socket.close()
            if let interrupt, interrupt.isTriggered {
                throw MultiprocessingError(.cancelled, "The manager call was cancelled.")
            }
            if error.code == .endOfStream || error.code == .malformedFrame {
                throw MultiprocessingError(.endOfStream, "The manager server at \(address) closed the connection (it died or shut down) before replying.")
            }
            throw error
        }
        interrupt?.attach(nil)
        var reader = ByteReader(reply)
        let status = try reader.byte()
        if status == ReplyStatus.closing.rawValue {
            socket.close()   // the server closes its end after this reply
        } else {
            putBack(socket)
        }
        if status == ReplyStatus.ok.rawValue { return reader }
        let code = try reader.string()
        let message = try reader.string()
        let remoteType = try reader.string()
        throw MultiprocessingError(.named(code), message, remoteTypeName: remoteType.isEmpty ? nil : remoteType)
    }
}

/// Runs a blocking manager call on the core's blocking bridge (`BlockingBridge`) and suspends
/// the task until it ends, so that Swift's cooperative pool never blocks. Cancelling the task ends
/// the call (`MultiprocessingError/Code/cancelled`).
@inline(never) // out of the async twins' frames, as waitOffPool
internal func managerRunBlocking<T: Sendable>(_ body: @escaping @Sendable (CallInterrupt) throws -> T) async throws -> T {
    if Task.isCancelled {
        throw MultiprocessingError(.cancelled, "The task was cancelled before the manager call started.")
    }
    return try await BlockingBridge.shared.call("a manager call", body)
}

/// Where a proxy's object lives: the server's address, the object's id and kind, and (in this
/// process) the key to reach it.
///
/// Encoding: the address, id and kind always. The key only when the encoder carries a
/// `DescriptorTransfer` in its `userInfo`, which is the case exactly when the value goes to a
/// child process in its task's arguments or through a local `Connection` (both stay on this
/// machine, inside kernel-private channels). Anywhere else (a value stored in a manager, sent over
/// TCP, written to a file) the key is left out, and the decoding process uses the key it already
/// knows for that address (from `Manager.connect`) or its inherited default key.
public struct ObjectReference: Sendable, Hashable, Codable {
    /// The server's address.
    public let address: ManagerAddress
    /// The object's id on that server.
    public let id: UInt64
    /// What the object is.
    public let kind: ManagedKind
    internal let key: AuthKey
    /// This process's connections to the server, looked up once (not on every call).
    internal let client: ManagerClient

    internal init(address: ManagerAddress, id: UInt64, kind: ManagedKind, key: AuthKey) {
        self.address = address
        self.id = id
        self.kind = kind
        self.key = key
        self.client = ManagerClient.shared(address, key: key)
    }

    private enum CodingKeys: String, CodingKey { case address, id, kind, key }

    /// Encodes the reference (with the key only for a local child; see the type's documentation).
    ///
    /// - Parameter encoder: the encoder.
    /// - Throws: what the encoder throws.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(address, forKey: .address)
        try container.encode(id, forKey: .id)
        try container.encode(kind, forKey: .kind)
        if encoder.userInfo[.descriptorTransfer] != nil {
            try container.encode(key.bytes, forKey: .key)
        }
    }

    /// Decodes a reference; without a key in the data, the key this process knows for the address.
    ///
    /// - Parameter decoder: the decoder.
    /// - Throws: `DecodingError` for data that is not a reference.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        address = try container.decode(ManagerAddress.self, forKey: .address)
        id = try container.decode(UInt64.self, forKey: .id)
        kind = try container.decode(ManagedKind.self, forKey: .kind)
        if let bytes = try container.decodeIfPresent([UInt8].self, forKey: .key) {
            key = AuthKey(bytes)
        } else {
            key = ManagerClient.knownKey(for: address)
        }
        client = ManagerClient.shared(address, key: key)
    }

    /// Equality and hashing ignore the key.
    public static func == (a: ObjectReference, b: ObjectReference) -> Bool {
        a.address == b.address && a.id == b.id && a.kind == b.kind
    }

    /// Hashes the address, id and kind.
    ///
    /// - Parameter hasher: the hasher.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(address)
        hasher.combine(id)
        hasher.combine(kind)
    }
}
