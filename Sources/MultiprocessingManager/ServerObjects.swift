import Multiprocessing

/// Who holds a manager lock: a client process (its random id) and a thread in it.
internal struct Owner: Hashable {
    internal var client: UInt64
    internal var thread: UInt64
}

/// One object the server owns. Every field is guarded by the server's table lock; `sequence` is
/// a futex word bumped on every change a waiter may care about.
internal final class ServerObject: @unchecked Sendable {
    internal let id: UInt64
    internal let kind: ManagedKind
    internal let name: String?
    internal let sequence: UnsafeMutablePointer<UInt32>
    internal var destroyed = false
    /// Calls blocked on this object now (in `waitFor`).
    internal var waiting = 0

    // dictionary / list / value
    internal var dictionary: [[UInt8]: [UInt8]] = [:]
    internal var list: [[UInt8]] = []
    internal var value: [UInt8] = []
    // queue
    internal var queue: [[UInt8]] = []
    internal var queueHead = 0
    internal var maximumSize = 0
    // lock, rlock, condition's lock
    internal var owner: Owner?
    internal var depth = 0
    internal var ownerDied = false
    // semaphore
    internal var permits = 0
    // event
    internal var flag = false
    /// Bumped by every set(): a waiter that saw generation g wakes once it is not g, even if a
    /// clear() ran before the waiter looked at the flag (CPython's guarantee since gh-57711).
    internal var eventGeneration: UInt64 = 0
    // condition
    internal var waiters: [UInt64] = []
    internal var notified: Set<UInt64> = []
    internal var nextTicket: UInt64 = 1
    // barrier
    internal var parties = 0
    internal var arrived = 0
    internal var generation: UInt64 = 0
    internal var brokenGeneration: UInt64 = .max
    internal var broken = false
    // actor
    internal var actor: (any ManagedActorBox)?

    internal init(id: UInt64, kind: ManagedKind, name: String?) {
        self.id = id
        self.kind = kind
        self.name = name
        sequence = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        sequence.initialize(to: 0)
    }

    deinit { sequence.deallocate() }

    /// Wakes every waiter on this object; call with the table lock held, after the change.
    internal func changed() {
        ManagerPlatform.atomicIncrement(sequence)
        ManagerPlatform.futexWakeAll(sequence)
    }

    internal var queueCount: Int { queue.count - queueHead }

    internal func queuePop() -> [UInt8] {
        let item = queue[queueHead]
        queue[queueHead] = []
        queueHead += 1
        // Compact now and then so that a long-lived queue's array does not grow without bound.
        if queueHead > 1024 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        } else if queueHead == queue.count {
            queue.removeAll(keepingCapacity: queue.count < 4096)
            queueHead = 0
        }
        return item
    }

    /// Frees a lock whose owner's process has gone; the next acquirer is told.
    internal func releaseDeadOwner(_ client: UInt64) -> Bool {
        guard let owner, owner.client == client else { return false }
        self.owner = nil
        depth = 0
        ownerDied = true
        changed()
        return true
    }
}

/// Appends one element to a stored list without decoding it: both are `[Element]` in the wire
/// format. `single` is a one-element array encoded by the client. The wire format writes an
/// array of fixed-width numbers as `count, raw elements` and any other array as
/// `body length, count, elements`; a one-element array of the first kind starts with the byte 1,
/// and one of the second kind never does (its body length is at least 2), which tells them apart.
internal func wireAppendToList(_ stored: [UInt8]?, _ single: [UInt8]) throws -> ([UInt8], Int) {
    guard let stored, !stored.isEmpty else { return (single, 1) }
    var s = ByteReader(stored)
    var t = ByteReader(single)
    let mismatch = MultiprocessingError(.coding, "append: the stored value is not a list of this element type.")
    if single.first == 1 {
        _ = try t.varint()
        let count = try s.int()
        guard count < Int.max else { throw mismatch }
        var result = ByteWriterRaw()
        result.varint(UInt64(count + 1))
        result.bytes.append(contentsOf: stored[s.position...])
        result.bytes.append(contentsOf: single[t.position...])
        guard (stored.count - s.position) % max(1, single.count - t.position) == 0 else { throw mismatch }
        return (result.bytes, count + 1)
    }
    let singleBody = try t.int()
    guard singleBody == single.count - t.position, try t.varint() == 1 else { throw mismatch }
    let element = single[t.position...]
    let storedBody = try s.int()
    guard storedBody == stored.count - s.position else { throw mismatch }
    let count = try s.int()
    guard count < Int.max else { throw mismatch }
    var body = ByteWriterRaw()
    body.varint(UInt64(count + 1))
    body.bytes.append(contentsOf: stored[s.position...])
    body.bytes.append(contentsOf: element)
    var result = ByteWriterRaw()
    result.varint(UInt64(body.bytes.count))
    result.bytes.append(contentsOf: body.bytes)
    return (result.bytes, count + 1)
}

/// A writer with no frame header, for values built on the server.
internal struct ByteWriterRaw {
    internal var bytes: [UInt8] = []
    internal mutating func varint(_ value: UInt64) { bytes.wireAppendVarint(value) }
    internal mutating func signed(_ value: Int64) { bytes.wireAppendSigned(value) }
}

/// A stored integer: the wire format's zigzag varint (Int, Int16, Int32, Int64); absent is 0.
internal func wireStoredInteger(_ stored: [UInt8]?) throws -> Int64 {
    guard let stored, !stored.isEmpty else { return 0 }
    var reader = ByteReader(stored)
    let value = try reader.signed()
    guard reader.isAtEnd else {
        throw MultiprocessingError(.coding, "increment: the stored value is not an integer.")
    }
    return value
}

/// A stored Double: 8 little-endian bytes; absent is 0.
internal func wireStoredDouble(_ stored: [UInt8]?) throws -> Double {
    guard let stored, !stored.isEmpty else { return 0 }
    guard stored.count == 8 else { throw MultiprocessingError(.coding, "increment: the stored value is not a Double.") }
    var reader = ByteReader(stored)
    return try reader.double()
}

internal func wireDoubleBytes(_ value: Double) -> [UInt8] {
    withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
}
