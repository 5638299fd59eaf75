import Multiprocessing
import MultiprocessingSystem

// The binary layout of the messages in Messages.swift (protocol version 1). A request: the
// operation byte, the object id (varint), then the case's fields in order. A reply (after the
// status byte): the fields of the case that answers the request, in order. Field layouts:
// a count or id is a varint; a signed number is a zigzag varint; a Double is 8 little-endian
// bytes; bytes and strings are a varint length and the bytes; an optional value is a Bool then
// the value (empty bytes when absent); a timeout is a varint, 0 for none and otherwise
// nanoseconds + 1. Each kind's file (DictionaryMessages.swift, ...) writes and reads its cases,
// encoder and decoder side by side; the tests round-trip every case (ManagerProtocolTests).

extension ByteWriter {
    /// A request frame: the header's bytes reserved, then the operation byte and the object id.
    internal init(op: Op, object: UInt64) {
        bytes = [UInt8](repeating: 0, count: ManagerPlatform.frameHeaderSize)
        bytes.reserveCapacity(64)
        bytes.append(op.rawValue)
        varint(object)
    }

    internal mutating func timeout(_ nanoseconds: Int64?) {
        guard let nanoseconds else { varint(0); return }
        varint(UInt64(bitPattern: nanoseconds) &+ 1)
    }

    internal mutating func count(_ value: Int) { varint(UInt64(clamping: value)) }

    /// An optional value: present, then the bytes (empty when absent).
    internal mutating func optionalBlob(_ value: [UInt8]?) {
        bool(value != nil)
        blob(value ?? [])
    }

    internal mutating func blobs(_ values: [[UInt8]]) {
        count(values.count)
        for value in values { blob(value) }
    }
}

extension ByteReader {
    /// A timeout: nil for none, else nanoseconds, which may read as negative (the handler refuses it).
    internal mutating func timeout() throws -> Int64? {
        let raw = try varint()
        return raw == 0 ? nil : Int64(bitPattern: raw &- 1)
    }

    internal mutating func optionalBlob() throws -> [UInt8]? {
        let present = try bool()
        let value = try blob()
        return present ? value : nil
    }

    /// A count, then that many byte strings. The count comes from the peer: read element by
    /// element (each read is bounds-checked), never reserve by it.
    internal mutating func blobs() throws -> [[UInt8]] {
        var values: [[UInt8]] = []
        for _ in 0..<(try int()) { values.append(try blob()) }
        return values
    }

    internal mutating func strings() throws -> [String] {
        var values: [String] = []
        for _ in 0..<(try int()) { values.append(try string()) }
        return values
    }
}

internal func unknownOperation(_ op: Op, _ what: String) -> MultiprocessingError {
    MultiprocessingError(.notFound, "The manager server does not know \(what) operation \(op.rawValue).")
}

// MARK: the envelope

extension ManagerRequest {
    /// The request frame, ready to send.
    internal func frame() -> [UInt8] {
        var w: ByteWriter
        switch self {
        case .ping: w = ByteWriter(op: .ping, object: 0)
        case .serverInfo: w = ByteWriter(op: .serverInfo, object: 0)
        case .shutdown: w = ByteWriter(op: .shutdown, object: 0)
        case .waiters(let id): w = ByteWriter(op: .waiters, object: id)
        case .create(let name, .actor(let typeName)):
            w = ByteWriter(op: .actorCreate, object: 0)
            w.string(typeName)
            w.string(name ?? "")
        case .create(let name, let request):
            w = ByteWriter(op: .create, object: 0)
            w.byte(request.kind.rawValue)
            w.string(name ?? "")
            switch request {
            case .queue(let n), .semaphore(let n), .boundedSemaphore(let n), .barrier(let n): w.signed(Int64(n))
            default: w.signed(0)
            }
            switch request {
            case .value(let initial): w.blob(initial)
            case .array(let elements):
                var inner = ByteWriterRaw()
                inner.varint(UInt64(elements.count))
                for element in elements {
                    inner.varint(UInt64(element.count))
                    inner.bytes.append(contentsOf: element)
                }
                w.blob(inner.bytes)
            default: w.blob([])
            }
        case .lookup(let name):
            w = ByteWriter(op: .lookup, object: 0)
            w.string(name)
        case .destroy(let id): w = ByteWriter(op: .destroy, object: id)
        case .dictionary(let id, let request): w = request.writer(id)
        case .list(let id, let request): w = request.writer(id)
        case .value(let id, let request): w = request.writer(id)
        case .queue(let id, let request): w = request.writer(id)
        case .lock(let id, let request): w = request.writer(id)
        case .semaphore(let id, let request): w = request.writer(id)
        case .event(let id, let request): w = request.writer(id)
        case .condition(let id, let request): w = request.writer(id)
        case .barrier(let id, let request): w = request.writer(id)
        case .actor(let id, let request): w = request.writer(id)
        case .array(let id, let request): w = request.writer(id)
        }
        return w.finish()
    }

    /// A request body (after the frame header).
    ///
    /// - Throws: `notFound` for an operation or object kind this server does not know (an
    ///   error reply; the connection stays open); `malformedFrame` for a body that ends early or
    ///   holds a number too large (the connection closes).
    internal init(body: [UInt8]) throws {
        var r = ByteReader(body)
        let raw = try r.byte()
        guard let op = Op(rawValue: raw) else {
            throw MultiprocessingError(.notFound, "The manager server does not know operation \(raw).")
        }
        let id = try r.varint()
        switch op {
        case .ping: self = .ping
        case .serverInfo: self = .serverInfo
        case .shutdown: self = .shutdown
        case .waiters: self = .waiters(object: id)
        case .create:
            let rawKind = try r.byte()
            let name = try r.string()
            let parameter = Int(clamping: try r.signed())
            let initial = try r.blob()
            let request: CreateRequest
            switch ManagedKind(rawValue: rawKind) {
            case .dictionary: request = .dictionary
            case .list: request = .list
            case .value: request = .value(initial: initial)
            case .queue: request = .queue(maximumSize: parameter)
            case .lock: request = .lock
            case .rLock: request = .rLock
            case .semaphore: request = .semaphore(value: parameter)
            case .boundedSemaphore: request = .boundedSemaphore(value: parameter)
            case .array:
                var inner = ByteReader(initial)
                let elements = try inner.blobs()
                guard inner.isAtEnd else { throw ByteReader.malformed("an array's elements are followed by other bytes") }
                request = .array(elements: elements)
            case .event: request = .event
            case .condition: request = .condition
            case .barrier: request = .barrier(parties: parameter)
            case .actor, nil:
                throw MultiprocessingError(.notFound, "The manager server does not know object kind \(rawKind).")
            }
            self = .create(name: name.isEmpty ? nil : name, request)
        case .actorCreate:
            let typeName = try r.string()
            let name = try r.string()
            self = .create(name: name.isEmpty ? nil : name, .actor(typeName: typeName))
        case .lookup: self = .lookup(name: try r.string())
        case .destroy: self = .destroy(object: id)
        case .dGet, .dSet, .dDelete, .dContains, .dCount, .dItems, .dClear, .dSetIfAbsent, .dCompareAndSwap,
             .dAddInt, .dAddDouble, .dAppend, .dCompareAndDelete, .dUpdate, .dGetMany, .dPopLast:
            self = .dictionary(object: id, try DictionaryRequest(op, &r))
        case .vGet, .vSet, .vCompareAndSwap, .vAddInt, .vAddDouble:
            self = .value(object: id, try ValueRequest(op, &r))
        case .lAppend, .lGet, .lSet, .lCount, .lSnapshot, .lRemoveAt, .lInsert, .lClear, .lExtend,
             .lCountOf, .lIndexOf, .lReverse, .lVersionedSnapshot, .lReplace:
            self = .list(object: id, try ListRequest(op, &r))
        case .qPut, .qGet, .qCount, .qInfo, .qTaskDone, .qJoin, .qShutdown:
            self = .queue(object: id, try QueueRequest(op, &r))
        case .acquire, .release, .isLocked:
            self = .lock(object: id, try LockRequest(op, &r))
        case .semAcquire, .semRelease, .semValue, .semInfo:
            self = .semaphore(object: id, try SemaphoreRequest(op, &r))
        case .evSet, .evClear, .evIsSet, .evWait:
            self = .event(object: id, try EventRequest(op, &r))
        case .cWait, .cNotify:
            self = .condition(object: id, try ConditionRequest(op, &r))
        case .bWait, .bReset, .bAbort, .bInfo:
            self = .barrier(object: id, try BarrierRequest(op, &r))
        case .actorCall, .actorResolve:
            self = .actor(object: id, try ActorRequest(op, &r))
        case .aGet, .aSet, .aCount, .aSnapshot, .aSetSlice, .aAddInt, .aAddDouble:
            self = .array(object: id, try ArrayRequest(op, &r))
        }
    }
}

extension ManagerReply {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .pong, .shuttingDown, .destroyed: break
        case .serverInfo(let objects, let clients, let connections, let residentBytes, let pid):
            w.count(objects)
            w.count(clients)
            w.count(connections)
            w.count(residentBytes)
            w.count(Int(pid))
        case .waiters(let n): w.count(n)
        case .created(let id): w.varint(id)
        case .found(let kind, let id):
            w.byte(kind.rawValue)
            w.varint(id)
        }
    }

    /// The reply to `request`, one of the manager's own requests.
    internal init(_ r: inout ByteReader, answering request: ManagerRequest) throws {
        switch request {
        case .ping: self = .pong
        case .serverInfo:
            self = .serverInfo(objects: try r.int(), clients: try r.int(), connections: try r.int(),
                               residentBytes: try r.int(), pid: Int32(truncatingIfNeeded: try r.int()))
        case .shutdown: self = .shuttingDown
        case .waiters: self = .waiters(try r.int())
        case .create: self = .created(object: try r.varint())
        case .lookup:
            let raw = try r.byte()
            guard let kind = ManagedKind(rawValue: raw) else { throw ByteReader.malformed("object kind \(raw) is unknown") }
            self = .found(kind: kind, object: try r.varint())
        case .destroy: self = .destroyed
        default: throw unexpectedReply(to: "an object request")
        }
    }
}

/// A message's layout, for the replies of object requests.
internal protocol ReplyLayout {
    associatedtype Request
    func write(to w: inout ByteWriter)
    init(_ r: inout ByteReader, answering request: Request) throws
}
