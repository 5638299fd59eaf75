import Glibc
import Testing
import Synchronization
import TestSupport
@testable import Multiprocessing
import MultiprocessingSystem

/// A frame as raw bytes, built by hand so that the tests check the documented wire format.
func ipcRawFrame(kind: UInt8 = 0, length: UInt64, descriptors: UInt8 = 0, body: [UInt8] = []) -> [UInt8] {
    var frame: [UInt8] = [0x4D, 0x50, 0x46, 0x31, kind, descriptors, 0, 0]
    withUnsafeBytes(of: length.littleEndian) { frame.append(contentsOf: $0) }
    return frame + body
}

@Suite("IPC connections", .timeLimit(.minutes(15)))
struct IPCConnectionTests {

    @Test("Codable values and many-MiB messages round-trip with a child that got the connection in its arguments")
    func codableAcrossProcesses() throws {
        let (mine, theirs) = try Connection.pipe()
        let child = ChildProcess(IPCEcho(connection: theirs))
        try child.start()
        theirs.close()  // the child has its own copy; ours would hide the end of stream
        var sent: [IPCMessage] = (0..<100).map {
            IPCMessage(id: $0, text: "message \($0) ✉️", values: [Double($0) / 3], tags: ["k\($0)": $0], blob: [UInt8(truncatingIfNeeded: $0)])
        }
        sent.append(IPCMessage(id: -1, text: "big", values: [], tags: [:], blob: IPCPattern.make(7, size: 12 << 20)))
        let toSend = sent
        let writer = try IPCTestThread { for m in toSend { try? mine.send(m) } }
        for m in sent {
            #expect(try mine.receive(IPCMessage.self, timeout: .seconds(30)) == m)
        }
        try writer.join()
        mine.close()
        #expect(try child.value(timeout: .seconds(10)) == sent.count)
    }

    @Test("a value holding a Connection and a Queue travels over a socket connection; a pipe refuses it")
    func descriptorsInsideValues() throws {
        let (control, childControl) = try Connection.pipe()
        let child = ChildProcess(IPCReceiveHandles(control: childControl))
        try child.start()
        let (reply, replyForChild) = try Connection.pipe()
        let queue = try Queue<Int>()
        try control.send(IPCReceiveHandles.Handles(label: "seven", reply: replyForChild, queue: queue))
        replyForChild.close()  // the child holds the only other copy now
        let greeting = try reply.receive(String.self, timeout: .seconds(20))
        #expect(greeting.hasSuffix("via seven"))
        #expect(try queue.get(timeout: .seconds(5)) == 5)
        try child.join(timeout: .seconds(10))
        #expect(child.exitCode == 0)
        // The child exited, so the reply connection's other end is gone everywhere.
        ipcExpectCode(.endOfStream) { try reply.receiveBytes(timeout: .seconds(5)) }

        let (_, writer) = try Connection.pipe(duplex: false)
        let (a, _) = try Connection.pipe()
        let error = ipcExpectCode(.misuse) { try writer.send(IPCReceiveHandles.Handles(label: "x", reply: a, queue: queue)) }
        #expect(error?.message.contains("duplex") == true)
    }

    @Test("receiving a Codable value where raw bytes were sent is a coding error, not a crash")
    func kindMismatch() throws {
        let (a, b) = try Connection.pipe()
        try a.sendBytes([1, 2, 3])
        ipcExpectCode(.coding) { try b.receive(IPCMessage.self, timeout: .seconds(5)) }
        try a.send("text")
        ipcExpectCode(.coding) { try b.receive(Int.self, timeout: .seconds(5)) }
        try a.send(42)
        #expect(try b.receive(Int.self, timeout: .seconds(5)) == 42)
    }
    @Test("bytes round-trip on a duplex and a simplex connection, both ways")
    func bytesRoundTrip() throws {
        let (a, b) = try Connection.pipe()
        try a.sendBytes([1, 2, 3])
        try b.sendBytes([])
        try a.sendBytes(Array(0..<255))
        #expect(try b.receiveBytes(timeout: .seconds(5)) == [1, 2, 3])
        #expect(try b.receiveBytes(timeout: .seconds(5)) == Array(0..<255))
        #expect(try a.receiveBytes(timeout: .seconds(5)) == [])
        // `[UInt8]` through the generic `send` takes the raw-bytes path and arrives as bytes.
        try a.send([9, 8, 7] as [UInt8])
        #expect(try b.receive([UInt8].self, timeout: .seconds(5)) == [9, 8, 7])

        let (reader, writer) = try Connection.pipe(duplex: false)
        #expect(reader.isReadable && !reader.isWritable)
        #expect(writer.isWritable && !writer.isReadable)
        try writer.sendBytes([42])
        #expect(try reader.receiveBytes(timeout: .seconds(5)) == [42])
        ipcExpectCode(.misuse) { try reader.sendBytes([1]) }
        ipcExpectCode(.misuse) { try writer.receiveBytes(timeout: .zero) }
    }

    @Test("the frame on the wire is the documented 16-byte header and the body")
    func wireFormat() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        try writer.sendBytes([0xAA, 0xBB])
        var raw = [UInt8](repeating: 0, count: 64)
        let n = try raw.withUnsafeMutableBytes { try system_read(reader.descriptor, $0) }
        #expect(Array(raw.prefix(n)) == ipcRawFrame(kind: 0, length: 2, body: [0xAA, 0xBB]))
    }

    @Test("a 24 MiB message crosses a pipe intact while a thread sends it")
    func largeMessage() throws {
        let size = 24 << 20
        var message = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4096) { message[i] = UInt8(truncatingIfNeeded: i >> 12) }
        message[size - 1] = 0x5A
        let (reader, writer) = try Connection.pipe(duplex: false)
        let sent = message
        let thread = try IPCTestThread { try? writer.sendBytes(sent) }
        let received = try reader.receiveBytes(timeout: .seconds(20))
        try thread.join()
        #expect(received.count == size)
        #expect(received == message)
    }

    @Test("a receive with nothing to read times out, near its timeout, and the connection still works")
    func receiveTimeout() throws {
        let (a, b) = try Connection.pipe()
        let start = ContinuousClock.now
        ipcExpectCode(.timedOut) { try b.receiveBytes(timeout: .milliseconds(80)) }
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(80) && waited < .seconds(2))
        #expect(try b.poll(timeout: .zero) == false)
        try a.sendBytes([5])
        #expect(try b.poll(timeout: .seconds(5)) == true)
        #expect(try b.receiveBytes(timeout: .zero) == [5])
    }

    @Test("end of stream is its own error, after every message is read, and differs from a timeout")
    func endOfStreamVersusTimeout() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        try writer.sendBytes([1])
        try writer.sendBytes([2])
        #expect(try reader.receive([UInt8].self, timeout: .zero) == [1])
        writer.close()
        #expect(try reader.receiveBytes(timeout: .seconds(5)) == [2])
        // As in Python, the end of the stream polls as readable. Not at once with poll(): a child
        // that another test spawns at this moment holds a copy of the writer's descriptor from
        // its clone to its exec (CLOEXEC closes it only then), so the end may come a little later
        // (a CI run's poll() found the pipe not yet ended).
        #expect(try reader.poll(timeout: .seconds(30)) == true)
        ipcExpectCode(.endOfStream) { try reader.receiveBytes(timeout: .seconds(5)) }
        ipcExpectCode(.endOfStream) { try reader.receiveBytes() }
        // Sending to a closed receiver is also the end of the stream, not a signal.
        let (r2, w2) = try Connection.pipe(duplex: false)
        r2.close()
        ipcExpectCode(.endOfStream) { try w2.sendBytes([1, 2, 3]) }
        let (d1, d2) = try Connection.pipe()
        d2.close()
        ipcExpectCode(.endOfStream) { try d1.sendBytes([1]) }
        ipcExpectCode(.endOfStream) { try d1.receiveBytes(timeout: .seconds(1)) }
    }

    @Test("a garbage header gives malformedFrame, not a crash")
    func garbageHeader() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        let garbage: [UInt8] = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        try garbage.withUnsafeBytes { try system_writeAll(writer.descriptor, $0) }
        let error = ipcExpectCode(.malformedFrame) { try reader.receiveBytes(timeout: .seconds(5)) }
        #expect(error?.message.contains("47 45 54 20") == true)
    }

    @Test("an oversized length gives malformedFrame before any allocation")
    func oversizedLength() throws {
        let (reader, writer) = try Connection.pipe(duplex: false, maximumMessageSize: 1 << 20)
        // 2^62 bytes: an allocation of that size would crash the process, so passing proves the
        // check comes first. Then a length just above the limit.
        for length: UInt64 in [1 << 62, (1 << 20) + 1] {
            let frame = ipcRawFrame(length: length)
            try frame.withUnsafeBytes { try system_writeAll(writer.descriptor, $0) }
            let error = ipcExpectCode(.malformedFrame) { try reader.receiveBytes(timeout: .seconds(5)) }
            #expect(error?.message.contains("maximumMessageSize") == true)
        }
        // Exactly the limit passes.
        let body = [UInt8](repeating: 7, count: 1 << 20)
        let thread = try IPCTestThread { try? writer.sendBytes(body) }
        #expect(try reader.receiveBytes(timeout: .seconds(10)).count == 1 << 20)
        try thread.join()
    }

    @Test("a body cut by the end of the stream gives malformedFrame; a cut header too; a clean end gives endOfStream")
    func truncatedFrames() throws {
        do {
            let (reader, writer) = try Connection.pipe(duplex: false)
            let frame = ipcRawFrame(length: 100, body: Array(repeating: 1, count: 40))
            try frame.withUnsafeBytes { try system_writeAll(writer.descriptor, $0) }
            writer.close()
            let error = ipcExpectCode(.malformedFrame) { try reader.receiveBytes(timeout: .seconds(5)) }
            #expect(error?.message.contains("40 of 100") == true)
            ipcExpectCode(.endOfStream) { try reader.receiveBytes(timeout: .seconds(5)) }
        }
        do {
            let (reader, writer) = try Connection.pipe(duplex: false)
            let frame = Array(ipcRawFrame(length: 3).prefix(9))
            try frame.withUnsafeBytes { try system_writeAll(writer.descriptor, $0) }
            writer.close()
            ipcExpectCode(.malformedFrame) { try reader.receiveBytes(timeout: .seconds(5)) }
        }
        do {
            // An unknown kind and a non-zero reserved byte.
            let (reader, writer) = try Connection.pipe(duplex: false)
            var frame = ipcRawFrame(kind: 9, length: 0)
            try frame.withUnsafeBytes { try system_writeAll(writer.descriptor, $0) }
            ipcExpectCode(.malformedFrame) { try reader.receiveBytes(timeout: .seconds(5)) }
            frame = ipcRawFrame(length: 0)
            frame[7] = 1
            try frame.withUnsafeBytes { try system_writeAll(writer.descriptor, $0) }
            ipcExpectCode(.malformedFrame) { try reader.receiveBytes(timeout: .seconds(5)) }
        }
    }

    @Test("a receive that times out halfway through a frame resumes it on the next call")
    func timeoutMidFrameResumes() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        let frame = ipcRawFrame(length: 6, body: [1, 2, 3, 4, 5, 6])
        try frame.prefix(19).withUnsafeBytes { try system_writeAll(writer.descriptor, UnsafeRawBufferPointer($0)) }
        ipcExpectCode(.timedOut) { try reader.receiveBytes(timeout: .milliseconds(30)) }
        try frame.suffix(from: 19).withUnsafeBytes { try system_writeAll(writer.descriptor, UnsafeRawBufferPointer($0)) }
        try writer.sendBytes([7])
        #expect(try reader.receiveBytes(timeout: .seconds(5)) == [1, 2, 3, 4, 5, 6])
        #expect(try reader.receiveBytes(timeout: .seconds(5)) == [7])
    }

    @Test("a send into a full pipe times out before its first byte, and the stream stays intact")
    func sendTimeout() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        // Fill the pipe with whole frames until one cannot start.
        var sent = 0
        while true {
            do {
                try writer.sendBytes([UInt8](repeating: 1, count: 4080), timeout: .zero)
                sent += 1
            } catch let error as MultiprocessingError where error.code == .timedOut {
                break
            }
        }
        #expect(sent > 0)
        for _ in 0..<sent { #expect(try reader.receiveBytes(timeout: .seconds(5)).count == 4080) }
        try writer.sendBytes([2])
        #expect(try reader.receiveBytes(timeout: .seconds(5)) == [2])
    }

    @Test("close wakes a receive waiting in another thread with .closed")
    func closeWakesWaiter() throws {
        let (a, _b) = try Connection.pipe()
        let outcome = Mutex<MultiprocessingError.Code?>(nil)
        let thread = try IPCTestThread {
            do { _ = try a.receiveBytes(timeout: .seconds(20)) } catch let error as MultiprocessingError {
                outcome.withLock { $0 = error.code }
            } catch {}
        }
        // Close only once the thread is inside its receive, so that this checks the wake-up.
        try ipcEventually { a.operationsInFlight == 1 }
        a.close()
        try thread.join()
        #expect(outcome.withLock { $0 } == .closed)
        ipcExpectCode(.closed) { try a.receiveBytes(timeout: .zero) }
        _ = _b
    }

    @Test("async receive waits off the cooperative pool, and cancellation ends it")
    func asyncReceiveAndCancel() async throws {
        let (a, b) = try Connection.pipe()
        let receiver = Task { try await b.receiveBytes(timeout: .seconds(20)) }
        try await a.sendBytes([3, 1, 4])
        #expect(try await receiver.value == [3, 1, 4])

        let waiting = Task { try await b.receiveBytes(timeout: .seconds(20)) }
        waiting.cancel()
        do {
            _ = try await waiting.value
            Issue.record("a cancelled receive returned")
        } catch let error as MultiprocessingError {
            #expect(error.code == .cancelled)
        }
        // The connection still works after the cancelled wait.
        try await a.sendBytes([1])
        #expect(try await b.receiveBytes(timeout: .seconds(5)) == [1])
        #expect(try await b.poll(timeout: .milliseconds(10)) == false)
    }

    @Test("frames written by another process arrive whole, then the end of stream")
    func crossProcessFrames() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        var stream: [UInt8] = []
        for i in 0..<100 { stream += ipcRawFrame(length: UInt64(i), body: [UInt8](repeating: UInt8(i), count: i)) }
        let big = [UInt8](repeating: 0xEE, count: 3 << 20)
        stream += ipcRawFrame(length: UInt64(big.count), body: big)
        let fd = writer.descriptor
        let pid = try stream.withUnsafeBytes { s in
            try ipcForkChild {
                // The descriptor is non-blocking: wait for room with poll between writes.
                var off = 0
                while off < s.count {
                    let n = Glibc.write(fd, s.baseAddress! + off, s.count - off)
                    if n > 0 { off += n; continue }
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = Glibc.poll(&p, 1, -1)
                }
                return 0
            }
        }
        // The child holds its own copy of the write end; ours closes so the child's exit ends the stream.
        writer.close()
        for i in 0..<100 {
            #expect(try reader.receiveBytes(timeout: .seconds(10)) == [UInt8](repeating: UInt8(i), count: i))
        }
        #expect(try reader.receiveBytes(timeout: .seconds(10)) == big)
        ipcExpectCode(.endOfStream) { try reader.receiveBytes(timeout: .seconds(10)) }
        #expect(try ipcWaitChild(pid) == 0)
    }

    @Test("descriptors travel with a frame over a socket connection")
    func descriptorPassingRaw() throws {
        let (a, b) = try Connection.pipe()
        let (innerReader, innerWriter) = try Connection.pipe(duplex: false)
        try [UInt8]([1, 2]).withUnsafeBytes { body in
            try a.sendFrame(kind: .bytes, body: body, descriptors: [innerReader.descriptor], timeout: nil, interrupt: nil)
        }
        innerReader.close()  // the received duplicate must keep the pipe open
        let (frame, body, fds) = try b.receiveFrame(timeout: .seconds(5), interrupt: nil)
        #expect(frame.descriptorCount == 1 && body == [1, 2] && fds.count == 1)
        let received = Connection(descriptor: fds[0], role: .reader, maximumMessageSize: 1 << 20)
        try innerWriter.sendBytes([77])
        #expect(try received.receiveBytes(timeout: .seconds(5)) == [77])
    }
}
