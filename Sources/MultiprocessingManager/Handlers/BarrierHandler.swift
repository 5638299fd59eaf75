import Multiprocessing

/// A barrier's parties, the callers that arrived in the current generation, and whether it is broken.
internal final class BarrierState {
    internal let parties: Int
    internal var arrived = 0
    internal var generation: UInt64 = 0
    /// The generation a reset ended while callers waited in it: they get `broken`.
    internal var brokenGeneration: UInt64 = .max
    internal var broken = false

    internal init(parties: Int) { self.parties = parties }
}

extension ManagerServer {
    internal func serve(_ request: BarrierRequest, _ object: ServerObject, _ state: BarrierState,
                        _ connection: ConnectionContext) throws -> BarrierReply {
        switch request {
        case .wait(let timeout):
            let timeout = try checkedTimeout(timeout)
            let (index, generation) = try locked(object) { () -> (Int, UInt64) in
                guard !state.broken else { throw MultiprocessingError(.broken, "ManagedBarrier.wait: the barrier is broken (aborted, or a waiter timed out); reset it.") }
                let index = state.arrived
                let generation = state.generation
                state.arrived += 1
                if state.arrived == state.parties {
                    state.arrived = 0
                    state.generation += 1
                    object.changed()
                }
                return (index, generation)
            }
            do {
                let done = try waitFor(object, timeout: timeout, connection) { () -> Bool? in
                    if state.generation != generation {
                        if state.brokenGeneration == generation {
                            throw MultiprocessingError(.broken, "ManagedBarrier.wait: the barrier was reset while this call waited.")
                        }
                        return true
                    }
                    if state.broken {
                        throw MultiprocessingError(.broken, "ManagedBarrier.wait: the barrier was broken while this call waited.")
                    }
                    return nil
                }
                if done == nil {
                    try locked(object) {
                        if state.generation == generation {
                            state.broken = true
                            state.arrived = max(0, state.arrived - 1)
                            object.changed()
                        }
                    }
                    throw MultiprocessingError(.timedOut, "ManagedBarrier.wait timed out\(timeoutText(timeout)); the barrier is now broken.")
                }
            } catch let error as MultiprocessingError where error.code == .endOfStream {
                try? locked(object) {
                    if state.generation == generation {
                        state.broken = true
                        object.changed()
                    }
                }
                throw error
            }
            return .wait(index: index)
        case .reset:
            try locked(object) {
                if state.arrived > 0 {
                    state.brokenGeneration = state.generation
                    state.generation += 1
                }
                state.arrived = 0
                state.broken = false
                object.changed()
            }
            return .reset
        case .abort:
            try locked(object) {
                state.broken = true
                object.changed()
            }
            return .abort
        case .state:
            return try locked(object) { .state(parties: state.parties, waiting: state.arrived, broken: state.broken) }
        }
    }
}
