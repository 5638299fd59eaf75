// The tutorial's "data between processes" section: processes cannot see each other's data, so they
// share it through a Queue made in the parent (and, beside it, a Pipe's Swift twin, Connection).
import ArgumentParser
import Multiprocessing

/// Puts each word into the queue, a little apart.
struct QueueWriter: ProcessTask {
    var queue: Queue<String>
    var words: [String]
    func run() throws {
        for word in words {
            print("Put \(word) to queue...")
            try queue.put(word)
            pause(seconds: 0.2)
        }
    }
}

/// Takes words until the queue is closed and drained.
struct QueueReader: ProcessTask {
    var queue: Queue<String>
    func run() throws {
        while true {
            do {
                print("Get \(try queue.get()) from queue.")
            } catch let error as MultiprocessingError where error.code == .closed {
                return
            }
        }
    }
}

struct IPCQueue: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue",
        abstract: "a writer process and a reader process share a Queue")
    func run() throws {
        let queue = try Queue<String>()
        let writer = ChildProcess(QueueWriter(queue: queue, words: ["A", "B", "C"]))
        let reader = ChildProcess(QueueReader(queue: queue))
        try writer.start()
        try reader.start()
        try writer.join()
        // Python's reader loops for ever and is terminated; here closing the queue ends it cleanly
        // once it has taken everything.
        queue.close()
        try reader.join()
    }
}

/// Answers the parent over its end of a connection.
struct PipeChild: ProcessTask {
    var connection: Connection
    func run() throws {
        try connection.send("hello from the child")
        let reply = try connection.receive(String.self)
        print("child received: \(reply)")
    }
}

struct IPCPipe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pipe",
        abstract: "a parent and a child talk over Connection.pipe()")
    func run() throws {
        let (parentEnd, childEnd) = try Connection.pipe()
        let child = ChildProcess(PipeChild(connection: childEnd))
        try child.start()
        print("parent received: \(try parentEnd.receive(String.self, timeout: .seconds(10)))")
        try parentEnd.send("hello from the parent")
        try child.join()
    }
}

let ipcExampleCommands: [any ParsableCommand.Type] = [IPCQueue.self, IPCPipe.self]
