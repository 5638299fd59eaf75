// Tasks for the IPC tests (connections and queues across processes).
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing

/// Puts `start ..< start + count` into a queue.
public struct IPCPutRange: ProcessTask {
    public var queue: Queue<Int>
    public var start: Int
    public var count: Int
    public init(queue: Queue<Int>, start: Int, count: Int) {
        self.queue = queue
        self.start = start
        self.count = count
    }
    public func run() throws {
        for i in start..<(start + count) { try queue.put(i) }
    }
}

/// Takes items until the queue is closed and drained; returns them.
public struct IPCDrain: ProcessTask {
    public var queue: Queue<Int>
    public init(queue: Queue<Int>) { self.queue = queue }
    public func run() throws -> [Int] {
        var items: [Int] = []
        while true {
            do {
                items.append(try queue.get(timeout: .seconds(60)))
            } catch let error as MultiprocessingError where error.code == .closed {
                return items
            }
        }
    }
}

/// A byte item whose content can be checked: an 8-byte sequence number, then `size - 8` bytes
/// that all equal the sequence number's low byte.
public enum IPCPattern {
    public static func make(_ sequence: Int, size: Int) -> [UInt8] {
        var item = [UInt8](repeating: UInt8(truncatingIfNeeded: sequence), count: max(size, 8))
        withUnsafeBytes(of: UInt64(sequence).littleEndian) { raw in
            for i in 0..<8 { item[i] = raw[i] }
        }
        return item
    }

    /// The sequence number, or nil when the item is torn.
    public static func check(_ item: [UInt8]) -> Int? {
        guard item.count >= 8 else { return nil }
        var sequence: UInt64 = 0
        withUnsafeMutableBytes(of: &sequence) { raw in
            for i in 0..<8 { raw[i] = item[i] }
        }
        let s = Int(UInt64(littleEndian: sequence))
        let fill = UInt8(truncatingIfNeeded: s)
        for i in 8..<item.count where item[i] != fill { return nil }
        return s
    }
}

/// Puts `count` patterned byte items of `size` bytes (count < 0: for ever), then returns.
public struct IPCPutPattern: ProcessTask {
    public var queue: Queue<[UInt8]>
    public var count: Int
    public var size: Int
    public init(queue: Queue<[UInt8]>, count: Int, size: Int) {
        self.queue = queue
        self.count = count
        self.size = size
    }
    public func run() throws {
        var sequence = 0
        while count < 0 || sequence < count {
            try queue.put(IPCPattern.make(sequence, size: size))
            sequence += 1
        }
    }
}

/// Takes numbers from a joinable queue, puts their squares on `results`, marks each done.
public struct IPCSquareWorker: ProcessTask {
    public var tasks: JoinableQueue<Int>
    public var results: Queue<Int>
    public init(tasks: JoinableQueue<Int>, results: Queue<Int>) {
        self.tasks = tasks
        self.results = results
    }
    public func run() throws {
        while true {
            let n: Int
            do {
                n = try tasks.get(timeout: .seconds(60))
            } catch let error as MultiprocessingError where error.code == .closed {
                return
            }
            try results.put(n * n)
            try tasks.taskDone()
        }
    }
}

/// Echoes every message on a connection (as raw bytes or as `IPCMessage`) until the end of stream.
public struct IPCEcho: ProcessTask {
    public var connection: Connection
    public init(connection: Connection) { self.connection = connection }
    public func run() throws -> Int {
        var count = 0
        while true {
            do {
                let message = try connection.receive(IPCMessage.self, timeout: .seconds(60))
                try connection.send(message)
                count += 1
            } catch let error as MultiprocessingError where error.code == .endOfStream {
                return count
            }
        }
    }
}

/// A Codable message with a bit of everything.
public struct IPCMessage: Codable, Sendable, Equatable {
    public var id: Int
    public var text: String
    public var values: [Double]
    public var tags: [String: Int]
    public var blob: [UInt8]
    public init(id: Int, text: String, values: [Double], tags: [String: Int], blob: [UInt8]) {
        self.id = id
        self.text = text
        self.values = values
        self.tags = tags
        self.blob = blob
    }
}

/// Receives a value holding a connection and a queue over a connection, then uses both.
public struct IPCReceiveHandles: ProcessTask {
    public struct Handles: Codable, Sendable {
        public var label: String
        public var reply: Connection
        public var queue: Queue<Int>
        public init(label: String, reply: Connection, queue: Queue<Int>) {
            self.label = label
            self.reply = reply
            self.queue = queue
        }
    }
    public var control: Connection
    public init(control: Connection) { self.control = control }
    public func run() throws {
        let handles = try control.receive(Handles.self, timeout: .seconds(30))
        try handles.queue.put(handles.label.count)
        try handles.reply.send("hello from \(CurrentProcess.pid) via \(handles.label)")
    }
}

/// Takes patterned items for ever and reports each one's sequence number (-1 when torn) on `report`.
public struct IPCReportPattern: ProcessTask {
    public var queue: Queue<[UInt8]>
    public var report: Connection
    public init(queue: Queue<[UInt8]>, report: Connection) {
        self.queue = queue
        self.report = report
    }
    public func run() throws {
        while true {
            let item = try queue.get(timeout: .seconds(60))
            try report.send(IPCPattern.check(item) ?? -1)
        }
    }
}
