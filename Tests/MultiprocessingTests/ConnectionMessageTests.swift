import Foundation
import Testing
import TestHarness
import SystemPackage
import Multiprocessing
import TestSupport

/// Issue 18, "Connections": a connection made from a descriptor and its descriptor, sendBytes of a
/// slice, receiveBytes(into:) and its too-short buffer, and messages whose type is not known.
@Suite("Connection messages and descriptors")
struct ConnectionMessageTests {
    private func rawSocketPair() throws -> (CInt, CInt) {
        var fds: [CInt] = [-1, -1]
        guard socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw Errno(rawValue: errno) }
        return (fds[0], fds[1])
    }

    private func rawPipe() throws -> (CInt, CInt) {
        var fds: [CInt] = [-1, -1]
        guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
        return (fds[0], fds[1])
    }

    @Test func adoptsASocketPairAndKeepsItsDescriptor() throws {
        let (x, y) = try rawSocketPair()
        let a = try Connection(adopting: FileDescriptor(rawValue: x))
        let b = try Connection(adopting: FileDescriptor(rawValue: y))
        #expect(try a.fileDescriptor.rawValue == x)
        #expect(a.isReadable && a.isWritable && a.carriesDescriptors)
        try a.send("over an adopted socket")
        #expect(try b.receive(String.self, timeout: .seconds(10)) == "over an adopted socket")
        // It can carry descriptors: send a connection over it.
        let (inner1, inner2) = try Connection.pipe()
        try a.send(inner1)
        let moved = try b.receive(Connection.self, timeout: .seconds(10))
        try moved.send(7)
        #expect(try inner2.receive(Int.self, timeout: .seconds(10)) == 7)
        a.close()
        ipcExpectCode(.closed) { try a.fileDescriptor }
        // Closed with the connection: the peer sees the end of the stream. (Not `fcntl(x)`: a
        // test running beside this one may open a descriptor that gets the number x at once. And
        // not at once: a child another test spawns now holds a copy of x from its clone to its
        // exec.)
        #expect(eventually(within: .seconds(30)) {
            var byte: UInt8 = 0
            return recv(y, &byte, 1, CInt(MSG_DONTWAIT | MSG_PEEK)) == 0
        })
    }

    @Test func adoptsTheEndsOfAPipe() throws {
        let (r, w) = try rawPipe()
        let reader = try Connection(adopting: FileDescriptor(rawValue: r), writable: false)
        let writer = try Connection(adopting: FileDescriptor(rawValue: w), readable: false)
        #expect(reader.isReadable && !reader.isWritable)
        try writer.sendBytes([1, 2, 3])
        #expect(try reader.receiveBytes(timeout: .seconds(10)) == [1, 2, 3])
    }

    @Test func anAdoptedDescriptorReachesAChild() throws {
        let (x, y) = try rawSocketPair()
        let mine = try Connection(adopting: FileDescriptor(rawValue: x))
        let theirs = try Connection(adopting: FileDescriptor(rawValue: y))
        let child = ChildProcess(IPCEcho(connection: theirs))
        try child.start()
        theirs.close()
        let message = IPCMessage(id: 1, text: "adopted", values: [1.5], tags: ["a": 1], blob: [9])
        try mine.send(message)
        #expect(try mine.receive(IPCMessage.self, timeout: .seconds(60)) == message)
        mine.close()
        #expect(try child.value(timeout: .seconds(60)) == 1)
    }

    @Test("adopting a descriptor that cannot carry messages is refused, and the descriptor stays the caller's")
    func adoptingRefusals() throws {
        let devnull = open("/dev/null", O_RDWR)
        defer { close(devnull) }
        let error = ipcExpectCode(.misuse) { try Connection(adopting: FileDescriptor(rawValue: devnull)) }
        #expect(error?.message.contains("neither a stream socket nor a pipe") == true, "\(String(describing: error))")
        #expect(fcntl(devnull, F_GETFD) != -1)

        let udp = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
        defer { close(udp) }
        ipcExpectCode(.misuse) { try Connection(adopting: FileDescriptor(rawValue: udp)) }

        let (r, w) = try rawPipe()
        defer { close(r); close(w) }
        let both = ipcExpectCode(.misuse) { try Connection(adopting: FileDescriptor(rawValue: r)) }
        #expect(both?.message.contains("one direction") == true)
        let wrongWay = ipcExpectCode(.misuse) { try Connection(adopting: FileDescriptor(rawValue: r), readable: false) }
        #expect(wrongWay?.message.contains("reading only") == true, "\(String(describing: wrongWay))")
        let (s1, s2) = try rawSocketPair()
        defer { close(s1); close(s2) }
        ipcExpectCode(.misuse) { try Connection(adopting: FileDescriptor(rawValue: s1), writable: false) }
        ipcExpectCode(.systemCall) { try Connection(adopting: FileDescriptor(rawValue: 100_000)) }
    }

    @Test func sendBytesOfASlice() throws {
        let (a, b) = try Connection.pipe()
        let data = Array(UInt8(0)..<UInt8(100))
        try a.sendBytes(data, offset: 10, count: 5)
        try a.sendBytes(data, offset: 95)
        try a.sendBytes(data, offset: 100)
        #expect(try b.receiveBytes(timeout: .seconds(10)) == [10, 11, 12, 13, 14])
        #expect(try b.receiveBytes(timeout: .seconds(10)) == [95, 96, 97, 98, 99])
        #expect(try b.receiveBytes(timeout: .seconds(10)) == [])
        for (offset, count) in [(-1, 1), (101, nil), (90, 11), (0, -1)] as [(Int, Int?)] {
            let error = ipcExpectCode(.misuse) { try a.sendBytes(data, offset: offset, count: count) }
            #expect(error?.message.contains("sendBytes") == true)
        }
        #expect(try b.poll() == false)   // nothing was sent by the refused calls
    }

    @Test("receiveBytes(into:) fills a buffer; a buffer too short leaves the message readable")
    func receiveBytesInto() throws {
        let (a, b) = try Connection.pipe()
        try a.sendBytes(Array(1...10))
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try b.receiveBytes(into: &buffer, offset: 4, timeout: .seconds(10)) == 10)
        #expect(buffer == [0, 0, 0, 0] + Array(1...10) + [0, 0])

        try a.sendBytes(Array(repeating: 7, count: 40))
        let error = ipcExpectCode(.bufferTooShort) { try b.receiveBytes(into: &buffer, timeout: .seconds(10)) }
        #expect(error?.message.contains("40 bytes") == true, "\(String(describing: error))")
        #expect(buffer == [0, 0, 0, 0] + Array(1...10) + [0, 0])   // untouched
        #expect(try b.poll())                                        // still there
        var big = [UInt8](repeating: 0, count: 64)
        #expect(try b.receiveBytes(into: &big, timeout: .seconds(10)) == 40)
        #expect(big.prefix(40).allSatisfy { $0 == 7 })

        try a.sendBytes(Array(repeating: 3, count: 20))
        ipcExpectCode(.bufferTooShort) { try b.receiveBytes(into: &buffer, offset: 10, timeout: .seconds(10)) }
        #expect(try b.receiveBytes(timeout: .seconds(10)) == Array(repeating: 3, count: 20))

        try a.send(12)
        let value = ipcExpectCode(.coding) { try b.receiveBytes(into: &big, timeout: .seconds(10)) }
        #expect(value?.message.contains("Swift.Int") == true, "\(String(describing: value))")
        ipcExpectCode(.misuse) { try b.receiveBytes(into: &buffer, offset: 17) }
    }

    @Test func receiveBytesIntoFromAChildOverAPipe() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        let child = ChildProcess(SendBytesTask(connection: writer, count: 5000))
        try child.start()
        writer.close()
        var small = [UInt8](repeating: 0, count: 100)
        ipcExpectCode(.bufferTooShort) { try reader.receiveBytes(into: &small, timeout: .seconds(60)) }
        var large = [UInt8](repeating: 0, count: 5000)
        #expect(try reader.receiveBytes(into: &large, timeout: .seconds(60)) == 5000)
        #expect(large == (0..<5000).map { UInt8(truncatingIfNeeded: $0) })
        try child.join(timeout: .seconds(60))
    }

    @Test("a receiver that does not know the type takes the message whole, with its type's name")
    func receiveMessageOfUnknownType() throws {
        let (a, b) = try Connection.pipe()
        try a.send(42)
        try a.sendBytes([1, 2])
        try a.send(IPCMessage(id: 3, text: "t", values: [], tags: [:], blob: []))
        let (inner1, inner2) = try Connection.pipe()
        try a.send(inner1)

        let int = try b.receiveMessage(timeout: .seconds(10))
        #expect(int.typeName == "Swift.Int")
        #expect(int.holds(Int.self) && !int.holds(String.self))
        #expect(try int.decode(Int.self) == 42)
        let wrong = ipcExpectCode(.coding) { try int.decode(String.self) }
        #expect(wrong?.message.contains("Swift.Int") == true && wrong?.message.contains("Swift.String") == true)

        let bytes = try b.receiveMessage(timeout: .seconds(10))
        #expect(bytes.isRawBytes && bytes.typeName == nil && bytes.bytes == [1, 2])
        #expect(try bytes.decode([UInt8].self) == [1, 2])

        let message = try b.receiveMessage(timeout: .seconds(10))
        #expect(message.typeName == "TestSupport.IPCMessage")
        #expect(try message.decode(IPCMessage.self).id == 3)

        let connection = try b.receiveMessage(timeout: .seconds(10))
        #expect(connection.typeName == "Multiprocessing.Connection")
        let decoded = try connection.decode(Connection.self)
        try decoded.send("through a decoded connection")
        #expect(try inner2.receive(String.self, timeout: .seconds(10)) == "through a decoded connection")
    }

    @Test("two ends that disagree on the type get an error naming both types, not a timeout")
    func typeMismatchIsAClearError() throws {
        let (a, b) = try Connection.pipe()
        try a.send("text")
        let error = ipcExpectCode(.coding) { try b.receive(Int.self, timeout: .seconds(10)) }
        #expect(error?.message.contains("Swift.String") == true, "\(String(describing: error))")
        #expect(error?.message.contains("Swift.Int") == true)
        #expect(error?.message.contains("receiveMessage") == true)
        // A struct and another struct of the same shape are different types.
        try a.send(IPCMessage(id: 1, text: "", values: [], tags: [:], blob: []))
        let shape = ipcExpectCode(.coding) { try b.receive(IdentityReport.self, timeout: .seconds(10)) }
        #expect(shape?.message.contains("TestSupport.IPCMessage") == true)
        try a.send([1, 2] as [Int])
        let bytes = ipcExpectCode(.coding) { try b.receiveBytes(timeout: .seconds(10)) }
        #expect(bytes?.message.contains("Swift.Array<Swift.Int>") == true, "\(String(describing: bytes))")
        try a.send(5)
        #expect(try b.receive(Int.self, timeout: .seconds(10)) == 5)
    }

    @Test func receiveMessageAsync() async throws {
        let (a, b) = try Connection.pipe()
        async let received = b.receiveMessage(timeout: .seconds(30))
        try await a.send(2.5)
        let message = try await received
        #expect(message.typeName == "Swift.Double")
        #expect(try message.decode(Double.self) == 2.5)
    }

    @Test("a child's messages of any type are told apart", arguments: [StartMethod.spawn, .forkServer])
    func childDescribesMessages(method: StartMethod) throws {
        let (mine, theirs) = try Connection.pipe()
        let child = ChildProcess(DescribeMessages(connection: theirs), startMethod: method)
        try child.start()
        theirs.close()
        try mine.sendBytes([1, 2, 3])
        try mine.send("hello")
        try mine.send(IdentityReport.here())
        try mine.send([1.0, 2.0])
        #expect(try mine.receive(String.self, timeout: .seconds(60)) == "bytes 3")
        #expect(try mine.receive(String.self, timeout: .seconds(60)) == "text hello")
        #expect(try mine.receive(String.self, timeout: .seconds(60)) == "value TestSupport.IdentityReport")
        #expect(try mine.receive(String.self, timeout: .seconds(60)) == "value Swift.Array<Swift.Double>")
        mine.close()
        #expect(try child.value(timeout: .seconds(60)) == 4)
    }

    @Test func aChildsValueOfAnotherTypeIsAClearError() throws {
        let (mine, theirs) = try Connection.pipe()
        let child = ChildProcess(SendReport(connection: theirs))
        try child.start()
        theirs.close()
        let error = ipcExpectCode(.coding) { try mine.receive(IPCMessage.self, timeout: .seconds(60)) }
        #expect(error?.message.contains("TestSupport.IdentityReport") == true, "\(String(describing: error))")
        #expect(try mine.receiveBytes(timeout: .seconds(60)) == Array(10..<30))
        try child.join(timeout: .seconds(60))
    }
}
