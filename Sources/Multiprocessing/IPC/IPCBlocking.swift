/// Lets another thread end one blocking connection call: an `async` twin's cancellation handler.
///
/// A wait on a descriptor polls the interrupt's eventfd beside its own descriptor
/// (``WaitInterrupt/eventDescriptor()``); a wait on a futex word in this process (a connection's
/// turn) attaches that word (``WakeSource/futex(_:)``). Either way the waiter sees
/// ``WaitInterrupt/isTriggered`` and stops.
internal typealias IPCInterrupt = WaitInterrupt

/// Runs a blocking call on the blocking bridge's helper threads (``BlockingBridge``) and suspends
/// the calling task until it ends, so that Swift's cooperative pool never blocks. Cancelling the
/// task triggers the call's interrupt; the call then throws ``MultiprocessingError/Code/cancelled``.
@inline(never) // out of the async twins' frames, as waitOffPool
internal func ipcRunBlocking<T: Sendable>(_ body: @escaping @Sendable (IPCInterrupt) throws -> T) async throws -> T {
    if Task.isCancelled {
        throw MultiprocessingError(.cancelled, "The task was cancelled before the call started.")
    }
    return try await BlockingBridge.shared.call("a connection's async call", body)
}

internal extension MultiprocessingError {
    static func cancelledWait(_ what: String) -> MultiprocessingError {
        MultiprocessingError(.cancelled, "The wait in \(what) was cancelled.")
    }

    static func timedOut(_ what: String, _ timeout: Duration?) -> MultiprocessingError {
        MultiprocessingError(.timedOut, "\(what) timed out\(timeout.map { " after \($0)" } ?? "").")
    }
}
