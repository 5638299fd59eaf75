import Multiprocessing
import Synchronization

extension ManagerServer {
    /// Serves one request; returns the reply frame. Throws a `MultiprocessingError` that becomes
    /// an error reply (`malformedFrame` also closes the connection).
    internal func handle(_ request: [UInt8], _ connection: ConnectionContext) throws -> [UInt8] {
        var reader = ByteReader(request)
        let rawOp = try reader.byte()
        guard let op = Op(rawValue: rawOp) else {
            throw MultiprocessingError(.notFound, "The manager server does not know operation \(rawOp).")
        }
        let id = try reader.varint()
        var reply = ByteWriter(status: .ok)
        switch op {
        case .ping:
            break
        case .serverInfo:
            let (objects, clients, connections) = table.withLock { ($0.objects.count, $0.clients.count, $0.connections) }
            reply.varint(UInt64(objects))
            reply.varint(UInt64(clients))
            reply.varint(UInt64(connections))
            reply.varint(UInt64(ManagerPlatform.residentBytes()))
            reply.varint(UInt64(ManagerPlatform.processID()))
        case .shutdown:
            connection.shutdownRequested = true
        case .waiters:
            reply.varint(UInt64(try withObject(id, ManagedKind.allKinds) { $0.waiting }))
        case .create:
            let rawKind = try reader.byte()
            guard let kind = ManagedKind(rawValue: rawKind), kind != .actor else {
                throw MultiprocessingError(.notFound, "The manager server does not know object kind \(rawKind).")
            }
            let name = try reader.string()
            let parameter = try reader.signed()
            let initial = try reader.blob()
            reply.varint(try create(kind: kind, name: name.isEmpty ? nil : name, parameter: parameter, initial: initial))
        case .lookup:
            let name = try reader.string()
            let found = table.withLock { table -> (UInt64, ManagedKind)? in
                guard let id = table.names[name], let object = table.objects[id] else { return nil }
                return (id, object.kind)
            }
            guard let found else { throw MultiprocessingError(.notFound, "The manager has no object named \"\(name)\".") }
            reply.byte(found.1.rawValue)
            reply.varint(found.0)
        case .destroy:
            // The object is released after the lock: an actor's deinit takes the lock itself.
            let removed = table.withLock { table -> ServerObject? in
                guard let object = table.objects.removeValue(forKey: id) else { return nil }
                if let name = object.name, table.names[name] == id { table.names[name] = nil }
                object.destroyed = true
                object.changed()
                return object
            }
            withExtendedLifetime(removed) {}
        case .actorCreate:
            let typeName = try reader.string()
            let name = try reader.string()
            reply.varint(try createActor(typeName: typeName, name: name.isEmpty ? nil : name))
        case .actorCall:
            let target = try reader.string()
            // Counts come from the peer: read element by element (each read is bounds-checked),
            // never reserve by a count.
            var generics: [String] = []
            for _ in 0..<(try reader.int()) { generics.append(try reader.string()) }
            var arguments: [[UInt8]] = []
            for _ in 0..<(try reader.int()) { arguments.append(try reader.blob()) }
            let box = try withObject(id, [.actor]) { object in object.actor }
            guard let box else { throw MultiprocessingError(.notFound, "Object \(id) is not a live actor.") }
            reply.blob(try box.invoke(target: target, genericSubstitutions: generics, arguments: arguments))
        case .actorResolve:
            _ = try withObject(id, [.actor]) { _ in () }
        default:
            try handleObjectOp(op, id, &reader, &reply, connection)
        }
        return reply.finish()
    }

    /// Runs `body` on object `id` under the table lock, after checking its kind.
    internal func withObject<R>(_ id: UInt64, _ kinds: [ManagedKind], _ body: (ServerObject) throws -> R) throws -> R {
        try table.withLock { table in
            guard let object = table.objects[id] else {
                throw MultiprocessingError(.notFound, "The manager has no object \(id) (it was destroyed, or this proxy belongs to another server).")
            }
            guard kinds.contains(object.kind) else {
                throw MultiprocessingError(.notFound, "Object \(id) is a \(object.kind), which has no such operation.")
            }
            return try body(object)
        }
    }

    private func object(_ id: UInt64, _ kinds: [ManagedKind]) throws -> ServerObject {
        try withObject(id, kinds) { $0 }
    }

    private func create(kind: ManagedKind, name: String?, parameter: Int64, initial: [UInt8]) throws -> UInt64 {
        try table.withLock { table in
            if let name, let existing = table.names[name], let object = table.objects[existing] {
                guard object.kind == kind else {
                    throw MultiprocessingError(.misuse, "The manager's object \"\(name)\" is a \(object.kind), not a \(kind).")
                }
                return existing
            }
            let id = table.nextID
            table.nextID += 1
            let object = ServerObject(id: id, kind: kind, name: name)
            switch kind {
            case .value: object.value = initial
            case .queue: object.maximumSize = Int(clamping: max(0, parameter))
            case .semaphore:
                guard parameter >= 0 else { throw MultiprocessingError(.misuse, "A semaphore's value must not be negative (it was \(parameter)).") }
                object.permits = Int(clamping: parameter)
            case .barrier:
                guard parameter > 0 else { throw MultiprocessingError(.misuse, "A barrier needs at least one party.") }
                object.parties = Int(clamping: parameter)
            default: break
            }
            table.objects[id] = object
            if let name { table.names[name] = id }
            return id
        }
    }

    internal func createActor(typeName: String, name: String?) throws -> UInt64 {
        if let name {
            let existing = table.withLock { table -> UInt64? in table.names[name] }
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
    private func waitFor<R>(_ object: ServerObject, timeout: Int64?, _ connection: ConnectionContext,
                            _ attempt: (ServerObject) throws -> R?) throws -> R? {
        // Saturating: a timeout the clock cannot reach (over 292 years from boot) waits for ever.
        // Timeouts are never negative here (ByteReader.timeout refuses them).
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
                if let result = try attempt(object) { return (result, 0) }
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

    private func owner(_ reader: inout ByteReader, _ connection: ConnectionContext) throws -> Owner {
        Owner(client: connection.client, thread: try reader.varint())
    }

    private func handleObjectOp(_ op: Op, _ id: UInt64, _ reader: inout ByteReader, _ reply: inout ByteWriter, _ connection: ConnectionContext) throws {
        switch op {
        // MARK: dictionary
        case .dGet:
            let key = try reader.blob()
            let found = try withObject(id, [.dictionary]) { $0.dictionary[key] }
            reply.bool(found != nil)
            if let found { reply.blob(found) }
        case .dSet:
            let key = try reader.blob()
            let value = try reader.blob()
            try withObject(id, [.dictionary]) { $0.dictionary[key] = value }
        case .dDelete:
            let key = try reader.blob()
            let old = try withObject(id, [.dictionary]) { $0.dictionary.removeValue(forKey: key) }
            reply.bool(old != nil)
            if let old { reply.blob(old) }
        case .dContains:
            let key = try reader.blob()
            reply.bool(try withObject(id, [.dictionary]) { $0.dictionary[key] != nil })
        case .dCount:
            reply.varint(UInt64(try withObject(id, [.dictionary]) { $0.dictionary.count }))
        case .dItems:
            let items = try withObject(id, [.dictionary]) { Array($0.dictionary) }
            reply.varint(UInt64(items.count))
            for (k, v) in items {
                reply.blob(k)
                reply.blob(v)
            }
        case .dClear:
            try withObject(id, [.dictionary]) { $0.dictionary = [:] }
        case .dSetIfAbsent:
            let key = try reader.blob()
            let value = try reader.blob()
            let (inserted, current) = try withObject(id, [.dictionary]) { object -> (Bool, [UInt8]) in
                if let existing = object.dictionary[key] { return (false, existing) }
                object.dictionary[key] = value
                return (true, value)
            }
            reply.bool(inserted)
            reply.blob(current)
        case .dCompareAndSwap:
            let key = try reader.blob()
            let expectPresent = try reader.bool()
            let expected = try reader.blob()
            let new = try reader.blob()
            let (swapped, current) = try withObject(id, [.dictionary]) { object -> (Bool, [UInt8]?) in
                let current = object.dictionary[key]
                let matches = expectPresent ? current == expected : current == nil
                if matches {
                    object.dictionary[key] = new
                    return (true, new)
                }
                return (false, current)
            }
            reply.bool(swapped)
            reply.bool(current != nil)
            reply.blob(current ?? [])
        case .dCompareAndDelete:
            // Removes the entry only if it is still `expected` (absent: only if still absent,
            // which removes nothing); otherwise reports what it is now.
            let key = try reader.blob()
            let expectPresent = try reader.bool()
            let expected = try reader.blob()
            let (deleted, current) = try withObject(id, [.dictionary]) { object -> (Bool, [UInt8]?) in
                let current = object.dictionary[key]
                guard expectPresent ? current == expected : current == nil else { return (false, current) }
                object.dictionary[key] = nil
                return (true, nil)
            }
            reply.bool(deleted)
            reply.bool(current != nil)
            reply.blob(current ?? [])
        case .dAddInt:
            let key = try reader.blob()
            let delta = try reader.signed()
            let result = try withObject(id, [.dictionary]) { object -> Int64 in
                let (sum, overflow) = try wireStoredInteger(object.dictionary[key]).addingReportingOverflow(delta)
                guard !overflow else { throw MultiprocessingError(.misuse, "increment: the result overflows a 64-bit integer.") }
                var bytes = ByteWriterRaw()
                bytes.signed(sum)
                object.dictionary[key] = bytes.bytes
                return sum
            }
            reply.signed(result)
        case .dAddDouble:
            let key = try reader.blob()
            let delta = try reader.double()
            let result = try withObject(id, [.dictionary]) { object -> Double in
                let sum = try wireStoredDouble(object.dictionary[key]) + delta
                object.dictionary[key] = wireDoubleBytes(sum)
                return sum
            }
            reply.double(result)
        case .dAppend:
            let key = try reader.blob()
            let element = try reader.blob()
            let count = try withObject(id, [.dictionary]) { object -> Int in
                let (list, count) = try wireAppendToList(object.dictionary[key], element)
                object.dictionary[key] = list
                return count
            }
            reply.varint(UInt64(count))

        // MARK: value / namespace
        case .vGet:
            reply.blob(try withObject(id, [.value]) { $0.value })
        case .vSet:
            let value = try reader.blob()
            try withObject(id, [.value]) { $0.value = value }
        case .vCompareAndSwap:
            let expected = try reader.blob()
            let new = try reader.blob()
            let (swapped, current) = try withObject(id, [.value]) { object -> (Bool, [UInt8]) in
                if object.value == expected {
                    object.value = new
                    return (true, new)
                }
                return (false, object.value)
            }
            reply.bool(swapped)
            reply.blob(current)
        case .vAddInt:
            let delta = try reader.signed()
            reply.signed(try withObject(id, [.value]) { object -> Int64 in
                let (sum, overflow) = try wireStoredInteger(object.value).addingReportingOverflow(delta)
                guard !overflow else { throw MultiprocessingError(.misuse, "increment: the result overflows a 64-bit integer.") }
                var bytes = ByteWriterRaw()
                bytes.signed(sum)
                object.value = bytes.bytes
                return sum
            })
        case .vAddDouble:
            let delta = try reader.double()
            reply.double(try withObject(id, [.value]) { object -> Double in
                let sum = try wireStoredDouble(object.value) + delta
                object.value = wireDoubleBytes(sum)
                return sum
            })

        // MARK: list
        case .lAppend:
            let element = try reader.blob()
            reply.varint(UInt64(try withObject(id, [.list]) { object -> Int in
                object.list.append(element)
                return object.list.count
            }))
        case .lExtend:
            let count = try reader.int()
            var elements: [[UInt8]] = []
            for _ in 0..<count { elements.append(try reader.blob()) }
            reply.varint(UInt64(try withObject(id, [.list]) { object -> Int in
                object.list.append(contentsOf: elements)
                return object.list.count
            }))
        case .lGet:
            let index = try reader.signed()
            reply.blob(try withObject(id, [.list]) { object in object.list[try listIndex(index, object.list.count)] })
        case .lSet:
            let index = try reader.signed()
            let element = try reader.blob()
            try withObject(id, [.list]) { object in object.list[try listIndex(index, object.list.count)] = element }
        case .lCount:
            reply.varint(UInt64(try withObject(id, [.list]) { $0.list.count }))
        case .lSnapshot:
            let list = try withObject(id, [.list]) { $0.list }
            reply.varint(UInt64(list.count))
            for element in list { reply.blob(element) }
        case .lRemoveAt:
            let index = try reader.signed()
            reply.blob(try withObject(id, [.list]) { object in object.list.remove(at: try listIndex(index, object.list.count)) })
        case .lInsert:
            let index = try reader.signed()
            let element = try reader.blob()
            try withObject(id, [.list]) { object in
                let count = object.list.count
                let i = index < 0 ? max(0, count + Int(clamping: index)) : min(count, Int(clamping: index))
                object.list.insert(element, at: i)
            }
        case .lClear:
            try withObject(id, [.list]) { $0.list = [] }

        // MARK: queue
        case .qPut:
            let item = try reader.blob()
            let timeout = try reader.timeout()
            let target = try object(id, [.queue])
            let done = try waitFor(target, timeout: timeout, connection) { object -> Bool? in
                guard object.maximumSize == 0 || object.queueCount < object.maximumSize else { return nil }
                object.queue.append(item)
                object.changed()
                return true
            }
            guard done != nil else { throw MultiprocessingError(.full, "ManagedQueue.put: the queue stayed full\(timeoutText(timeout)).") }
        case .qGet:
            let timeout = try reader.timeout()
            let target = try object(id, [.queue])
            let item = try waitFor(target, timeout: timeout, connection) { object -> [UInt8]? in
                guard object.queueCount > 0 else { return nil }
                let item = object.queuePop()
                object.changed()
                return item
            }
            guard let item else { throw MultiprocessingError(.empty, "ManagedQueue.get: the queue stayed empty\(timeoutText(timeout)).") }
            reply.blob(item)
        case .qCount:
            reply.varint(UInt64(try withObject(id, [.queue]) { $0.queueCount }))

        // MARK: locks
        case .acquire:
            let caller = try owner(&reader, connection)
            let timeout = try reader.timeout()
            let target = try object(id, [.lock, .rLock, .condition])
            let died = try waitFor(target, timeout: timeout, connection) { object -> Bool? in
                if object.owner == nil {
                    object.owner = caller
                    object.depth = 1
                    let died = object.ownerDied
                    object.ownerDied = false
                    return died
                }
                if object.kind != .lock, object.owner == caller {
                    object.depth += 1
                    return false
                }
                return nil
            }
            // 0 = acquired, 1 = timed out, 2 = acquired after the previous owner died.
            reply.byte(died == nil ? 1 : (died == true ? 2 : 0))
        case .release:
            let caller = try owner(&reader, connection)
            try withObject(id, [.lock, .rLock, .condition]) { object in
                guard let current = object.owner else {
                    throw MultiprocessingError(.misuse, "release: the manager's lock \(id) is not held.")
                }
                if object.kind != .lock && current != caller {
                    throw MultiprocessingError(.misuse, "release: the manager's lock \(id) is held by another thread or process.")
                }
                object.depth -= 1
                if object.kind == .lock || object.depth == 0 {
                    object.owner = nil
                    object.depth = 0
                    object.changed()
                }
            }
        case .isLocked:
            reply.bool(try withObject(id, [.lock, .rLock, .condition]) { $0.owner != nil })

        // MARK: semaphore
        case .semAcquire:
            let timeout = try reader.timeout()
            let target = try object(id, [.semaphore])
            let got = try waitFor(target, timeout: timeout, connection) { object -> Bool? in
                guard object.permits > 0 else { return nil }
                object.permits -= 1
                return true
            }
            reply.bool(got != nil)
        case .semRelease:
            let count = try reader.int()
            try withObject(id, [.semaphore]) { object in
                let (sum, overflow) = object.permits.addingReportingOverflow(count)
                guard !overflow else {
                    throw MultiprocessingError(.misuse, "ManagedSemaphore.release: releasing \(count) more permits would overflow the count of \(object.permits).")
                }
                object.permits = sum
                object.changed()
            }
        case .semValue:
            reply.varint(UInt64(try withObject(id, [.semaphore]) { $0.permits }))

        // MARK: event
        case .evSet:
            try withObject(id, [.event]) { object in
                object.flag = true
                object.eventGeneration &+= 1
                object.changed()
            }
        case .evClear:
            try withObject(id, [.event]) { $0.flag = false }
        case .evIsSet:
            reply.bool(try withObject(id, [.event]) { $0.flag })
        case .evWait:
            let timeout = try reader.timeout()
            let target = try object(id, [.event])
            // The generation seen by the first look (under the same lock as the wait's start):
            // a set() after it wakes this call even if a clear() follows before it looks again.
            var seen: UInt64?
            let set = try waitFor(target, timeout: timeout, connection) { object -> Bool? in
                if object.flag { return true }
                guard let seen else {
                    seen = object.eventGeneration
                    return nil
                }
                return object.eventGeneration != seen ? true : nil
            }
            reply.bool(set != nil)

        // MARK: condition
        case .cWait:
            let caller = try owner(&reader, connection)
            let timeout = try reader.timeout()
            let target = try object(id, [.condition])
            let (ticket, savedDepth) = try withObject(id, [.condition]) { object -> (UInt64, Int) in
                guard object.owner == caller else {
                    throw MultiprocessingError(.misuse, "ManagedCondition.wait: the calling thread does not hold the condition's lock.")
                }
                let ticket = object.nextTicket
                object.nextTicket += 1
                object.waiters.append(ticket)
                let depth = object.depth
                object.owner = nil
                object.depth = 0
                object.changed()
                return (ticket, depth)
            }
            var notified: Bool?
            do {
                notified = try waitFor(target, timeout: timeout, connection) { object -> Bool? in
                    object.notified.remove(ticket) != nil ? true : nil
                }
            } catch {
                try? withObject(id, [.condition]) { object in
                    object.waiters.removeAll { $0 == ticket }
                    object.notified.remove(ticket)
                }
                throw error
            }
            if notified == nil {
                try withObject(id, [.condition]) { object in
                    object.waiters.removeAll { $0 == ticket }
                    // A notify may have picked this ticket after the deadline: it counts.
                    if object.notified.remove(ticket) != nil { notified = true }
                }
            }
            // Take the lock back, whatever happened, as threading.Condition does.
            _ = try waitFor(target, timeout: nil, connection) { object -> Bool? in
                guard object.owner == nil else { return nil }
                object.owner = caller
                object.depth = savedDepth
                object.ownerDied = false
                return true
            }
            reply.bool(notified != nil)
        case .cNotify:
            let caller = try owner(&reader, connection)
            let count = try reader.int()
            try withObject(id, [.condition]) { object in
                guard object.owner == caller else {
                    throw MultiprocessingError(.misuse, "ManagedCondition.notify: the calling thread does not hold the condition's lock.")
                }
                let n = min(count, object.waiters.count)
                for ticket in object.waiters.prefix(n) { object.notified.insert(ticket) }
                object.waiters.removeFirst(n)
                if n > 0 { object.changed() }
            }

        // MARK: barrier
        case .bWait:
            let timeout = try reader.timeout()
            let target = try object(id, [.barrier])
            let (index, generation) = try withObject(id, [.barrier]) { object -> (Int, UInt64) in
                guard !object.broken else { throw MultiprocessingError(.broken, "ManagedBarrier.wait: the barrier is broken (aborted, or a waiter timed out); reset it.") }
                let index = object.arrived
                let generation = object.generation
                object.arrived += 1
                if object.arrived == object.parties {
                    object.arrived = 0
                    object.generation += 1
                    object.changed()
                }
                return (index, generation)
            }
            do {
                let done = try waitFor(target, timeout: timeout, connection) { object -> Bool? in
                    if object.generation != generation {
                        if object.brokenGeneration == generation {
                            throw MultiprocessingError(.broken, "ManagedBarrier.wait: the barrier was reset while this call waited.")
                        }
                        return true
                    }
                    if object.broken {
                        throw MultiprocessingError(.broken, "ManagedBarrier.wait: the barrier was broken while this call waited.")
                    }
                    return nil
                }
                if done == nil {
                    try withObject(id, [.barrier]) { object in
                        if object.generation == generation {
                            object.broken = true
                            object.arrived = max(0, object.arrived - 1)
                            object.changed()
                        }
                    }
                    throw MultiprocessingError(.timedOut, "ManagedBarrier.wait timed out\(timeoutText(timeout)); the barrier is now broken.")
                }
            } catch let error as MultiprocessingError where error.code == .endOfStream {
                try? withObject(id, [.barrier]) { object in
                    if object.generation == generation {
                        object.broken = true
                        object.changed()
                    }
                }
                throw error
            }
            reply.varint(UInt64(index))
        case .bReset:
            try withObject(id, [.barrier]) { object in
                if object.arrived > 0 {
                    object.brokenGeneration = object.generation
                    object.generation += 1
                }
                object.arrived = 0
                object.broken = false
                object.changed()
            }
        case .bAbort:
            try withObject(id, [.barrier]) { object in
                object.broken = true
                object.changed()
            }
        case .bInfo:
            let (parties, waiting, broken) = try withObject(id, [.barrier]) { ($0.parties, $0.arrived, $0.broken) }
            reply.varint(UInt64(parties))
            reply.varint(UInt64(waiting))
            reply.bool(broken)
        default:
            throw MultiprocessingError(.notFound, "The manager server does not know operation \(op.rawValue).")
        }
    }
}

private func listIndex(_ index: Int64, _ count: Int) throws -> Int {
    let i = index < 0 ? Int64(count) + index : index
    guard i >= 0, i < Int64(count) else {
        throw MultiprocessingError(.misuse, "Index \(index) is out of range for a managed list of \(count) elements.")
    }
    return Int(i)
}

private func timeoutText(_ timeout: Int64?) -> String {
    guard let timeout else { return "" }
    return " for \(Double(timeout) / 1e9) s"
}
