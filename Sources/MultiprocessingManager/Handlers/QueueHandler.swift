import Multiprocessing

/// A FIFO queue's contents: encoded items from `head` on, and its bound (0: none).
internal final class QueueState {
    internal var items: [[UInt8]] = []
    internal var head = 0
    internal let maximumSize: Int
    /// Items put and not yet marked done. Every queue counts them (it costs an integer), so a
    /// joinable proxy can reach any queue, a named one made by `queue(name:)` too.
    internal var unfinished = 0
    /// Set by `shutdown(immediate:)` (Python 3.13): puts are refused, gets fail once it is empty.
    internal var isShutDown = false

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
                if state.isShutDown { throw Self.queueShutDown("put") }
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
                guard state.count > 0 else {
                    if state.isShutDown { throw Self.queueShutDown("get") }
                    return nil
                }
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
        case .shutdown(let immediate):
            try locked(object) {
                state.isShutDown = true
                if immediate {
                    // Python counts the dropped items as done, so that a join does not wait
                    // for ever on items no one can get.
                    state.unfinished = max(0, state.unfinished - state.count)
                    state.items.removeAll()
                    state.head = 0
                }
                // Wakes every waiter (getters, putters, joiners) to look again.
                object.changed()
            }
            return .shutdown
        }
    }

    private static func queueShutDown(_ operation: String) -> MultiprocessingError {
        MultiprocessingError(.shutDown, "ManagedQueue.\(operation): the queue is shut down.")
    }
}
