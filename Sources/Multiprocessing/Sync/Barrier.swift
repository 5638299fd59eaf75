import MultiprocessingSystem

/// A rendezvous for a fixed number of threads or processes: Python's `threading.Barrier`.
///
/// Each of the `parties` calls `wait(timeout:)`; the last to arrive runs the optional `action`,
/// and then all of them continue. A barrier can be used again for the next round.
///
/// A barrier *breaks* when a waiter times out or is cancelled, when the action throws, when
/// ``abort()`` is called, or when a process dies inside the barrier's internal lock. Every current
/// and future waiter then gets ``MultiprocessingError/Code/broken`` until ``reset()``.
///
/// The state (count, phase, a futex word) lives in shared memory behind a robust mutex, so parties
/// may be in different processes. The `action` is a closure, so it does not travel: a barrier decoded
/// in another process has no action, and the action runs only when the last party to arrive is in
/// the process that created it.
public final class Barrier: BarrierProtocol, Codable, @unchecked Sendable {
    // Layout: kind (4) | parties (4) | robust lock (48) | count (4) | phase (4) | sequence (4).
    internal let memory: SharedAllocation
    private let mutex: RobustMutex
    private var count: UnsafeMutablePointer<Int32> {
        (memory.base + 8 + RobustMutex.size).assumingMemoryBound(to: Int32.self)
    }
    private var phase: UnsafeMutablePointer<Int32> {
        (memory.base + 12 + RobustMutex.size).assumingMemoryBound(to: Int32.self)
    }
    private var sequence: SharedWord { SharedWord(memory.base + 16 + RobustMutex.size) }
    internal static var size: Int { 20 + RobustMutex.size }

    // Python's states: filling, draining (releasing the round), resetting, broken.
    private static let filling: Int32 = 0, draining: Int32 = 1, resetting: Int32 = -1, broken: Int32 = -2

    /// Runs when the last party arrives, before the others are released.
    public let action: (@Sendable () throws -> Void)?
    /// The timeout `wait(timeout:)` uses when given none.
    public let defaultTimeout: Duration?

    /// Creates a barrier for `parties` threads or processes.
    /// - Parameters:
    ///   - parties: How many must call `wait(timeout:)` before any continues (at least 1).
    ///   - action: Run by the last party to arrive; if it throws, the barrier breaks.
    ///   - timeout: The default timeout of `wait(timeout:)`.
    /// - Throws: `.misuse` naming `parties` when it is below 1 or above `Int32.max - 1` (Python
    ///   raises `ValueError`), or naming `timeout` when it is negative; `.systemCall` when shared
    ///   memory cannot be created.
    public init(parties: Int, action: (@Sendable () throws -> Void)? = nil, timeout: Duration? = nil) throws {
        guard parties >= 1 && parties < Int(Int32.max) else {
            throw MultiprocessingError.misuse("Barrier(parties:): parties must be between 1 and \(Int32.max - 1) (it was \(parties)).")
        }
        try Deadline.validate(timeout, "Barrier(timeout:)")
        memory = try SharedArena.allocate(size: Barrier.size)
        mutex = RobustMutex(memory.base + 8)
        try mutex.initialize(recursive: false)
        memory.parameter.store(UInt32(parties))
        memory.kind.store(SharedKind.barrier)
        self.action = action
        self.defaultTimeout = timeout
    }

    /// How many must wait before all continue.
    public var parties: Int { Int(memory.parameter.load()) }

    /// How many are waiting for the barrier to trip now (Python's `n_waiting`): 0 once it has
    /// tripped, while the parties of that round are still on their way out, and while it is broken
    /// or resetting.
    public var waitingCount: Int {
        (try? locked(.uncancellable("Barrier.waitingCount")) {
            phase.pointee == Barrier.filling ? Int(count.pointee) : 0
        }) ?? 0
    }

    /// Whether the barrier is broken.
    public var isBroken: Bool {
        (try? locked(.uncancellable("Barrier.isBroken")) { phase.pointee == Barrier.broken }) ?? true
    }

    /// Waits until all parties have called `wait`.
    /// - Parameter timeout: How long to wait; `nil` uses the barrier's default timeout.
    /// - Returns: This party's arrival index, from 0 to `parties - 1` (one party can act on index 0).
    /// - Throws: `.broken` when the barrier is or becomes broken; `.timedOut` (which breaks the
    ///   barrier for the others) or `.cancelled` when the waiting ``OSThread`` is cancelled (which
    ///   breaks it too); `.misuse` when `timeout` is negative (the barrier is not broken); what the
    ///   action throws, in the party that ran it.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Int {
        try wait(.current(timeout: timeout ?? defaultTimeout, "Barrier.wait"))
    }

    /// The async twin of ``wait(timeout:)``: waits on a helper thread, never on the cooperative pool.
    /// - Throws: as ``wait(timeout:)``; `.cancelled` when the task is cancelled.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Int {
        let limit = timeout ?? defaultTimeout
        let deadline = try Deadline(timeout: limit, "Barrier.wait")
        return try await waitOffPool("Barrier.wait") { cancellation in
            try self.wait(WaitContext(deadline: deadline, timeout: limit, cancellation: cancellation, operation: "Barrier.wait"))
        }
    }

    /// Breaks the barrier: every current and future waiter gets `.broken` until ``reset()``.
    public func abort() {
        _ = try? locked(.uncancellable("Barrier.abort")) { breakBarrier() }
    }

    /// Returns the barrier to its initial state. Parties waiting now get `.broken`.
    public func reset() {
        _ = try? locked(.uncancellable("Barrier.reset")) {
            if count.pointee > 0 {
                if phase.pointee == Barrier.filling || phase.pointee == Barrier.broken {
                    phase.pointee = Barrier.resetting
                }
            } else {
                phase.pointee = Barrier.filling
            }
            notifyAll()
        }
    }

    private func wait(_ context: WaitContext) throws -> Int {
        try locked(context) { () throws -> Int in
            // Wait while the previous round drains or resets.
            while phase.pointee == Barrier.draining || phase.pointee == Barrier.resetting {
                try sleep(context)
            }
            if phase.pointee < 0 { throw brokenError() }
            let index = Int(count.pointee)
            // Wrapping: the count is shared memory any holder can write, and a garbage count
            // must not trap this process (the barrier just misbehaves for its parties).
            count.pointee &+= 1
            defer {
                count.pointee &-= 1
                if count.pointee == 0, phase.pointee == Barrier.draining || phase.pointee == Barrier.resetting {
                    phase.pointee = Barrier.filling
                    notifyAll()
                }
            }
            if index + 1 == parties {
                do {
                    try action?()
                } catch {
                    breakBarrier()
                    throw error
                }
                phase.pointee = Barrier.draining
                notifyAll()
            } else {
                do {
                    while phase.pointee == Barrier.filling { try sleep(context) }
                } catch {
                    breakBarrier()
                    throw error
                }
                if phase.pointee < 0 { throw brokenError() }
            }
            return index
        }
    }

    /// Runs `body` holding the internal mutex. A party that died holding it breaks the barrier.
    private func locked<R>(_ context: WaitContext, _ body: () throws -> R) throws -> R {
        if try mutex.lock(context) == .afterOwnerDied {
            breakBarrier()
        }
        defer { _ = try? mutex.unlock("Barrier") }
        return try body()
    }

    /// Releases the internal mutex, sleeps until notified (or spuriously), and takes it back.
    private func sleep(_ context: WaitContext) throws(MultiprocessingError) {
        let seen = sequence.load()
        try mutex.unlock("Barrier.wait")
        var failure: MultiprocessingError?
        do { try context.wait(on: sequence, expected: seen) } catch { failure = error }
        if try mutex.lock(.uncancellable("Barrier.wait")) == .afterOwnerDied { breakBarrier() }
        if let failure { throw failure }
    }

    private func notifyAll() {
        sequence.add(1)
        sequence.wakeAll()
    }

    private func breakBarrier() {
        phase.pointee = Barrier.broken
        notifyAll()
    }

    private func brokenError() -> MultiprocessingError {
        MultiprocessingError(.broken, "Barrier.wait: the barrier is broken (a party timed out or was cancelled, the action threw, or abort() was called); call reset() to use it again.")
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey { case memory, timeout }

    /// Encodes the barrier's shared memory and default timeout (not the action, which is a closure).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(SharedAllocationBox<BarrierMemory>(memory), forKey: .memory)
        try container.encodeIfPresent(defaultTimeout, forKey: .timeout)
    }

    /// Decodes a barrier sent by another process. It has no action.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        memory = try container.decode(SharedAllocationBox<BarrierMemory>.self, forKey: .memory).allocation
        mutex = RobustMutex(memory.base + 8)
        defaultTimeout = try container.decodeIfPresent(Duration.self, forKey: .timeout)
        action = nil
    }
}

internal enum BarrierMemory: SharedMemoryKind {
    static var kind: UInt32 { SharedKind.barrier }
    static var size: Int { Barrier.size }
    static var typeName: StaticString { "Barrier" }
}
