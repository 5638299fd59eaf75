import Foundation
import Testing
import TestHarness
import SystemPackage
public import Multiprocessing
public import MultiprocessingConnection

// Children of these tests run this test binary: their task types live here.

/// Connects to a listener with the inherited key (or `key`), sends its pid and name, then echoes
/// one message back.
public struct ConnectAndReport: ProcessTask {
    public var address: ConnectionAddress
    public var keyHex: String?
    public init(address: ConnectionAddress, keyHex: String? = nil) {
        self.address = address
        self.keyHex = keyHex
    }
    public func run() throws -> String {
        let key = keyHex.map { hex in AuthKey(stride(from: 0, to: hex.count, by: 2).map { i -> UInt8 in
            let start = hex.index(hex.startIndex, offsetBy: i)
            return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16) ?? 0
        }) } ?? CurrentProcess.authKey
        do {
            let connection = try Connection.connect(to: address, authKey: key)
            try connection.send("\(CurrentProcess.pid) \(CurrentProcess.name)")
            let echo = try connection.receive(String.self, timeout: .seconds(60))
            try connection.send(echo)
            return "connected"
        } catch let error as MultiprocessingError {
            return "\(error.code): \(error.message)"
        }
    }
}

/// Listens, reports its address on `report`, accepts one client and returns what it sent.
public struct ListenOnce: ProcessTask {
    public var report: Connection
    public init(report: Connection) { self.report = report }
    public func run() throws -> String {
        let listener = try Listener(address: .tcp(host: "127.0.0.1", port: 0))
        try report.send(listener.address)
        do {
            let connection = try listener.accept(timeout: .seconds(60))
            return try connection.receive(String.self, timeout: .seconds(60))
        } catch let error as MultiprocessingError {
            return "\(error.code)"
        }
    }
}

func expectCode(_ code: MultiprocessingError.Code, _ text: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected \(code)", sourceLocation: sourceLocation)
    } catch let error as MultiprocessingError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(text.isEmpty || error.message.contains(text), "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// A raw client socket, for peers that do not follow the protocol.
func rawConnect(_ address: ConnectionAddress) throws -> CInt {
    switch address {
    case .unix(let path):
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { throw Errno(rawValue: errno) }
        return fd
    default:
        throw Errno.invalidArgument
    }
}

func rawWrite(_ fd: CInt, _ bytes: [UInt8]) {
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, CInt(MSG_NOSIGNAL)) }
}

@Suite("Listener and client")
struct ListenerTests {
    static let addresses: [String] = ["default", "unix", "abstract", "tcp"]

    func makeListener(_ kind: String, authKey: AuthKey? = CurrentProcess.authKey) throws -> Listener {
        switch kind {
        case "unix":
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mp-conn-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return try Listener(address: .unix(path: dir.path + "/s"), authKey: authKey)
        case "abstract":
            return try Listener(address: .abstract(name: "mp-test-\(getpid())-\(UUID().uuidString.prefix(8))"), authKey: authKey)
        case "tcp":
            return try Listener(address: .tcp(host: "127.0.0.1", port: 0), authKey: authKey)
        default:
            return try Listener(authKey: authKey)
        }
    }

    @Test("a client thread and the listener talk both ways", arguments: addresses)
    func threadFlavour(kind: String) throws {
        let listener = try makeListener(kind)
        if case .tcp(_, let port) = listener.address { #expect(port > 0) }
        let address = listener.address
        let client = OSThread(name: "client") { () throws -> Int in
            let connection = try Connection.connect(to: address)
            try connection.send("hello from the client")
            return try connection.receive(Int.self, timeout: .seconds(60))
        }
        try client.start()
        let connection = try listener.accept(timeout: .seconds(60))
        #expect(try connection.receive(String.self, timeout: .seconds(60)) == "hello from the client")
        try connection.send(42)
        try client.join(timeout: .seconds(60))
        #expect(try client.result(as: Int.self) == 42)
        #expect(connection.carriesDescriptors == (kind != "tcp"))
        listener.close()
    }

    @Test("a child process connects with the key it inherited", arguments: [StartMethod.spawn, .forkServer])
    func processFlavour(method: StartMethod) throws {
        for kind in ["default", "tcp", "abstract"] {
            let listener = try makeListener(kind)
            let child = ChildProcess(ConnectAndReport(address: listener.address), name: "client-\(kind)", startMethod: method)
            try child.start()
            let connection = try listener.accept(timeout: .seconds(60))
            let hello = try connection.receive(String.self, timeout: .seconds(60))
            #expect(hello == "\(child.pid ?? 0) client-\(kind)")
            try connection.send("echo \(kind)")
            #expect(try connection.receive(String.self, timeout: .seconds(60)) == "echo \(kind)")
            #expect(try child.value(timeout: .seconds(60)) == "connected")
        }
    }

    @Test("the listener in a child, the client here", arguments: [StartMethod.spawn, .forkServer])
    func listenerInAChild(method: StartMethod) throws {
        let (mine, theirs) = try Connection.pipe()
        let child = ChildProcess(ListenOnce(report: theirs), startMethod: method)
        try child.start()
        let address = try mine.receive(ConnectionAddress.self, timeout: .seconds(60))
        let connection = try Connection.connect(to: address)
        try connection.send("to the child's listener")
        #expect(try child.value(timeout: .seconds(60)) == "to the child's listener")
    }

    @Test("a wrong key is refused on both sides", arguments: ["default", "tcp"])
    func wrongKeyThread(kind: String) throws {
        let listener = try makeListener(kind)
        let address = listener.address
        let client = OSThread(name: "wrong-key") { () throws -> String in
            do {
                _ = try Connection.connect(to: address, authKey: AuthKey("not the key"))
                return "connected"
            } catch let error as MultiprocessingError {
                return "\(error.code)"
            }
        }
        try client.start()
        expectCode(.authenticationFailed, "does not hold this listener's key") { _ = try listener.accept(timeout: .seconds(60)) }
        try client.join(timeout: .seconds(60))
        #expect(try client.result(as: String.self) == "authenticationFailed")
        // The listener still serves the next, right client.
        let good = OSThread(name: "right-key") { () throws -> Void in
            let connection = try Connection.connect(to: address)
            try connection.send(1)
        }
        try good.start()
        #expect(try listener.accept(timeout: .seconds(60)).receive(Int.self, timeout: .seconds(60)) == 1)
        try good.join(timeout: .seconds(60))
    }

    @Test func aChildWithAnotherKeyIsRefused() throws {
        let listener = try makeListener("tcp")
        let child = ChildProcess(ConnectAndReport(address: listener.address, keyHex: AuthKey("other").hex))
        try child.start()
        expectCode(.authenticationFailed) { _ = try listener.accept(timeout: .seconds(60)) }
        let outcome = try child.value(timeout: .seconds(60))
        #expect(outcome.hasPrefix("authenticationFailed: Authentication with the listener at"), "\(outcome)")
    }

    @Test("garbage before authentication is refused, and nothing of it is decoded")
    func garbageBeforeAuthentication() throws {
        let listener = try Listener()
        // 72 bytes of garbage where the answer belongs, then a well-formed message frame.
        let fd = try rawConnect(listener.address)
        defer { close(fd) }
        let (x, y) = try Connection.pipe()
        try x.send("smuggled")
        let frame = try y.receiveMessage()   // (only to build valid frame bytes below)
        _ = frame
        rawWrite(fd, [UInt8](repeating: 0xAB, count: 72) + [0x4D, 0x50, 0x46, 0x31, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3])
        expectCode(.authenticationFailed) { _ = try listener.accept(timeout: .seconds(60)) }
        // The raw peer was told: status 1, then the socket closes.
        var reply = [UInt8](repeating: 0, count: 128)
        var total = 0
        while true {
            let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + total, $0.count - total, 0) }
            if n <= 0 { break }
            total += n
        }
        #expect(total == 40 + 33)
        #expect(reply[40] == 1)
    }

    @Test("a client that stalls in the handshake times out; one that leaves halfway is a clear error")
    func stalledAndTruncatedClients() throws {
        let listener = try Listener(handshakeTimeout: .milliseconds(300))
        let stalled = try rawConnect(listener.address)
        defer { close(stalled) }
        rawWrite(stalled, [1, 2, 3])
        expectCode(.timedOut, "stalled") { _ = try listener.accept(timeout: .seconds(60)) }

        let leaving = try rawConnect(listener.address)
        rawWrite(leaving, [1, 2, 3])
        close(leaving)
        // Gone before the greeting was written (endOfStream), or after (its 3 bytes: malformedFrame).
        do {
            _ = try listener.accept(timeout: .seconds(60))
            Issue.record("a client that left halfway must not be accepted")
        } catch let error as MultiprocessingError {
            #expect(error.code == .endOfStream || (error.code == .malformedFrame && error.message.contains("middle of a handshake message")), "\(error)")
        }

        let silent = try rawConnect(listener.address)
        close(silent)
        expectCode(.endOfStream) { _ = try listener.accept(timeout: .seconds(60)) }
    }

    @Test func aListenerThatNeverAcceptsTimesTheClientOut() throws {
        let listener = try makeListener("tcp")
        expectCode(.timedOut, "did not finish within") {
            _ = try Connection.connect(to: listener.address, handshakeTimeout: .milliseconds(300))
        }
    }

    @Test func aServerThatIsNotAListenerIsAClearError() throws {
        let listener = try Listener(authKey: nil)
        let address = listener.address
        let server = OSThread(name: "not-a-listener") { () throws -> Void in
            let connection = try listener.accept(timeout: .seconds(60))
            try connection.fileDescriptor.writeAll([UInt8](repeating: 0x55, count: 40))
            _ = try? connection.receiveBytes(timeout: .seconds(60))
        }
        try server.start()
        expectCode(.malformedFrame, "is not a listener") { _ = try Connection.connect(to: address) }
        try server.join(timeout: .seconds(60))
    }

    @Test("a truncated frame after authentication is a clear error", arguments: ["default", "tcp"])
    func truncatedFrame(kind: String) throws {
        let listener = try makeListener(kind)
        let address = listener.address
        let client = OSThread(name: "truncating") { () throws -> Void in
            let connection = try Connection.connect(to: address)
            // A header announcing 100 bytes, 10 of them, then the end.
            try connection.fileDescriptor.writeAll([0x4D, 0x50, 0x46, 0x31, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 7, count: 10))
            connection.close()
        }
        try client.start()
        let connection = try listener.accept(timeout: .seconds(60))
        try client.join(timeout: .seconds(60))
        expectCode(.malformedFrame, "inside a message") { _ = try connection.receiveBytes(timeout: .seconds(60)) }
    }

    @Test func descriptorsTravelOnUnixSocketsOnly() throws {
        for kind in ["default", "tcp"] {
            let listener = try makeListener(kind)
            let address = listener.address
            let client = OSThread(name: "client") { () throws -> Connection in try Connection.connect(to: address) }
            try client.start()
            let accepted = try listener.accept(timeout: .seconds(60))
            try client.join(timeout: .seconds(60))
            let mine = try client.result(as: Connection.self)
            let (inner1, inner2) = try Connection.pipe()
            if kind == "tcp" {
                expectCode(.misuse, "network connection cannot carry") { try mine.send(inner1) }
            } else {
                try mine.send(inner1)
                try accepted.receive(Connection.self, timeout: .seconds(60)).send("via the passed end")
                #expect(try inner2.receive(String.self, timeout: .seconds(60)) == "via the passed end")
            }
        }
    }

    @Test func noKeyMeansNoHandshake() throws {
        let listener = try Listener(authKey: nil)
        let address = listener.address
        let client = OSThread(name: "client") { () throws -> Void in
            try Connection.connect(to: address, authKey: nil).send("no key")
        }
        try client.start()
        #expect(try listener.accept(timeout: .seconds(60)).receive(String.self, timeout: .seconds(60)) == "no key")
        try client.join(timeout: .seconds(60))
        expectCode(.misuse, "without a key") { _ = try Listener(address: .tcp(host: "127.0.0.1", port: 0), authKey: nil) }
        expectCode(.misuse, "empty") { _ = try Listener(authKey: AuthKey([])) }
    }

    @Test func badAddressesAreClearErrors() throws {
        expectCode(.systemCall, "could not connect") { _ = try Connection.connect(to: .unix(path: "/nonexistent/dir/socket")) }
        expectCode(.systemCall) { _ = try Listener(address: .tcp(host: "not an address", port: 0)) }
        expectCode(.systemCall) { _ = try Listener(address: .unix(path: "/tmp/" + String(repeating: "x", count: 200))) }
        let taken = try makeListener("tcp")
        expectCode(.systemCall) { _ = try Listener(address: taken.address) }
    }

    @Test func closeWakesAnAcceptAndRemovesTheSocket() throws {
        let listener = try Listener()
        guard case .unix(let path) = listener.address else { Issue.record("not a Unix address"); return }
        #expect(FileManager.default.fileExists(atPath: path))
        let waiter = OSThread(name: "acceptor") { () throws -> String in
            do {
                _ = try listener.accept()
                return "accepted"
            } catch let error as MultiprocessingError {
                return "\(error.code)"
            }
        }
        try waiter.start()
        // (The accept may start before or after the close: either way it ends with .closed.)
        listener.close()
        try waiter.join(timeout: .seconds(60))
        #expect(try waiter.result(as: String.self) == "closed")
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent))
        expectCode(.closed) { _ = try listener.accept(timeout: .zero) }
        expectCode(.timedOut) { _ = try Listener().accept(timeout: .milliseconds(20)) }
    }

    @Test func waitOnAListener() throws {
        let listener = try Listener()
        #expect(try wait([listener], timeout: .zero).isEmpty)
        let address = listener.address
        let client = OSThread(name: "client") { () throws -> Connection in try Connection.connect(to: address) }
        try client.start()
        #expect(try wait([listener], timeout: .seconds(60)).count == 1)
        _ = try listener.accept(timeout: .seconds(60))
        try client.join(timeout: .seconds(60))
    }

    // Each async call runs on the test's own task and the other side on a thread of its own, so
    // neither waits for a thread of the cooperative pool (busy with the synchronous tests).
    @Test func asyncAccept() async throws {
        let listener = try Listener()
        let address = listener.address
        let client = OSThread(name: "client") { () throws -> Void in
            try Connection.connect(to: address, handshakeTimeout: .seconds(120)).send("async accept")
        }
        try client.start()
        let accepted = try await listener.accept(timeout: .seconds(120))
        #expect(try await accepted.receive(String.self, timeout: .seconds(120)) == "async accept")
        try await client.join(timeout: .seconds(120))
    }

    @Test func asyncConnect() async throws {
        let listener = try Listener(handshakeTimeout: .seconds(120))
        let server = OSThread(name: "server") { () throws -> String in
            try listener.accept(timeout: .seconds(120)).receive(String.self, timeout: .seconds(120))
        }
        try server.start()
        let client = try await Connection.connect(to: listener.address, handshakeTimeout: .seconds(120))
        try await client.send("async connect")
        try await server.join(timeout: .seconds(120))
        #expect(try server.result(as: String.self) == "async connect")
    }
}
