import MultiprocessingSystem

/// A flag that threads and processes wait for: Python's `threading.Event` and `multiprocessing.Event`.
///
/// ``set()`` raises the flag and wakes every waiter; ``clear()`` lowers it; `wait(timeout:)`
/// returns at once while it is raised. The flag is a futex word in shared memory.
public final class Event: EventProtocol, Codable, @unchecked Sendable {
    // Layout: kind (4) | unused (4) | state (4) | sleepers (4).
    // The state word is (number of sets << 1) | raised. Counting the sets means a waiter woken by
    // `set()` returns even if `clear()` ran before it woke (the seed's traffic light does just that).
    internal let memory: SharedAllocation
    private var flag: SharedWord { SharedWord(memory.base + 8) }
    internal var sleepers: SharedWord { SharedWord(memory.base + 12) }
    internal static let size = 16

    /// Creates a lowered event in shared memory.
    /// - Throws: `.systemCall` when shared memory cannot be created.
    public init() throws {
        memory = try SharedArena.allocate(size: Event.size)
        memory.kind.store(SharedKind.event)
    }

    /// Whether the flag is raised: Python's `is_set()`.
    public var isSet: Bool { flag.load() & 1 != 0 }

    /// Raises the flag and wakes every waiter, in every process.
    public func set() {
        var current = flag.load()
        while current & 1 == 0 {
            if flag.compareExchange(&current, (current &+ 2) | 1) {
                if sleepers.load() > 0 { flag.wakeAll() }
                return
            }
        }
    }

    /// Lowers the flag.
    public func clear() {
        var current = flag.load()
        while current & 1 != 0 {
            if flag.compareExchange(&current, current & ~1) { return }
        }
    }

    /// Waits until the flag is raised.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: `.timedOut` when the flag stayed lowered (Python returns False), `.cancelled` when
    ///   the waiting ``OSThread`` was cancelled, or `.misuse` when `timeout` is negative.
    public func wait(timeout: Duration? = nil) throws {
        try Deadline.validate(timeout, "Event.wait")
        let seen = flag.load()
        if seen & 1 != 0 { return }
        try waitSlow(seen, .current(timeout: timeout, "Event.wait"))
    }

    /// The async twin of ``wait(timeout:)``: waits on a helper thread, never on the cooperative pool.
    /// - Throws: `.timedOut`, or `.cancelled` when the task is cancelled.
    public func wait(timeout: Duration? = nil) async throws {
        try Deadline.validate(timeout, "Event.wait")
        let seen = flag.load()
        if seen & 1 != 0 { return }
        let deadline = try Deadline(timeout: timeout, "Event.wait")
        try await waitOffPool("Event.wait", restartable: true) { cancellation in
            try self.waitSlow(seen, WaitContext(deadline: deadline, timeout: timeout, cancellation: cancellation, operation: "Event.wait"))
        }
    }

    /// Waits until the word moves on from `seen`, a lowered state read when the wait began: only a
    /// `set()` changes the word from there, so any change means the event was set after the wait
    /// began, even if it has been cleared again since. A set between that read and the sleep
    /// changes the word, so the kernel refuses to sleep: nothing is missed.
    private func waitSlow(_ seen: UInt32, _ context: WaitContext) throws(MultiprocessingError) {
        sleepers.add(1)
        defer { sleepers.subtract(1) }
        while flag.load() == seen {
            try context.wait(on: flag, expected: seen)
        }
    }

    /// Encodes the event's shared memory (its descriptor travels beside the bytes).
    public func encode(to encoder: any Encoder) throws { try memory.encode(to: encoder) }

    /// Decodes an event sent by another process.
    public init(from decoder: any Decoder) throws {
        memory = try SharedAllocation(from: decoder, kind: SharedKind.event, size: Event.size, typeName: "Event")
    }
}
