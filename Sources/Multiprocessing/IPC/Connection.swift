import SystemPackage
import Synchronization
import MultiprocessingSystem

/// One end of a message channel between threads or processes: Python's `multiprocessing.Connection`.
///
/// Make a pair with ``pipe(duplex:maximumMessageSize:)``. Pass an end to a child process inside its task's arguments
/// (a `Connection` is `Codable`: it travels as a file descriptor), or send it over another duplex
/// connection. Each message is one frame (see the framing below): raw bytes go as they are
/// (`sendBytes(_:timeout:)`), any other `Codable` value in the module's binary encoding
/// (`send(_:timeout:)`).
///
/// - Ends of stream are errors of their own: when the other end is closed and every frame has been
///   read, `receive(_:timeout:)` throws ``MultiprocessingError/Code/endOfStream``; when a
///   timeout passes first it throws ``MultiprocessingError/Code/timedOut``.
/// - A duplex connection (a Unix stream socket) can carry values that hold file descriptors, such
///   as another `Connection` or a shared lock; a simplex pipe cannot, and says so.
/// - Sends from several threads of one process are serialized, and so are receives; each frame is
///   written and read whole. A call that waits for another thread's send (or receive) to finish
///   keeps its own timeout and cancellation while it waits. Several *processes* writing one end at
///   once may interleave frames longer than `PIPE_BUF` (4096 bytes): give each writer its own
///   connection, or use a ``Queue``.
/// - A receive that times out in the middle of a frame keeps what it read: the next receive
///   continues the same frame, so a timeout never corrupts the stream. A send that times out
///   before its first byte leaves the stream intact; one that times out halfway leaves a cut frame,
///   and the connection refuses further sends (``MultiprocessingError/Code/broken``).
///
/// Framing: a 16-byte header (magic `MPF1`, kind, descriptor count, two reserved bytes, 64-bit
/// little-endian body length), then the body. A header with a wrong magic or a length above
/// ``maximumMessageSize`` throws ``MultiprocessingError/Code/malformedFrame`` before anything is
/// allocated; a frame cut by the end of the stream throws the same code.
public final class Connection: Sendable, Codable {
    /// What an end may do.
    internal enum Role: UInt8, Sendable {
        /// Both ends of a socket pair: send and receive.
        case duplex = 0
        /// The read end of a pipe.
        case reader = 1
        /// The write end of a pipe.
        case writer = 2
        /// A socket that sends and receives but cannot carry descriptors (TCP).
        case network = 3
    }

    /// Whether the descriptor is a socket (sendmsg and recvmsg), not a pipe.
    internal var isSocket: Bool { role == .duplex || role == .network }

    /// The largest message a connection accepts unless told otherwise: 1 GiB.
    public static let defaultMaximumMessageSize = 1 << 30

    /// The receive buffer a frame's body starts with (or its length, if smaller); it doubles as
    /// the body arrives.
    internal static let firstBodyBuffer = 16 << 20

    internal let descriptor: CInt
    internal let role: Role
    /// The largest message body, in bytes, this end sends or accepts. A larger incoming header
    /// throws ``MultiprocessingError/Code/malformedFrame`` before any allocation.
    public let maximumMessageSize: Int

    internal struct Lifecycle {
        var closed = false
        var inFlight = 0
        var descriptorClosed = false
        /// Wakes waits in this process when ``close()`` is called (created on the first wait).
        var closeWake: CInt = -1
    }
    private struct SendState {
        var broken = false
    }
    internal struct ReceiveState {
        /// A whole frame that was read but not taken (a buffer too short, a type that did not
        /// match): the next receive returns it first.
        var pending: (FrameHeader, [UInt8], [CInt])?
        var header = [UInt8](repeating: 0, count: FrameHeader.size)
        var headerFilled = 0
        var frame: FrameHeader?
        var body: [UInt8] = []
        var bodyFilled = 0
        /// Descriptors that arrived (SCM_RIGHTS) and wait for their frame to complete.
        var descriptors: [CInt] = []
    }
    internal let lifecycle = Mutex(Lifecycle())
    // The states are used only by the thread whose turn it is (see ConnectionTurn); their mutexes
    // are never contended and never held across a wait of another thread.
    internal let sendTurn = ConnectionTurn()
    internal let receiveTurn = ConnectionTurn()
    private let sendState = Mutex(SendState())
    internal let receiveState = Mutex(ReceiveState())
    /// Whether `receiveState.pending` holds a frame: read by `poll` and `wait`, which do not take
    /// the receive turn (and so cannot lock the receive state, held by a receiving thread).
    internal let hasPendingFrame = Atomic<Bool>(false)

    internal init(descriptor: CInt, role: Role, maximumMessageSize: Int) {
        self.descriptor = descriptor
        self.role = role
        self.maximumMessageSize = maximumMessageSize
    }

    deinit {
        lifecycle.withLock { state in
            if !state.descriptorClosed { system_close(descriptor) }
            if state.closeWake >= 0 { system_close(state.closeWake) }
        }
        receiveState.withLock { state in
            for fd in state.descriptors { system_close(fd) }
            for fd in state.pending?.2 ?? [] { system_close(fd) }
        }
    }

    /// Makes a connected pair of ends.
    ///
    /// - Parameters:
    ///   - duplex: `true` (the default) for a Unix stream socket pair, where both ends send and
    ///     receive and messages may carry file descriptors; `false` for a pipe, returned as
    ///     `(reader, writer)`.
    ///   - maximumMessageSize: the largest message body either end sends or accepts.
    /// - Returns: the two ends. For a simplex pipe the first can only receive, the second only send.
    /// - Throws: ``MultiprocessingError/Code/misuse`` when `maximumMessageSize` is not positive;
    ///   ``MultiprocessingError/Code/systemCall`` when the system has no descriptors left.
    public static func pipe(duplex: Bool = true, maximumMessageSize: Int = Connection.defaultMaximumMessageSize) throws -> (Connection, Connection) {
        guard maximumMessageSize > 0 else {
            throw MultiprocessingError.misuse("Connection.pipe: maximumMessageSize must be positive (it was \(maximumMessageSize)).")
        }
        do throws(Errno) {
            if duplex {
                let (a, b) = try system_socketpair()
                try system_setNonBlocking(a, true)
                try system_setNonBlocking(b, true)
                return (Connection(descriptor: a, role: .duplex, maximumMessageSize: maximumMessageSize),
                        Connection(descriptor: b, role: .duplex, maximumMessageSize: maximumMessageSize))
            }
            let (r, w) = try system_pipe()
            try system_setNonBlocking(r, true)
            try system_setNonBlocking(w, true)
            return (Connection(descriptor: r, role: .reader, maximumMessageSize: maximumMessageSize),
                    Connection(descriptor: w, role: .writer, maximumMessageSize: maximumMessageSize))
        } catch {
            throw MultiprocessingError.system("creating a connection pair", error)
        }
    }

    /// Whether this end can receive (a duplex end or a pipe's read end).
    public var isReadable: Bool { role != .writer }
    /// Whether this end can send (a duplex end or a pipe's write end).
    public var isWritable: Bool { role != .reader }
    /// Calls running on this end in this process (tests wait for a call to be inside its wait).
    internal var operationsInFlight: Int { lifecycle.withLock { $0.inFlight } }

    /// Whether ``close()`` was called on this end in this process.
    public var isClosed: Bool { lifecycle.withLock { $0.closed } }

    /// Closes this end in this process. Calls waiting on it in other threads throw
    /// ``MultiprocessingError/Code/closed``; the descriptor is closed when the last of them has
    /// returned. The other end sees the end of the stream once every process has closed this one.
    /// Closing twice does nothing.
    public func close() {
        lifecycle.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            if state.closeWake >= 0 { system_eventfdSignal(state.closeWake) }
            if state.inFlight == 0 && !state.descriptorClosed {
                state.descriptorClosed = true
                system_close(descriptor)
            }
        }
    }

    // MARK: sending

    /// Sends a `Codable` value as one message. `[UInt8]` is sent as raw bytes, skipping `Codable`.
    ///
    /// - Parameters:
    ///   - value: the value. On a duplex connection it may hold file descriptors (a `Connection`,
    ///     a lock, a queue), which travel with it.
    ///   - timeout: how long to wait for room in the channel; `nil` waits for ever.
    /// - Throws: ``MultiprocessingError/Code/timedOut``; ``MultiprocessingError/Code/endOfStream``
    ///   when the receiving end is closed; ``MultiprocessingError/Code/coding`` when the value cannot
    ///   be encoded; ``MultiprocessingError/Code/misuse`` for a read-only end, a message above
    ///   ``maximumMessageSize``, or a value holding descriptors on a simplex pipe;
    ///   ``MultiprocessingError/Code/closed`` after ``close()``.
    public func send(_ value: some Encodable, timeout: Duration? = nil) throws {
        try send(value, timeout: timeout, interrupt: nil)
    }

    /// Sends raw bytes as one message, with no encoding; receive them with `receiveBytes(timeout:)`.
    ///
    /// - Parameters:
    ///   - bytes: the message.
    ///   - timeout: how long to wait for room in the channel; `nil` waits for ever.
    /// - Throws: as `send(_:timeout:)`.
    public func sendBytes(_ bytes: [UInt8], timeout: Duration? = nil) throws {
        try bytes.withUnsafeBytes { buffer in
            try sendFrame(kind: .bytes, body: buffer, descriptors: [], timeout: timeout, interrupt: nil)
        }
    }

    /// Sends part of an array as one message: Python's `send_bytes(buffer, offset, size)`.
    ///
    /// - Parameters:
    ///   - bytes: the array.
    ///   - offset: where the message starts in `bytes`.
    ///   - count: how many bytes to send; nil sends everything from `offset` on.
    ///   - timeout: how long to wait for room in the channel; `nil` waits for ever.
    /// - Throws: ``MultiprocessingError/Code/misuse`` when `offset` or `count` is negative or the
    ///   range reaches past the end of `bytes` (nothing is sent); otherwise as `send(_:timeout:)`.
    public func sendBytes(_ bytes: [UInt8], offset: Int, count: Int? = nil, timeout: Duration? = nil) throws {
        let range = try Self.sliceRange(offset: offset, count: count, total: bytes.count)
        try bytes.withUnsafeBytes { buffer in
            try sendFrame(kind: .bytes, body: UnsafeRawBufferPointer(rebasing: buffer[range]), descriptors: [], timeout: timeout, interrupt: nil)
        }
    }

    internal static func sliceRange(offset: Int, count: Int?, total: Int) throws -> Range<Int> {
        guard offset >= 0, offset <= total else {
            throw MultiprocessingError.misuse("sendBytes: the offset \(offset) is outside the \(total) bytes given.")
        }
        let size = count ?? (total - offset)
        guard size >= 0 else {
            throw MultiprocessingError.misuse("sendBytes: the count \(size) is negative.")
        }
        guard size <= total - offset else {
            throw MultiprocessingError.misuse("sendBytes: \(size) bytes from offset \(offset) reach past the end of the \(total) bytes given.")
        }
        return offset..<(offset + size)
    }

    /// Sends the bytes of a buffer as one message, with no copy into an array.
    ///
    /// - Parameters:
    ///   - buffer: the message; it is fully written (or the call throws) before the call returns.
    ///   - timeout: how long to wait for room in the channel; `nil` waits for ever.
    /// - Throws: as `send(_:timeout:)`.
    public func sendBytes(_ buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) throws {
        try sendFrame(kind: .bytes, body: buffer, descriptors: [], timeout: timeout, interrupt: nil)
    }

    /// Sends a `Codable` value without blocking the cooperative pool; see ``send(_:timeout:)``.
    ///
    /// - Parameters:
    ///   - value: the value.
    ///   - timeout: how long to wait for room in the channel; `nil` waits for ever.
    /// - Throws: as ``send(_:timeout:)``, and ``MultiprocessingError/Code/cancelled`` when the task
    ///   is cancelled.
    public func send<T: Encodable & Sendable>(_ value: T, timeout: Duration? = nil) async throws {
        try await ipcRunBlocking { interrupt in
            try self.send(value, timeout: timeout, interrupt: interrupt)
        }
    }

    /// Sends raw bytes without blocking the cooperative pool; see ``sendBytes(_:timeout:)``.
    ///
    /// - Parameters:
    ///   - bytes: the message.
    ///   - timeout: how long to wait for room in the channel; `nil` waits for ever.
    /// - Throws: as `send(_:timeout:)`, and ``MultiprocessingError/Code/cancelled``.
    public func sendBytes(_ bytes: [UInt8], timeout: Duration? = nil) async throws {
        try await ipcRunBlocking { interrupt in
            try bytes.withUnsafeBytes { buffer in
                try self.sendFrame(kind: .bytes, body: buffer, descriptors: [], timeout: timeout, interrupt: interrupt)
            }
        }
    }

    private func send<T: Encodable>(_ value: T, timeout: Duration?, interrupt: IPCInterrupt?) throws {
        if IPCMessageCoding.isRawBytes(T.self) {
            let bytes = unsafeBitCast(value, to: [UInt8].self)
            try bytes.withUnsafeBytes { buffer in
                try sendFrame(kind: .bytes, body: buffer, descriptors: [], timeout: timeout, interrupt: interrupt)
            }
            return
        }
        let transfer = DescriptorTransfer()
        let (_, body) = try IPCMessageCoding.encode(value, transfer: transfer)
        let descriptors = transfer.descriptors
        if !descriptors.isEmpty && role == .network {
            throw MultiprocessingError.misuse(
                "This \(T.self) holds \(descriptors.count) file descriptor(s) (a connection, lock, queue or shared value), which a network connection cannot carry: only a Unix socket can. Pass the value in a child's task arguments, or over a Unix-socket connection.")
        }
        if !descriptors.isEmpty && role != .duplex {
            throw MultiprocessingError.misuse(
                "This \(T.self) holds \(descriptors.count) file descriptor(s) (a connection, lock, queue or shared value), which only a duplex connection can carry. Make the pair with Connection.pipe(duplex: true), or pass the value in the child's task arguments.")
        }
        guard descriptors.count <= FrameHeader.maximumDescriptors else {
            throw MultiprocessingError.misuse("A message can carry at most \(FrameHeader.maximumDescriptors) file descriptors; this \(T.self) holds \(descriptors.count).")
        }
        try body.withUnsafeBytes { buffer in
            try sendFrame(kind: .value, prefix: MessageTypeName.prefix(T.self), body: buffer, descriptors: descriptors, timeout: timeout, interrupt: interrupt)
        }
    }

    /// Sends one frame: the header, then `prefix` (a value's type name), then `body`.
    internal func sendFrame(kind: FrameHeader.Kind, prefix: [UInt8] = [], body: UnsafeRawBufferPointer, descriptors: [CInt], timeout: Duration?, interrupt: IPCInterrupt?) throws {
        guard isWritable else {
            throw MultiprocessingError.misuse("This is the read end of a simplex pipe: it cannot send.")
        }
        guard body.count <= maximumMessageSize - prefix.count else {
            throw MultiprocessingError.misuse("A message of \(body.count + prefix.count) bytes is larger than this connection's maximumMessageSize (\(maximumMessageSize) bytes).")
        }
        let deadline = try Deadline(timeout: timeout, "Connection.send")
        let closeWake = try enter("send")
        defer { leave() }
        try takeTurn(sendTurn, deadline: deadline, interrupt: interrupt, "send")
        defer { sendTurn.give() }
        try sendState.withLock { (state: inout SendState) throws in
            guard !state.broken else {
                throw MultiprocessingError(.broken, "An earlier send on this connection timed out or was cancelled halfway through a message, so the stream holds a cut frame; close the connection.")
            }
            var header = FrameHeader(kind: kind, descriptorCount: descriptors.count, length: prefix.count + body.count).bytes
            header.append(contentsOf: prefix)
            let headerSize = header.count
            try header.withUnsafeMutableBytes { headerBuffer in
                let total = headerSize + body.count
                var written = 0
                while written < total {
                    let headerPart = written < headerSize
                        ? UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(headerBuffer)[written...])
                        : UnsafeRawBufferPointer(start: nil, count: 0)
                    let bodyStart = max(0, written - headerSize)
                    let bodyPart = UnsafeRawBufferPointer(rebasing: body[bodyStart...])
                    do throws(Errno) {
                        written += try system_ipcWrite(descriptor, socket: isSocket, headerPart, bodyPart,
                                                       descriptors: written == 0 ? descriptors : [])
                    } catch .resourceTemporarilyUnavailable {
                        do {
                            try wait(events: systemPollOut, deadline: deadline, closeWake: closeWake, interrupt: interrupt)
                        } catch let error as MultiprocessingError {
                            if written > 0 {
                                state.broken = true
                                throw MultiprocessingError(error.code, error.message + " The message was cut after \(written) of \(total) bytes; this connection can no longer send.")
                            }
                            throw error
                        }
                    } catch .brokenPipe, .connectionReset {
                        if written > 0 { state.broken = true }
                        throw MultiprocessingError(.endOfStream, "The receiving end of the connection is closed.")
                    } catch {
                        if written > 0 { state.broken = true }
                        throw MultiprocessingError.system("sending on a connection", error)
                    }
                }
            }
        }
    }

    // MARK: receiving

    /// Receives the next message as a `T`.
    ///
    /// - Parameters:
    ///   - type: the type sent. `[UInt8]` receives a raw-bytes message.
    ///   - timeout: how long to wait for a message; `nil` waits for ever.
    /// - Returns: the value. Descriptors it holds arrived with it and belong to it.
    /// - Throws: ``MultiprocessingError/Code/endOfStream`` when the other end is closed and no
    ///   message is left; ``MultiprocessingError/Code/timedOut``;
    ///   ``MultiprocessingError/Code/malformedFrame`` for bytes that are not a valid frame;
    ///   ``MultiprocessingError/Code/coding`` when the message is not a `T`;
    ///   ``MultiprocessingError/Code/misuse`` on a write-only end; ``MultiprocessingError/Code/closed``.
    public func receive<T: Decodable>(_ type: T.Type = T.self, timeout: Duration? = nil) throws -> T {
        try receive(type, timeout: timeout, interrupt: nil)
    }

    /// Receives the next message as raw bytes (sent with `sendBytes(_:timeout:)` or as `[UInt8]`).
    ///
    /// - Parameter timeout: how long to wait for a message; `nil` waits for ever.
    /// - Returns: the message's bytes.
    /// - Throws: as `receive(_:timeout:)`.
    public func receiveBytes(timeout: Duration? = nil) throws -> [UInt8] {
        try receive([UInt8].self, timeout: timeout, interrupt: nil)
    }

    /// Receives the next message without blocking the cooperative pool; see ``receive(_:timeout:)``.
    ///
    /// - Parameters:
    ///   - type: the type sent.
    ///   - timeout: how long to wait for a message; `nil` waits for ever.
    /// - Returns: the value.
    /// - Throws: as ``receive(_:timeout:)``, and ``MultiprocessingError/Code/cancelled``. A
    ///   cancelled receive keeps any partly read frame for the next receive.
    public func receive<T: Decodable & Sendable>(_ type: T.Type = T.self, timeout: Duration? = nil) async throws -> T {
        try Deadline.validate(timeout, "Connection.receive")
        if let frame = try receiveFrameIfReady() {
            return try decode(type, frame)
        }
        return try await ipcRunBlocking { interrupt in
            try self.receive(type, timeout: timeout, interrupt: interrupt)
        }
    }

    /// Receives raw bytes without blocking the cooperative pool; see ``receiveBytes(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait for a message; `nil` waits for ever.
    /// - Returns: the message's bytes.
    /// - Throws: as `receive(_:timeout:)`, and ``MultiprocessingError/Code/cancelled``.
    public func receiveBytes(timeout: Duration? = nil) async throws -> [UInt8] {
        try Deadline.validate(timeout, "Connection.receive")
        if let frame = try receiveFrameIfReady() {
            return try decode([UInt8].self, frame)
        }
        return try await ipcRunBlocking { interrupt in
            try self.receive([UInt8].self, timeout: timeout, interrupt: interrupt)
        }
    }

    /// Whether a message (or the end of the stream) can be read now or within `timeout`.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever. The default, `.zero`, only
    ///   checks, as Python's `poll()` without an argument does.
    /// - Returns: `true` when a receive would find data or the end of the stream.
    /// - Throws: ``MultiprocessingError/Code/misuse`` on a write-only end;
    ///   ``MultiprocessingError/Code/closed``.
    public func poll(timeout: Duration? = .zero) throws -> Bool {
        try poll(timeout: timeout, interrupt: nil)
    }

    /// Waits without blocking the cooperative pool until a message can be read; see ``poll(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever, `.zero` (the default, as for
    ///   the blocking twin) only checks.
    /// - Returns: `true` when a receive would find data or the end of the stream.
    /// - Throws: as ``poll(timeout:)``, and ``MultiprocessingError/Code/cancelled``.
    public func poll(timeout: Duration? = .zero) async throws -> Bool {
        if timeout == .zero { return try poll(timeout: .zero, interrupt: nil) }
        return try await ipcRunBlocking { interrupt in
            try self.poll(timeout: timeout, interrupt: interrupt)
        }
    }

    private func poll(timeout: Duration?, interrupt: IPCInterrupt?) throws -> Bool {
        guard isReadable else {
            throw MultiprocessingError.misuse("This is the write end of a simplex pipe: it cannot receive.")
        }
        let closeWake = try enter("poll")
        defer { leave() }
        if hasPendingFrame.load(ordering: .acquiring) { return true }
        do {
            try wait(events: systemPollIn, deadline: Deadline(timeout: timeout, "Connection.poll"), closeWake: closeWake, interrupt: interrupt)
            return true
        } catch let error as MultiprocessingError where error.code == .timedOut {
            return false
        }
    }

    private func receive<T: Decodable>(_ type: T.Type, timeout: Duration?, interrupt: IPCInterrupt?) throws -> T {
        try decode(type, try receiveFrame(timeout: timeout, interrupt: interrupt))
    }

    /// Decodes a whole frame as a `T` (its type already checked), and closes or hands out the
    /// descriptors that came with it.
    internal func decode<T: Decodable>(_ type: T.Type, _ received: (FrameHeader, [UInt8], [CInt])) throws -> T {
        let (frame, body, descriptors) = received
        if let mismatch = try MessageTypeName.mismatch(T.self, frame, body) {
            for fd in descriptors { system_close(fd) }
            throw mismatch
        }
        let transfer = DescriptorTransfer(received: frame.kind == .bytes ? [] : descriptors)
        if frame.kind == .bytes { for fd in descriptors { system_close(fd) } }
        defer { transfer.closeUnclaimed() }
        if frame.kind == .value {
            return try MessageTypeName.decodeValue(type, body: body, transfer: transfer)
        }
        return try IPCMessageCoding.decode(type, kind: frame.kind, body: body, transfer: transfer)
    }

    /// Puts a whole frame back: the next receive returns it first.
    private func putBack(_ state: inout ReceiveState, _ frame: (FrameHeader, [UInt8], [CInt])) {
        state.pending = frame
        hasPendingFrame.store(true, ordering: .releasing)
    }

    /// Reads one whole frame. A timeout or cancellation keeps the partial frame for the next call.
    /// `check` may refuse the frame (a type that does not match, a buffer too short): the frame is
    /// then kept whole for the next receive, and its error thrown.
    internal func receiveFrame(timeout: Duration?, interrupt: IPCInterrupt?,
                               check: ((FrameHeader, [UInt8]) throws -> MultiprocessingError?)? = nil) throws -> (FrameHeader, [UInt8], [CInt]) {
        guard isReadable else {
            throw MultiprocessingError.misuse("This is the write end of a simplex pipe: it cannot receive.")
        }
        let deadline = try Deadline(timeout: timeout, "Connection.receive")
        let closeWake = try enter("receive")
        defer { leave() }
        try takeTurn(receiveTurn, deadline: deadline, interrupt: interrupt, "receive")
        defer { receiveTurn.give() }
        return try receiveState.withLock { (state: inout ReceiveState) throws -> (FrameHeader, [UInt8], [CInt]) in
            let frame = try readFrame(&state, deadline: deadline, closeWake: closeWake, interrupt: interrupt)
            if let check, let refusal = try check(frame.0, frame.1) {
                putBack(&state, frame)
                throw refusal
            }
            return frame
        }
    }

    /// A whole frame if one can be read without waiting (not even for another receiving thread),
    /// else nil; a part read stays for the next receive. Lets an async receive skip the thread hop.
    internal func receiveFrameIfReady(check: ((FrameHeader, [UInt8]) throws -> MultiprocessingError?)? = nil) throws -> (FrameHeader, [UInt8], [CInt])? {
        guard isReadable else {
            throw MultiprocessingError.misuse("This is the write end of a simplex pipe: it cannot receive.")
        }
        let closeWake = try enter("receive")
        defer { leave() }
        guard receiveTurn.tryTake() else { return nil }
        defer { receiveTurn.give() }
        return try receiveState.withLock { (state: inout ReceiveState) throws -> (FrameHeader, [UInt8], [CInt])? in
            let frame: (FrameHeader, [UInt8], [CInt])
            do {
                frame = try readFrame(&state, deadline: .now, closeWake: closeWake, interrupt: nil)
            } catch let error as MultiprocessingError where error.code == .timedOut {
                return nil
            }
            if let check, let refusal = try check(frame.0, frame.1) {
                putBack(&state, frame)
                throw refusal
            }
            return frame
        }
    }

    /// Reads the rest of the current frame into `state`, waiting as the deadline allows.
    internal func readFrame(_ state: inout ReceiveState, deadline: Deadline, closeWake: CInt, interrupt: IPCInterrupt?) throws -> (FrameHeader, [UInt8], [CInt]) {
        if let pending = state.pending {
            state.pending = nil
            hasPendingFrame.store(false, ordering: .relaxed)
            return pending
        }
        // The header.
        while state.headerFilled < FrameHeader.size {
            let filled = state.headerFilled
            var header = state.header
            state.header = []  // keep the array unique while reading into it
            defer { state.header = header }
            let (n, fds) = try header.withUnsafeMutableBytes { buffer in
                try readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]),
                             deadline: deadline, closeWake: closeWake, interrupt: interrupt)
            }
            state.descriptors.append(contentsOf: fds)
            if n == 0 {
                if state.headerFilled == 0 {
                    throw MultiprocessingError(.endOfStream, "The other end of the connection is closed and every message has been received.")
                }
                let cut = state.headerFilled
                state.headerFilled = 0
                throw MultiprocessingError(.malformedFrame, "The stream ended inside a frame header (after \(cut) of \(FrameHeader.size) bytes): the sender died or closed halfway through a message.")
            }
            state.headerFilled += n
            if state.headerFilled == FrameHeader.size {
                let frame: FrameHeader
                do {
                    frame = try header.withUnsafeBytes { raw throws(MultiprocessingError) in
                        try FrameHeader.parse(raw, maximumMessageSize: maximumMessageSize)
                    }
                } catch {
                    // The header is consumed either way; the stream after it cannot be trusted.
                    state.headerFilled = 0
                    throw error
                }
                state.frame = frame
                // Not the whole announced length: under a raised maximumMessageSize a peer could
                // announce more than memory holds, and the allocation would trap. The buffer
                // grows as the body arrives.
                let first = min(frame.length, Connection.firstBodyBuffer)
                state.body = [UInt8](unsafeUninitializedCapacity: first) { _, count in count = first }
                state.bodyFilled = 0
            }
        }
        guard let frame = state.frame else {
            preconditionFailure("a full header is always parsed")
        }
        // The body.
        while state.bodyFilled < frame.length {
            let filled = state.bodyFilled
            if filled == state.body.count {
                // Full: double it (at most to the frame's length), so the copies stay linear.
                let grown = min(frame.length, 2 * filled)
                let old = state.body
                state.body = [UInt8](unsafeUninitializedCapacity: grown) { buffer, count in
                    _ = UnsafeMutableBufferPointer(rebasing: buffer[..<filled]).initialize(from: old)
                    count = grown
                }
            }
            var body = state.body
            state.body = []  // keep the array unique while reading into it
            defer { state.body = body }
            let (n, fds) = try body.withUnsafeMutableBytes { buffer in
                try readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]),
                             deadline: deadline, closeWake: closeWake, interrupt: interrupt)
            }
            state.descriptors.append(contentsOf: fds)
            if n == 0 {
                state.headerFilled = 0
                state.frame = nil
                body = []
                throw MultiprocessingError(.malformedFrame, "The stream ended inside a message (after \(filled) of \(frame.length) bytes): the sender died or closed halfway through it.")
            }
            state.bodyFilled += n
        }
        // The descriptors came with the frame's first byte, so they are here by now.
        guard state.descriptors.count >= frame.descriptorCount else {
            for fd in state.descriptors { system_close(fd) }
            state.descriptors = []
            state.headerFilled = 0
            state.frame = nil
            state.body = []
            throw MultiprocessingError(.malformedFrame, "A frame announced \(frame.descriptorCount) file descriptors but \(state.descriptors.count) arrived with it.")
        }
        let descriptors = Array(state.descriptors.prefix(frame.descriptorCount))
        // Any more came with this frame's bytes too (reads stop at the frame's end) but were not
        // announced: closed, not kept for the next frame (which would be handed them in place
        // of its own) nor left to pile up until the connection closes.
        for fd in state.descriptors.dropFirst(frame.descriptorCount) { system_close(fd) }
        state.descriptors = []
        let body = state.body
        state.body = []
        state.headerFilled = 0
        state.bodyFilled = 0
        state.frame = nil
        return (frame, body, descriptors)
    }

    /// Reads what is there (at least one byte), waiting for it, with any descriptors that came
    /// with it. Returns 0 bytes at the end of the stream.
    private func readSome(into buffer: UnsafeMutableRawBufferPointer, deadline: Deadline,
                          closeWake: CInt, interrupt: IPCInterrupt?) throws -> (Int, [CInt]) {
        while true {
            do throws(Errno) {
                if isSocket {
                    let (n, fds) = try system_receiveWithDescriptors(descriptor, buffer)
                    return (n, fds)
                }
                return (try system_read(descriptor, buffer), [])
            } catch .resourceTemporarilyUnavailable {
                try wait(events: systemPollIn, deadline: deadline, closeWake: closeWake, interrupt: interrupt)
            } catch .connectionReset {
                return (0, [])
            } catch .messageTooLong {
                // MSG_CTRUNC (the shim has closed whatever descriptors did arrive).
                throw MultiprocessingError(.malformedFrame, "A message came with more file descriptors than a frame may carry (\(FrameHeader.maximumDescriptors)) or than this process could take (its descriptor limit): they were closed, and the message with them, so the stream cannot be trusted after it.")
            } catch {
                throw MultiprocessingError.system("receiving on a connection", error)
            }
        }
    }

    // MARK: waiting and lifetime

    /// Marks an operation in flight, so that ``close()`` defers closing the descriptor until it
    /// ends. Returns the eventfd that ``close()`` signals.
    internal func enter(_ what: String) throws -> CInt {
        let result: Result<CInt, MultiprocessingError> = lifecycle.withLock { state in
            if state.closed {
                return .failure(MultiprocessingError(.closed, "\(what) on a closed connection."))
            }
            if state.closeWake < 0 {
                do throws(Errno) {
                    state.closeWake = try system_eventfd()
                } catch {
                    return .failure(.system("creating a connection's wake-up descriptor", error))
                }
            }
            state.inFlight += 1
            return .success(state.closeWake)
        }
        return try result.get()
    }

    /// Takes this direction's turn (see ``ConnectionTurn``) within the caller's deadline. A caller
    /// that had to wait for it also checks that the connection was not closed meanwhile.
    internal func takeTurn(_ turn: ConnectionTurn, deadline: Deadline, interrupt: IPCInterrupt?, _ what: String) throws {
        if turn.tryTake() { return }
        try turn.take(deadline: deadline, interrupt: interrupt, what)
        if isClosed {
            turn.give()
            throw MultiprocessingError(.closed, "The connection was closed while a \(what) waited for its turn on it.")
        }
    }

    internal func leave() {
        lifecycle.withLock { state in
            state.inFlight -= 1
            if state.closed && state.inFlight == 0 && !state.descriptorClosed {
                state.descriptorClosed = true
                system_close(descriptor)
            }
        }
    }

    /// Waits until the descriptor is ready for `events` (or hung up), the deadline passes, the
    /// connection is closed, or the interrupt triggers.
    internal func wait(events: Int16, deadline: Deadline, closeWake: CInt, interrupt: IPCInterrupt?) throws {
        var fds: [CInt] = [descriptor, closeWake]
        var watched: [Int16] = [events, systemPollIn]
        if let interrupt {
            do throws(Errno) {
                fds.append(try interrupt.eventDescriptor())
                watched.append(systemPollIn)
            } catch {
                throw MultiprocessingError.system("creating a wake-up descriptor", error)
            }
        }
        while true {
            let ready: [Int16]
            do throws(Errno) {
                ready = try system_pollMany(fds, events: watched, timeoutMilliseconds: deadline.pollMilliseconds)
            } catch {
                throw MultiprocessingError.system("waiting on a connection", error)
            }
            if ready[1] != 0 {
                throw MultiprocessingError(.closed, "The connection was closed while a call waited on it.")
            }
            if let interrupt, interrupt.isTriggered {
                throw MultiprocessingError.cancelledWait("a connection")
            }
            if ready[0] != 0 { return }
            if deadline.hasPassed {
                throw MultiprocessingError(.timedOut, "Waiting on a connection timed out.")
            }
        }
    }

    // MARK: Codable

    private enum CodingKeys: String, CodingKey {
        case role, descriptor, maximumMessageSize
    }

    /// Encodes this end as a descriptor that travels beside the message (see ``SharedDescriptor``).
    ///
    /// - Parameter encoder: an encoder with a ``DescriptorTransfer`` in its `userInfo`, such as the
    ///   one that sends a child's task or a message on a duplex connection.
    /// - Throws: `EncodingError` from any other encoder; ``MultiprocessingError/Code/closed`` after
    ///   ``close()``.
    public func encode(to encoder: any Encoder) throws {
        if isClosed {
            throw MultiprocessingError(.closed, "A closed connection cannot be sent to another process.")
        }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(role.rawValue, forKey: .role)
        try container.encode(SharedDescriptor(FileDescriptor(rawValue: descriptor)), forKey: .descriptor)
        try container.encode(UInt64(maximumMessageSize), forKey: .maximumMessageSize)
    }

    /// Takes ownership of a connection end that arrived from another process.
    ///
    /// - Parameter decoder: a decoder with a ``DescriptorTransfer`` in its `userInfo`.
    /// - Throws: `DecodingError` when the data is not a connection.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let rawRole = try container.decode(UInt8.self, forKey: .role)
        guard let role = Role(rawValue: rawRole) else {
            throw DecodingError.dataCorruptedError(forKey: .role, in: container, debugDescription: "Unknown connection role \(rawRole).")
        }
        let size = try container.decode(UInt64.self, forKey: .maximumMessageSize)
        let shared = try container.decode(SharedDescriptor.self, forKey: .descriptor)
        self.role = role
        self.maximumMessageSize = Int(clamping: size)
        self.descriptor = shared.fileDescriptor.rawValue
        // The flag lives in the open file description and is already set, but a descriptor made
        // elsewhere may not have it.
        try? system_setNonBlocking(descriptor, true)
    }
}
