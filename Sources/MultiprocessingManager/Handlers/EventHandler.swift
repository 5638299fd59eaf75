import Multiprocessing

/// An event's flag.
internal final class EventState {
    internal var flag = false
    /// Bumped by every set(): a waiter that saw generation g wakes once it is not g, even if a
    /// clear() ran before the waiter looked at the flag (CPython's guarantee since gh-57711).
    internal var generation: UInt64 = 0
}

extension ManagerServer {
    internal func serve(_ request: EventRequest, _ object: ServerObject, _ state: EventState,
                        _ connection: ConnectionContext) throws -> EventReply {
        switch request {
        case .set:
            try locked(object) {
                state.flag = true
                state.generation &+= 1
                object.changed()
            }
            return .set
        case .clear:
            try locked(object) { state.flag = false }
            return .clear
        case .isSet:
            return .isSet(try locked(object) { state.flag })
        case .wait(let timeout):
            // The generation seen by the first look (under the same lock as the wait's start):
            // a set() after it wakes this call even if a clear() follows before it looks again.
            var seen: UInt64?
            let set = try waitFor(object, timeout: try checkedTimeout(timeout), connection) { () -> Bool? in
                if state.flag { return true }
                guard let seen else {
                    seen = state.generation
                    return nil
                }
                return state.generation != seen ? true : nil
            }
            return .wait(set: set != nil)
        }
    }
}
