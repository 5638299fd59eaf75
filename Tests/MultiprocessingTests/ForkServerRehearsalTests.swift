// The fork server's rehearsal of a pool function's type (issue 15): a rehearsal that names a
// pool function is done, one that names nothing or something else is answered "not found", and
// a malformed, oversized or unsendable one is refused; none of them stops the server, which
// forks the next child as before. A recycling pool (which rehearses) still gives every result.
import Glibc
@testable import Multiprocessing
import MultiprocessingSystem
import SystemPackage
import TestSupport
import Testing

@Suite("ForkServer rehearsal", .serialized)
struct ForkServerRehearsalTests {
    private static var key: ForkServerKey {
        let configuration = ChildProcessConfiguration.default
        return ForkServerKey(executable: configuration.resolvedExecutable, environment: configuration.environmentEntries)
    }

    /// The next message from the server, waiting up to 60 s for it (nil when none came).
    private static func next(_ link: ForkServerLink) throws -> ForkServerMessage? {
        let ready = try system_poll(link.socket, events: systemPollIn, timeoutMilliseconds: 60_000)
        guard ready != 0 else { return nil }
        guard case .message(let message) = try link.receive() else { return nil }
        return message
    }

    private static func sendRaw(_ link: ForkServerLink, _ bytes: [UInt8], descriptors: [Int32] = []) throws {
        _ = try bytes.withUnsafeBytes { (buffer) throws(Errno) -> Int in try system_sendWithDescriptors(link.socket, buffer, descriptors) }
    }

    private static func header(kind: UInt32, value: Int32, id: UInt64 = 0) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: kind.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: id.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    @Test func rehearsalMessagesRoundTripAndMalformedOnesAreNotMessages() {
        let name = Array((_mangledTypeName(RehearsedSquare.self) ?? "").utf8)
        #expect(ForkServerMessage(ForkServerMessage.rehearse(typeName: name).bytes) == .rehearse(typeName: name))
        #expect(ForkServerMessage(ForkServerMessage.rehearsed(found: true).bytes) == .rehearsed(found: true))
        // The length field and the size disagree, either way.
        #expect(ForkServerMessage(Self.header(kind: 4, value: 5) + Array("Si".utf8)) == nil)
        #expect(ForkServerMessage(Self.header(kind: 4, value: 1) + Array("Si".utf8)) == nil)
        // No name; a symbolic reference (a control byte and a relative pointer); a space; too long.
        #expect(ForkServerMessage(Self.header(kind: 4, value: 0)) == nil)
        #expect(ForkServerMessage(Self.header(kind: 4, value: 5) + [1, 0xff, 0xff, 0xff, 0x7f]) == nil)
        #expect(ForkServerMessage(Self.header(kind: 4, value: 3) + Array("S i".utf8)) == nil)
        let long = [UInt8](repeating: UInt8(ascii: "A"), count: ForkServerMessage.maximumTypeName + 1)
        #expect(ForkServerMessage(Self.header(kind: 4, value: Int32(long.count)) + long) == nil)
        // A 16-byte kind with bytes after it; a rehearsal with a record id.
        #expect(ForkServerMessage(ForkServerMessage.fork(recordID: 1, daemon: true, outlivesParent: false).bytes + [0]) == nil)
        #expect(ForkServerMessage(Self.header(kind: 4, value: 2, id: 7) + Array("Si".utf8)) == nil)
        #expect(ForkServerMessage(Self.header(kind: 5, value: 2)) == nil)
    }

    @Test func aNameThatCannotBeSentIsRefusedWithAClearError() {
        let link = ForkServerLink(key: Self.key, socket: -1, pid: 0, pidfd: -1)
        for bad in ["", "has space", "tab\tname", String(repeating: "A", count: ForkServerMessage.maximumTypeName + 1)] {
            let error = #expect(throws: MultiprocessingError.self) { try link.rehearse(typeName: bad) }
            #expect(error?.code == .misuse)
            #expect(error?.message.contains("Cannot rehearse the type name") == true)
        }
    }

    /// A fork server of its own (not the monitor's), so that its answers can be read here: every
    /// bad rehearsal leaves it serving, in order, and it then forks a child as before.
    @Test func badAndUnknownRehearsalsLeaveTheServerServing() throws {
        let link = try ForkServerLink.start(Self.key)
        defer {
            system_close(link.socket) // the server sees the end of its socket and exits
            _ = try? system_waitpid(link.pid, block: true)
            if link.pidfd >= 0 { system_close(link.pidfd) }
        }
        // Names the server looks up: unknown ones, a type that is no pool function, a pool function.
        try link.rehearse(typeName: "$s7Nowhere5ThingV")
        #expect(try Self.next(link) == .rehearsed(found: false))
        try link.rehearse(typeName: "Si")
        #expect(try Self.next(link) == .rehearsed(found: false))
        try link.rehearse(typeName: "This_is-not~a(mangled)name!")
        #expect(try Self.next(link) == .rehearsed(found: false))
        try link.rehearse(typeName: try #require(_mangledTypeName(RehearsedLabel.self)))
        #expect(try Self.next(link) == .rehearsed(found: true))

        // Messages the server refuses (no answer): a symbolic reference, a length that lies, an
        // oversized message, an unknown kind, a rehearsal carrying a descriptor, a fork without one.
        try Self.sendRaw(link, Self.header(kind: 4, value: 5) + [1, 0xff, 0xff, 0xff, 0x7f])
        try Self.sendRaw(link, Self.header(kind: 4, value: 900) + Array("Si".utf8))
        try Self.sendRaw(link, Self.header(kind: 4, value: 5000) + [UInt8](repeating: UInt8(ascii: "A"), count: 5000))
        try Self.sendRaw(link, Self.header(kind: 99, value: 0))
        let stray = try system_dupCloseOnExec(link.socket)
        try Self.sendRaw(link, ForkServerMessage.rehearse(typeName: Array("Si".utf8)).bytes, descriptors: [stray])
        system_close(stray)
        try Self.sendRaw(link, ForkServerMessage.fork(recordID: 41, daemon: true, outlivesParent: false).bytes)
        // In order on the socket: this answer comes after every refused message was read.
        try link.rehearse(typeName: "$s7Nowhere5ThingV")
        #expect(try Self.next(link) == .rehearsed(found: false))

        // And the server still forks: the child reports itself, and ends once its socket closes.
        let (mine, theirs) = try system_socketpairSeqpacket()
        try link.requestChild(recordID: 42, daemon: true, outlivesParent: false, socket: theirs)
        system_close(theirs)
        let started = try Self.next(link)
        guard case .started(let recordID, let pid)? = started else {
            Issue.record("the fork server answered \(String(describing: started)) instead of a started child")
            system_close(mine)
            return
        }
        #expect(recordID == 42)
        system_close(mine)
        #expect(try system_waitpid(pid, block: true) != nil)
        #expect(kill(link.pid, 0) == 0, "the fork server is still alive")
    }

    /// A recycling pool rehearses its functions in the monitor's fork server: the same server
    /// serves on, and every result is right, with two functions and a worker replaced every
    /// three tasks.
    @Test func recyclingAfterARehearsalGivesEveryRightResult() throws {
        let pool = try ProcessPool(workers: 2, recycling: .after(tasks: 3))
        defer { pool.terminate() }
        let server = ProcessMonitor.shared.forkServerPID(Self.key)
        #expect(server != nil)
        let squares = try pool.map(RehearsedSquare(), over: Array(0..<60), chunking: .fixed(1))
        #expect(squares == (0..<60).map { $0 * $0 })
        let labels = try pool.map(RehearsedLabel(prefix: "n"), over: Array(0..<40), chunking: .fixed(1))
        #expect(labels == (0..<40).map { "n\($0)" })
        let again = try pool.map(RehearsedSquare(), over: Array(0..<30), chunking: .fixed(2))
        #expect(again == (0..<30).map { $0 * $0 })
        #expect(ProcessMonitor.shared.forkServerPID(Self.key) == server)
    }
}
