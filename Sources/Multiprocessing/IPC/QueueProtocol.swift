/// A FIFO queue of typed items: ``Queue`` and ``JoinableQueue`` here, `ManagedQueue` in
/// `MultiprocessingManager`. Python's `queue.Queue` interface as `multiprocessing` uses it.
///
/// The timeout convention is the one of ``Locking`` and the other primitives: a timed `put` or
/// `get` that runs out throws ``MultiprocessingError/Code/timedOut`` (where Python raises
/// `queue.Full` or `queue.Empty`); the forms that never wait, ``putNowait(_:)`` and
/// ``getNowait()``, throw ``MultiprocessingError/Code/full`` and ``MultiprocessingError/Code/empty``.
public protocol QueueProtocol<Element>: Sendable {
    /// What the queue holds.
    associatedtype Element: Codable & Sendable

    /// Puts an item at the back, waiting at most `timeout` (`nil`: for ever) for room.
    /// - Throws: `.timedOut` when the queue stayed full.
    func put(_ item: Element, timeout: Duration?) throws
    /// The async twin of `put(_:timeout:)`.
    func put(_ item: Element, timeout: Duration?) async throws
    /// Puts an item without waiting: Python's `put_nowait`.
    /// - Throws: `.full` when there is no room.
    func putNowait(_ item: Element) throws
    /// Removes and returns the front item, waiting at most `timeout` (`nil`: for ever) for one.
    /// - Throws: `.timedOut` when the queue stayed empty.
    func get(timeout: Duration?) throws -> Element
    /// The async twin of `get(timeout:)`.
    func get(timeout: Duration?) async throws -> Element
    /// Removes and returns the front item without waiting: Python's `get_nowait`.
    /// - Throws: `.empty` when there is none.
    func getNowait() throws -> Element
    /// The number of items queued (a snapshot): Python's `qsize()`.
    var qsize: Int { get throws }
    /// Whether the queue holds no items (a snapshot): Python's `empty()`.
    var empty: Bool { get throws }
}

extension QueueProtocol {
    /// Puts an item, waiting for ever for room.
    public func put(_ item: Element) throws { try put(item, timeout: nil) }
    /// Puts an item, waiting for ever for room off the cooperative pool.
    public func put(_ item: Element) async throws { try await put(item, timeout: nil) }
    /// Removes and returns the front item, waiting for ever.
    public func get() throws -> Element { try get(timeout: nil) }
    /// Removes and returns the front item, waiting for ever off the cooperative pool.
    public func get() async throws -> Element { try await get(timeout: nil) }
}
