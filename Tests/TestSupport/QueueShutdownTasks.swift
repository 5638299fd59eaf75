// Task types for QueueShutdownTests (issue 18): a child blocked in a queue's get, put or join while
// another process shuts the queue down, and a child that shuts it down.
public import Multiprocessing

/// What a child's calls got: the items, then the code of the error that ended them.
public struct QueueCallsOutcome: Codable, Sendable, Equatable {
    public var items: [Int]
    public var code: String
    public var message: String
}

/// Gets items (waiting up to a minute for each) until a get throws.
public struct GetUntilRefused: ProcessTask {
    public var queue: Queue<Int>
    public init(queue: Queue<Int>) { self.queue = queue }
    public func run() throws -> QueueCallsOutcome {
        var items: [Int] = []
        while true {
            do {
                items.append(try queue.get(timeout: .seconds(60)))
            } catch let error as MultiprocessingError {
                return QueueCallsOutcome(items: items, code: "\(error.code)", message: error.message)
            }
        }
    }
}

/// Puts items (waiting up to a minute for room for each) until a put throws; the items are 1, 2, ….
public struct PutUntilRefused: ProcessTask {
    public var queue: Queue<Int>
    public init(queue: Queue<Int>) { self.queue = queue }
    public func run() throws -> QueueCallsOutcome {
        var items: [Int] = []
        while true {
            do {
                try queue.put(items.count + 1, timeout: .seconds(60))
                items.append(items.count + 1)
            } catch let error as MultiprocessingError {
                return QueueCallsOutcome(items: items, code: "\(error.code)", message: error.message)
            }
        }
    }
}

/// Waits for every task of the queue to be done; returns "joined", or the error's code.
public struct JoinQueue: ProcessTask {
    public var queue: JoinableQueue<Int>
    public init(queue: JoinableQueue<Int>) { self.queue = queue }
    public func run() throws -> String {
        do {
            try queue.join(timeout: .seconds(60))
            return "joined"
        } catch let error as MultiprocessingError {
            return "\(error.code)"
        }
    }
}

/// Shuts the queue down from this process.
public struct ShutDownQueue: ProcessTask {
    public var queue: Queue<Int>
    public var immediate: Bool
    public init(queue: Queue<Int>, immediate: Bool) {
        self.queue = queue
        self.immediate = immediate
    }
    public func run() throws {
        queue.shutdown(immediate: immediate)
    }
}
