import Synchronization
import SystemPackage

/// Lets another thread end one blocking wait: an `async` twin's cancellation handler, or `close()`.
///
/// A wait on a descriptor polls the interrupt's eventfd beside its own descriptor; a wait on a
/// futex in shared memory registers a wake hook that wakes that futex. Either way the waiter sees
/// ``isTriggered`` and stops.
internal final class IPCInterrupt: Sendable {
    private struct State {
        var triggered = false
        var eventFD: CInt = -1
        var wakeHook: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())

    internal init() {}

    deinit {
        state.withLock { if $0.eventFD >= 0 { system_close($0.eventFD) } }
    }

    internal var isTriggered: Bool { state.withLock { $0.triggered } }

    /// An eventfd that becomes readable when the interrupt triggers (created on first use).
    internal func eventDescriptor() throws(Errno) -> CInt {
        let result: Result<CInt, Errno> = state.withLock { state in
            if state.eventFD < 0 {
                do throws(Errno) {
                    state.eventFD = try system_eventfd(initial: state.triggered ? 1 : 0)
                } catch {
                    return .failure(error)
                }
            }
            return .success(state.eventFD)
        }
        return try result.get()
    }

    /// Sets what ``trigger()`` calls to wake a waiter that sleeps on a futex.
    internal func setWakeHook(_ hook: (@Sendable () -> Void)?) {
        let fireNow = state.withLock { state -> Bool in
            state.wakeHook = hook
            return state.triggered
        }
        if fireNow { hook?() }
    }

    internal func trigger() {
        let hook = state.withLock { state -> (@Sendable () -> Void)? in
            if state.triggered { return nil }
            state.triggered = true
            if state.eventFD >= 0 { system_eventfdSignal(state.eventFD) }
            return state.wakeHook
        }
        hook?()
    }
}

/// Runs a blocking call on a dedicated thread and suspends the calling task until it ends, so that
/// Swift's cooperative pool never blocks. Cancelling the task triggers the call's interrupt; the
/// call then throws ``MultiprocessingError/Code/cancelled``.
internal func ipcRunBlocking<T: Sendable>(_ body: @escaping @Sendable (IPCInterrupt) throws -> T) async throws -> T {
    if Task.isCancelled {
        throw MultiprocessingError(.cancelled, "The task was cancelled before the call started.")
    }
    let interrupt = IPCInterrupt()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            do {
                try spawnHelperThread(name: "mp-ipc-wait") {
                    continuation.resume(with: Result { try body(interrupt) })
                }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    } onCancel: {
        interrupt.trigger()
    }
}

internal extension MultiprocessingError {
    static func cancelledWait(_ what: String) -> MultiprocessingError {
        MultiprocessingError(.cancelled, "The wait in \(what) was cancelled.")
    }

    static func timedOut(_ what: String, _ timeout: Duration?) -> MultiprocessingError {
        MultiprocessingError(.timedOut, "\(what) timed out\(timeout.map { " after \($0)" } ?? "").")
    }
}
