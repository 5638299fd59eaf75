// Task types for QueuePacingTests (issue 18): a consumer in a child process for a producer that
// the queue paces.
public import Multiprocessing

/// Takes `count` items and checks that each is `size` bytes of its index (mod 256), in order.
/// Returns the number of items that were right.
public struct ConsumeNumberedItems: ProcessTask {
    public var queue: Queue<[UInt8]>
    public var count: Int
    public var size: Int
    public init(queue: Queue<[UInt8]>, count: Int, size: Int) {
        self.queue = queue
        self.count = count
        self.size = size
    }
    public func run() throws -> Int {
        var right = 0
        for i in 0..<count {
            let item = try queue.get(timeout: .seconds(120))
            if item.count == size && item.first == UInt8(truncatingIfNeeded: i) && item.last == UInt8(truncatingIfNeeded: i) {
                right += 1
            }
        }
        return right
    }
}
