import Testing
import Glibc
@testable import Multiprocessing
import MultiprocessingSystem
import SystemPackage

// Outside checks (red team): a peer on a duplex Connection (a Unix socket, which carries
// descriptors with SCM_RIGHTS) that attaches descriptors its frames do not announce, or more
// than a frame may carry. Each received descriptor is a slot of the receiver's descriptor table:
// one it never closes is a leak the peer can repeat until the receiver has none left (EMFILE).

/// A pipe whose two ends the test sends as the attack's descriptors, then closes: afterwards,
/// every descriptor of this process that still names the pipe is one the receiver kept.
private struct MarkedPipe {
    let inode: String
    let ends: (CInt, CInt)

    init() throws {
        var fds: [CInt] = [-1, -1]
        try #require(pipe(&fds) == 0)
        ends = (fds[0], fds[1])
        var info = stat()
        try #require(fstat(fds[0], &info) == 0)
        inode = "pipe:[\(info.st_ino)]"
    }

    func close() {
        _ = Glibc.close(ends.0)
        _ = Glibc.close(ends.1)
    }

    /// Descriptors of this process that name the pipe.
    func openCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.first?.isNumber == true else { continue }
            var target = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            if n > 0, String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) == inode { count += 1 }
        }
        return count
    }
}

/// Sends `body` as one bytes frame that announces `announced` descriptors, with `fds` attached,
/// straight on the connection's socket (what a peer that does not use this library can do).
private func sendRawFrame(_ connection: Connection, body: [UInt8], announced: Int, fds: [CInt]) throws {
    let bytes = FrameHeader(kind: .bytes, descriptorCount: announced, length: body.count).bytes + body
    let sent = try bytes.withUnsafeBytes { raw throws(Errno) in try system_sendWithDescriptors(connection.descriptor, raw, fds) }
    try #require(sent == bytes.count)
}

/// Sends `bytes` with `fds` in one SCM_RIGHTS message of any size (the library's own sender
/// refuses more than 64), with the control message built by hand (`CMSG_*` are C macros).
private func sendWithManyDescriptors(_ socket: CInt, _ bytes: [UInt8], _ fds: [CInt]) -> Int {
    let headerSize = MemoryLayout<cmsghdr>.size
    let length = headerSize + fds.count * MemoryLayout<CInt>.size
    var control = [UInt8](repeating: 0, count: (length + 7) & ~7)
    control.withUnsafeMutableBytes { raw in
        raw.storeBytes(of: length, toByteOffset: 0, as: Int.self)
        raw.storeBytes(of: SOL_SOCKET, toByteOffset: MemoryLayout<Int>.size, as: CInt.self)
        raw.storeBytes(of: CInt(SCM_RIGHTS), toByteOffset: MemoryLayout<Int>.size + 4, as: CInt.self)
        for (i, fd) in fds.enumerated() {
            raw.storeBytes(of: fd, toByteOffset: headerSize + i * MemoryLayout<CInt>.size, as: CInt.self)
        }
    }
    var bytes = bytes
    return bytes.withUnsafeMutableBytes { data in
        control.withUnsafeMutableBytes { controlBytes in
            var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
            return withUnsafeMutablePointer(to: &iov) { iovPointer in
                var message = msghdr()
                message.msg_iov = iovPointer
                message.msg_iovlen = 1
                message.msg_control = controlBytes.baseAddress
                message.msg_controllen = controlBytes.count
                return sendmsg(socket, &message, Int32(MSG_NOSIGNAL))
            }
        }
    }
}

@Suite("Hostile descriptors")
struct HostileDescriptorTests {
    /// 50 frames that announce no descriptor, each with 8 attached: the receiver closes what no
    /// frame announced. Before, they stayed open in the connection's receive state until it
    /// closed (400 here; a peer could go on until the receiver's table was full).
    @Test func descriptorsNoFrameAnnouncedAreClosed() throws {
        let (receiver, sender) = try Connection.pipe(duplex: true)
        let marked = try MarkedPipe()
        for i in 0..<50 {
            try sendRawFrame(sender, body: [UInt8(i)], announced: 0, fds: Array(repeating: marked.ends.0, count: 8))
        }
        marked.close()
        for i in 0..<50 {
            #expect(try receiver.receiveBytes(timeout: .seconds(60)) == [UInt8(i)])
        }
        #expect(marked.openCount() == 0, "descriptors the frames did not announce are still open in the receiver")
        receiver.close()
        sender.close()
    }

    /// A frame that announces one descriptor and carries two, then a lock sent properly: the
    /// lock is decoded from its own memory. Before, the extra descriptor stayed first in line
    /// and the next frame that announced one was handed it instead of its own (the lock's
    /// decode then mapped the peer's pipe, which is refused: not a sealed memfd).
    @Test func anExtraDescriptorIsNotHandedToTheNextFrame() throws {
        let (receiver, sender) = try Connection.pipe(duplex: true)
        let marked = try MarkedPipe()
        try sendRawFrame(sender, body: [7], announced: 1, fds: [marked.ends.0, marked.ends.1])
        marked.close()
        #expect(try receiver.receiveBytes(timeout: .seconds(60)) == [7])
        let lock = try Lock()
        try sender.send(lock)
        let received = try receiver.receive(Lock.self, timeout: .seconds(60))
        #expect(received.core.memory.region === lock.core.memory.region)
        #expect(marked.openCount() == 0)
        receiver.close()
        sender.close()
    }

    /// 100 descriptors in one message, more than the receiver's control buffer holds (64): the
    /// kernel installs the 64 that fit and reports the message cut (MSG_CTRUNC). The receive
    /// fails with an error that names the problem, and the 64 are closed. Before, the receive
    /// threw EMSGSIZE ("receiving on a connection") and the 64 stayed open, unreachable.
    @Test func tooManyDescriptorsInOneMessageAreClosed() throws {
        let (receiver, sender) = try Connection.pipe(duplex: true)
        let marked = try MarkedPipe()
        let frame = FrameHeader(kind: .bytes, descriptorCount: 0, length: 1).bytes + [9]
        #expect(sendWithManyDescriptors(sender.descriptor, frame, Array(repeating: marked.ends.0, count: 100)) == frame.count)
        marked.close()
        #expect {
            _ = try receiver.receiveBytes(timeout: .seconds(60))
        } throws: { error in
            "\(error)".contains("more file descriptors than")
        }
        #expect(marked.openCount() == 0, "descriptors of a cut message are still open in the receiver")
        receiver.close()
        sender.close()
    }
}
