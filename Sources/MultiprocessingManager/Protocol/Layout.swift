import Multiprocessing

// The binary layout of the messages in Messages.swift (protocol version 1). A request: the
// operation byte, the object id (varint), then the case's fields in order. A reply (after the
// status byte): the fields of the case that answers the request, in order. Field layouts:
// a count or id is a varint; a signed number is a zigzag varint; a Double is 8 little-endian
// bytes; bytes and strings are a varint length and the bytes; an optional value is a Bool then
// the value (empty bytes when absent); a timeout is a varint, 0 for none and otherwise
// nanoseconds + 1. Every case's encoder and decoder sit side by side below, and the tests
// round-trip every case (ManagerProtocolTests).

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

private func unknownOperation(_ op: Op, _ what: String) -> MultiprocessingError {
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
            case .queue(let n), .semaphore(let n), .barrier(let n): w.signed(Int64(n))
            default: w.signed(0)
            }
            if case .value(let initial) = request { w.blob(initial) } else { w.blob([]) }
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
             .dAddInt, .dAddDouble, .dAppend, .dCompareAndDelete:
            self = .dictionary(object: id, try DictionaryRequest(op, &r))
        case .vGet, .vSet, .vCompareAndSwap, .vAddInt, .vAddDouble:
            self = .value(object: id, try ValueRequest(op, &r))
        case .lAppend, .lGet, .lSet, .lCount, .lSnapshot, .lRemoveAt, .lInsert, .lClear, .lExtend:
            self = .list(object: id, try ListRequest(op, &r))
        case .qPut, .qGet, .qCount:
            self = .queue(object: id, try QueueRequest(op, &r))
        case .acquire, .release, .isLocked:
            self = .lock(object: id, try LockRequest(op, &r))
        case .semAcquire, .semRelease, .semValue:
            self = .semaphore(object: id, try SemaphoreRequest(op, &r))
        case .evSet, .evClear, .evIsSet, .evWait:
            self = .event(object: id, try EventRequest(op, &r))
        case .cWait, .cNotify:
            self = .condition(object: id, try ConditionRequest(op, &r))
        case .bWait, .bReset, .bAbort, .bInfo:
            self = .barrier(object: id, try BarrierRequest(op, &r))
        case .actorCall, .actorResolve:
            self = .actor(object: id, try ActorRequest(op, &r))
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

// MARK: dictionary

extension DictionaryRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .get(let key):
            w = ByteWriter(op: .dGet, object: id)
            w.blob(key)
        case .set(let key, let value):
            w = ByteWriter(op: .dSet, object: id)
            w.blob(key)
            w.blob(value)
        case .removeValue(let key):
            w = ByteWriter(op: .dDelete, object: id)
            w.blob(key)
        case .contains(let key):
            w = ByteWriter(op: .dContains, object: id)
            w.blob(key)
        case .count: w = ByteWriter(op: .dCount, object: id)
        case .items: w = ByteWriter(op: .dItems, object: id)
        case .removeAll: w = ByteWriter(op: .dClear, object: id)
        case .setIfAbsent(let key, let value):
            w = ByteWriter(op: .dSetIfAbsent, object: id)
            w.blob(key)
            w.blob(value)
        case .compareAndSwap(let key, let expected, let new):
            w = ByteWriter(op: .dCompareAndSwap, object: id)
            w.blob(key)
            w.optionalBlob(expected)
            w.blob(new)
        case .compareAndDelete(let key, let expected):
            w = ByteWriter(op: .dCompareAndDelete, object: id)
            w.blob(key)
            w.optionalBlob(expected)
        case .increment(let key, let delta):
            w = ByteWriter(op: .dAddInt, object: id)
            w.blob(key)
            w.signed(delta)
        case .incrementDouble(let key, let delta):
            w = ByteWriter(op: .dAddDouble, object: id)
            w.blob(key)
            w.double(delta)
        case .append(let key, let single):
            w = ByteWriter(op: .dAppend, object: id)
            w.blob(key)
            w.blob(single)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .dGet: self = .get(key: try r.blob())
        case .dSet: self = .set(key: try r.blob(), value: try r.blob())
        case .dDelete: self = .removeValue(key: try r.blob())
        case .dContains: self = .contains(key: try r.blob())
        case .dCount: self = .count
        case .dItems: self = .items
        case .dClear: self = .removeAll
        case .dSetIfAbsent: self = .setIfAbsent(key: try r.blob(), value: try r.blob())
        case .dCompareAndSwap: self = .compareAndSwap(key: try r.blob(), expected: try r.optionalBlob(), new: try r.blob())
        case .dCompareAndDelete: self = .compareAndDelete(key: try r.blob(), expected: try r.optionalBlob())
        case .dAddInt: self = .increment(key: try r.blob(), by: try r.signed())
        case .dAddDouble: self = .incrementDouble(key: try r.blob(), by: try r.double())
        case .dAppend: self = .append(key: try r.blob(), single: try r.blob())
        default: throw unknownOperation(op, "a dictionary")
        }
    }
}

extension DictionaryReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .get(let value): w.optionalBlob(value)
        case .set, .removeAll: break
        case .removeValue(let old): w.optionalBlob(old)
        case .contains(let found): w.bool(found)
        case .count(let n): w.count(n)
        case .items(let keys, let values):
            w.count(min(keys.count, values.count))
            for (key, value) in zip(keys, values) {
                w.blob(key)
                w.blob(value)
            }
        case .setIfAbsent(let inserted, let current):
            w.bool(inserted)
            w.blob(current)
        case .compareAndSwap(let done, let current), .compareAndDelete(let done, let current):
            w.bool(done)
            w.optionalBlob(current)
        case .increment(let sum): w.signed(sum)
        case .incrementDouble(let sum): w.double(sum)
        case .append(let n): w.count(n)
        }
    }

    internal init(_ r: inout ByteReader, answering request: DictionaryRequest) throws {
        switch request {
        case .get: self = .get(value: try r.optionalBlob())
        case .set: self = .set
        case .removeValue: self = .removeValue(old: try r.optionalBlob())
        case .contains: self = .contains(try r.bool())
        case .count: self = .count(try r.int())
        case .items:
            var keys: [[UInt8]] = []
            var values: [[UInt8]] = []
            for _ in 0..<(try r.int()) {
                keys.append(try r.blob())
                values.append(try r.blob())
            }
            self = .items(keys: keys, values: values)
        case .removeAll: self = .removeAll
        case .setIfAbsent: self = .setIfAbsent(inserted: try r.bool(), current: try r.blob())
        case .compareAndSwap: self = .compareAndSwap(swapped: try r.bool(), current: try r.optionalBlob())
        case .compareAndDelete: self = .compareAndDelete(deleted: try r.bool(), current: try r.optionalBlob())
        case .increment: self = .increment(try r.signed())
        case .incrementDouble: self = .incrementDouble(try r.double())
        case .append: self = .append(count: try r.int())
        }
    }
}

// MARK: list

extension ListRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .append(let element):
            w = ByteWriter(op: .lAppend, object: id)
            w.blob(element)
        case .extend(let elements):
            w = ByteWriter(op: .lExtend, object: id)
            w.blobs(elements)
        case .get(let index):
            w = ByteWriter(op: .lGet, object: id)
            w.signed(index)
        case .set(let index, let element):
            w = ByteWriter(op: .lSet, object: id)
            w.signed(index)
            w.blob(element)
        case .count: w = ByteWriter(op: .lCount, object: id)
        case .snapshot: w = ByteWriter(op: .lSnapshot, object: id)
        case .remove(let index):
            w = ByteWriter(op: .lRemoveAt, object: id)
            w.signed(index)
        case .insert(let element, let index):
            w = ByteWriter(op: .lInsert, object: id)
            w.signed(index)
            w.blob(element)
        case .removeAll: w = ByteWriter(op: .lClear, object: id)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .lAppend: self = .append(element: try r.blob())
        case .lExtend: self = .extend(elements: try r.blobs())
        case .lGet: self = .get(index: try r.signed())
        case .lSet:
            let index = try r.signed()
            self = .set(index: index, element: try r.blob())
        case .lCount: self = .count
        case .lSnapshot: self = .snapshot
        case .lRemoveAt: self = .remove(index: try r.signed())
        case .lInsert:
            let index = try r.signed()
            self = .insert(element: try r.blob(), index: index)
        case .lClear: self = .removeAll
        default: throw unknownOperation(op, "a list")
        }
    }
}

extension ListReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .append(let n), .extend(let n), .count(let n): w.count(n)
        case .get(let element), .remove(let element): w.blob(element)
        case .set, .insert, .removeAll: break
        case .snapshot(let elements): w.blobs(elements)
        }
    }

    internal init(_ r: inout ByteReader, answering request: ListRequest) throws {
        switch request {
        case .append: self = .append(count: try r.int())
        case .extend: self = .extend(count: try r.int())
        case .get: self = .get(element: try r.blob())
        case .set: self = .set
        case .count: self = .count(try r.int())
        case .snapshot: self = .snapshot(elements: try r.blobs())
        case .remove: self = .remove(element: try r.blob())
        case .insert: self = .insert
        case .removeAll: self = .removeAll
        }
    }
}

// MARK: value

extension ValueRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .get: w = ByteWriter(op: .vGet, object: id)
        case .set(let value):
            w = ByteWriter(op: .vSet, object: id)
            w.blob(value)
        case .compareAndSwap(let expected, let new):
            w = ByteWriter(op: .vCompareAndSwap, object: id)
            w.blob(expected)
            w.blob(new)
        case .increment(let delta):
            w = ByteWriter(op: .vAddInt, object: id)
            w.signed(delta)
        case .incrementDouble(let delta):
            w = ByteWriter(op: .vAddDouble, object: id)
            w.double(delta)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .vGet: self = .get
        case .vSet: self = .set(value: try r.blob())
        case .vCompareAndSwap: self = .compareAndSwap(expected: try r.blob(), new: try r.blob())
        case .vAddInt: self = .increment(by: try r.signed())
        case .vAddDouble: self = .incrementDouble(by: try r.double())
        default: throw unknownOperation(op, "a value")
        }
    }
}

extension ValueReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .get(let value): w.blob(value)
        case .set: break
        case .compareAndSwap(let swapped, let current):
            w.bool(swapped)
            w.blob(current)
        case .increment(let sum): w.signed(sum)
        case .incrementDouble(let sum): w.double(sum)
        }
    }

    internal init(_ r: inout ByteReader, answering request: ValueRequest) throws {
        switch request {
        case .get: self = .get(value: try r.blob())
        case .set: self = .set
        case .compareAndSwap: self = .compareAndSwap(swapped: try r.bool(), current: try r.blob())
        case .increment: self = .increment(try r.signed())
        case .incrementDouble: self = .incrementDouble(try r.double())
        }
    }
}

// MARK: queue

extension QueueRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .put(let item, let timeout):
            w = ByteWriter(op: .qPut, object: id)
            w.blob(item)
            w.timeout(timeout)
        case .get(let timeout):
            w = ByteWriter(op: .qGet, object: id)
            w.timeout(timeout)
        case .count: w = ByteWriter(op: .qCount, object: id)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .qPut: self = .put(item: try r.blob(), timeout: try r.timeout())
        case .qGet: self = .get(timeout: try r.timeout())
        case .qCount: self = .count
        default: throw unknownOperation(op, "a queue")
        }
    }
}

extension QueueReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .put: break
        case .get(let item): w.blob(item)
        case .count(let n): w.count(n)
        }
    }

    internal init(_ r: inout ByteReader, answering request: QueueRequest) throws {
        switch request {
        case .put: self = .put
        case .get: self = .get(item: try r.blob())
        case .count: self = .count(try r.int())
        }
    }
}

// MARK: locks

extension LockRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .acquire(let thread, let timeout):
            w = ByteWriter(op: .acquire, object: id)
            w.varint(thread)
            w.timeout(timeout)
        case .release(let thread):
            w = ByteWriter(op: .release, object: id)
            w.varint(thread)
        case .isLocked: w = ByteWriter(op: .isLocked, object: id)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .acquire: self = .acquire(thread: try r.varint(), timeout: try r.timeout())
        case .release: self = .release(thread: try r.varint())
        case .isLocked: self = .isLocked
        default: throw unknownOperation(op, "a lock")
        }
    }
}

extension LockReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .acquire(let outcome): w.byte(outcome.rawValue)
        case .release: break
        case .isLocked(let locked): w.bool(locked)
        }
    }

    internal init(_ r: inout ByteReader, answering request: LockRequest) throws {
        switch request {
        case .acquire:
            let raw = try r.byte()
            guard let outcome = LockAcquisition(rawValue: raw) else { throw ByteReader.malformed("acquire outcome \(raw) is unknown") }
            self = .acquire(outcome)
        case .release: self = .release
        case .isLocked: self = .isLocked(try r.bool())
        }
    }
}

// MARK: semaphore

extension SemaphoreRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .acquire(let timeout):
            w = ByteWriter(op: .semAcquire, object: id)
            w.timeout(timeout)
        case .release(let count):
            w = ByteWriter(op: .semRelease, object: id)
            w.count(count)
        case .value: w = ByteWriter(op: .semValue, object: id)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .semAcquire: self = .acquire(timeout: try r.timeout())
        case .semRelease: self = .release(count: try r.int())
        case .semValue: self = .value
        default: throw unknownOperation(op, "a semaphore")
        }
    }
}

extension SemaphoreReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .acquire(let acquired): w.bool(acquired)
        case .release: break
        case .value(let n): w.count(n)
        }
    }

    internal init(_ r: inout ByteReader, answering request: SemaphoreRequest) throws {
        switch request {
        case .acquire: self = .acquire(acquired: try r.bool())
        case .release: self = .release
        case .value: self = .value(try r.int())
        }
    }
}

// MARK: event

extension EventRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .set: w = ByteWriter(op: .evSet, object: id)
        case .clear: w = ByteWriter(op: .evClear, object: id)
        case .isSet: w = ByteWriter(op: .evIsSet, object: id)
        case .wait(let timeout):
            w = ByteWriter(op: .evWait, object: id)
            w.timeout(timeout)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .evSet: self = .set
        case .evClear: self = .clear
        case .evIsSet: self = .isSet
        case .evWait: self = .wait(timeout: try r.timeout())
        default: throw unknownOperation(op, "an event")
        }
    }
}

extension EventReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .set, .clear: break
        case .isSet(let flag), .wait(let flag): w.bool(flag)
        }
    }

    internal init(_ r: inout ByteReader, answering request: EventRequest) throws {
        switch request {
        case .set: self = .set
        case .clear: self = .clear
        case .isSet: self = .isSet(try r.bool())
        case .wait: self = .wait(set: try r.bool())
        }
    }
}

// MARK: condition

extension ConditionRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .wait(let thread, let timeout):
            w = ByteWriter(op: .cWait, object: id)
            w.varint(thread)
            w.timeout(timeout)
        case .notify(let thread, let count):
            w = ByteWriter(op: .cNotify, object: id)
            w.varint(thread)
            w.count(count)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .cWait: self = .wait(thread: try r.varint(), timeout: try r.timeout())
        case .cNotify: self = .notify(thread: try r.varint(), count: try r.int())
        default: throw unknownOperation(op, "a condition")
        }
    }
}

extension ConditionReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .wait(let notified): w.bool(notified)
        case .notify: break
        }
    }

    internal init(_ r: inout ByteReader, answering request: ConditionRequest) throws {
        switch request {
        case .wait: self = .wait(notified: try r.bool())
        case .notify: self = .notify
        }
    }
}

// MARK: barrier

extension BarrierRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .wait(let timeout):
            w = ByteWriter(op: .bWait, object: id)
            w.timeout(timeout)
        case .reset: w = ByteWriter(op: .bReset, object: id)
        case .abort: w = ByteWriter(op: .bAbort, object: id)
        case .state: w = ByteWriter(op: .bInfo, object: id)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .bWait: self = .wait(timeout: try r.timeout())
        case .bReset: self = .reset
        case .bAbort: self = .abort
        case .bInfo: self = .state
        default: throw unknownOperation(op, "a barrier")
        }
    }
}

extension BarrierReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .wait(let index): w.count(index)
        case .reset, .abort: break
        case .state(let parties, let waiting, let broken):
            w.count(parties)
            w.count(waiting)
            w.bool(broken)
        }
    }

    internal init(_ r: inout ByteReader, answering request: BarrierRequest) throws {
        switch request {
        case .wait: self = .wait(index: try r.int())
        case .reset: self = .reset
        case .abort: self = .abort
        case .state: self = .state(parties: try r.int(), waiting: try r.int(), broken: try r.bool())
        }
    }
}

// MARK: actor

extension ActorRequest {
    fileprivate func writer(_ id: UInt64) -> ByteWriter {
        var w: ByteWriter
        switch self {
        case .call(let target, let generics, let arguments):
            w = ByteWriter(op: .actorCall, object: id)
            w.string(target)
            w.count(generics.count)
            for name in generics { w.string(name) }
            w.blobs(arguments)
        case .resolve: w = ByteWriter(op: .actorResolve, object: id)
        }
        return w
    }

    fileprivate init(_ op: Op, _ r: inout ByteReader) throws {
        switch op {
        case .actorCall: self = .call(target: try r.string(), genericSubstitutions: try r.strings(), arguments: try r.blobs())
        case .actorResolve: self = .resolve
        default: throw unknownOperation(op, "an actor")
        }
    }
}

extension ActorReply: ReplyLayout {
    internal func write(to w: inout ByteWriter) {
        switch self {
        case .call(let result): w.blob(result)
        case .resolve: break
        }
    }

    internal init(_ r: inout ByteReader, answering request: ActorRequest) throws {
        switch request {
        case .call: self = .call(result: try r.blob())
        case .resolve: self = .resolve
        }
    }
}
