import Synchronization
import MultiprocessingSystem

/// What the parent knows about one started child. Shared by its ``ChildProcess`` handle and the
/// process monitor, which fills it in: the pid, the bytes of the child's outcome, and its exit status.
internal final class ChildRecord: Sendable {
    struct State {
        var pid: Int32 = 0
        /// A pidfd for signals and for noticing the exit. -1 when closed.
        var pidfd: Int32 = -1
        /// The parent's end of the child's socket, read by the monitor. -1 when closed.
        var socket: Int32 = -1
        var received: [UInt8] = []
        /// The child sent more than a frame may hold; `received` keeps only the header.
        var overflowed = false
        /// The child has ended (its exit status may still be unknown: see `lost`).
        var ended = false
        var exitStatus: ExitStatus?
        /// Why the exit status is unknown although the child ended (waitpid's ECHILD).
        var lost: MultiprocessingError?
        var outcome: Result<ChildOutcome, MultiprocessingError>?
        var continuations: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextContinuation: UInt64 = 0
        weak var handle: (any ProcessHandle)?
    }

    let id: UInt64
    let name: String
    let daemon: Bool
    let outlivesParent: Bool
    /// Set once the exit status and the outcome are both known.
    let finished = OneShot()
    let state: Mutex<State>

    init(id: UInt64, name: String, daemon: Bool, outlivesParent: Bool) {
        self.id = id
        self.name = name
        self.daemon = daemon
        self.outlivesParent = outlivesParent
        self.state = Mutex(State())
    }

    var rawPID: Int32 { state.withLock { $0.pid } }

    /// Closes the parent's end of the socket of a child that never started.
    func closeSocket() {
        state.withLock { state in
            if state.socket >= 0 { system_close(state.socket); state.socket = -1 }
        }
    }

    /// Records the end of the child and wakes every joiner. Called by the monitor only. `status` is
    /// nil, and `lost` says why, when the child ended but its exit status could not be collected.
    func finish(status: ExitStatus?, lost: MultiprocessingError? = nil) {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.ended = true
            state.exitStatus = status
            state.lost = lost
            state.outcome = state.overflowed
                ? .failure(Self.overflowError(state.received))
                : Self.parseOutcome(state.received)
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
                    if state.ended || Task.isCancelled { return true }
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

    private static func overflowError(_ header: [UInt8]) -> MultiprocessingError {
        var announced = ""
        if header.count >= ChildProtocol.headerSize {
            var length: UInt64 = 0
            for i in 0..<8 { length |= UInt64(header[5 + i]) << (8 * UInt64(i)) }
            announced = " (its header announced \(length) bytes)"
        }
        return MultiprocessingError(.malformedFrame, "The child's report is larger than the \(ChildProtocol.maximumBody)-byte limit\(announced); it was not read.")
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
