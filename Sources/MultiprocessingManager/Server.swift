import Multiprocessing
import Synchronization
import SystemPackage

/// Limits a server applies to every connection.
public struct ManagerLimits: Sendable, Codable, Hashable {
    /// How long a new connection may take to authenticate before it is closed.
    public var handshakeTimeout: Duration
    /// The largest request body the server reads; a larger frame header closes the connection
    /// before anything is allocated.
    public var maximumMessageSize: Int
    /// The most connections served at once (one thread each); more wait in the listen backlog.
    public var maximumConnections: Int

    /// Limits.
    ///
    /// - Parameters:
    ///   - handshakeTimeout: the handshake's deadline (5 s by default).
    ///   - maximumMessageSize: the request size limit (64 MiB by default).
    ///   - maximumConnections: the connection limit (1024 by default).
    public init(handshakeTimeout: Duration = .seconds(5), maximumMessageSize: Int = 64 << 20, maximumConnections: Int = 1024) {
        self.handshakeTimeout = handshakeTimeout
        self.maximumMessageSize = maximumMessageSize
        self.maximumConnections = maximumConnections
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
    var connections = 0
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
    internal func serve() -> Never {
        while true {
            let fd: CInt
            do throws(Errno) {
                fd = try ManagerPlatform.accept(listener)
            } catch .tooManyOpenFiles, .noMemory, .noBufferSpace, .tooManyOpenFilesInSystem {
                // Out of descriptors: wait for a connection to close instead of spinning.
                ManagerPlatform.sleep(nanoseconds: 50_000_000)
                continue
            } catch {
                ManagerPlatform.exitNow(3)
            }
            let admitted = table.withLock { table -> Bool in
                guard table.connections < limits.maximumConnections else { return false }
                table.connections += 1
                return true
            }
            guard admitted else {
                ManagerPlatform.close(fd)
                continue
            }
            let socket = FrameSocket(descriptor: fd, maximumMessageSize: limits.maximumMessageSize)
            do throws(MultiprocessingError) {
                try ManagerPlatform.startThread(name: "mp-manager-conn") { [self] in
                    self.serveConnection(socket)
                    self.table.withLock { $0.connections -= 1 }
                }
            } catch {
                socket.close()
                table.withLock { $0.connections -= 1 }
            }
        }
    }

    /// One connection: the handshake under its deadline, then requests until the peer leaves or
    /// sends something malformed. Whatever happens, only this connection closes.
    private func serveConnection(_ socket: FrameSocket) {
        defer { socket.close() }
        let (seconds, attoseconds) = limits.handshakeTimeout.components
        ManagerPlatform.setIOTimeout(socket.descriptor, nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let client: UInt64
        do {
            client = try Handshake.serve(socket, key: key)
        } catch {
            return
        }
        ManagerPlatform.setIOTimeout(socket.descriptor, nanoseconds: nil)
        // A client's next request usually follows its last reply within microseconds.
        socket.spinNanoseconds = 50_000
        table.withLock { $0.clients[client, default: 0] += 1 }
        defer { clientLeft(client) }
        let connection = ConnectionContext(socket: socket, client: client)
        while true {
            let request: [UInt8]
            do {
                request = try socket.readFrame()
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

/// A value behind a plain pthread mutex (see `ManagerPlatform.PlainMutex` for why not `Mutex`).
internal final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside `withLock`.
    private var value: Value
    private let mutex = ManagerPlatform.PlainMutex()

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

    internal init(socket: FrameSocket, client: UInt64) {
        self.socket = socket
        self.client = client
    }
}
