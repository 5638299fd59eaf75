// Task types for the blocking bridge's manager test (issue 14, item 2): a manager call is the
// bridge's socket kind of wait.
public import Multiprocessing
import MultiprocessingManager

public struct ManagerCallCancellation: Codable, Sendable {
    public var code = ""
    public var milliseconds = -1
    public var busyAfter = -1
    public var itemAfter = -1
    public init() {}
}

/// In a child of its own (so the bridge it looks at is nobody else's): a task awaits a get on an
/// empty managed queue, is cancelled, and must end at once with `.cancelled` (its socket shut
/// down), leave no helper busy, and leave the queue whole (the next item goes to the next get).
public struct CancelManagerCallTask: ProcessTask {
    public init() {}

    public func run() async throws -> ManagerCallCancellation {
        let bridge = BlockingBridge.shared
        let manager = Manager()
        try await manager.start()
        let queue = try manager.queue(Int.self)
        var outcome = ManagerCallCancellation()
        let waiting = Task { try await queue.get() }
        let clock = ContinuousClock()
        let giveUp = clock.now + .seconds(30)
        while bridge.statistics.busy == 0 && clock.now < giveUp { try? await Task.sleep(for: .milliseconds(1)) }
        // The call is on a helper: wherever it is (connecting, writing, or reading the reply),
        // the cancel must end it.
        let start = clock.now
        waiting.cancel()
        do {
            _ = try await waiting.value
            outcome.code = "returned"
        } catch let error as MultiprocessingError {
            outcome.code = error.code.description
        }
        let elapsed = clock.now - start
        outcome.milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        while bridge.statistics.busy != 0 && clock.now < giveUp { try? await Task.sleep(for: .milliseconds(1)) }
        outcome.busyAfter = bridge.statistics.busy
        try await queue.put(5)
        outcome.itemAfter = try await queue.get(timeout: .seconds(10))
        try await manager.shutdown()
        return outcome
    }
}
