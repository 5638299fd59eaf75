import Multiprocessing

/// A FIFO queue's contents: encoded items from `head` on, and its bound (0: none).
internal final class QueueState {
    internal var items: [[UInt8]] = []
    internal var head = 0
    internal let maximumSize: Int
    /// Items put and not yet marked done. Every queue counts them (it costs an integer), so a
    /// joinable proxy can reach any queue, a named one made by `queue(name:)` too.
    internal var unfinished = 0

    internal init(maximumSize: Int) { self.maximumSize = maximumSize }

    internal var count: Int { items.count - head }

    internal func pop() -> [UInt8] {
        let item = items[head]
        items[head] = []
        head += 1
        // Compact now and then so that a long-lived queue's array does not grow without bound.
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        } else if head == items.count {
            items.removeAll(keepingCapacity: items.count < 4096)
            head = 0
        }
        return item
    }
}

extension ManagerServer {
    internal func serve(_ request: QueueRequest, _ object: ServerObject, _ state: QueueState,
                        _ connection: ConnectionContext) throws -> QueueReply {
        switch request {
        case .put(let item, let timeout):
            let timeout = try checkedTimeout(timeout)
            let done = try waitFor(object, timeout: timeout, connection) { () -> Bool? in
                guard state.maximumSize == 0 || state.count < state.maximumSize else { return nil }
                state.items.append(item)
                if state.unfinished < Int.max { state.unfinished += 1 }
                object.changed()
                return true
            }
            guard done != nil else { throw MultiprocessingError(.full, "ManagedQueue.put: the queue stayed full\(timeoutText(timeout)).") }
            return .put
        case .get(let timeout):
            let timeout = try checkedTimeout(timeout)
            let item = try waitFor(object, timeout: timeout, connection) { () -> [UInt8]? in
                guard state.count > 0 else { return nil }
                let item = state.pop()
                object.changed()
                return item
            }
            guard let item else { throw MultiprocessingError(.empty, "ManagedQueue.get: the queue stayed empty\(timeoutText(timeout)).") }
            return .get(item: item)
        case .count:
            return .count(try locked(object) { state.count })
        case .info:
            return try locked(object) { .info(count: state.count, maximumSize: state.maximumSize, unfinished: state.unfinished) }
        case .taskDone:
            try locked(object) {
                guard state.unfinished > 0 else {
                    throw MultiprocessingError(.misuse, "ManagedJoinableQueue.taskDone: called more times than items were put.")
                }
                state.unfinished -= 1
                if state.unfinished == 0 { object.changed() }
            }
            return .taskDone
        case .join(let timeout):
            let done = try waitFor(object, timeout: try checkedTimeout(timeout), connection) { () -> Bool? in
                state.unfinished == 0 ? true : nil
            }
            return .join(done: done != nil)
        }
    }
}
