import MultiprocessingSystem

/// Encodes queue items: `[UInt8]` as raw bytes, other values in the wire encoding, never with
/// file descriptors (a queue's items live in shared memory, where a descriptor means nothing).
internal enum QueueItemCoding {
    @inline(__always)
    internal static func withEncoded<E: Encodable, R>(_ item: E, _ body: (FrameHeader.Kind, UnsafeRawBufferPointer) throws -> R) throws -> R {
        if IPCMessageCoding.isRawBytes(E.self) {
            return try unsafeBitCast(item, to: [UInt8].self).withUnsafeBytes { try body(.bytes, $0) }
        }
        let encoded: (kind: FrameHeader.Kind, body: [UInt8])
        do {
            encoded = try IPCMessageCoding.encode(item, transfer: nil)
        } catch let error as MultiprocessingError where error.code == .coding {
            throw MultiprocessingError(.coding, error.message + " (A queue keeps its items in shared memory, so an item cannot hold a file descriptor such as a Connection or a lock: pass those in the task's arguments or over a duplex Connection.)")
        }
        return try encoded.body.withUnsafeBytes { try body(encoded.kind, $0) }
    }

    @inline(__always)
    internal static func decode<E: Decodable>(_ type: E.Type, _ record: (FrameHeader.Kind, [UInt8])) throws -> E {
        try IPCMessageCoding.decode(type, kind: record.0, body: record.1, transfer: nil)
    }
}

/// A FIFO queue shared by threads and processes: Python's `multiprocessing.Queue`.
///
/// Items live in a shared-memory ring buffer (a memfd every process maps), guarded by a robust
/// process-shared mutex. Any number of producers and consumers, in any processes, may use one
/// queue; pass it to a child in its task's arguments (a queue is `Codable`: it travels as a
/// descriptor). Each item is delivered to exactly one `get`.
///
/// - `put` returns once the item is in shared memory. There is no feeder thread and no pipe to
///   flush, so a producer may exit, or be joined, at any time without draining the queue first:
///   Python's join-before-drain deadlock cannot happen.
/// - A process that dies inside a `put` or `get` (even by `SIGKILL`) leaves the queue consistent:
///   a half-written item is dropped, a half-read item stays for the next consumer (see
///   `docs/queues.md`).
/// - `[UInt8]` items skip `Codable`. Items may be any size up to `maximumMessageSize` (default
///   1 GiB); memory is committed only for what the queue holds.
/// - A timed `put` or `get` that runs out throws ``MultiprocessingError/Code/timedOut`` (Python
///   raises `queue.Full` or `queue.Empty`); ``putNowait(_:)`` and ``getNowait()`` (Python's
///   `block=False`) throw ``MultiprocessingError/Code/full`` and ``MultiprocessingError/Code/empty``.
///   The shape is ``QueueProtocol``'s, which a manager's `ManagedQueue` shares.
/// - ``close()`` closes the queue for every process: later puts throw
///   ``MultiprocessingError/Code/closed``; gets return the remaining items and then throw
///   ``MultiprocessingError/Code/closed``. Async iteration (`for try await item in queue`) ends
///   there.
///
/// ``JoinableQueue`` is a `Queue` that also counts unfinished tasks, as in Python.
public class Queue<Element: Codable & Sendable>: QueueProtocol, Codable, @unchecked Sendable {
    // @unchecked only because the class is open to JoinableQueue: its one stored property is a
    // `let` of a Sendable type, and the subclass adds none.
    internal let storage: QueueStorage

    /// Names this kind of queue in error messages ("Queue.put", "JoinableQueue.put").
    internal var names: QueueOperationNames { .queue }

    /// The most items the queue holds before `put` waits; 0 means no limit.
    public var maxsize: Int { storage.maxsize }
    /// The largest item, in encoded bytes, that the queue accepts.
    public var maximumMessageSize: Int { storage.maximumMessageSize }

    /// Creates an empty queue.
    ///
    /// - Parameters:
    ///   - maxsize: the most items the queue holds before `put` waits; 0 or less means no limit.
    ///   - maximumMessageSize: the largest encoded item, in bytes (default 1 GiB). The queue's
    ///     buffer is this large in address space, but only used pages cost memory.
    /// - Throws: ``MultiprocessingError/Code/misuse`` when `maximumMessageSize` is not between 1 and
    ///   2^46; ``MultiprocessingError/Code/systemCall`` when the shared memory cannot be made.
    public convenience init(maxsize: Int = 0, maximumMessageSize: Int = Connection.defaultMaximumMessageSize) throws {
        self.init(storage: try QueueStorage(maxsize: maxsize, maximumMessageSize: maximumMessageSize, joinable: false))
    }

    internal init(storage: QueueStorage) {
        self.storage = storage
    }

    /// Puts an item at the back of the queue, waiting for room.
    ///
    /// - Parameters:
    ///   - item: the item. It is encoded before the call takes the queue's lock.
    ///   - timeout: how long to wait for room; `nil` waits for ever.
    /// - Throws: ``MultiprocessingError/Code/timedOut`` when the queue stayed full,
    ///   ``MultiprocessingError/Code/closed``, ``MultiprocessingError/Code/coding``,
    ///   ``MultiprocessingError/Code/misuse`` for an item above ``maximumMessageSize`` or a negative
    ///   timeout, and ``MultiprocessingError/Code/cancelled`` when the calling ``OSThread`` is cancelled.
    public final func put(_ item: Element, timeout: Duration? = nil) throws {
        let operation = names.put
        try QueueItemCoding.withEncoded(item) { kind, body in
            try storage.put(kind: kind, body: body, block: true, context: .current(timeout: timeout, operation))
        }
    }

    /// Puts an item without waiting: Python's `put_nowait()` and `put(item, block=False)`.
    ///
    /// - Parameter item: the item.
    /// - Throws: ``MultiprocessingError/Code/full`` when there is no room, and as `put(_:timeout:)`.
    public final func putNowait(_ item: Element) throws {
        let operation = names.put
        try QueueItemCoding.withEncoded(item) { kind, body in
            try storage.put(kind: kind, body: body, block: false, context: .current(timeout: nil, operation))
        }
    }

    /// Puts an item, waiting for room off the cooperative pool; see `put(_:timeout:)`.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; `nil` waits for ever.
    /// - Throws: as `put(_:timeout:)`; ``MultiprocessingError/Code/cancelled`` when the
    ///   task is cancelled.
    public final func put(_ item: Element, timeout: Duration? = nil) async throws {
        try await queuePut(storage, item, timeout: timeout, names.put)
    }

    /// Removes and returns the item at the front of the queue, waiting for one.
    ///
    /// - Parameter timeout: how long to wait for an item; `nil` waits for ever.
    /// - Returns: the item.
    /// - Throws: ``MultiprocessingError/Code/timedOut`` when the queue stayed empty,
    ///   ``MultiprocessingError/Code/closed`` once the queue is closed and drained,
    ///   ``MultiprocessingError/Code/coding`` when the item is not an `Element`,
    ///   ``MultiprocessingError/Code/misuse`` for a negative timeout, and
    ///   ``MultiprocessingError/Code/cancelled``.
    public final func get(timeout: Duration? = nil) throws -> Element {
        try QueueItemCoding.decode(Element.self, storage.get(block: true, context: .current(timeout: timeout, names.get)))
    }

    /// Removes and returns the front item without waiting: Python's `get_nowait()` and
    /// `get(block=False)`.
    ///
    /// - Returns: the item.
    /// - Throws: ``MultiprocessingError/Code/empty`` when there is none, and as `get(timeout:)`.
    public final func getNowait() throws -> Element {
        try QueueItemCoding.decode(Element.self, storage.get(block: false, context: .current(timeout: nil, names.get)))
    }

    /// Removes and returns the front item, waiting off the cooperative pool; see `get(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait for an item; `nil` waits for ever.
    /// - Returns: the item.
    /// - Throws: as `get(timeout:)`; ``MultiprocessingError/Code/cancelled`` when the
    ///   task is cancelled.
    public final func get(timeout: Duration? = nil) async throws -> Element {
        try await queueGet(storage, Element.self, timeout: timeout, names.get)
    }

    /// Whether the queue holds no items (a snapshot: other processes may change it at once).
    public final var empty: Bool { storage.relaxedCount == 0 }
    /// Whether the queue holds ``maxsize`` items (a snapshot).
    public final var full: Bool { storage.isFull }
    /// The number of items in the queue (a snapshot).
    public final var qsize: Int { storage.relaxedCount }
    /// Whether the queue was closed, by any process.
    public final var isClosed: Bool { storage.isClosed }

    /// Closes the queue for every process that has it: puts throw
    /// ``MultiprocessingError/Code/closed``, gets drain what is left and then throw it, and
    /// every waiting call wakes. Closing twice does nothing.
    public final func close() {
        storage.close()
    }

    /// Encodes the queue as its shared memory's descriptor (see ``SharedDescriptor``).
    ///
    /// - Parameter encoder: an encoder with a ``DescriptorTransfer`` in its `userInfo`, such as the
    ///   one that sends a child's task or a message on a duplex connection.
    /// - Throws: `EncodingError` from any other encoder.
    public final func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: QueueCodingKeys.self)
        try storage.encodeDescriptor(to: &container)
    }

    /// Maps a queue that arrived from another process. A ``JoinableQueue`` sent as a `Queue` stays
    /// joinable: its puts still count tasks.
    ///
    /// - Parameter decoder: a decoder with a ``DescriptorTransfer`` in its `userInfo`.
    /// - Throws: `DecodingError` when the data is not a queue.
    public required init(from decoder: any Decoder) throws {
        storage = try decodeQueueStorage(from: decoder, joinable: nil)
    }
}

/// The names a queue's calls give in their messages.
internal struct QueueOperationNames: Sendable {
    let put: StaticString
    let get: StaticString
    static let queue = QueueOperationNames(put: "Queue.put", get: "Queue.get")
    static let joinable = QueueOperationNames(put: "JoinableQueue.put", get: "JoinableQueue.get")
}

/// A queue with no size limit and the smallest API: Python's `multiprocessing.SimpleQueue`.
///
/// It shares ``Queue``'s design (a shared-memory ring under a robust lock) and guarantees; `put`
/// never waits except for the item's bytes to fit in the buffer.
public final class SimpleQueue<Element: Codable & Sendable>: Sendable, Codable {
    internal let storage: QueueStorage

    /// Creates an empty queue.
    ///
    /// - Parameter maximumMessageSize: the largest encoded item, in bytes (default 1 GiB).
    /// - Throws: ``MultiprocessingError/Code/misuse`` when `maximumMessageSize` is not between 1 and
    ///   2^46; ``MultiprocessingError/Code/systemCall`` when the shared memory cannot be made.
    public init(maximumMessageSize: Int = Connection.defaultMaximumMessageSize) throws {
        storage = try QueueStorage(maxsize: 0, maximumMessageSize: maximumMessageSize, joinable: false)
    }

    /// Puts an item at the back of the queue.
    ///
    /// - Parameter item: the item.
    /// - Throws: ``MultiprocessingError/Code/closed``, ``MultiprocessingError/Code/coding``,
    ///   ``MultiprocessingError/Code/misuse`` for an item above the size limit.
    public func put(_ item: Element) throws {
        try QueueItemCoding.withEncoded(item) { kind, body in
            try storage.put(kind: kind, body: body, block: true, context: .current(timeout: nil, "SimpleQueue.put"))
        }
    }

    /// Puts an item without blocking the cooperative pool; see ``put(_:)``.
    ///
    /// - Parameter item: the item.
    /// - Throws: as ``put(_:)``, and ``MultiprocessingError/Code/cancelled``.
    public func put(_ item: Element) async throws {
        try await queuePut(storage, item, timeout: nil, "SimpleQueue.put")
    }

    /// Removes and returns the front item, waiting for one.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever.
    /// - Returns: the item.
    /// - Throws: ``MultiprocessingError/Code/timedOut``, ``MultiprocessingError/Code/closed`` once
    ///   closed and drained, ``MultiprocessingError/Code/coding``, ``MultiprocessingError/Code/cancelled``.
    public func get(timeout: Duration? = nil) throws -> Element {
        try QueueItemCoding.decode(Element.self, storage.get(block: true, context: .current(timeout: timeout, "SimpleQueue.get")))
    }

    /// Removes and returns the front item, waiting off the cooperative pool; see ``get(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever.
    /// - Returns: the item.
    /// - Throws: as ``get(timeout:)``.
    public func get(timeout: Duration? = nil) async throws -> Element {
        try await queueGet(storage, Element.self, timeout: timeout, "SimpleQueue.get")
    }

    /// Whether the queue holds no items (a snapshot).
    public var empty: Bool { storage.relaxedCount == 0 }

    /// Closes the queue for every process; see ``Queue/close()``.
    public func close() {
        storage.close()
    }

    /// Encodes the queue as its shared memory's descriptor.
    ///
    /// - Parameter encoder: an encoder with a ``DescriptorTransfer`` in its `userInfo`.
    /// - Throws: `EncodingError` from any other encoder.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: QueueCodingKeys.self)
        try storage.encodeDescriptor(to: &container)
    }

    /// Maps a queue that arrived from another process.
    ///
    /// - Parameter decoder: a decoder with a ``DescriptorTransfer`` in its `userInfo`.
    /// - Throws: `DecodingError` when the data is not a queue.
    public init(from decoder: any Decoder) throws {
        storage = try decodeQueueStorage(from: decoder, joinable: false)
    }
}

/// A ``Queue`` that also counts unfinished tasks: Python's `multiprocessing.JoinableQueue`.
///
/// Every `put` adds a task; a consumer calls ``taskDone()`` once per item it has finished with;
/// `join(timeout:)` waits until every task put so far is done. Everything else is the
/// ``Queue`` it is, so a `JoinableQueue` goes wherever a `Queue` or a ``QueueProtocol`` is taken.
public final class JoinableQueue<Element: Codable & Sendable>: Queue<Element>, @unchecked Sendable {
    override internal var names: QueueOperationNames { .joinable }

    /// Creates an empty queue.
    ///
    /// - Parameters:
    ///   - maxsize: the most items the queue holds before `put` waits; 0 or less means no limit.
    ///   - maximumMessageSize: the largest encoded item, in bytes (default 1 GiB).
    /// - Throws: ``MultiprocessingError/Code/misuse`` when `maximumMessageSize` is not between 1 and
    ///   2^46; ``MultiprocessingError/Code/systemCall`` when the shared memory cannot be made.
    public init(maxsize: Int = 0, maximumMessageSize: Int = Connection.defaultMaximumMessageSize) throws {
        super.init(storage: try QueueStorage(maxsize: maxsize, maximumMessageSize: maximumMessageSize, joinable: true))
    }

    /// Marks one task done: call it once for every item taken, when the work on it is finished.
    ///
    /// - Throws: ``MultiprocessingError/Code/misuse`` when called more times than items were put.
    public func taskDone() throws {
        try storage.taskDone(context: .current(timeout: nil, "JoinableQueue.taskDone"))
    }

    /// Waits until every item put so far has been marked done with ``taskDone()``.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever.
    /// - Throws: ``MultiprocessingError/Code/timedOut``, ``MultiprocessingError/Code/cancelled``.
    public func join(timeout: Duration? = nil) throws {
        try storage.join(context: .current(timeout: timeout, "JoinableQueue.join"))
    }

    /// Waits off the cooperative pool until every task is done; see `join(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever.
    /// - Throws: as `join(timeout:)`.
    public func join(timeout: Duration? = nil) async throws {
        let storage = self.storage
        try await waitOffPool("JoinableQueue.join", restartable: true) { cancellation in
            try storage.join(context: WaitContext(timeout: timeout, cancellation: cancellation, operation: "JoinableQueue.join"))
        }
    }

    /// The number of items put and not yet marked done (a snapshot).
    public var unfinishedTasks: Int { storage.unfinishedTasks }

    /// Maps a joinable queue that arrived from another process.
    ///
    /// - Parameter decoder: a decoder with a ``DescriptorTransfer`` in its `userInfo`.
    /// - Throws: `DecodingError` when the data is not a joinable queue.
    public required init(from decoder: any Decoder) throws {
        super.init(storage: try decodeQueueStorage(from: decoder, joinable: true))
    }
}

// MARK: async iteration

/// Iterates a queue's items as they arrive, taking each with an async `get`.
///
/// Iteration ends (returns `nil`) when the queue is closed and drained; any other error (a
/// cancelled task, an item that does not decode) is thrown.
public struct QueueAsyncIterator<Element: Codable & Sendable>: AsyncIteratorProtocol {
    internal let storage: QueueStorage
    internal let operation: StaticString

    /// The next item, or `nil` once the queue is closed and empty.
    ///
    /// - Returns: the item, or `nil` at the end.
    /// - Throws: ``MultiprocessingError/Code/cancelled``, ``MultiprocessingError/Code/coding``.
    public mutating func next() async throws -> Element? {
        do {
            return try await queueGet(storage, Element.self, timeout: nil, operation)
        } catch let error as MultiprocessingError where error.code == .closed {
            return nil
        }
    }
}

extension Queue: AsyncSequence {
    /// Iterates the items until the queue is closed and drained (see ``QueueAsyncIterator``).
    /// On a ``JoinableQueue``, call ``JoinableQueue/taskDone()`` for each item as usual.
    public func makeAsyncIterator() -> QueueAsyncIterator<Element> {
        QueueAsyncIterator(storage: storage, operation: names.get)
    }
}

extension SimpleQueue: AsyncSequence {
    /// Iterates the items until the queue is closed and drained (see ``QueueAsyncIterator``).
    public func makeAsyncIterator() -> QueueAsyncIterator<Element> {
        QueueAsyncIterator(storage: storage, operation: "SimpleQueue.get")
    }
}

// MARK: shared helpers

/// An async put: first without waiting on the calling task's thread (no lock wait, no room wait),
/// then, only if that cannot finish at once, on a dedicated thread.
internal func queuePut<E: Encodable & Sendable>(_ storage: QueueStorage, _ item: E, timeout: Duration?, _ operation: StaticString) async throws {
    try Deadline.validate(timeout, operation)
    let done = try QueueItemCoding.withEncoded(item) { kind, body in
        try storage.putIfRoom(kind: kind, body: body, operation)
    }
    if done { return }
    let deadline = try Deadline(timeout: timeout, operation)
    try await waitOffPool(operation, restartable: true) { cancellation in
        try QueueItemCoding.withEncoded(item) { kind, body in
            try storage.put(kind: kind, body: body, block: true,
                            context: WaitContext(deadline: deadline, timeout: timeout, cancellation: cancellation, operation: operation))
        }
    }
}

/// An async get: first without waiting on the calling task's thread, then on a dedicated thread.
internal func queueGet<E: Decodable & Sendable>(_ storage: QueueStorage, _ type: E.Type, timeout: Duration?, _ operation: StaticString) async throws -> E {
    try Deadline.validate(timeout, operation)
    if let record = try storage.getIfReady(operation) {
        return try QueueItemCoding.decode(type, record)
    }
    let deadline = try Deadline(timeout: timeout, operation)
    let record = try await waitOffPool(operation, restartable: true) { cancellation in
        try storage.get(block: true, context: WaitContext(deadline: deadline, timeout: timeout, cancellation: cancellation, operation: operation))
    }
    return try QueueItemCoding.decode(type, record)
}

internal func decodeQueueStorage(from decoder: any Decoder, joinable: Bool?) throws -> QueueStorage {
    let container = try decoder.container(keyedBy: QueueCodingKeys.self)
    let descriptor = try container.decode(SharedDescriptor.self, forKey: .memory)
    return try QueueStorage(adopting: descriptor.fileDescriptor.rawValue, expectJoinable: joinable, codingPath: decoder.codingPath)
}
