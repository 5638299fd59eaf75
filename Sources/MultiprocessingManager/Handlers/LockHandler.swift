import Multiprocessing

/// A lock's state: a Lock's, an RLock's (`recursive`), or a condition's own recursive lock.
internal final class LockState {
    internal let recursive: Bool
    internal var owner: Owner?
    internal var depth = 0
    /// The last owner's process died holding the lock: the next acquirer is told.
    internal var ownerDied = false

    internal init(recursive: Bool) { self.recursive = recursive }

    /// Takes the lock for `caller` if it can: nil when another owner holds it, else whether the
    /// previous owner died holding it.
    internal func tryAcquire(_ caller: Owner) -> Bool? {
        if owner == nil {
            owner = caller
            depth = 1
            let died = ownerDied
            ownerDied = false
            return died
        }
        if recursive, owner == caller {
            depth += 1
            return false
        }
        return nil
    }

    internal func releaseDeadOwner(_ client: UInt64) -> Bool {
        guard let owner, owner.client == client else { return false }
        self.owner = nil
        depth = 0
        ownerDied = true
        return true
    }
}

extension ManagerServer {
    internal func serve(_ request: LockRequest, _ object: ServerObject, _ lock: LockState,
                        _ connection: ConnectionContext) throws -> LockReply {
        switch request {
        case .acquire(let thread, let timeout):
            let caller = Owner(client: connection.client, thread: thread)
            let died = try waitFor(object, timeout: try checkedTimeout(timeout), connection) { lock.tryAcquire(caller) }
            return .acquire(died == nil ? .timedOut : (died == true ? .acquiredAfterOwnerDied : .acquired))
        case .release(let thread):
            let caller = Owner(client: connection.client, thread: thread)
            try locked(object) {
                guard let current = lock.owner else {
                    throw MultiprocessingError(.misuse, "release: the manager's lock \(object.id) is not held.")
                }
                if lock.recursive && current != caller {
                    throw MultiprocessingError(.misuse, "release: the manager's lock \(object.id) is held by another thread or process.")
                }
                lock.depth -= 1
                if !lock.recursive || lock.depth == 0 {
                    lock.owner = nil
                    lock.depth = 0
                    object.changed()
                }
            }
            return .release
        case .isLocked:
            return .isLocked(try locked(object) { lock.owner != nil })
        }
    }
}
