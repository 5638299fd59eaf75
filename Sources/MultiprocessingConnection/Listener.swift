public import Multiprocessing
import MultiprocessingSystem
import Synchronization
import SystemPackage

/// Accepts authenticated connections on a Unix socket, an abstract name or TCP: Python's
/// `multiprocessing.connection.Listener`.
///
/// ```swift
/// let listener = try Listener(address: .tcp(host: "127.0.0.1", port: 0))
/// // give listener.address to the client, which calls Connection.connect(to:)
/// let connection = try listener.accept()
/// let request = try connection.receive(Request.self)
/// ```
///
/// Each accepted connection runs the same mutual HMAC-SHA256 challenge–response as a manager
/// (with its own labels, so neither handshake can stand for the other): both sides prove they hold
/// `authKey` before a single message is read, and a client with another key is refused on both
/// sides with `authenticationFailed`. The key defaults to the process's
/// key (`CurrentProcess.authKey`), which children inherit, so a parent and its children need pass
/// no key. Python's `authkey=None` (no authentication) is `authKey: nil`; Python makes that its
/// default, we do not.
///
/// What an accepted connection is: a `Connection` over the socket, duplex; one over a Unix
/// socket can carry descriptors (connections, locks, queues), one over TCP cannot, and says so.
public final class Listener: Sendable {
    /// Where the listener listens; for `.tcp` with port 0, the port it got.
    public let address: ConnectionAddress
    /// The key clients must prove they hold; nil accepts any client without a handshake.
    public let authKey: AuthKey?
    /// How long one client's handshake may take before `accept(timeout:)` gives up on it.
    public let handshakeTimeout: Duration
    /// The largest message the accepted connections send or accept.
    public let maximumMessageSize: Int

    private let descriptor: CInt
    /// The socket file and the private directory made for it, removed at close.
    private let cleanup: (path: String?, directory: String?)
    private struct Lifecycle {
        var closed = false
        var inFlight = 0
        var descriptorClosed = false
    }
    private let lifecycle = Mutex(Lifecycle())
    /// Signalled by `close()`: wakes accepts and waits in this process.
    private let closeWake: CInt

    /// Binds and listens.
    ///
    /// - Parameters:
    ///   - address: where to listen; nil (the default) makes a Unix socket in a new private (0700)
    ///     directory, as Python's default address does.
    ///   - backlog: how many connections may wait to be accepted.
    ///   - authKey: the key clients must prove they hold: the process's key by default; nil for
    ///     no authentication (Python's `authkey=None`), which a TCP listener refuses.
    ///   - handshakeTimeout: how long one client's handshake may take (5 s by default).
    ///   - maximumMessageSize: the largest message an accepted connection sends or accepts.
    /// - Throws: `misuse` for an empty key, a TCP listener without a
    ///   key, a negative timeout or a bad size; `systemCall` when the
    ///   address cannot be bound (in use: `EADDRINUSE`; a path too long: `ENAMETOOLONG`; an IPv4
    ///   address that is not one: `EINVAL`).
    public init(address: ConnectionAddress? = nil, backlog: Int = 16, authKey: AuthKey? = CurrentProcess.authKey,
                handshakeTimeout: Duration = .seconds(5), maximumMessageSize: Int = Connection.defaultMaximumMessageSize) throws {
        if let authKey, authKey.bytes.isEmpty {
            throw MultiprocessingError(.misuse, "Listener: the key is empty. Give a key of some bytes (AuthKey.random() makes one), or nil for no authentication.")
        }
        if case .tcp = address, authKey == nil {
            throw MultiprocessingError(.misuse, "Listener: a TCP listener without a key would take messages from anyone who can reach the port. Give it a key.")
        }
        guard handshakeTimeout >= .zero else {
            throw MultiprocessingError(.misuse, "Listener: handshakeTimeout must not be negative (it was \(handshakeTimeout)).")
        }
        guard maximumMessageSize > 0 else {
            throw MultiprocessingError(.misuse, "Listener: maximumMessageSize must be positive (it was \(maximumMessageSize)).")
        }
        self.authKey = authKey
        self.handshakeTimeout = handshakeTimeout
        self.maximumMessageSize = maximumMessageSize
        var directory: String?
        let resolved: ConnectionAddress
        do throws(Errno) {
            let chosen: ConnectionAddress
            if let address {
                chosen = address
            } else {
                let made = try ConnectionPlatform.makeTemporaryDirectory(prefix: ConnectionPlatform.temporaryDirectory + "/mp-listener-")
                directory = made
                chosen = .unix(path: made + "/socket")
            }
            var unix = true
            var tcpHost = ""
            if case .tcp(let host, _) = chosen { unix = false; tcpHost = host }
            let fd = try ConnectionPlatform.socket(unix: unix, tcpHost: tcpHost)
            do throws(Errno) {
                switch chosen {
                case .unix(let path):
                    try ConnectionPlatform.listenUnix(fd, name: path, abstract: false, backlog: backlog)
                    resolved = chosen
                case .abstract(let name):
                    try ConnectionPlatform.listenUnix(fd, name: name, abstract: true, backlog: backlog)
                    resolved = chosen
                case .tcp(let host, let port):
                    let bound = try ConnectionPlatform.listenTCP(fd, host: host, port: port, backlog: backlog)
                    resolved = .tcp(host: host, port: bound)
                }
                try ConnectionPlatform.setNonBlocking(fd, true)
                closeWake = try ConnectionPlatform.eventfd()
            } catch {
                ConnectionPlatform.close(fd)
                throw error
            }
            descriptor = fd
        } catch {
            if let directory { ConnectionPlatform.removeDirectory(directory) }
            throw MultiprocessingError(.systemCall, "Listener: could not listen on \(address.map { "\($0)" } ?? "a new Unix socket"): \(error)", errno: error)
        }
        self.address = resolved
        if case .unix(let path) = resolved {
            cleanup = (path, directory)
        } else {
            cleanup = (nil, nil)
        }
    }

    deinit {
        close()
        ConnectionPlatform.close(closeWake)
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { lifecycle.withLock { $0.closed } }

    /// Stops listening: accepts waiting in other threads throw `closed`,
    /// clients can no longer connect, and a Unix socket's file (and the directory made for it) is
    /// removed. Connections already accepted stay open. Closing twice does nothing.
    public func close() {
        lifecycle.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            ConnectionPlatform.eventfdSignal(closeWake)
            if state.inFlight == 0 { closeDescriptor(&state) }
        }
    }

    private func closeDescriptor(_ state: inout Lifecycle) {
        guard !state.descriptorClosed else { return }
        state.descriptorClosed = true
        ConnectionPlatform.close(descriptor)
        if let path = cleanup.path { ConnectionPlatform.unlink(path) }
        if let directory = cleanup.directory { ConnectionPlatform.removeDirectory(directory) }
    }

    private func enter(_ what: String) throws {
        try lifecycle.withLock { state throws(MultiprocessingError) in
            if state.closed { throw MultiprocessingError(.closed, "\(what) on a closed listener (\(address)).") }
            state.inFlight += 1
        }
    }

    private func leave() {
        lifecycle.withLock { state in
            state.inFlight -= 1
            if state.closed && state.inFlight == 0 { closeDescriptor(&state) }
        }
    }

    /// Waits for a client and authenticates it: Python's `Listener.accept()`.
    ///
    /// - Parameter timeout: how long to wait for a client to connect; `nil` waits for ever. The
    ///   handshake that follows has `handshakeTimeout` of its own.
    /// - Returns: the connection, authenticated: nothing the client sent has been read.
    /// - Throws: `authenticationFailed` when the client does not hold
    ///   the key (it is told so, and disconnected); `timedOut` when no
    ///   client came within `timeout`, or a client's handshake stalled past `handshakeTimeout`;
    ///   `malformedFrame` or `endOfStream`
    ///   when the client sent something else or left halfway; `closed`
    ///   after `close()`. After any of these the listener still accepts the next client.
    public func accept(timeout: Duration? = nil) throws -> Connection {
        try accept(timeout: timeout, interrupt: nil)
    }

    /// Waits for a client without blocking the cooperative pool, and authenticates it; see
    /// `accept(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait for a client; `nil` waits for ever.
    /// - Returns: the authenticated connection.
    /// - Throws: as `accept(timeout:)`, and `cancelled`.
    public func accept(timeout: Duration? = nil) async throws -> Connection {
        if Task.isCancelled { throw MultiprocessingError(.cancelled, "The task was cancelled before the accept started.") }
        return try await BlockingBridge.shared.call("a listener's accept") { interrupt in
            try self.accept(timeout: timeout, interrupt: interrupt)
        }
    }

    private func accept(timeout: Duration?, interrupt: WaitInterrupt?) throws -> Connection {
        if let timeout, timeout < .zero {
            throw MultiprocessingError(.misuse, "Listener.accept: the timeout must not be negative (it was \(timeout)).")
        }
        try enter("accept")
        defer { leave() }
        let deadline = HandshakeSocket.deadline(after: timeout)
        var fds: [CInt] = [descriptor, closeWake]
        if let interrupt {
            do throws(Errno) {
                fds.append(try interrupt.eventDescriptor())
            } catch {
                throw MultiprocessingError(.systemCall, "Listener.accept: creating a wake-up descriptor failed: \(error)", errno: error)
            }
        }
        let events = [Int16](repeating: WaitSource.readable, count: fds.count)
        while true {
            let accepted: CInt?
            do throws(Errno) {
                accepted = try ConnectionPlatform.acceptNow(descriptor)
            } catch {
                throw MultiprocessingError(.systemCall, "Listener.accept on \(address) failed: \(error)", errno: error)
            }
            if let accepted { return try authenticate(accepted) }
            var milliseconds: CInt = -1
            if let deadline {
                let left = deadline - ConnectionPlatform.monotonicNanoseconds()
                if left <= 0 {
                    throw MultiprocessingError(.timedOut, "No client connected to \(address) within \(timeout ?? .zero).")
                }
                milliseconds = CInt(clamping: (left + 999_999) / 1_000_000)
            }
            let ready: [Int16]
            do throws(Errno) {
                ready = try ConnectionPlatform.pollMany(fds, events: events, timeoutMilliseconds: milliseconds)
            } catch {
                throw MultiprocessingError(.systemCall, "Listener.accept: waiting on \(address) failed: \(error)", errno: error)
            }
            if ready[1] != 0 { throw MultiprocessingError(.closed, "The listener on \(address) was closed while an accept waited.") }
            if let interrupt, interrupt.isTriggered { throw MultiprocessingError(.cancelled, "The accept on \(address) was cancelled.") }
        }
    }

    /// The handshake on a new socket; the socket is closed unless a connection takes it.
    private func authenticate(_ fd: CInt) throws -> Connection {
        do {
            if let authKey {
                let socket = HandshakeSocket(descriptor: fd, deadline: HandshakeSocket.deadline(after: handshakeTimeout),
                                             peer: "a client of \(address)", timeout: handshakeTimeout)
                _ = try Handshake.serve(socket, key: authKey, dialect: .connection) { nil }
            }
            return try Connection(adopting: FileDescriptor(rawValue: fd), maximumMessageSize: maximumMessageSize)
        } catch let error as MultiprocessingError {
            ConnectionPlatform.close(fd)
            if error.code == .authenticationFailed {
                throw MultiprocessingError(.authenticationFailed, "A client of \(address) was refused: it does not hold this listener's key. (Its side is told, and fails with authenticationFailed too.)")
            }
            throw error
        } catch {
            ConnectionPlatform.close(fd)
            throw error
        }
    }
}

extension Listener: Waitable {
    /// The listening socket: ready when a client waits to be accepted (or the listener is closed).
    ///
    /// - Throws: `closed` after `close()`.
    public func waitSource() throws -> WaitSource {
        try enter("wait")
        return WaitSource(descriptors: [(descriptor, WaitSource.readable), (closeWake, WaitSource.readable)], owner: self,
                          release: { [self] in leave() })
    }
}

extension Connection {
    /// Connects to a ``Listener`` and authenticates: Python's `multiprocessing.connection.Client`.
    ///
    /// - Parameters:
    ///   - address: the listener's address.
    ///   - authKey: the listener's key: the process's key by default (a child's listener and its
    ///     parent share it); nil for a listener without authentication.
    ///   - handshakeTimeout: how long the handshake may take (5 s by default).
    ///   - maximumMessageSize: the largest message the connection sends or accepts.
    /// - Returns: the connection, once both sides proved they hold the key.
    /// - Throws: `authenticationFailed` when the listener refused this
    ///   key, or could not prove it holds it; `timedOut` when the
    ///   listener did not finish the handshake in time (nothing accepts, or it is not a listener);
    ///   `malformedFrame` when the server is not a listener of this
    ///   library; `systemCall` when nothing listens there
    ///   (`ECONNREFUSED`, `ENOENT`); `misuse` for an empty key.
    public static func connect(to address: ConnectionAddress, authKey: AuthKey? = CurrentProcess.authKey,
                               handshakeTimeout: Duration = .seconds(5),
                               maximumMessageSize: Int = Connection.defaultMaximumMessageSize) throws -> Connection {
        if let authKey, authKey.bytes.isEmpty {
            throw MultiprocessingError(.misuse, "Connection.connect: the key is empty. Give the listener's key, or nil for a listener without authentication.")
        }
        guard handshakeTimeout >= .zero else {
            throw MultiprocessingError(.misuse, "Connection.connect: handshakeTimeout must not be negative (it was \(handshakeTimeout)).")
        }
        var unix = true
        var tcpHost = ""
        if case .tcp(let host, _) = address { unix = false; tcpHost = host }
        let fd: CInt
        do throws(Errno) {
            fd = try ConnectionPlatform.socket(unix: unix, tcpHost: tcpHost)
            do throws(Errno) {
                switch address {
                case .unix(let path): try ConnectionPlatform.connectUnix(fd, name: path, abstract: false)
                case .abstract(let name): try ConnectionPlatform.connectUnix(fd, name: name, abstract: true)
                case .tcp(let host, let port): try ConnectionPlatform.connectTCP(fd, host: host, port: port)
                }
            } catch {
                ConnectionPlatform.close(fd)
                throw error
            }
        } catch {
            throw MultiprocessingError(.systemCall, "Connection.connect: could not connect to \(address): \(error)", errno: error)
        }
        do {
            if let authKey {
                let socket = HandshakeSocket(descriptor: fd, deadline: HandshakeSocket.deadline(after: handshakeTimeout),
                                             peer: "the listener at \(address)", timeout: handshakeTimeout)
                try Handshake.connect(socket, key: authKey, clientID: UInt64(UInt32(bitPattern: CurrentProcess.pid)),
                                      address: address, dialect: .connection)
            }
            return try Connection(adopting: FileDescriptor(rawValue: fd), maximumMessageSize: maximumMessageSize)
        } catch {
            ConnectionPlatform.close(fd)
            throw error
        }
    }

    /// Connects to a ``Listener`` and authenticates without blocking the cooperative pool; see
    /// `connect(to:authKey:handshakeTimeout:maximumMessageSize:)`.
    ///
    /// - Parameters:
    ///   - address: the listener's address.
    ///   - authKey: the listener's key; the process's key by default.
    ///   - handshakeTimeout: how long the handshake may take.
    ///   - maximumMessageSize: the largest message the connection sends or accepts.
    /// - Returns: the authenticated connection.
    /// - Throws: as the blocking twin.
    public static func connect(to address: ConnectionAddress, authKey: AuthKey? = CurrentProcess.authKey,
                               handshakeTimeout: Duration = .seconds(5),
                               maximumMessageSize: Int = Connection.defaultMaximumMessageSize) async throws -> Connection {
        try await BlockingBridge.shared.call("a client's connect") { _ in
            try Connection.connect(to: address, authKey: authKey, handshakeTimeout: handshakeTimeout, maximumMessageSize: maximumMessageSize)
        }
    }
}
