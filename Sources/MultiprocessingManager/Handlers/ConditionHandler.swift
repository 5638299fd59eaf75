import Multiprocessing

/// A condition variable: its own recursive lock (served by LockHandler.swift), and the tickets
/// of its waiters.
internal final class ConditionState {
    internal let lock = LockState(recursive: true)
    /// Waiting tickets, oldest first.
    internal var waiters: [UInt64] = []
    /// Tickets a notify picked, whose waiters have not woken yet.
    internal var notified: Set<UInt64> = []
    internal var nextTicket: UInt64 = 1
}

extension ManagerServer {
    internal func serve(_ request: ConditionRequest, _ object: ServerObject, _ state: ConditionState,
                        _ connection: ConnectionContext) throws -> ConditionReply {
        switch request {
        case .wait(let thread, let timeout):
            let caller = Owner(client: connection.client, thread: thread)
            let timeout = try checkedTimeout(timeout)
            let (ticket, savedDepth) = try locked(object) { () -> (UInt64, Int) in
                guard state.lock.owner == caller else {
                    throw MultiprocessingError(.misuse, "ManagedCondition.wait: the calling thread does not hold the condition's lock.")
                }
                let ticket = state.nextTicket
                state.nextTicket += 1
                state.waiters.append(ticket)
                let depth = state.lock.depth
                state.lock.owner = nil
                state.lock.depth = 0
                object.changed()
                return (ticket, depth)
            }
            var notified: Bool?
            do {
                notified = try waitFor(object, timeout: timeout, connection) { () -> Bool? in
                    state.notified.remove(ticket) != nil ? true : nil
                }
            } catch {
                try? locked(object) {
                    state.waiters.removeAll { $0 == ticket }
                    state.notified.remove(ticket)
                }
                throw error
            }
            if notified == nil {
                try locked(object) {
                    state.waiters.removeAll { $0 == ticket }
                    // A notify may have picked this ticket after the deadline: it counts.
                    if state.notified.remove(ticket) != nil { notified = true }
                }
            }
            // Take the lock back, whatever happened, as threading.Condition does.
            _ = try waitFor(object, timeout: nil, connection) { () -> Bool? in
                guard state.lock.owner == nil else { return nil }
                state.lock.owner = caller
                state.lock.depth = savedDepth
                state.lock.ownerDied = false
                return true
            }
            return .wait(notified: notified != nil)
        case .notify(let thread, let count):
            let caller = Owner(client: connection.client, thread: thread)
            guard count >= 0 else {
                throw MultiprocessingError(.misuse, "ManagedCondition.notify: the number of waiters to wake must not be negative (it was \(count)).")
            }
            try locked(object) {
                guard state.lock.owner == caller else {
                    throw MultiprocessingError(.misuse, "ManagedCondition.notify: the calling thread does not hold the condition's lock.")
                }
                let n = min(count, state.waiters.count)
                for ticket in state.waiters.prefix(n) { state.notified.insert(ticket) }
                state.waiters.removeFirst(n)
                if n > 0 { object.changed() }
            }
            return .notify
        }
    }
}
