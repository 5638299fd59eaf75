import Multiprocessing
import MultiprocessingConnection
import Synchronization
import SystemPackage
import MultiprocessingSystem

/// Limits a server applies to every connection.
public struct ManagerLimits: Sendable, Codable, Hashable {
    /// How long a new connection may take to authenticate before it is closed. The deadline is
    /// absolute: it runs from the accept, however slowly the peer's bytes arrive.
    public var handshakeTimeout: Duration
    /// The largest request body the server reads; a larger frame header closes the connection.
    /// The server's buffer grows as a frame's bytes arrive, never by what a header announces.
    public var maximumMessageSize: Int
    /// The most authenticated connections served at once (one thread each). A client that proves
    /// its key when this many are open is refused with `MultiprocessingError/Code/serverBusy`,
    /// and told this limit.
    public var maximumConnections: Int
    /// The most connections still in the handshake at once, counted apart from the authenticated
    /// ones, so that peers that never authenticate cannot take the place of clients that do. When
    /// a new connection arrives with this many pending, the oldest pending handshake is cut short
    /// (its client is told, and retries).
    public var maximumPendingHandshakes: Int

    /// Limits.
    ///
    /// - Parameters:
    ///   - handshakeTimeout: the handshake's deadline (5 s by default).
    ///   - maximumMessageSize: the request size limit (64 MiB by default).
    ///   - maximumConnections: the limit of authenticated connections (1024 by default).
    ///   - maximumPendingHandshakes: the limit of connections in the handshake (128 by default).
    ///
    /// `Manager.start()` and `Manager.serveForever` refuse with `.misuse` a handshake timeout that
    /// is not positive, a message size under ``smallestMessageSize``, and connection limits under 1.
    public init(handshakeTimeout: Duration = .seconds(5), maximumMessageSize: Int = 64 << 20, maximumConnections: Int = 1024,
                maximumPendingHandshakes: Int = 128) {
        self.handshakeTimeout = handshakeTimeout
        self.maximumMessageSize = maximumMessageSize
        self.maximumConnections = maximumConnections
        self.maximumPendingHandshakes = maximumPendingHandshakes
    }
}

extension ManagerLimits {
    /// The smallest `maximumMessageSize` a server accepts: room for the manager's own requests.
    public static let smallestMessageSize = 1024

    /// Refuses limits no server can serve with: before, a negative `maximumMessageSize` made the
    /// server's connection thread trap on the first request, and a zero or negative
    /// `maximumConnections` or `handshakeTimeout` refused every client with a misleading reason.
    internal func validate(_ operation: String) throws(MultiprocessingError) {
        guard handshakeTimeout > .zero else {
            throw MultiprocessingError(.misuse, "\(operation): ManagerLimits.handshakeTimeout must be positive (it was \(handshakeTimeout)); no client could authenticate in time.")
        }
        guard maximumMessageSize >= ManagerLimits.smallestMessageSize else {
            throw MultiprocessingError(.misuse, "\(operation): ManagerLimits.maximumMessageSize must be at least \(ManagerLimits.smallestMessageSize) bytes (it was \(maximumMessageSize)); the manager's own requests would not fit.")
        }
        guard maximumConnections >= 1 else {
            throw MultiprocessingError(.misuse, "\(operation): ManagerLimits.maximumConnections must be at least 1 (it was \(maximumConnections)); no client could connect.")
        }
        guard maximumPendingHandshakes >= 1 else {
            throw MultiprocessingError(.misuse, "\(operation): ManagerLimits.maximumPendingHandshakes must be at least 1 (it was \(maximumPendingHandshakes)).")
        }
    }
}

/// A connection that has not authenticated yet. Its fields are guarded by the server's table lock.
internal final class PendingHandshake: @unchecked Sendable {
    // @unchecked: `evicted` is only touched under the table lock; `socket` is immutable.
    internal let order: UInt64
    internal let socket: FrameSocket
    /// Cut short to make room for a newer connection (see `ManagerLimits.maximumPendingHandshakes`).
    internal var evicted = false

    internal init(order: UInt64, socket: FrameSocket) {
        self.order = order
        self.socket = socket
    }
}

/// The objects a server owns, and the client processes connected to it.
internal struct ServerTable {
    var objects: [UInt64: ServerObject] = [:]
    var names: [String: UInt64] = [:]
    var nextID: UInt64 = 1
    /// Open connections per client id: when a client's count reaches zero, its process has gone
    /// (or closed every connection), and the locks it held are freed.
    var clients: [UInt64: Int] = [:]
    /// Authenticated connections.
    var connections = 0
    /// Connections in the handshake that have not been cut short, by arrival order.
    var pending: [UInt64: PendingHandshake] = [:]
    var nextPendingOrder: UInt64 = 0
    /// Threads still running a handshake, cut short or not (bounded at twice the pending limit).
    /// A thread leaves the count when its client is admitted, under the lock that admits it.
    var handshakeThreads = 0
}

/// A distributed actor hosted by the server (see ManagerActorSystem).
internal protocol ManagedActorBox: AnyObject, Sendable {
    /// Runs one call; returns the encoded result or throws.
    func invoke(target: String, genericSubstitutions: [String], arguments: [[UInt8]]) throws -> [UInt8]
}

/// The manager server: accepts connections on a listening socket and serves each on a thread of
/// its own.
///
/// A thread per connection, not a poll loop: blocking operations (a lock's acquire, a queue's get,
/// a barrier's wait) simply block their connection's thread, and the kernel wakes exactly the
/// thread whose reply is due. On a 2-core machine the threads cost memory (a small stack each),
/// not CPU: an idle connection's thread sleeps in read(2).
internal final class ManagerServer: @unchecked Sendable {
    // @unchecked: `table` is a Mutex; the other stored properties are immutable.
    internal let listener: CInt
    internal let key: AuthKey
    internal let limits: ManagerLimits
    internal let table = Locked(ServerTable())
    internal let actorTypes: [String: any ManagedActor.Type]
    internal let actorSystem: ManagerActorSystem

    internal init(listener: CInt, key: AuthKey, limits: ManagerLimits, actorTypeNames: [String]) {
        self.listener = listener
        self.key = key
        self.limits = limits
        var types: [String: any ManagedActor.Type] = [:]
        for name in actorTypeNames {
            if let type = _typeByName(name) as? any ManagedActor.Type { types[name] = type }
        }
        self.actorTypes = types
        self.actorSystem = ManagerActorSystem(serving: ())
        actorSystem.attach(server: self)
    }

    /// Accepts and serves connections until the process ends.
    ///
    /// What accept(2) may say, and what the server does (docs/managers.md, "Accept errors"):
    /// - a new connection's own error (reset, or a network error Linux passes to accept:
    ///   `system_acceptErrorIsTheConnections`) is retried inside `ManagerPlatform.accept`;
    /// - out of descriptors (EMFILE, ENFILE): the oldest pending handshake is cut short, which
    ///   frees its descriptor, then the server pauses and accepts again;
    /// - out of memory or buffers, or any other error of a listener that is still there: it
    ///   pauses and accepts again. The pause starts at 1 ms and doubles up to 100 ms while the
    ///   failures last, so a lasting shortage costs a few wake-ups a second, not a spinning core;
    /// - the listener itself is gone or not listening (EBADF, EINVAL, ENOTSOCK, EFAULT): nothing
    ///   can be served any more, and the server exits with status 3.
    internal func serve() -> Never {
        var pause: Int64 = 1_000_000
        while true {
            let fd: CInt
            do throws(Errno) {
                fd = try ManagerPlatform.accept(listener)
            } catch .badFileDescriptor, .invalidArgument, .notSocket, .badAddress {
                ManagerPlatform.exitNow(3)
            } catch {
                if error == .tooManyOpenFiles || error == .tooManyOpenFilesInSystem { cutOldestPendingHandshake() }
                // The connection stays queued in the backlog until the next accept.
                ManagerPlatform.sleep(nanoseconds: pause)
                pause = min(pause * 2, 100_000_000)
                continue
            }
            pause = 1_000_000
            admit(fd)
        }
    }

    /// At the descriptor limit: cuts the oldest pending handshake short, as `admit` does at
    /// `maximumPendingHandshakes`, so that its thread closes its descriptor and the next
    /// connection can be accepted. Peers that connect and stall hold descriptors until their
    /// handshake deadline; without this, enough of them kept every new client out that long.
    /// One at a time: nothing is cut while a handshake cut short before is still finishing
    /// (its descriptor is about to be freed).
    private func cutOldestPendingHandshake() {
        table.withLock { table in
            guard table.handshakeThreads <= table.pending.count else { return }
            cutOldest(&table)
        }
    }

    /// Cuts the oldest pending handshake short (under the table lock).
    private func cutOldest(_ table: inout ServerTable) {
        guard let oldest = table.pending.values.min(by: { $0.order < $1.order }) else { return }
        table.pending[oldest.order] = nil
        oldest.evicted = true
        // Wakes the victim's thread from its read; it can still write its client the reason.
        // Under the lock: the victim's thread closes its socket only after it has left the
        // pending set, so this descriptor is still the victim's.
        ManagerPlatform.shutdownRead(oldest.socket.descriptor)
    }

    /// Takes a new connection into the handshake, on a thread of its own. With
    /// `maximumPendingHandshakes` pending already, the oldest is cut short to make room (its
    /// thread tells its client why); with as many threads still finishing cut-short handshakes
    /// again, the new connection is refused at once, with the reason in place of the greeting.
    private func admit(_ fd: CInt) {
        let pendingLimit = max(1, limits.maximumPendingHandshakes)
        let socket = FrameSocket(descriptor: fd, maximumMessageSize: limits.maximumMessageSize)
        let admitted = table.withLock { table -> PendingHandshake? in
            guard table.handshakeThreads < 2 * pendingLimit else { return nil }
            if table.pending.count >= pendingLimit { cutOldest(&table) }
            let entry = PendingHandshake(order: table.nextPendingOrder, socket: socket)
            table.nextPendingOrder += 1
            table.pending[entry.order] = entry
            table.handshakeThreads += 1
            return entry
        }
        guard let entry = admitted else {
            ManagerPlatform.writeNow(fd, Handshake.busyGreeting(limit: pendingLimit))
            socket.close()
            return
        }
        do throws(MultiprocessingError) {
            try ManagerPlatform.startThread(name: "mp-manager-conn") { [self] in
                self.serveConnection(entry)
            }
        } catch {
            table.withLock { table in
                table.pending[entry.order] = nil
                table.handshakeThreads -= 1
            }
            socket.close()
        }
    }

    /// One connection: the handshake under its absolute deadline, then requests until the peer
    /// leaves or sends something malformed. Whatever happens, only this connection closes.
    private func serveConnection(_ entry: PendingHandshake) {
        let socket = entry.socket
        defer { socket.close() }
        let timeout = wireTimeoutNanoseconds(max(.zero, limits.handshakeTimeout))
        let (deadline, overflow) = ManagerPlatform.monotonicNanoseconds().addingReportingOverflow(timeout)
        socket.readDeadline = overflow ? nil : deadline
        // Writes too must not hang on a peer that never reads.
        ManagerPlatform.setIOTimeout(socket.descriptor, nanoseconds: max(1_000_000, timeout))
        let pendingLimit = max(1, limits.maximumPendingHandshakes)
        let connectionLimit = max(1, limits.maximumConnections)
        var admitted = false
        var answered = false
        let outcome: Result<UInt64, any Error> = Result {
            try Handshake.serve(socket, key: key) { () -> Handshake.Refusal? in
                // The client proved its key: it leaves the pending set and becomes a served
                // connection, if there is room.
                answered = true
                return table.withLock { table in
                    table.pending[entry.order] = nil
                    if entry.evicted { return .handshakesFull(limit: pendingLimit) }
                    guard table.connections < connectionLimit else { return .connectionsFull(limit: connectionLimit) }
                    table.connections += 1
                    // No longer a handshake thread, before the client can read its answer: a
                    // client that connects next must not find this thread still counted.
                    table.handshakeThreads -= 1
                    admitted = true
                    return nil
                }
            }
        }
        let evicted = table.withLock { table -> Bool in
            table.pending[entry.order] = nil
            if !admitted { table.handshakeThreads -= 1 }
            return entry.evicted
        }
        guard case .success(let client) = outcome, admitted else {
            if evicted, !answered, case .failure(let error) = outcome,
               (error as? MultiprocessingError)?.code != .authenticationFailed {
                // Cut short while it waited for the client's answer: say why, in the answer's place.
                try? socket.write(Handshake.refusalAnswer(.handshakesFull(limit: pendingLimit)))
            }
            if admitted { table.withLock { $0.connections -= 1 } }
            return
        }
        defer { table.withLock { $0.connections -= 1 } }
        socket.readDeadline = nil
        ManagerPlatform.setIOTimeout(socket.descriptor, nanoseconds: nil)
        serveRequests(socket, client: client)
    }

    /// Requests on an authenticated connection, until the peer leaves or sends something malformed.
    private func serveRequests(_ socket: FrameSocket, client: UInt64) {
        // A client's next request usually follows its last reply within microseconds.
        socket.spinNanoseconds = 50_000
        table.withLock { $0.clients[client, default: 0] += 1 }
        defer { clientLeft(client) }
        let connection = ConnectionContext(socket: socket, client: client)
        while true {
            let request: [UInt8]
            do {
                request = try socket.readFrame()
            } catch let tooLarge as FrameTooLarge {
                // Tell the client why before closing (it reads this reply once its write fails):
                // the rest of its frame is never read.
                var writer = ByteWriter(status: .closing)
                writer.string(MultiprocessingError.Code.misuse.name)
                writer.string("The request is \(tooLarge.announced) bytes, more than the manager server's maximumMessageSize of \(tooLarge.limit) bytes (ManagerLimits.maximumMessageSize, set where the server starts); it was not read and the call's connection was closed. Store large values in parts, or raise the limit.")
                writer.string("")
                try? socket.write(writer.finish())
                return
            } catch {
                return
            }
            let reply: [UInt8]
            do {
                reply = try handle(request, connection)
            } catch let error as MultiprocessingError {
                if error.code == .endOfStream { return }  // the client left during a wait
                var writer = ByteWriter(status: .error)
                writer.string(error.code.name)
                writer.string(error.message)
                writer.string(error.remoteTypeName ?? "")
                reply = writer.finish()
                if error.code == .malformedFrame {
                    try? socket.write(reply)
                    return
                }
            } catch {
                var writer = ByteWriter(status: .error)
                writer.string(MultiprocessingError.Code.misuse.name)
                writer.string("\(error)")
                writer.string("\(type(of: error))")
                reply = writer.finish()
            }
            do throws(Errno) {
                try socket.write(reply)
            } catch {
                return
            }
            if connection.shutdownRequested {
                ManagerPlatform.exitNow(0)
            }
        }
    }

    private func clientLeft(_ client: UInt64) {
        table.withLock { table in
            let left = (table.clients[client] ?? 1) - 1
            if left > 0 {
                table.clients[client] = left
                return
            }
            table.clients[client] = nil
            for object in table.objects.values where object.owner?.client == client {
                _ = object.releaseDeadOwner(client)
            }
        }
    }
}

/// A value behind a plain pthread mutex (see `ThreadMonitor` for why not `Mutex`).
internal final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside `withLock`.
    private var value: Value
    private let mutex = ThreadMonitor()

    internal init(_ value: Value) { self.value = value }

    internal func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        mutex.lock()
        defer { mutex.unlock() }
        return try body(&value)
    }
}

/// What one connection's requests share.
internal final class ConnectionContext: @unchecked Sendable {
    // @unchecked: used by its connection's thread only.
    internal let socket: FrameSocket
    internal let client: UInt64
    internal var shutdownRequested = false
    /// Calls that would wait give up at once (the in-process fuzz target; see ManagerFuzzing).
    internal var neverWaits = false

    internal init(socket: FrameSocket, client: UInt64) {
        self.socket = socket
        self.client = client
    }
}
