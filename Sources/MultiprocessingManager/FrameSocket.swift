import Multiprocessing
import MultiprocessingConnection
import SystemPackage
import MultiprocessingSystem

/// One stream socket of the manager protocol, in blocking mode, with a read buffer.
///
/// Frames use Connection's 16-byte header (see `FrameHeader`). Unlike a `Connection`, this socket
/// blocks in `read(2)` instead of polling a non-blocking descriptor: a manager call is one write
/// and one read on each side, and every extra system call shows in its latency. A frame read pulls
/// whatever is available into the buffer, so a header and a small body usually take one `read`.
internal final class FrameSocket: @unchecked Sendable {
    // @unchecked: one thread uses a socket at a time (the server's connection thread, or the
    // client call that took it from the pool); only `interrupt()` comes from elsewhere, and it only
    // calls shutdown(2) on the descriptor, which stays open until `close()`.
    internal let descriptor: CInt
    internal let maximumMessageSize: Int
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var closed = false

    /// How long a read polls before it sleeps (0: never polls).
    internal var spinNanoseconds: Int64 = 0

    /// When set (CLOCK_MONOTONIC nanoseconds), every read fails with `timedOut` once this moment
    /// has passed, however the bytes trickle in: the handshake's absolute deadline. (A socket
    /// receive timeout would restart with every byte, and one byte every few seconds would hold
    /// the connection for ever.)
    internal var readDeadline: Int64?

    /// The read buffer's first size. It grows as bytes arrive, never by what a frame header
    /// announces, so a peer that announces a large frame and stalls costs no memory.
    internal static let initialBufferSize = 16 * 1024

    internal init(descriptor: CInt, maximumMessageSize: Int) {
        self.descriptor = descriptor
        self.maximumMessageSize = maximumMessageSize
        self.buffer = [UInt8](repeating: 0, count: FrameSocket.initialBufferSize)
    }

    deinit { close() }

    internal func close() {
        if !closed {
            closed = true
            ManagerPlatform.close(descriptor)
        }
    }

    /// Wakes a thread blocked on this socket: its read sees the end of the stream.
    internal func interrupt() { ManagerPlatform.shutdown(descriptor) }

    /// Writes a whole frame (header already in its first 16 bytes).
    internal func write(_ frame: [UInt8]) throws(Errno) {
        var failure: Errno?
        frame.withUnsafeBytes { raw in
            do throws(Errno) { try system_writeAll(descriptor, raw, socket: true) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Reads more bytes into the buffer; returns false at the end of the stream.
    private func fill(needing count: Int) throws(Errno) -> Bool {
        if start + count > buffer.count {
            // Move the unread bytes to the front, then grow if a frame is larger than the buffer.
            let unread = end - start
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    if let base = raw.baseAddress, unread > 0 { base.copyMemory(from: base + start, byteCount: unread) }
                }
                start = 0
                end = unread
            }
            // Grow only when the buffer is full of bytes that arrived, and then at most double:
            // the buffer never holds more than twice what the peer really sent.
            if count > buffer.count && end == buffer.count {
                let grown = min(count, buffer.count * 2)
                buffer.append(contentsOf: repeatElement(0, count: grown - buffer.count))
            }
        }
        if let readDeadline {
            let left = readDeadline - ManagerPlatform.monotonicNanoseconds()
            guard left > 0 else { throw .resourceTemporarilyUnavailable }
            let milliseconds = CInt(clamping: (left + 999_999) / 1_000_000)
            guard ManagerPlatform.waitReadable(descriptor, milliseconds: milliseconds) else {
                throw .resourceTemporarilyUnavailable
            }
        }
        var failure: Errno?
        let spin = spinNanoseconds
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            let target = UnsafeMutableRawBufferPointer(rebasing: raw[end...])
            do throws(Errno) {
                if spin > 0 {
                    // Poll briefly before sleeping: the answer usually comes within microseconds,
                    // and on a virtual machine a thread that sleeps costs 10–20 µs to wake (the
                    // idle processor halts). Yielding lets any other runnable thread go first.
                    let deadline = ManagerPlatform.monotonicNanoseconds() &+ spin
                    var rounds = 0
                    while true {
                        if let n = try ManagerPlatform.readNow(descriptor, target) { return n }
                        rounds += 1
                        if rounds & 7 == 0 && ManagerPlatform.monotonicNanoseconds() > deadline { break }
                        ManagerPlatform.yield()
                    }
                }
                return try ManagerPlatform.read(descriptor, target)
            } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw failure }
        if n == 0 { return false }
        end += n
        return true
    }

    /// Exactly `count` bytes: the first `prefix` already read into the buffer or waited for.
    /// Returns nil at the end of the stream before the first byte; throws `malformedFrame` for a
    /// stream that ends after it.
    private func ensure(_ count: Int, frameStarted: Bool) throws -> Bool {
        while end - start < count {
            let got: Bool
            do throws(Errno) {
                got = try fill(needing: count)
            } catch .resourceTemporarilyUnavailable {
                throw MultiprocessingError(.timedOut, "The peer sent nothing in time.")
            } catch .connectionReset {
                got = false
            } catch {
                throw MultiprocessingError(.systemCall, "Reading a manager connection failed: \(error)", errno: error)
            }
            if !got {
                if !frameStarted && end == start {
                    throw MultiprocessingError(.endOfStream, "The other side closed the manager connection.")
                }
                throw MultiprocessingError(.malformedFrame, "The manager connection ended in the middle of a frame.")
            }
        }
        return true
    }

    /// Reads exactly `count` raw bytes (the handshake's fixed-size messages).
    internal func readExactly(_ count: Int) throws -> [UInt8] {
        _ = try ensure(count, frameStarted: false)
        defer { start += count }
        return Array(buffer[start..<(start + count)])
    }

    /// Reads one frame's body. Throws `endOfStream` when the peer closed between frames,
    /// `malformedFrame` for a bad header, an oversized length or a cut frame.
    internal func readFrame() throws -> [UInt8] {
        let headerSize = ManagerPlatform.frameHeaderSize
        _ = try ensure(headerSize, frameStarted: false)
        // The announced length of a frame that starts with the magic (else it is garbage).
        let announced = buffer.withUnsafeBytes { raw -> UInt64 in
            guard raw[start] == 0x4D, raw[start + 1] == 0x50, raw[start + 2] == 0x46, raw[start + 3] == 0x31 else { return 0 }
            return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: start + 8, as: UInt64.self))
        }
        let length: Int
        do {
            length = try buffer.withUnsafeBytes { raw in
                try ManagerPlatform.parseFrameHeader(UnsafeRawBufferPointer(rebasing: raw[start..<(start + headerSize)]),
                                                     maximumMessageSize: maximumMessageSize)
            }
        } catch where announced > UInt64(maximumMessageSize) {
            // Told apart from garbage, so that each side can say which limit it met.
            throw FrameTooLarge(announced: announced, limit: maximumMessageSize)
        }
        start += headerSize
        _ = try ensure(length, frameStarted: true)
        defer {
            start += length
            if start == end {
                start = 0
                end = 0
                // A large frame grew the buffer: give the memory back.
                if buffer.count > 256 * 1024 { buffer = [UInt8](repeating: 0, count: FrameSocket.initialBufferSize) }
            }
        }
        return Array(buffer[start..<(start + length)])
    }
}

extension FrameSocket: HandshakeChannel {}

/// A frame header that announced more than the reading side's limit (nothing was allocated).
internal struct FrameTooLarge: Error {
    internal let announced: UInt64
    internal let limit: Int
}
