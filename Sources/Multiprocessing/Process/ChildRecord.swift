import Synchronization

/// What the parent knows about one started child. Shared by its ``ChildProcess`` handle and the
/// process monitor, which fills it in: the pid, the bytes of the child's outcome, and its exit status.
internal final class ChildRecord: Sendable {
    struct State {
        var pid: Int32 = 0
        /// A pidfd for signals (and, for our own children, for noticing the exit). -1 when closed.
        var pidfd: Int32 = -1
        /// True when the monitor learns the exit from the pidfd and reaps with waitpid (spawn, fork);
        /// false when the fork server reports it (the child is the server's, not ours).
        var ownChild = true
        /// The parent's end of the child's socket, read by the monitor. -1 when closed.
        var socket: Int32 = -1
        var received: [UInt8] = []
        var exitStatus: ExitStatus?
        var outcome: Result<ChildOutcome, MultiprocessingError>?
        var continuations: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextContinuation: UInt64 = 0
        weak var handle: (any ProcessHandle)?
    }

    let id: UInt64
    let name: String
    let daemon: Bool
    /// Set once the exit status and the outcome are both known.
    let finished = OneShot()
    let state: Mutex<State>

    init(id: UInt64, name: String, daemon: Bool) {
        self.id = id
        self.name = name
        self.daemon = daemon
        self.state = Mutex(State())
    }

    var rawPID: Int32 { state.withLock { $0.pid } }

    /// Records the end of the child and wakes every joiner. Called by the monitor only.
    func finish(status: ExitStatus) {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.exitStatus = status
            state.outcome = Self.parseOutcome(state.received)
            state.received = []
            if state.pidfd >= 0 { system_close(state.pidfd); state.pidfd = -1 }
            if state.socket >= 0 { system_close(state.socket); state.socket = -1 }
            let waiting = Array(state.continuations.values)
            state.continuations = [:]
            return waiting
        }
        finished.set()
        for continuation in continuations { continuation.resume() }
    }

    /// Waits for ``finish(status:)`` from async code, without blocking a thread of the pool.
    func waitAsync() async {
        let key = state.withLock { state -> UInt64 in
            state.nextContinuation += 1
            return state.nextContinuation
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.exitStatus != nil || Task.isCancelled { return true }
                    state.continuations[key] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { $0.continuations.removeValue(forKey: key) }
            continuation?.resume()
        }
    }

    private static func parseOutcome(_ bytes: [UInt8]) -> Result<ChildOutcome, MultiprocessingError>? {
        if bytes.isEmpty { return nil }
        do {
            guard bytes.count >= ChildProtocol.headerSize else {
                throw MultiprocessingError(.malformedFrame, "The child's report was cut short after \(bytes.count) bytes.")
            }
            let (kind, length) = try ChildProtocol.parseHeader(bytes.prefix(ChildProtocol.headerSize))
            guard bytes.count == ChildProtocol.headerSize + length else {
                throw MultiprocessingError(.malformedFrame, "The child's report holds \(bytes.count - ChildProtocol.headerSize) bytes where its header announced \(length).")
            }
            return .success(try ChildOutcome(kind: kind, body: Array(bytes[ChildProtocol.headerSize...])))
        } catch let error as MultiprocessingError {
            return .failure(error)
        } catch {
            return .failure(MultiprocessingError(.malformedFrame, "\(error)"))
        }
    }
}
