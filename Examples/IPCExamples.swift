// Beside the tutorial's Queue (QueueExamples.swift): Python's Pipe, whose Swift twin is Connection.
import ArgumentParser
import Multiprocessing

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
