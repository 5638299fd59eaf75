import Multiprocessing

// The manager protocol's messages (protocol version 1, which the handshake checks).
//
// Each object kind has its own request and reply enums; a reply case has the name of the request
// case it answers. The server decodes a request once, checks that the object it names is of the
// request's kind, and hands it to that kind's handler (`Handlers/`), whose switch the compiler
// checks for every case; the proxies (`Proxies/`) build requests and match replies by case.
//
// On the wire (Protocol/Layout.swift), a request frame's body is an operation byte (`Op`), the
// object id (a varint; 0 for the manager's own requests) and the case's fields in order; a reply
// frame's body is a status byte (`ReplyStatus`), then for ok the reply's fields in order (the
// client knows which request it answers) and for an error three strings. The enums are also
// `Codable`, but frames do not go through WireEncoder: for these small messages its containers
// cost several times the whole call (docs/benchmarks.md, Managers).
//
// Values (dictionary keys and values, list elements, queue items) are opaque byte strings to the
// server: the client encodes them with WireEncoder before they go in a request, so the server
// never decodes a user type and nothing that arrives can make it run code; it only interprets the
// integers and doubles of `increment`, and the element count of a stored list for `append`.
//
// Timeouts are `Int64?` nanoseconds (nil: wait for ever); the server refuses a negative one.

/// One request from a client to a manager's server.
internal enum ManagerRequest: Codable, Sendable, Equatable {
    /// Answers `.pong`: a round trip and nothing else.
    case ping
    /// Answers `.serverInfo`: the server's counters.
    case serverInfo
    /// Ends the server after its reply (`.shuttingDown`).
    case shutdown
    /// How many calls wait on an object now (for tests and diagnostics); answers `.waiters`.
    case waiters(object: UInt64)
    /// Makes an object, or finds the one with `name` (which must be of the same kind); answers `.created`.
    case create(name: String?, CreateRequest)
    /// Finds the object with `name`; answers `.found`.
    case lookup(name: String)
    /// Frees an object; answers `.destroyed`.
    case destroy(object: UInt64)
    /// A request to a dictionary.
    case dictionary(object: UInt64, DictionaryRequest)
    /// A request to a list.
    case list(object: UInt64, ListRequest)
    /// A request to a value (``ManagedValue`` and ``ManagedNamespace``).
    case value(object: UInt64, ValueRequest)
    /// A request to a queue.
    case queue(object: UInt64, QueueRequest)
    /// A request to a lock or a recursive lock.
    case lock(object: UInt64, LockRequest)
    /// A request to a semaphore.
    case semaphore(object: UInt64, SemaphoreRequest)
    /// A request to an event.
    case event(object: UInt64, EventRequest)
    /// A request to a condition variable.
    case condition(object: UInt64, ConditionRequest)
    /// A request to a barrier.
    case barrier(object: UInt64, BarrierRequest)
    /// A request to a distributed actor.
    case actor(object: UInt64, ActorRequest)
}

/// The replies to the manager's own requests.
internal enum ManagerReply: Codable, Sendable, Equatable {
    case pong
    case serverInfo(objects: Int, clients: Int, connections: Int, residentBytes: Int, pid: Int32)
    case shuttingDown
    case waiters(Int)
    case created(object: UInt64)
    case found(kind: ManagedKind, object: UInt64)
    case destroyed
}

/// What to make, with the parameters of its kind.
internal enum CreateRequest: Codable, Sendable, Equatable {
    case dictionary
    case list
    case value(initial: [UInt8])
    /// `maximumSize` 0 is unbounded.
    case queue(maximumSize: Int)
    case lock
    case rLock
    case semaphore(value: Int)
    case event
    case condition
    case barrier(parties: Int)
    /// A distributed actor of a type registered with the manager before it started.
    case actor(typeName: String)

    internal var kind: ManagedKind {
        switch self {
        case .dictionary: .dictionary
        case .list: .list
        case .value: .value
        case .queue: .queue
        case .lock: .lock
        case .rLock: .rLock
        case .semaphore: .semaphore
        case .event: .event
        case .condition: .condition
        case .barrier: .barrier
        case .actor: .actor
        }
    }
}

// MARK: dictionary

internal enum DictionaryRequest: Codable, Sendable, Equatable {
    case get(key: [UInt8])
    case set(key: [UInt8], value: [UInt8])
    case removeValue(key: [UInt8])
    case contains(key: [UInt8])
    case count
    case items
    case removeAll
    case setIfAbsent(key: [UInt8], value: [UInt8])
    /// `expected` nil: swaps only if the key is absent.
    case compareAndSwap(key: [UInt8], expected: [UInt8]?, new: [UInt8])
    /// Removes the entry only if it is still `expected` (nil: only if still absent, which
    /// removes nothing).
    case compareAndDelete(key: [UInt8], expected: [UInt8]?)
    /// Adds to a stored zigzag-varint integer (absent is 0).
    case increment(key: [UInt8], by: Int64)
    /// Adds to a stored Double (absent is 0).
    case incrementDouble(key: [UInt8], by: Double)
    /// Appends a one-element array (`single`, encoded by the client) to a stored array.
    case append(key: [UInt8], single: [UInt8])
}

internal enum DictionaryReply: Codable, Sendable, Equatable {
    case get(value: [UInt8]?)
    case set
    case removeValue(old: [UInt8]?)
    case contains(Bool)
    case count(Int)
    /// Entry `i` is `keys[i]`, `values[i]`.
    case items(keys: [[UInt8]], values: [[UInt8]])
    case removeAll
    case setIfAbsent(inserted: Bool, current: [UInt8])
    case compareAndSwap(swapped: Bool, current: [UInt8]?)
    case compareAndDelete(deleted: Bool, current: [UInt8]?)
    case increment(Int64)
    case incrementDouble(Double)
    /// The array's element count after the append.
    case append(count: Int)
}

// MARK: list

internal enum ListRequest: Codable, Sendable, Equatable {
    case append(element: [UInt8])
    case extend(elements: [[UInt8]])
    /// A negative index counts from the end.
    case get(index: Int64)
    case set(index: Int64, element: [UInt8])
    case count
    case snapshot
    case remove(index: Int64)
    /// An index past either end inserts at that end.
    case insert(element: [UInt8], index: Int64)
    case removeAll
}

internal enum ListReply: Codable, Sendable, Equatable {
    case append(count: Int)
    case extend(count: Int)
    case get(element: [UInt8])
    case set
    case count(Int)
    case snapshot(elements: [[UInt8]])
    case remove(element: [UInt8])
    case insert
    case removeAll
}

// MARK: value

internal enum ValueRequest: Codable, Sendable, Equatable {
    case get
    case set(value: [UInt8])
    case compareAndSwap(expected: [UInt8], new: [UInt8])
    case increment(by: Int64)
    case incrementDouble(by: Double)
}

internal enum ValueReply: Codable, Sendable, Equatable {
    case get(value: [UInt8])
    case set
    case compareAndSwap(swapped: Bool, current: [UInt8])
    case increment(Int64)
    case incrementDouble(Double)
}

// MARK: queue

internal enum QueueRequest: Codable, Sendable, Equatable {
    case put(item: [UInt8], timeout: Int64?)
    case get(timeout: Int64?)
    case count
}

/// A put or get that times out is an error reply (`full`, `empty`).
internal enum QueueReply: Codable, Sendable, Equatable {
    case put
    case get(item: [UInt8])
    case count(Int)
}

// MARK: locks

/// A request to a lock, a recursive lock, or a condition's own (recursive) lock. `thread` is the calling thread
/// in the calling process (which the server knows by its connection).
internal enum LockRequest: Codable, Sendable, Equatable {
    case acquire(thread: UInt64, timeout: Int64?)
    case release(thread: UInt64)
    case isLocked
}

internal enum LockReply: Codable, Sendable, Equatable {
    case acquire(LockAcquisition)
    case release
    case isLocked(Bool)
}

/// How an acquire ended.
internal enum LockAcquisition: UInt8, Codable, Sendable, Equatable {
    case acquired = 0
    case timedOut = 1
    /// Acquired, after the previous owner's process died holding the lock.
    case acquiredAfterOwnerDied = 2
}

// MARK: semaphore

internal enum SemaphoreRequest: Codable, Sendable, Equatable {
    case acquire(timeout: Int64?)
    case release(count: Int)
    case value
}

internal enum SemaphoreReply: Codable, Sendable, Equatable {
    /// false: no permit came before the timeout.
    case acquire(acquired: Bool)
    case release
    case value(Int)
}

// MARK: event

internal enum EventRequest: Codable, Sendable, Equatable {
    case set
    case clear
    case isSet
    case wait(timeout: Int64?)
}

internal enum EventReply: Codable, Sendable, Equatable {
    case set
    case clear
    case isSet(Bool)
    /// false: the timeout passed with the flag clear.
    case wait(set: Bool)
}

// MARK: condition

/// A condition's own lock takes `LockRequest`s.
internal enum ConditionRequest: Codable, Sendable, Equatable {
    case wait(thread: UInt64, timeout: Int64?)
    case notify(thread: UInt64, count: Int)
}

internal enum ConditionReply: Codable, Sendable, Equatable {
    /// false: the timeout passed before a notify.
    case wait(notified: Bool)
    case notify
}

// MARK: barrier

internal enum BarrierRequest: Codable, Sendable, Equatable {
    case wait(timeout: Int64?)
    case reset
    case abort
    case state
}

internal enum BarrierReply: Codable, Sendable, Equatable {
    /// This caller's arrival index.
    case wait(index: Int)
    case reset
    case abort
    case state(parties: Int, waiting: Int, broken: Bool)
}

// MARK: actor

internal enum ActorRequest: Codable, Sendable, Equatable {
    /// A distributed method: its mangled name, generic substitutions and encoded arguments.
    case call(target: String, genericSubstitutions: [String], arguments: [[UInt8]])
    /// Checks that the actor exists.
    case resolve
}

internal enum ActorReply: Codable, Sendable, Equatable {
    /// The method's encoded result.
    case call(result: [UInt8])
    case resolve
}

// MARK: requests to one object

/// A request to one object, which knows its envelope and its reply type, so that a call
/// (`ObjectReference.call`) is typed from end to end.
internal protocol ObjectRequest: Codable, Sendable {
    associatedtype Reply: ReplyLayout & Codable & Sendable where Reply.Request == Self
    /// The kind of object this request is for (for messages: a lock request also serves an RLock).
    static var kindName: String { get }
    /// The operation's name, for messages.
    var operation: String { get }
    /// The request to object `id`.
    func envelope(object id: UInt64) -> ManagerRequest
}

extension DictionaryRequest: ObjectRequest {
    typealias Reply = DictionaryReply
    static var kindName: String { "dictionary" }
    var operation: String {
        switch self {
        case .get: "get"
        case .set: "set"
        case .removeValue: "removeValue"
        case .contains: "contains"
        case .count: "count"
        case .items: "items"
        case .removeAll: "removeAll"
        case .setIfAbsent: "setIfAbsent"
        case .compareAndSwap: "compareAndSwap"
        case .compareAndDelete: "compareAndDelete"
        case .increment: "increment"
        case .incrementDouble: "incrementDouble"
        case .append: "append"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .dictionary(object: id, self) }
}

extension ListRequest: ObjectRequest {
    typealias Reply = ListReply
    static var kindName: String { "list" }
    var operation: String {
        switch self {
        case .append: "append"
        case .extend: "extend"
        case .get: "get"
        case .set: "set"
        case .count: "count"
        case .snapshot: "snapshot"
        case .remove: "remove"
        case .insert: "insert"
        case .removeAll: "removeAll"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .list(object: id, self) }
}

extension ValueRequest: ObjectRequest {
    typealias Reply = ValueReply
    static var kindName: String { "value" }
    var operation: String {
        switch self {
        case .get: "get"
        case .set: "set"
        case .compareAndSwap: "compareAndSwap"
        case .increment: "increment"
        case .incrementDouble: "incrementDouble"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .value(object: id, self) }
}

extension QueueRequest: ObjectRequest {
    typealias Reply = QueueReply
    static var kindName: String { "queue" }
    var operation: String {
        switch self {
        case .put: "put"
        case .get: "get"
        case .count: "count"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .queue(object: id, self) }
}

extension LockRequest: ObjectRequest {
    typealias Reply = LockReply
    static var kindName: String { "lock" }
    var operation: String {
        switch self {
        case .acquire: "acquire"
        case .release: "release"
        case .isLocked: "isLocked"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .lock(object: id, self) }
}

extension SemaphoreRequest: ObjectRequest {
    typealias Reply = SemaphoreReply
    static var kindName: String { "semaphore" }
    var operation: String {
        switch self {
        case .acquire: "acquire"
        case .release: "release"
        case .value: "value"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .semaphore(object: id, self) }
}

extension EventRequest: ObjectRequest {
    typealias Reply = EventReply
    static var kindName: String { "event" }
    var operation: String {
        switch self {
        case .set: "set"
        case .clear: "clear"
        case .isSet: "isSet"
        case .wait: "wait"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .event(object: id, self) }
}

extension ConditionRequest: ObjectRequest {
    typealias Reply = ConditionReply
    static var kindName: String { "condition" }
    var operation: String {
        switch self {
        case .wait: "wait"
        case .notify: "notify"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .condition(object: id, self) }
}

extension BarrierRequest: ObjectRequest {
    typealias Reply = BarrierReply
    static var kindName: String { "barrier" }
    var operation: String {
        switch self {
        case .wait: "wait"
        case .reset: "reset"
        case .abort: "abort"
        case .state: "state"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .barrier(object: id, self) }
}

extension ActorRequest: ObjectRequest {
    typealias Reply = ActorReply
    static var kindName: String { "actor" }
    var operation: String {
        switch self {
        case .call: "call"
        case .resolve: "resolve"
        }
    }
    func envelope(object id: UInt64) -> ManagerRequest { .actor(object: id, self) }
}
