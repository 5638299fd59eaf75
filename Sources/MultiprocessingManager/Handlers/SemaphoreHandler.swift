import Multiprocessing

/// A counting semaphore's permits.
internal final class SemaphoreState {
    internal var permits: Int
    /// A bounded semaphore's bound (its initial value); nil for a counting semaphore.
    internal let bound: Int?

    internal init(permits: Int, bound: Int? = nil) {
        self.permits = permits
        self.bound = bound
    }
}

extension ManagerServer {
    internal func serve(_ request: SemaphoreRequest, _ object: ServerObject, _ state: SemaphoreState,
                        _ connection: ConnectionContext) throws -> SemaphoreReply {
        switch request {
        case .acquire(let timeout):
            let got = try waitFor(object, timeout: try checkedTimeout(timeout), connection) { () -> Bool? in
                guard state.permits > 0 else { return nil }
                state.permits -= 1
                return true
            }
            return .acquire(acquired: got != nil)
        case .release(let count):
            guard count >= 0 else {
                throw MultiprocessingError(.misuse, "ManagedSemaphore.release: count must not be negative (it was \(count)).")
            }
            try locked(object) {
                let (sum, overflow) = state.permits.addingReportingOverflow(count)
                guard !overflow else {
                    throw MultiprocessingError(.misuse, "ManagedSemaphore.release: releasing \(count) more permits would overflow the count of \(state.permits).")
                }
                if let bound = state.bound, sum > bound {
                    throw MultiprocessingError(.misuse, "ManagedBoundedSemaphore.release: releasing \(count) would raise the count from \(state.permits) above its bound of \(bound) (more releases than acquires).")
                }
                state.permits = sum
                object.changed()
            }
            return .release
        case .value:
            return .value(try locked(object) { state.permits })
        case .info:
            return try locked(object) { .info(value: state.permits, bound: state.bound) }
        }
    }
}
