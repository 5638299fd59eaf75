// Task types and helper scenarios of issue 18's connections and processes (see
// Tests/MultiprocessingTests/ProcessIdentityTests.swift and ConnectionWaitTests.swift).
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing

/// What a child sees of itself and of its parent.
public struct IdentityReport: Codable, Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var pid: Int32
    public var daemon: Bool
    public var alive: Bool
    public var parentName: String?
    public var parentPID: Int32?
    public var parentAlive: Bool?
    public var authKeyHex: String

    public static func here() -> IdentityReport {
        let me = currentProcess()
        let parent = parentProcess()
        return IdentityReport(name: me.name, pid: me.pid, daemon: me.daemon, alive: me.isAlive,
                              parentName: parent?.name, parentPID: parent?.pid, parentAlive: parent?.isAlive,
                              authKeyHex: CurrentProcess.authKey.hex)
    }

    public var description: String {
        "name \(name) daemon \(daemon) alive \(alive) parent \(parentName ?? "none") \(parentPID.map { String($0) } ?? "none") alive \(parentAlive.map { String($0) } ?? "none")"
    }
}

/// Reports ``IdentityReport/here()``; with `grandchild`, also starts a child of its own (by the
/// same start method) and returns what that one reports.
public struct ReportIdentity: ProcessTask {
    public var grandchild: Bool
    /// "spawn" or "forkserver", for the grandchild.
    public var method: String
    public init(grandchild: Bool = false, method: String = "spawn") {
        self.grandchild = grandchild
        self.method = method
    }
    public func run() throws -> [IdentityReport] {
        var reports = [IdentityReport.here()]
        if grandchild {
            let child = ChildProcess(ReportIdentity(), name: "grandchild", startMethod: method == "forkserver" ? .forkServer : .spawn)
            try child.start()
            reports += try child.value(timeout: .seconds(120))
        }
        return reports
    }
}

/// Helper scenarios (run as `mp-test-helper scenario NAME`); returns false for a name it does not know.
public func runConnectionScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    switch name {
    case "identity-fork":
        // A .fork child's identity: its parent is this process, with this key.
        let me = currentProcess()
        print("main \(me.name) \(me.pid) parent \(parentProcess().map { $0.name } ?? "none") key \(CurrentProcess.authKey.hex)")
        let child = ChildProcess<[IdentityReport]>(name: "forked", forking: { [IdentityReport.here()] })
        try child.start()
        for report in try child.value(timeout: .seconds(120)) {
            print("child \(report) key \(report.authKeyHex)")
        }
        fflush(nil)
        return true
    default:
        return false
    }
}

/// Receives messages whatever their type and answers each with a line naming it: "bytes N" for raw
/// bytes, else the sender's type name; a `String` message is answered with its text decoded.
public struct DescribeMessages: ProcessTask {
    public var connection: Connection
    public init(connection: Connection) { self.connection = connection }
    public func run() throws -> Int {
        var count = 0
        while true {
            let message: ReceivedMessage
            do {
                message = try connection.receiveMessage(timeout: .seconds(60))
            } catch let error as MultiprocessingError where error.code == .endOfStream {
                return count
            }
            count += 1
            if message.isRawBytes {
                try connection.send("bytes \(message.bytes.count)")
            } else if message.holds(String.self) {
                try connection.send("text \(try message.decode(String.self))")
            } else {
                try connection.send("value \(message.typeName ?? "?")")
            }
        }
    }
}

/// Sends a report of itself, then raw bytes, on a connection.
public struct SendReport: ProcessTask {
    public var connection: Connection
    public init(connection: Connection) { self.connection = connection }
    public func run() throws {
        try connection.send(IdentityReport.here())
        try connection.sendBytes(Array(0..<100), offset: 10, count: 20)
    }
}

/// Sends `count` bytes (0, 1, 2, ... mod 256) as one raw message.
public struct SendBytesTask: ProcessTask {
    public var connection: Connection
    public var count: Int
    public init(connection: Connection, count: Int) {
        self.connection = connection
        self.count = count
    }
    public func run() throws {
        try connection.sendBytes((0..<count).map { UInt8(truncatingIfNeeded: $0) })
    }
}
