public import Multiprocessing
import Synchronization
import SystemPackage
import MultiprocessingSystem

/// The child task that runs a manager's server (started as a daemon `ChildProcess`).
///
/// The parent binds the listening socket and passes it here, so the address is known and
/// connectable as soon as `start()` returns: connections made before the server thread is
/// ready simply wait in the listen backlog.
public struct ManagerServerTask: ProcessTask {
    internal var listener: SharedDescriptor
    internal var key: [UInt8]
    internal var limits: ManagerLimits
    internal var actorTypes: [String]
    /// Runs in the server once, before it serves (`Manager.start(initializer:)`).
    internal var initializer: (any ProcessTask)?
    /// The write end on which the server says it is ready, after its initializer; the parent
    /// reads the end of the stream instead when the server ends first.
    internal var ready: Connection?

    internal init(listener: SharedDescriptor, key: [UInt8], limits: ManagerLimits, actorTypes: [String],
                  initializer: (any ProcessTask)?, ready: Connection?) {
        self.listener = listener
        self.key = key
        self.limits = limits
        self.actorTypes = actorTypes
        self.initializer = initializer
        self.ready = ready
    }

    private enum Key: String, CodingKey { case listener, key, limits, actorTypes, initializerType, initializer, ready }

    /// Encodes the server's settings, and its initializer with the initializer's type name.
    ///
    /// - Throws: `EncodingError` when the initializer's type has no runtime name, or a value
    ///   cannot be encoded.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(listener, forKey: .listener)
        try container.encode(key, forKey: .key)
        try container.encode(limits, forKey: .limits)
        try container.encode(actorTypes, forKey: .actorTypes)
        try container.encodeIfPresent(ready, forKey: .ready)
        if let initializer {
            guard let name = _mangledTypeName(type(of: initializer)) else {
                throw EncodingError.invalidValue(0, .init(codingPath: encoder.codingPath, debugDescription: "The manager's initializer type \(type(of: initializer)) has no runtime name the server could look up."))
            }
            try container.encode(name, forKey: .initializerType)
            try container.encode(initializer, forKey: .initializer)
        }
    }

    /// Decodes the server's settings in the server process.
    ///
    /// - Throws: `DecodingError` when the initializer's type is unknown to the server's program.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        listener = try container.decode(SharedDescriptor.self, forKey: .listener)
        key = try container.decode([UInt8].self, forKey: .key)
        limits = try container.decode(ManagerLimits.self, forKey: .limits)
        actorTypes = try container.decode([String].self, forKey: .actorTypes)
        ready = try container.decodeIfPresent(Connection.self, forKey: .ready)
        if let name = try container.decodeIfPresent(String.self, forKey: .initializerType) {
            guard let type = _typeByName(name) as? any ProcessTask.Type else {
                throw DecodingError.dataCorruptedError(forKey: .initializerType, in: container, debugDescription: "The manager's initializer type is unknown to the server's program (it must not be private or declared in a function).")
            }
            initializer = try container.decode(type, forKey: .initializer)
        } else {
            initializer = nil
        }
    }

    /// Runs the initializer, if any, then serves until the manager shuts it down or its parent dies.
    ///
    /// - Throws: what the initializer throws (the server then never serves, and the parent's
    ///   `start(initializer:)` fails with it); otherwise never returns: the process exits on shutdown.
    public func run() async throws {
        if let initializer {
            _ = try await initializer.run()
        }
        serve()
    }

    /// Makes the server, says it is ready and serves (blocking: the server's connection threads
    /// do the work).
    private func serve() -> Never {
        let server = ManagerServer(listener: listener.fileDescriptor.rawValue, key: AuthKey(key), limits: limits, actorTypeNames: actorTypes)
        if let ready {
            try? ready.send(true)
            ready.close()
        }
        server.serve()
    }
}

/// A server process that owns shared objects, and hands out typed proxies to them: Python's
/// `multiprocessing.Manager()` and `BaseManager`.
///
/// ```swift
/// let manager = Manager()
/// try manager.start()
/// let counts = try manager.dictionary(String.self, Int.self)
/// // ...pass `counts` to children in their tasks; they call counts.increment("x")...
/// try manager.shutdown()
/// ```
///
/// The server is a daemon child process: it dies with this process, even when this process is
/// killed with SIGKILL. By default it listens on a Unix socket in a new 0700 directory; give a
/// TCP address (`.tcp(host:port:)`) to serve other machines. Every connection proves, in both
/// directions, that it holds the key (HMAC-SHA256 challenge–response) before any request is read.
/// The key is the process's default key (`AuthKey.processDefault`) unless one is given.
public final class Manager: Sendable {
    /// Where the server listens. For a Unix manager before `start()`, nil.
    public var address: ManagerAddress? { state.withLock { $0.address } }
    /// The key both sides prove they hold.
    public let authKey: AuthKey
    /// The limits the server applies to every connection.
    public let limits: ManagerLimits

    private let requestedAddress: ManagerAddress?
    private struct State {
        var address: ManagerAddress?
        var server: ChildProcess<Void>?
        /// The last server process that ended (after `shutdown()`, or a start whose initializer
        /// failed): its exit status stays readable.
        var ended: ChildProcess<Void>?
        var directory: String?
        var connectedOnly = false
        var actorTypes: [String] = []
    }
    private let state = Mutex(State())

    /// A manager, not started yet.
    ///
    /// - Parameters:
    ///   - address: where to serve: nil for a Unix socket in a new private directory;
    ///     `.tcp(host:port:)` for TCP (port 0 picks a free port; give `127.0.0.1` for loopback
    ///     only, or an interface's address to serve other machines).
    ///   - authKey: the key; the process default key when nil.
    ///   - limits: the server's limits.
    public init(address: ManagerAddress? = nil, authKey: AuthKey? = nil, limits: ManagerLimits = ManagerLimits()) {
        self.requestedAddress = address
        self.authKey = authKey ?? AuthKey.processDefault
        self.limits = limits
    }

    private init(connectedTo address: ManagerAddress, authKey: AuthKey) {
        self.requestedAddress = address
        self.authKey = authKey
        self.limits = ManagerLimits()
        state.withLock {
            $0.address = address
            $0.connectedOnly = true
        }
    }

    /// Makes `type` available to ``create(_:name:)``: call before `start()`. Only registered
    /// actor types can be created on the server; any other name gets an error reply.
    ///
    /// - Parameter type: a distributed actor type conforming to ``ManagedActor``. Like a task
    ///   type, it must be visible by name (not private, not inside a function).
    public func register<A: ManagedActor>(_ type: A.Type) {
        register(any: type)
    }

    internal func register(any type: any ManagedActor.Type) {
        state.withLock { $0.actorTypes.append(_mangledTypeName(type) ?? "") }
    }

    /// Starts the server process.
    ///
    /// - Parameter initializer: a task the server runs once, before it serves (Python's
    ///   `start(initializer, initargs)`): its `run()` runs in the server process, and `start`
    ///   returns once it has returned. Its type must be visible by name, as any task's.
    /// - Throws: `MultiprocessingError/Code/misuse` when already started, for a TCP address
    ///   with an empty key, or for limits out of range (see ``ManagerLimits``); `MultiprocessingError/Code/systemCall` when the socket cannot be
    ///   bound; what `ChildProcess.start()` throws; when the initializer throws, that error as
    ///   `ChildProcess.value()` reports it (`MultiprocessingError/Code/childFailed`, with its type
    ///   in `remoteTypeName` and its description in the message), and the manager is not started
    ///   (``serverExitStatus`` tells how the server ended; `start` may be called again).
    public func start(initializer: (any ProcessTask)? = nil) throws {
        try state.withLock { state in
            guard state.server == nil, !state.connectedOnly else {
                throw MultiprocessingError(.misuse, "Manager.start: this manager was already started (or is a connection to a remote one).")
            }
            try limits.validate("Manager.start")
            let (fd, address, directory) = try Manager.bind(requestedAddress, key: authKey)
            defer { ManagerPlatform.close(fd) }
            func removeSocket() {
                if let directory {
                    if case .unix(let path) = address { ManagerPlatform.unlink(path) }
                    ManagerPlatform.removeDirectory(directory)
                }
            }
            let ready: (reader: Connection, writer: Connection)?
            do {
                ready = initializer == nil ? nil : try Connection.pipe(duplex: false, maximumMessageSize: 64)
            } catch {
                removeSocket()
                throw error
            }
            let task = ManagerServerTask(listener: SharedDescriptor(FileDescriptor(rawValue: fd)), key: authKey.bytes,
                                         limits: limits, actorTypes: state.actorTypes, initializer: initializer, ready: ready?.writer)
            let child = ChildProcess(task, name: "manager-server", daemon: true)
            do {
                defer { ready?.writer.close() }
                try child.start()
            } catch {
                ready?.reader.close()
                removeSocket()
                throw error
            }
            if let ready {
                defer { ready.reader.close() }
                do {
                    _ = try ready.reader.receive(Bool.self)
                } catch {
                    // The server ended before it was ready: its initializer threw, or it died.
                    removeSocket()
                    state.ended = child
                    throw Manager.initializerFailure(child, error)
                }
            }
            state.server = child
            state.address = address
            state.directory = directory
            ManagerClient.remember(authKey, for: address)
        }
    }

    /// Starts the server process without blocking the cooperative pool; see `start(initializer:)`.
    ///
    /// - Parameter initializer: a task the server runs once, before it serves.
    /// - Throws: as `start(initializer:)`.
    public func start(initializer: (any ProcessTask)? = nil) async throws {
        try await managerRunBlocking { _ in try self.start(initializer: initializer) }
    }

    /// Stops the server: asks it to exit, waits for it (then kills it if it does not), and removes
    /// its socket. Proxies fail afterwards with `MultiprocessingError/Code/endOfStream`. For a
    /// manager made by `connect(address:authKey:)` this only closes this process's connections.
    ///
    /// - Parameter timeout: how long to wait for the server to exit before killing it.
    /// - Throws: what joining the child throws.
    public func shutdown(timeout: Duration = .seconds(5)) throws {
        let (server, address, directory, connectedOnly) = state.withLock { state in
            defer {
                state.server = nil
                state.directory = nil
            }
            return (state.server, state.address, state.directory, state.connectedOnly)
        }
        guard let address else { return }
        let client = ManagerClient.shared(address, key: authKey)
        if connectedOnly {
            client.dropIdle()
            return
        }
        guard let server else { return }
        _ = try? client.request(.shutdown)
        client.dropIdle()
        defer { state.withLock { $0.ended = server } }
        do {
            try server.join(timeout: timeout)
        } catch {
            try? server.kill()
            try server.join(timeout: .seconds(5))
        }
        if let directory {
            if case .unix(let path) = address { ManagerPlatform.unlink(path) }
            ManagerPlatform.removeDirectory(directory)
        }
    }

    /// Stops the server without blocking the cooperative pool; see `shutdown(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait for the server to exit before killing it.
    /// - Throws: as `shutdown(timeout:)`.
    public func shutdown(timeout: Duration = .seconds(5)) async throws {
        try await managerRunBlocking { _ in try self.shutdown(timeout: timeout) }
    }

    /// The server process's id (nil before `start()` or for a connected manager).
    public var serverPID: Int32? { state.withLock { $0.server?.pid } }

    /// How the server process ended: nil while it runs (or before `start()`, or for a connected
    /// manager). After `shutdown(timeout:)` it is `.exited(0)` for a server that obeyed,
    /// `.signaled(.kill)` for one that had to be killed; a server that died on its own (killed
    /// from outside) reports its status as soon as it has been reaped, before any shutdown; a
    /// start whose initializer threw leaves `.exited(1)`.
    public var serverExitStatus: ExitStatus? {
        state.withLock { ($0.server ?? $0.ended)?.exitStatus }
    }

    /// Reaches a server started elsewhere (``serveForever(address:authKey:limits:actorTypes:ready:)``, or
    /// another program's manager), and checks the key at once.
    ///
    /// - Parameters:
    ///   - address: the server's address.
    ///   - authKey: its key.
    /// - Returns: a manager whose factories create or find objects on that server.
    /// - Throws: `MultiprocessingError/Code/authenticationFailed` for a wrong key;
    ///   `MultiprocessingError/Code/endOfStream` when nothing answers there.
    public static func connect(address: ManagerAddress, authKey: AuthKey) throws -> Manager {
        let manager = Manager(connectedTo: address, authKey: authKey)
        guard case .pong = try manager.request(.ping) else { throw unexpectedReply(to: "ping") }
        return manager
    }

    /// Reaches a server without blocking the cooperative pool; see ``connect(address:authKey:)``.
    ///
    /// - Parameters:
    ///   - address: the server's address.
    ///   - authKey: its key.
    /// - Returns: the connected manager.
    /// - Throws: as ``connect(address:authKey:)``.
    public static func connect(address: ManagerAddress, authKey: AuthKey) async throws -> Manager {
        try await managerRunBlocking { _ in try connect(address: address, authKey: authKey) }
    }

    /// Serves in this process until it is killed (SIGTERM): a standalone server that other
    /// programs and machines reach with `connect(address:authKey:)`.
    ///
    /// - Parameters:
    ///   - address: where to listen; `.tcp(host:port:)` binds exactly that host.
    ///   - authKey: the key; TCP refuses an empty one.
    ///   - limits: the server's limits.
    ///   - actorTypes: distributed actor types clients may create.
    ///   - ready: called once the socket is listening, with its address (the real port if 0 was given).
    /// - Throws: `MultiprocessingError/Code/misuse` for an empty TCP key, or limits out of range
    ///   (see ``ManagerLimits``); `MultiprocessingError/Code/systemCall` when the socket cannot be bound.
    public static func serveForever(address: ManagerAddress, authKey: AuthKey, limits: ManagerLimits = ManagerLimits(),
                                    actorTypes: [any ManagedActor.Type] = [],
                                    ready: (ManagerAddress) -> Void = { _ in }) throws -> Never {
        try limits.validate("Manager.serveForever")
        let (fd, bound, _) = try bind(address, key: authKey)
        ready(bound)
        let server = ManagerServer(listener: fd, key: authKey, limits: limits,
                                   actorTypeNames: actorTypes.compactMap { _mangledTypeName($0) })
        server.serve()
    }

    private static func bind(_ requested: ManagerAddress?, key: AuthKey) throws -> (CInt, ManagerAddress, String?) {
        if case .tcp? = requested, key.bytes.isEmpty {
            throw MultiprocessingError(.misuse, "A TCP manager needs a non-empty authKey: anyone who can reach the port could use it otherwise.")
        }
        do throws(Errno) {
            switch requested {
            case .tcp(let host, let port)?:
                let fd = try ManagerPlatform.tcpSocket(host: host)
                do throws(Errno) {
                    let bound = try ManagerPlatform.listenTCP(fd, host: host.isEmpty ? "127.0.0.1" : host, port: port, backlog: 1024)
                    return (fd, .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: bound), nil)
                } catch {
                    ManagerPlatform.close(fd)
                    throw error
                }
            case .unix(let path)?:
                let fd = try ManagerPlatform.unixSocket()
                do throws(Errno) {
                    try ManagerPlatform.listenUnix(fd, path: path, backlog: 1024)
                } catch {
                    ManagerPlatform.close(fd)
                    throw error
                }
                return (fd, .unix(path: path), nil)
            case nil:
                let directory = try ManagerPlatform.makeTemporaryDirectory(prefix: "/tmp/mp-manager-")
                let path = directory + "/socket"
                let fd = try ManagerPlatform.unixSocket()
                do throws(Errno) {
                    try ManagerPlatform.listenUnix(fd, path: path, backlog: 1024)
                } catch {
                    ManagerPlatform.close(fd)
                    ManagerPlatform.removeDirectory(directory)
                    throw error
                }
                return (fd, .unix(path: path), directory)
            }
        } catch {
            throw MultiprocessingError(.systemCall, "Binding the manager's socket at \(requested?.description ?? "a new private directory") failed: \(error).", errno: error)
        }
    }

    // MARK: requests

    internal func request(_ request: ManagerRequest) throws -> ManagerReply {
        guard let address else {
            throw MultiprocessingError(.misuse, "This manager is not started: call start() first.")
        }
        return try ManagerClient.shared(address, key: authKey).request(request)
    }

    /// Makes an object on the server (or finds the one named `name`); returns its id.
    internal func makeObject(_ request: CreateRequest, name: String?) throws -> UInt64 {
        guard case .created(let id) = try self.request(.create(name: name, request)) else {
            throw unexpectedReply(to: "create")
        }
        return id
    }

    private func make(_ request: CreateRequest, name: String?) throws -> ObjectReference {
        let id = try makeObject(request, name: name)
        guard let address else { throw MultiprocessingError(.misuse, "This manager is not started: call start() first.") }
        return ObjectReference(address: address, id: id, kind: request.kind, key: authKey)
    }

    /// A shared dictionary: Python's `manager.dict()`.
    ///
    /// - Parameters:
    ///   - key: the key type.
    ///   - value: the value type.
    ///   - name: a name other processes can find it by (`connect(address:authKey:)` then this call
    ///     with the same name returns the same dictionary); nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: `MultiprocessingError/Code/misuse` when `name` names an object of another kind;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func dictionary<K: Codable & Sendable, V: Codable & Sendable>(_ key: K.Type = K.self, _ value: V.Type = V.self, name: String? = nil) throws -> ManagedDictionary<K, V> {
        ManagedDictionary(reference: try make(.dictionary, name: name))
    }

    /// A shared list: Python's `manager.list()`.
    ///
    /// - Parameters:
    ///   - element: the element type.
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func list<E: Codable & Sendable>(_ element: E.Type = E.self, name: String? = nil) throws -> ManagedList<E> {
        ManagedList(reference: try make(.list, name: name))
    }

    /// A shared value: Python's `manager.Value()`.
    ///
    /// - Parameters:
    ///   - initial: the first value (ignored when `name` finds an existing one).
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func value<T: Codable & Sendable>(_ initial: T, name: String? = nil) throws -> ManagedValue<T> {
        ManagedValue(reference: try make(.value(initial: try ValueCoding.encode(initial)), name: name))
    }

    /// A shared `Codable` struct: Python's `manager.Namespace()`, typed.
    ///
    /// - Parameters:
    ///   - initial: the first state (ignored when `name` finds an existing one).
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func namespace<T: Codable & Sendable>(_ initial: T, name: String? = nil) throws -> ManagedNamespace<T> {
        ManagedNamespace(reference: try make(.value(initial: try ValueCoding.encode(initial)), name: name))
    }

    /// A shared fixed-length array: Python's `manager.Array(typecode, sequence)`, for any
    /// `Codable` element.
    ///
    /// - Parameters:
    ///   - elements: the elements; their number is the array's length for good (ignored when
    ///     `name` finds an existing array).
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func array<E: Codable & Sendable>(_ elements: [E], name: String? = nil) throws -> ManagedArray<E> {
        ManagedArray(reference: try make(.array(elements: try elements.map { try ValueCoding.encode($0) }), name: name))
    }

    /// A shared fixed-length array of `count` copies of `value`: Python's
    /// `manager.Array(typecode, count)` (which fills with zeros).
    ///
    /// - Parameters:
    ///   - value: the element every position starts with.
    ///   - count: the length, at least 0.
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: `MultiprocessingError/Code/misuse` for a negative `count`; as ``dictionary(_:_:name:)``.
    public func array<E: Codable & Sendable>(repeating value: E, count: Int, name: String? = nil) throws -> ManagedArray<E> {
        guard count >= 0 else {
            throw MultiprocessingError(.misuse, "Manager.array(repeating:count:): count must not be negative (it was \(count)).")
        }
        let element = try ValueCoding.encode(value)
        return ManagedArray(reference: try make(.array(elements: Array(repeating: element, count: count)), name: name))
    }

    /// A shared FIFO queue: Python's `manager.Queue(maxsize)`.
    ///
    /// - Parameters:
    ///   - element: the item type.
    ///   - maximumSize: the most items it holds (0: unbounded).
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func queue<E: Codable & Sendable>(_ element: E.Type = E.self, maximumSize: Int = 0, name: String? = nil) throws -> ManagedQueue<E> {
        ManagedQueue(reference: try make(.queue(maximumSize: maximumSize), name: name))
    }

    /// A shared FIFO queue that counts unfinished tasks: Python's `manager.JoinableQueue(maxsize)`.
    ///
    /// - Parameters:
    ///   - element: the item type.
    ///   - maximumSize: the most items it holds (0: unbounded).
    ///   - name: a name to find it by (a queue made by ``queue(_:maximumSize:name:)`` under that
    ///     name is the same queue); nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func joinableQueue<E: Codable & Sendable>(_ element: E.Type = E.self, maximumSize: Int = 0, name: String? = nil) throws -> ManagedJoinableQueue<E> {
        ManagedJoinableQueue(reference: try make(.queue(maximumSize: maximumSize), name: name))
    }

    /// A shared lock: Python's `manager.Lock()`.
    ///
    /// - Parameter name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func lock(name: String? = nil) throws -> ManagedLock {
        ManagedLock(reference: try make(.lock, name: name))
    }

    /// A shared recursive lock: Python's `manager.RLock()`.
    ///
    /// - Parameter name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func rLock(name: String? = nil) throws -> ManagedLock {
        ManagedLock(reference: try make(.rLock, name: name))
    }

    /// A shared semaphore: Python's `manager.Semaphore(value)`.
    ///
    /// - Parameters:
    ///   - value: the initial permits.
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: `MultiprocessingError/Code/misuse` for a negative `value`; as ``dictionary(_:_:name:)``.
    public func semaphore(value: Int = 1, name: String? = nil) throws -> ManagedSemaphore {
        guard value >= 0 else {
            throw MultiprocessingError(.misuse, "Manager.semaphore: value must not be negative (it was \(value)).")
        }
        return ManagedSemaphore(reference: try make(.semaphore(value: value), name: name))
    }

    /// A shared bounded semaphore: Python's `manager.BoundedSemaphore(value)`.
    ///
    /// - Parameters:
    ///   - value: the initial permits, which are also the bound.
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: `MultiprocessingError/Code/misuse` for a negative `value`; as ``dictionary(_:_:name:)``.
    public func boundedSemaphore(value: Int = 1, name: String? = nil) throws -> ManagedBoundedSemaphore {
        guard value >= 0 else {
            throw MultiprocessingError(.misuse, "Manager.boundedSemaphore: value must not be negative (it was \(value)).")
        }
        return ManagedBoundedSemaphore(reference: try make(.boundedSemaphore(value: value), name: name))
    }

    /// A shared event: Python's `manager.Event()`.
    ///
    /// - Parameter name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func event(name: String? = nil) throws -> ManagedEvent {
        ManagedEvent(reference: try make(.event, name: name))
    }

    /// A shared condition variable: Python's `manager.Condition()`.
    ///
    /// - Parameter name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: as ``dictionary(_:_:name:)``.
    public func condition(name: String? = nil) throws -> ManagedCondition {
        ManagedCondition(reference: try make(.condition, name: name))
    }

    /// A shared barrier: Python's `manager.Barrier(parties)`.
    ///
    /// - Parameters:
    ///   - parties: how many callers it waits for.
    ///   - name: a name to find it by; nil for an anonymous one.
    /// - Returns: the proxy.
    /// - Throws: `MultiprocessingError/Code/misuse` when `parties` is below 1; as ``dictionary(_:_:name:)``.
    public func barrier(parties: Int, name: String? = nil) throws -> ManagedBarrier {
        guard parties > 0 else {
            throw MultiprocessingError(.misuse, "Manager.barrier: parties must be at least 1 (it was \(parties)).")
        }
        return ManagedBarrier(reference: try make(.barrier(parties: parties), name: name))
    }

    /// Frees a server object; proxies to it fail afterwards with `MultiprocessingError/Code/notFound`.
    ///
    /// - Parameter reference: the object (`proxy.reference`).
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func destroy(_ reference: ObjectReference) throws {
        guard case .destroyed = try request(.destroy(object: reference.id)) else { throw unexpectedReply(to: "destroy") }
    }

    /// What the server holds: objects, client processes, open connections, its resident memory
    /// in bytes and its process id.
    ///
    /// - Returns: the server's counters.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func serverStatistics() throws -> (objects: Int, clients: Int, connections: Int, residentBytes: Int, pid: Int32) {
        guard case .serverInfo(let objects, let clients, let connections, let residentBytes, let pid) = try request(.serverInfo) else {
            throw unexpectedReply(to: "serverInfo")
        }
        return (objects, clients, connections, residentBytes, pid)
    }
}
