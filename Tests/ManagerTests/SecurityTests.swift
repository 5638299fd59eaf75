import Foundation
import Testing
import TestHarness
import Multiprocessing
import SystemPackage
@testable import MultiprocessingManager
import MultiprocessingConnection
import ManagerTestSupport
import MultiprocessingSystem

/// A raw socket to a manager, for sending what a well-behaved client never would.
func rawSocket(_ address: ManagerAddress?) throws -> FrameSocket {
    guard case .unix(let path)? = address else { throw MultiprocessingError(.misuse, "expected a Unix manager") }
    let fd = try ManagerPlatform.unixSocket()
    try ManagerPlatform.connectUnix(fd, path: path)
    ManagerPlatform.setIOTimeout(fd, nanoseconds: 10_000_000_000)
    return FrameSocket(descriptor: fd, maximumMessageSize: 1 << 20)
}

/// A raw socket that has passed the handshake.
func authenticatedSocket(_ manager: Manager) throws -> FrameSocket {
    let socket = try rawSocket(manager.address)
    try Handshake.connect(socket, key: manager.authKey, clientID: 424242, address: manager.address!)
    return socket
}

/// Whether the server closed `socket` (a read sees the end of the stream, not a timeout).
func serverClosed(_ socket: FrameSocket) -> Bool {
    do {
        _ = try socket.readFrame()
        return false
    } catch let error as MultiprocessingError {
        return error.code == .endOfStream || error.code == .malformedFrame
    } catch {
        return false
    }
}

extension ManagerTests {
    /// The server still serves a well-behaved client after each attack.
    func stillServes(_ manager: Manager, _ counters: ManagedDictionary<String, Int>) throws {
        let before = try counters.get("good") ?? 0
        #expect(try counters.increment("good") == before + 1)
        let fresh = try Manager.connect(address: manager.address!, authKey: manager.authKey)
        #expect(try fresh.dictionary(String.self, Int.self, name: "c").get("good") == before + 1)
    }

    @Test func wrongKeyOnTheClientSideIsRefused() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        #expect { try Manager.connect(address: manager.address!, authKey: AuthKey.random()) } throws: { error in
            let e = error as? MultiprocessingError
            return e?.code == .authenticationFailed && e?.message.contains("Authentication") == true
        }
        try stillServes(manager, counters)
    }

    @Test func wrongKeyOnTheServerSideIsDetectedByTheClient() throws {
        // An impostor that accepts any client answer but cannot prove it holds the key.
        let directory = try ManagerPlatform.makeTemporaryDirectory(prefix: "/tmp/mp-impostor-")
        let path = directory + "/socket"
        let listener = try ManagerPlatform.unixSocket()
        try ManagerPlatform.listenUnix(listener, path: path, backlog: 4)
        defer {
            ManagerPlatform.close(listener)
            ManagerPlatform.unlink(path)
            ManagerPlatform.removeDirectory(directory)
        }
        let sawRequest = Mutex_(false)
        let impostor = Thread {
            guard let fd = try? ManagerPlatform.accept(listener) else { return }
            let socket = FrameSocket(descriptor: fd, maximumMessageSize: 1 << 20)
            ManagerPlatform.setIOTimeout(fd, nanoseconds: 5_000_000_000)
            try? socket.write([0x4D, 0x50, 0x4D, 0x47, 1, 0, 0, 0] + [UInt8](repeating: 7, count: 32))
            _ = try? socket.readExactly(72)
            try? socket.write([0] + [UInt8](repeating: 0, count: 32))
            // A client that checked the server's proof closes now, without sending a request.
            if (try? socket.readFrame()) != nil { sawRequest.set(true) }
        }
        impostor.start()
        #expect { try Manager.connect(address: .unix(path: path), authKey: AuthKey.random()) } throws: {
            ($0 as? MultiprocessingError)?.code == .authenticationFailed
        }
        #expect(eventually { impostor.isFinished })
        #expect(sawRequest.get() == false)
    }

    @Test func silentClientIsDisconnectedAtTheHandshakeDeadline() throws {
        let manager = try started(ManagerLimits(handshakeTimeout: .milliseconds(200)))
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let silent = try rawSocket(manager.address)
        _ = try silent.readExactly(Handshake.serverHelloSize)
        let (closed, elapsed) = timed { serverClosed(silent) }
        #expect(closed)
        #expect(elapsed < .seconds(3))
        try stillServes(manager, counters)
    }

    @Test func garbageInsteadOfAHandshakeIsRefused() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let socket = try rawSocket(manager.address)
        _ = try socket.readExactly(Handshake.serverHelloSize)
        try socket.write((0..<72).map { _ in UInt8.random(in: 0...255) })
        let answer = try socket.readExactly(Handshake.serverAnswerSize)
        #expect(answer[0] == 1)
        #expect(serverClosed(socket))
        try stillServes(manager, counters)
    }

    @Test func malformedTruncatedAndOversizedFramesCloseOnlyThatConnection() throws {
        let manager = try started(ManagerLimits(maximumMessageSize: 4096))
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")

        // Bytes that are not a frame.
        let garbage = try authenticatedSocket(manager)
        try garbage.write(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(serverClosed(garbage))
        try stillServes(manager, counters)

        // A frame cut short: the header promises 100 bytes, 10 come, then the client leaves.
        let truncated = try authenticatedSocket(manager)
        var header = [UInt8](repeating: 0, count: 16)
        header.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: 100, into: $0) }
        try truncated.write(header + [UInt8](repeating: 1, count: 10))
        ManagerPlatform.shutdown(truncated.descriptor)
        truncated.close()
        try stillServes(manager, counters)

        // A header announcing more than the limit: closed before anything is allocated or read,
        // after an error reply that names the limit.
        let oversized = try authenticatedSocket(manager)
        header.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: 1 << 40, into: $0) }
        try oversized.write(header)
        var refusal = ByteReader(try oversized.readFrame())
        #expect(try refusal.byte() == ReplyStatus.closing.rawValue)
        #expect(try refusal.string() == "misuse")
        #expect(try refusal.string().contains("maximumMessageSize of 4096 bytes"))
        #expect(serverClosed(oversized))
        try stillServes(manager, counters)

        // The same through the API: a value above the limit fails that call only.
        let big = try manager.dictionary(String.self, [UInt8].self, name: "big")
        #expect(throws: MultiprocessingError.self) { try big.set("x", [UInt8](repeating: 1, count: 10_000)) }
        try stillServes(manager, counters)

        // A well-formed request body with nonsense inside: a malformed reply, then closed.
        let nonsense = try authenticatedSocket(manager)
        var body = [UInt8](repeating: 0, count: 16) + [Op.dSet.rawValue, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]
        let bodyLength = body.count - 16
        body.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: bodyLength, into: $0) }
        try nonsense.write(body)
        var reply = ByteReader(try nonsense.readFrame())
        #expect(try reply.byte() == ReplyStatus.error.rawValue)
        #expect(serverClosed(nonsense))
        try stillServes(manager, counters)
    }

    @Test func unknownOperationsObjectsAndTypesGetErrorReplies() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let socket = try authenticatedSocket(manager)
        func ask(_ op: UInt8, _ object: UInt64, _ extra: [UInt8] = []) throws -> (UInt8, String) {
            var w = ByteWriterRaw()
            w.bytes = [UInt8](repeating: 0, count: 16) + [op]
            w.varint(object)
            w.bytes += extra
            let length = w.bytes.count - 16
            w.bytes.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: length, into: $0) }
            try socket.write(w.bytes)
            var r = ByteReader(try socket.readFrame())
            let status = try r.byte()
            return (status, status == 0 ? "" : try r.string())
        }
        #expect(try ask(250, 0) == (1, "notFound"))
        #expect(try ask(Op.dCount.rawValue, 9999) == (1, "notFound"))
        #expect(try ask(Op.qCount.rawValue, counters.reference.id) == (1, "notFound"))  // wrong kind
        var create = ByteWriterRaw()
        create.bytes = [99, 0, 0, 0]  // an unknown kind
        #expect(try ask(Op.create.rawValue, 0, create.bytes) == (1, "notFound"))
        var actor = ByteWriterRaw()
        actor.varint(5)
        actor.bytes += Array("Nope1".utf8) + [0]
        #expect(try ask(Op.actorCreate.rawValue, 0, actor.bytes) == (1, "notFound"))
        // The same connection still works.
        #expect(try ask(Op.ping.rawValue, 0) == (0, ""))
        try stillServes(manager, counters)
    }
}

/// A tiny lock-protected box for test threads.
final class Mutex_<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ new: T) { lock.lock(); value = new; lock.unlock() }
    /// A read-modify-write under one lock (a get then a set can lose another thread's update).
    func update(_ body: (inout T) -> Void) { lock.lock(); body(&value); lock.unlock() }
}

extension ManagerTests {
    @Test func aProxyCarriesItsKeyOnlyToLocalChildren() throws {
        let key = AuthKey("a very particular key for this test")
        let manager = Manager(authKey: key)
        try manager.start()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self)
        func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
            guard haystack.count >= needle.count else { return false }
            return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
        }
        // Encoded for the wire (a manager value, a file, TCP): no key.
        let plain = try WireEncoder().encode(counters)
        #expect(!contains(plain, key.bytes))
        // Encoded for a local child (a task's arguments or a Connection): the key goes along.
        let local = try WireEncoder(userInfo: [.descriptorTransfer: DescriptorTransfer()]).encode(counters)
        #expect(contains(local, key.bytes))
        // And a child given the proxy authenticates with it (its own default key differs).
        let child = ChildProcess(IncrementTask(counters: counters, key: "k", times: 3))
        try child.start()
        #expect(try child.value(timeout: .seconds(20)) == 3)
    }
}
