// The tutorial's last section: processes cannot see each other's data, so they pass it through a
// Queue (or Managers). A producer and two consumers, each in its own process.
import ArgumentParser
import Multiprocessing

/// Puts `count` numbered items into the queue.
struct ProducerTask: ProcessTask {
    var queue: Queue<String>            // a Queue travels to the child inside the task's arguments
    var count: Int
    var interval: Double

    func run() throws {
        for i in 0..<count {
            let item = "item-\(i)"
            try queue.put(item)
            say("[producer] put \(item)")
            pause(seconds: interval)
        }
    }
}

/// Takes items until the queue is closed and empty; returns how many it took.
struct ConsumerTask: ProcessTask {
    var queue: Queue<String>
    var name: String

    func run() throws -> Int {
        var taken = 0
        while true {
            let item: String
            do {
                item = try queue.get()
            } catch let error as MultiprocessingError where error.code == .closed {
                return taken                // closed and drained: every item was delivered
            }
            taken += 1
            say("[\(name)] got \(item)")
        }
    }
}

struct QueueExample: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue",
        abstract: "a producer and two consumers in three processes share a Queue")
    @Option(help: "How many items the producer puts.")
    var items: Int = 10
    @Option(help: "Seconds the producer sleeps after each put.")
    var interval: Double = 0.1

    func run() throws {
        // q = multiprocessing.Queue()
        let queue = try Queue<String>()
        let producer = ChildProcess(ProducerTask(queue: queue, count: items, interval: interval), name: "producer")
        let consumers = (1...2).map { i in
            ChildProcess(ConsumerTask(queue: queue, name: "consumer-\(i)"), name: "consumer-\(i)")
        }
        for consumer in consumers { try consumer.start() }
        try producer.start()
        // Joining the producer before the queue is drained is safe here: a put is done once the
        // item is in shared memory (Python's Queue can deadlock on that join, see the guide).
        try producer.join()
        // Python would send one sentinel (None) per consumer; closing the queue ends every consumer
        // once the items left are taken.
        queue.close()
        var total = 0
        for consumer in consumers {
            let taken = try consumer.value()
            total += taken
            say("\(consumer.name) took \(taken) items")
        }
        say("delivered \(total) of \(items) items")
    }
}
