public import Multiprocessing

/// Puts 1...count on a queue it holds as a plain `Queue`; the parent sends a JoinableQueue.
public struct PutThroughTheQueueView: ProcessTask {
    public var queue: Queue<Int>
    public var count: Int
    public init(queue: Queue<Int>, count: Int) {
        self.queue = queue
        self.count = count
    }
    public func run() throws -> Int {
        for n in 1...count { try queue.put(n) }
        // The view sees the joinable queue's count of unfinished tasks through its items.
        return queue.qsize
    }
}
