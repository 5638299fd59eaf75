import Multiprocessing
import MultiprocessingSystem

/// Who holds a manager lock: a client process (its random id) and a thread in it.
internal struct Owner: Hashable {
    internal var client: UInt64
    internal var thread: UInt64
}

/// One object the server owns. Its fields, and every field of its state, are guarded by the
/// server's table lock; `sequence` is a futex word bumped on every change a waiter may care about.
internal final class ServerObject: @unchecked Sendable {
    internal let id: UInt64
    internal let name: String?
    /// What the object holds: one case per kind, each with that kind's fields only.
    internal let state: ObjectState
    /// The same object as `state`'s payload, as a plain pointer. Swift keeps a multi-payload
    /// enum's case in the spare bits of its payload's pointer, where LeakSanitizer does not
    /// recognise it: without this, the libFuzzer target (`Fuzz/`) reports every state as leaked.
    private let stateObject: AnyObject
    internal let sequence: UnsafeMutablePointer<UInt32>
    internal var destroyed = false
    /// Calls blocked on this object now (in `waitFor`).
    internal var waiting = 0

    internal init(id: UInt64, name: String?, state: ObjectState) {
        self.id = id
        self.name = name
        self.state = state
        stateObject = state.object
        sequence = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        sequence.initialize(to: 0)
    }

    deinit { sequence.deallocate() }

    internal var kind: ManagedKind { state.kind }

    /// Wakes every waiter on this object; call with the table lock held, after the change.
    internal func changed() {
        ManagerPlatform.atomicIncrement(sequence)
        ManagerPlatform.futexWakeAll(sequence)
    }

    /// The lock a client may hold in this object: a lock's, an RLock's or a condition's.
    internal var heldLock: LockState? {
        switch state {
        case .lock(let lock), .rLock(let lock): lock
        case .condition(let condition): condition.lock
        default: nil
        }
    }

    /// Who holds the object's lock, if it has one.
    internal var owner: Owner? { heldLock?.owner }

    /// Frees a lock whose owner's process has gone; the next acquirer is told.
    internal func releaseDeadOwner(_ client: UInt64) -> Bool {
        guard let lock = heldLock, lock.releaseDeadOwner(client) else { return false }
        changed()
        return true
    }

    /// The distributed actor an actor object hosts (nil for other kinds, and before it is ready).
    internal var actor: (any ManagedActorBox)? {
        get {
            guard case .actor(let state) = state else { return nil }
            return state.box
        }
        set {
            guard case .actor(let state) = state else { return }
            state.box = newValue
        }
    }
}

/// An object's contents: one case per kind. Each payload is a class, so that a handler changes
/// it in place (a struct in an enum would be copied, with all its elements, on every change).
internal enum ObjectState {
    case dictionary(DictionaryState)
    case list(ListState)
    case value(ValueState)
    case queue(QueueState)
    case lock(LockState)
    case rLock(LockState)
    case semaphore(SemaphoreState)
    /// A bounded semaphore: a `SemaphoreState` with a bound, served by the semaphore handler.
    case boundedSemaphore(SemaphoreState)
    case array(ArrayState)
    case event(EventState)
    case condition(ConditionState)
    case barrier(BarrierState)
    case actor(ActorState)

    /// A new object's state, from its create request (not `.actor`: the actor system makes those).
    ///
    /// - Throws: `misuse` for a parameter the kind cannot take.
    internal init(_ request: CreateRequest) throws {
        switch request {
        case .dictionary: self = .dictionary(DictionaryState())
        case .list: self = .list(ListState())
        case .value(let initial): self = .value(ValueState(initial))
        case .queue(let maximumSize): self = .queue(QueueState(maximumSize: max(0, maximumSize)))
        case .lock: self = .lock(LockState(recursive: false))
        case .rLock: self = .rLock(LockState(recursive: true))
        case .semaphore(let value):
            guard value >= 0 else { throw MultiprocessingError(.misuse, "A semaphore's value must not be negative (it was \(value)).") }
            self = .semaphore(SemaphoreState(permits: value))
        case .boundedSemaphore(let value):
            guard value >= 0 else { throw MultiprocessingError(.misuse, "A bounded semaphore's value must not be negative (it was \(value)).") }
            self = .boundedSemaphore(SemaphoreState(permits: value, bound: value))
        case .array(let elements): self = .array(ArrayState(elements))
        case .event: self = .event(EventState())
        case .condition: self = .condition(ConditionState())
        case .barrier(let parties):
            guard parties > 0 else { throw MultiprocessingError(.misuse, "A barrier needs at least one party (it was given \(parties)).") }
            self = .barrier(BarrierState(parties: parties))
        case .actor:
            throw MultiprocessingError(.misuse, "An actor object is made by the manager's actor system, not by a create request.")
        }
    }

    /// The payload.
    internal var object: AnyObject {
        switch self {
        case .dictionary(let state): state
        case .list(let state): state
        case .value(let state): state
        case .queue(let state): state
        case .lock(let state), .rLock(let state): state
        case .semaphore(let state), .boundedSemaphore(let state): state
        case .array(let state): state
        case .event(let state): state
        case .condition(let state): state
        case .barrier(let state): state
        case .actor(let state): state
        }
    }

    internal var kind: ManagedKind {
        switch self {
        case .dictionary: .dictionary
        case .list: .list
        case .value: .value
        case .queue: .queue
        case .lock: .lock
        case .rLock: .rLock
        case .semaphore: .semaphore
        case .boundedSemaphore: .boundedSemaphore
        case .array: .array
        case .event: .event
        case .condition: .condition
        case .barrier: .barrier
        case .actor: .actor
        }
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
