public import Distributed
import Multiprocessing
import Synchronization
import MultiprocessingSystem

/// A distributed actor that a manager's server can host: declare it with
/// `distributed actor Counter: ManagedActor`, register it with ``Manager/register(_:)`` before
/// `Manager/start()`, and create it with ``Manager/create(_:name:)``. Its `distributed` methods
/// are called from any process; the compiler checks each call, and every argument and result is
/// `Codable`.
///
/// ```swift
/// distributed actor Counter: ManagedActor {
///     var total = 0
///     init(actorSystem: ManagerActorSystem) { self.actorSystem = actorSystem }
///     distributed func add(_ n: Int) -> Int { total += n; return total }
/// }
/// ```
///
/// Like a task type, the actor type must be visible to the runtime by name (not private, not
/// declared inside a function), and the server's program must contain it.
public protocol ManagedActor: DistributedActor where ActorSystem == ManagerActorSystem {
    /// Makes the actor on the server.
    ///
    /// - Parameter actorSystem: the server's actor system.
    init(actorSystem: ManagerActorSystem)
}

/// Names a distributed actor on a manager's server. It is `Codable`: pass it to a child in its
/// task's arguments, then `try Counter.resolve(id: id, using: ManagerActorSystem(address: id.address!))`.
public struct ManagedActorID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The server's address (nil inside the server itself).
    public let address: ManagerAddress?
    /// The object's id on the server.
    public let id: UInt64

    /// An id.
    ///
    /// - Parameters:
    ///   - address: the server's address.
    ///   - id: the object's id there.
    public init(address: ManagerAddress?, id: UInt64) {
        self.address = address
        self.id = id
    }

    /// `actor ID @ address`.
    public var description: String { "actor \(id) @ \(address?.description ?? "local")" }
}

/// Records a call's arguments, each encoded with the module's wire format.
public struct ManagerInvocationEncoder: DistributedTargetInvocationEncoder {
    /// Arguments and results are `Codable`.
    public typealias SerializationRequirement = Codable
    internal var arguments: [[UInt8]] = []
    internal var hasGenerics = false

    /// Generic distributed methods are refused: the server would have to look types up by a
    /// name that came over the wire.
    ///
    /// - Parameter type: the substitution.
    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws { hasGenerics = true }

    /// Encodes one argument.
    ///
    /// - Parameter argument: the argument.
    /// - Throws: `MultiprocessingError/Code/coding` when it cannot be encoded.
    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        arguments.append(try ValueCoding.encode(argument.value))
    }

    /// Nothing to record: errors travel as descriptions.
    ///
    /// - Parameter type: the error type.
    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}

    /// Nothing to record: the caller knows the return type.
    ///
    /// - Parameter type: the return type.
    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}

    /// Done.
    public mutating func doneRecording() throws {}
}

/// Hands a call's arguments to the server's actor, decoding each as the type the method declares.
public struct ManagerInvocationDecoder: DistributedTargetInvocationDecoder {
    /// Arguments and results are `Codable`.
    public typealias SerializationRequirement = Codable
    internal let arguments: [[UInt8]]
    internal var index = 0

    /// No generic substitutions are accepted (see ``ManagerInvocationEncoder``).
    ///
    /// - Returns: an empty list.
    public mutating func decodeGenericSubstitutions() throws -> [Any.Type] { [] }

    /// The next argument, decoded as the parameter's declared type.
    ///
    /// - Returns: the argument.
    /// - Throws: `MultiprocessingError/Code/coding` when it is missing or not an `Argument`.
    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        guard index < arguments.count else {
            throw MultiprocessingError(.coding, "A distributed call carried fewer arguments than its method takes.")
        }
        defer { index += 1 }
        return try ValueCoding.decode(Argument.self, arguments[index])
    }

    /// Not recorded.
    ///
    /// - Returns: nil.
    public mutating func decodeErrorType() throws -> Any.Type? { nil }

    /// Not recorded.
    ///
    /// - Returns: nil.
    public mutating func decodeReturnType() throws -> Any.Type? { nil }
}

/// Collects a call's outcome on the server.
public struct ManagerResultHandler: DistributedTargetInvocationResultHandler {
    /// Arguments and results are `Codable`.
    public typealias SerializationRequirement = Codable
    internal let outcome: CallOutcome

    /// The method returned a value.
    ///
    /// - Parameter value: the result.
    /// - Throws: `MultiprocessingError/Code/coding` when it cannot be encoded.
    public func onReturn<Success: Codable>(value: Success) async throws {
        outcome.finish(Result { try ValueCoding.encode(value) })
    }

    /// The method returned nothing.
    public func onReturnVoid() async throws {
        outcome.finish(.success([]))
    }

    /// The method threw.
    ///
    /// - Parameter error: the error.
    public func onThrow<Err: Error>(error: Err) async throws {
        outcome.finish(.failure(error))
    }
}

/// A one-shot result that a server thread waits for while a Swift task runs the call.
internal final class CallOutcome: @unchecked Sendable {
    // @unchecked: `result` is written once under `lock` before the futex word is set.
    private let lock = Mutex<Result<[UInt8], any Error>?>(nil)
    private let word: UnsafeMutablePointer<UInt32>

    internal init() {
        word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        word.initialize(to: 0)
    }

    deinit { word.deallocate() }

    internal func finish(_ result: Result<[UInt8], any Error>) {
        let first = lock.withLock { stored -> Bool in
            guard stored == nil else { return false }
            stored = result
            return true
        }
        if first {
            ManagerPlatform.atomicIncrement(word)
            ManagerPlatform.futexWakeAll(word)
        }
    }

    internal func wait() -> Result<[UInt8], any Error> {
        while true {
            if let result = lock.withLock({ $0 }) { return result }
            ManagerPlatform.futexWait(word, expected: 0, nanoseconds: nil)
        }
    }
}

/// A server-hosted actor and the way to call it.
internal final class ActorBox<Act: DistributedActor>: ManagedActorBox where Act.ID == ManagedActorID {
    internal let actor: Act
    internal let system: ManagerActorSystem

    internal init(_ actor: Act, system: ManagerActorSystem) {
        self.actor = actor
        self.system = system
    }

    internal func invoke(target: String, genericSubstitutions: [String], arguments: [[UInt8]]) throws -> [UInt8] {
        guard genericSubstitutions.isEmpty else {
            throw MultiprocessingError(.notFound, "Generic distributed methods are not served: the server does not look types up by a name from the wire.")
        }
        let outcome = CallOutcome()
        let actor = self.actor
        let system = self.system
        Task {
            var decoder = ManagerInvocationDecoder(arguments: arguments)
            do {
                try await system.executeDistributedTarget(on: actor, target: RemoteCallTarget(target),
                                                                    invocationDecoder: &decoder,
                                                                    handler: ManagerResultHandler(outcome: outcome))
            } catch {
                // An unknown target (a method this actor does not have) lands here.
                outcome.finish(.failure(MultiprocessingError(.notFound, "The actor \(Act.self) has no distributed method \(target): \(error)")))
            }
        }
        switch outcome.wait() {
        case .success(let bytes):
            return bytes
        case .failure(let error as MultiprocessingError):
            throw error
        case .failure(let error):
            throw MultiprocessingError(.childFailed, "The distributed method threw: \(error)", remoteTypeName: "\(type(of: error))")
        }
    }
}

/// The manager as a `DistributedActorSystem`: remote calls travel over the manager's
/// authenticated connections, and the server hosts the actors.
///
/// A client process gets one from ``Manager/actorSystem`` or ``init(address:authKey:)``; the
/// server makes its own. A call's method is named by the compiler's identifier for the
/// distributed method, and only `distributed` methods of registered actor types can be reached.
public final class ManagerActorSystem: DistributedActorSystem, Sendable {
    /// Actors are named by server address and object id.
    public typealias ActorID = ManagedActorID
    /// Records arguments.
    public typealias InvocationEncoder = ManagerInvocationEncoder
    /// Hands arguments to the actor.
    public typealias InvocationDecoder = ManagerInvocationDecoder
    /// Collects results on the server.
    public typealias ResultHandler = ManagerResultHandler
    /// Arguments and results are `Codable`.
    public typealias SerializationRequirement = Codable

    private let address: ManagerAddress?
    private let key: AuthKey?
    private let server = Mutex<ManagerServer?>(nil)

    /// A client-side system for the server at `address`.
    ///
    /// - Parameters:
    ///   - address: the server.
    ///   - authKey: its key; the key this process knows for the address when nil.
    public init(address: ManagerAddress, authKey: AuthKey? = nil) {
        self.address = address
        self.key = authKey ?? ManagerClient.knownKey(for: address)
    }

    internal init(serving: Void) {
        self.address = nil
        self.key = nil
    }

    internal func attach(server: ManagerServer) {
        self.server.withLock { $0 = server }
    }

    internal func makeActor<A: ManagedActor>(_ type: A.Type) -> UInt64 {
        let actor = A(actorSystem: self)
        return actor.id.id
    }

    /// In the server, the local actor with this id; in a client, nil (the runtime then makes a
    /// remote reference).
    ///
    /// - Parameters:
    ///   - id: the actor's id.
    ///   - actorType: the expected type.
    /// - Returns: the local actor, or nil.
    /// - Throws: never.
    public func resolve<Act>(id: ActorID, as actorType: Act.Type) throws -> Act? where Act: DistributedActor, Act.ID == ActorID {
        guard let server = server.withLock({ $0 }) else { return nil }
        let box = server.table.withLock { $0.objects[id.id]?.actor }
        return (box as? ActorBox<Act>)?.actor
    }

    /// Gives a new actor an id (on the server: a new object in its table).
    ///
    /// - Parameter actorType: the actor's type.
    /// - Returns: the id.
    public func assignID<Act>(_ actorType: Act.Type) -> ActorID where Act: DistributedActor, Act.ID == ActorID {
        guard let server = server.withLock({ $0 }) else {
            // A client making a local actor: it is reachable only in this process.
            return ManagedActorID(address: nil, id: UInt64.random(in: 1 ... .max))
        }
        let id = server.table.withLock { table -> UInt64 in
            let id = table.nextID
            table.nextID += 1
            table.objects[id] = ServerObject(id: id, name: nil, state: .actor(ActorState()))
            return id
        }
        return ManagedActorID(address: nil, id: id)
    }

    /// Makes a new actor reachable.
    ///
    /// - Parameter actor: the actor.
    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == ActorID {
        guard let server = server.withLock({ $0 }) else { return }
        let box = ActorBox(actor, system: self)
        // A box this replaces is released after the lock: releasing an actor runs its deinit,
        // which comes back here (resignID) for the same lock.
        let replaced = server.table.withLock { table -> (any ManagedActorBox)? in
            let old = table.objects[actor.id.id]?.actor
            table.objects[actor.id.id]?.actor = box
            return old
        }
        withExtendedLifetime(replaced) {}
    }

    /// Forgets an actor that was deinitialized.
    ///
    /// - Parameter id: its id.
    public func resignID(_ id: ActorID) {
        guard let server = server.withLock({ $0 }) else { return }
        let removed = server.table.withLock { $0.objects.removeValue(forKey: id.id) }
        withExtendedLifetime(removed) {}
    }

    /// A new argument recorder.
    ///
    /// - Returns: the encoder.
    public func makeInvocationEncoder() -> InvocationEncoder { ManagerInvocationEncoder() }

    private func send(_ actorID: ActorID, _ target: RemoteCallTarget, _ invocation: InvocationEncoder) async throws -> [UInt8] {
        guard let address = actorID.address ?? address, let key else {
            throw MultiprocessingError(.misuse, "This actor reference has no server address.")
        }
        guard !invocation.hasGenerics else {
            throw MultiprocessingError(.unsupported, "Generic distributed methods are not supported by managers.")
        }
        let request = ActorRequest.call(target: target.identifier, genericSubstitutions: [], arguments: invocation.arguments)
        let client = ManagerClient.shared(address, key: key)
        return try await managerRunBlocking { interrupt in
            guard case .call(let result) = try client.request(request, object: actorID.id, interrupt: interrupt) else {
                throw unexpectedReply(to: request)
            }
            return result
        }
    }

    /// Calls a distributed method on the server and decodes its result.
    ///
    /// - Parameters:
    ///   - actor: the remote actor.
    ///   - target: the method.
    ///   - invocation: its arguments.
    ///   - throwing: the error type.
    ///   - returning: the result type.
    /// - Returns: the result.
    /// - Throws: `MultiprocessingError/Code/notFound` for an unknown actor or method;
    ///   `MultiprocessingError/Code/childFailed` when the method threw (with the error's type
    ///   name); `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func remoteCall<Act, Err, Res>(on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder,
                                          throwing: Err.Type, returning: Res.Type) async throws -> Res
    where Act: DistributedActor, Act.ID == ActorID, Err: Error, Res: Codable {
        let bytes = try await send(actor.id, target, invocation)
        return try ValueCoding.decode(Res.self, bytes)
    }

    /// Calls a distributed method that returns nothing.
    ///
    /// - Parameters:
    ///   - actor: the remote actor.
    ///   - target: the method.
    ///   - invocation: its arguments.
    ///   - throwing: the error type.
    /// - Throws: as ``remoteCall(on:target:invocation:throwing:returning:)``.
    public func remoteCallVoid<Act, Err>(on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder,
                                         throwing: Err.Type) async throws
    where Act: DistributedActor, Act.ID == ActorID, Err: Error {
        _ = try await send(actor.id, target, invocation)
    }
}

extension Manager {
    /// This process's actor system for this manager's server.
    public var actorSystem: ManagerActorSystem {
        get throws {
            guard let address else { throw MultiprocessingError(.misuse, "This manager is not started: call start() first.") }
            return ManagerActorSystem(address: address, authKey: authKey)
        }
    }

    /// Creates a distributed actor on the server (or finds the one with `name`) and returns a
    /// reference whose `distributed` methods run there.
    ///
    /// - Parameters:
    ///   - type: a type registered with ``register(_:)`` before `start()`.
    ///   - name: a name other processes can find it by; nil for an anonymous one.
    /// - Returns: the remote reference.
    /// - Throws: `MultiprocessingError/Code/notFound` for an unregistered type;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func create<A: ManagedActor>(_ type: A.Type, name: String? = nil) throws -> A {
        guard let typeName = _mangledTypeName(type) else {
            throw MultiprocessingError(.misuse, "\(type) has no runtime name: it must not be private or local.")
        }
        let id = try makeObject(.actor(typeName: typeName), name: name)
        guard let address else { throw MultiprocessingError(.misuse, "This manager is not started: call start() first.") }
        return try A.resolve(id: ManagedActorID(address: address, id: id), using: try actorSystem)
    }
}
