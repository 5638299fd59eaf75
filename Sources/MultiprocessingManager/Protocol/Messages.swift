import Multiprocessing

// The manager protocol's messages (protocol version 1, which the handshake checks).
//
// Each object kind has its own request and reply enums; a reply case has the name of the request
// case it answers. The server decodes a request once, checks that the object it names is of the
// request's kind, and hands it to that kind's handler (`Handlers/`), whose switch the compiler
// checks for every case; the proxies (`Proxies/`) build requests and match replies by case.
//
// Each kind's enums and their layout are in its own file here (DictionaryMessages.swift, ...).
//
// On the wire (Layout.swift), a request frame's body is an operation byte (`Op`), the
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
    /// A request to a fixed-length array.
    case array(object: UInt64, ArrayRequest)
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
    /// A semaphore whose count may not rise above `value` (issue 18; kind byte 12).
    case boundedSemaphore(value: Int)
    /// A fixed-length array of encoded elements (issue 18; kind byte 13). On the wire the
    /// elements go in the create request's initial bytes, as a count and that many byte strings.
    case array(elements: [[UInt8]])
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
        case .boundedSemaphore: .boundedSemaphore
        case .array: .array
        case .event: .event
        case .condition: .condition
        case .barrier: .barrier
        case .actor: .actor
        }
    }
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
