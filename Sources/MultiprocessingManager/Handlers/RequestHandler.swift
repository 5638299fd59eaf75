import Multiprocessing
import MultiprocessingSystem

// The server's side of the protocol: one request in, one reply frame out. This file decodes the
// request, serves the manager's own requests, and hands each object request to its kind's
// handler (DictionaryHandler.swift and the rest) after checking the object's kind.

extension ManagerServer {
    /// Serves one request body; returns the reply frame. Throws a `MultiprocessingError` that
    /// becomes an error reply (`malformedFrame` also closes the connection).
    internal func handle(_ body: [UInt8], _ connection: ConnectionContext) throws -> [UInt8] {
        switch try ManagerRequest(body: body) {
        case .ping:
            return ManagerWire.replyFrame(ManagerReply.pong)
        case .serverInfo:
            let (objects, clients, connections) = table.withLock { ($0.objects.count, $0.clients.count, $0.connections) }
            return ManagerWire.replyFrame(ManagerReply.serverInfo(
                objects: objects, clients: clients, connections: connections,
                residentBytes: ManagerPlatform.residentBytes(), pid: ManagerPlatform.processID()))
        case .shutdown:
            connection.shutdownRequested = true
            return ManagerWire.replyFrame(ManagerReply.shuttingDown)
        case .waiters(let id):
            let count = try table.withLock { table -> Int in
                guard let object = table.objects[id] else { throw noObject(id) }
                return object.waiting
            }
            return ManagerWire.replyFrame(ManagerReply.waiters(count))
        case .create(let name, let request):
            let name = name.flatMap { $0.isEmpty ? nil : $0 }
            let id: UInt64
            if case .actor(let typeName) = request {
                id = try createActor(typeName: typeName, name: name)
            } else {
                id = try create(request, name: name)
            }
            return ManagerWire.replyFrame(ManagerReply.created(object: id))
        case .lookup(let name):
            let found = table.withLock { table -> (UInt64, ManagedKind)? in
                guard let id = table.names[name], let object = table.objects[id] else { return nil }
                return (id, object.kind)
            }
            guard let found else { throw MultiprocessingError(.notFound, "The manager has no object named \"\(name)\".") }
            return ManagerWire.replyFrame(ManagerReply.found(kind: found.1, object: found.0))
        case .destroy(let id):
            // The object is released after the lock: an actor's deinit takes the lock itself.
            let removed = table.withLock { table -> ServerObject? in
                guard let object = table.objects.removeValue(forKey: id) else { return nil }
                if let name = object.name, table.names[name] == id { table.names[name] = nil }
                object.destroyed = true
                object.changed()
                return object
            }
            withExtendedLifetime(removed) {}
            return ManagerWire.replyFrame(ManagerReply.destroyed)
        case .dictionary(let id, let request):
            let (object, state) = try target(id, request) { if case .dictionary(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state))
        case .list(let id, let request):
            let (object, state) = try target(id, request) { if case .list(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state))
        case .value(let id, let request):
            let (object, state) = try target(id, request) { if case .value(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state))
        case .queue(let id, let request):
            let (object, state) = try target(id, request) { if case .queue(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state, connection))
        case .lock(let id, let request):
            // A lock request serves a Lock, an RLock (the state knows which it is) and a
            // condition's own lock.
            let (object, state) = try target(id, request) { state -> LockState? in
                switch state {
                case .lock(let s), .rLock(let s): s
                case .condition(let s): s.lock
                default: nil
                }
            }
            return ManagerWire.replyFrame(try serve(request, object, state, connection))
        case .semaphore(let id, let request):
            // A semaphore request serves a Semaphore and a BoundedSemaphore (the state knows its bound).
            let (object, state) = try target(id, request) { state -> SemaphoreState? in
                switch state {
                case .semaphore(let s), .boundedSemaphore(let s): s
                default: nil
                }
            }
            return ManagerWire.replyFrame(try serve(request, object, state, connection))
        case .event(let id, let request):
            let (object, state) = try target(id, request) { if case .event(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state, connection))
        case .condition(let id, let request):
            let (object, state) = try target(id, request) { if case .condition(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state, connection))
        case .barrier(let id, let request):
            let (object, state) = try target(id, request) { if case .barrier(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state, connection))
        case .actor(let id, let request):
            let (object, state) = try target(id, request) { if case .actor(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state))
        case .array(let id, let request):
            let (object, state) = try target(id, request) { if case .array(let s) = $0 { s } else { nil } }
            return ManagerWire.replyFrame(try serve(request, object, state))
        }
    }

    private func noObject(_ id: UInt64) -> MultiprocessingError {
        MultiprocessingError(.notFound, "The manager has no object \(id) (it was destroyed, or this proxy belongs to another server).")
    }

    /// Object `id` and its state, when the object is of the kind `request` is for.
    ///
    /// - Throws: `notFound` for no such object, or one of another kind (the message names both).
    private func target<Request: ObjectRequest, State>(_ id: UInt64, _ request: Request,
                                                       _ state: (ObjectState) -> State?) throws -> (ServerObject, State) {
        try table.withLock { table in
            guard let object = table.objects[id] else { throw noObject(id) }
            guard let found = state(object.state) else {
                throw MultiprocessingError(.notFound, "The manager's object \(id) is \(object.kind.withArticle), not \(withIndefiniteArticle(Request.kindName)): \(withIndefiniteArticle(Request.kindName)) request (\(request.operation)) cannot go to it.")
            }
            return (object, found)
        }
    }

    /// Runs `body` under the table lock, unless `object` was destroyed since it was looked up.
    internal func locked<R>(_ object: ServerObject, _ body: () throws -> R) throws -> R {
        try table.withLock { _ in
            if object.destroyed { throw noObject(object.id) }
            return try body()
        }
    }

    private func create(_ request: CreateRequest, name: String?) throws -> UInt64 {
        let kind = request.kind
        let state = try ObjectState(request)
        return try table.withLock { table in
            if let name, let existing = table.names[name], let object = table.objects[existing] {
                guard object.kind == kind else {
                    throw MultiprocessingError(.misuse, "The manager's object \"\(name)\" is \(object.kind.withArticle), not \(kind.withArticle).")
                }
                return existing
            }
            let id = table.nextID
            table.nextID += 1
            table.objects[id] = ServerObject(id: id, name: name, state: state)
            if let name { table.names[name] = id }
            return id
        }
    }

    internal func createActor(typeName: String, name: String?) throws -> UInt64 {
        if let name {
            // As create(_:name:) for the other kinds: a name another kind holds is refused, not
            // handed out as if it were an actor.
            let existing = try table.withLock { table -> UInt64? in
                guard let id = table.names[name], let object = table.objects[id] else { return nil }
                guard object.kind == .actor else {
                    throw MultiprocessingError(.misuse, "The manager's object \"\(name)\" is \(object.kind.withArticle), not an actor.")
                }
                return id
            }
            if let existing { return existing }
        }
        guard let type = actorTypes[typeName] else {
            throw MultiprocessingError(.notFound, "The manager does not serve actor type \(typeName): register it with Manager.register(_:) before start().")
        }
        let id = actorSystem.makeActor(type)
        if let name {
            table.withLock { table in
                if table.names[name] == nil { table.names[name] = id }
            }
        }
        return id
    }

    /// Waits on `object` until `attempt` returns a result, the deadline passes (nil result), or
    /// the client hangs up (throws `endOfStream`). `attempt` runs under the table lock.
    internal func waitFor<R>(_ object: ServerObject, timeout: Int64?, _ connection: ConnectionContext,
                             _ attempt: () throws -> R?) throws -> R? {
        // Saturating: a timeout the clock cannot reach (over 292 years from boot) waits for ever.
        // Timeouts are never negative here (checkedTimeout refuses them).
        let deadline = timeout.flatMap { timeout -> Int64? in
            let (sum, overflow) = ManagerPlatform.monotonicNanoseconds().addingReportingOverflow(max(0, timeout))
            return overflow ? nil : sum
        }
        var counted = false
        defer { if counted { table.withLock { _ in object.waiting -= 1 } } }
        while true {
            let (result, sequence) = try table.withLock { _ -> (R?, UInt32) in
                if object.destroyed {
                    throw MultiprocessingError(.notFound, "The manager's object \(object.id) was destroyed while a call waited on it.")
                }
                if let result = try attempt() { return (result, 0) }
                if !counted {
                    counted = true
                    object.waiting += 1
                }
                return (nil, ManagerPlatform.atomicLoad(object.sequence))
            }
            if let result { return result }
            var slice: Int64 = 200_000_000
            if let deadline {
                let left = deadline - ManagerPlatform.monotonicNanoseconds()
                if left <= 0 { return nil }
                slice = min(slice, left)
            }
            if connection.neverWaits { return nil }
            ManagerPlatform.futexWait(object.sequence, expected: sequence, nanoseconds: slice)
            // A waiting client that died or gave up must not keep a thread (or take a lock) for ever.
            if ManagerPlatform.peerHungUp(connection.socket.descriptor) {
                throw MultiprocessingError(.endOfStream, "The client left while it waited.")
            }
        }
    }
}

/// A request's timeout, checked: nil waits for ever, otherwise nanoseconds, never negative.
///
/// - Throws: `misuse` for a negative timeout (from a client other than this library's, which
///   refuses one before sending), before any deadline arithmetic.
internal func checkedTimeout(_ nanoseconds: Int64?) throws -> Int64? {
    if let nanoseconds, nanoseconds < 0 {
        throw MultiprocessingError(.misuse, "A manager call's timeout must not be negative (it was \(nanoseconds) ns).")
    }
    return nanoseconds
}

/// " for 0.5 s", or nothing for no timeout: the end of a timed-out call's message.
internal func timeoutText(_ nanoseconds: Int64?) -> String {
    guard let nanoseconds else { return "" }
    return " for \(Double(nanoseconds) / 1e9) s"
}
