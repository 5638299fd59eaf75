public import SystemPackage
import MultiprocessingSystem
import Synchronization

// A Connection made from a descriptor, its descriptor, receiving into a buffer, and receiving a
// message whose type the receiver does not know (issue 18).

/// The name of a value's type that precedes it in a frame (kind `value`): the receiver checks it
/// before it decodes, so two ends that disagree on a message's type get an error that names both
/// types, and a receiver that does not know the type can still take the message.
internal enum MessageTypeName {
    private static let cache = Mutex<[ObjectIdentifier: [UInt8]]>([:])

    /// The frame's prefix for a `T`: a 16-bit little-endian length, then the mangled name (the
    /// same in every process of the program, private types included). A type with no mangled name,
    /// or one too long, sends length 0, which the receiver does not check.
    internal static func prefix<T>(_ type: T.Type) -> [UInt8] {
        let id = ObjectIdentifier(type)
        if let cached = cache.withLock({ $0[id] }) { return cached }
        var name = Array((_mangledTypeName(type) ?? "").utf8)
        if name.count > Int(UInt16.max) { name = [] }
        let prefix = [UInt8(name.count & 0xFF), UInt8(name.count >> 8)] + name
        cache.withLock { $0[id] = prefix }
        return prefix
    }

    /// The mangled name at the start of a `value` frame's body, and where the value starts.
    internal static func parse(_ body: [UInt8]) throws -> (name: String, valueStart: Int) {
        guard body.count >= 2 else {
            throw MultiprocessingError(.malformedFrame, "A value frame is too short to hold its type's name (\(body.count) bytes).")
        }
        let length = Int(body[0]) | Int(body[1]) << 8
        guard length <= body.count - 2 else {
            throw MultiprocessingError(.malformedFrame, "A value frame announces a type name of \(length) bytes but holds only \(body.count - 2).")
        }
        return (String(decoding: body[2..<(2 + length)], as: UTF8.self), 2 + length)
    }

    /// A readable name for a mangled one: the type as `String(reflecting:)` names it where this
    /// program knows the type, else the mangled name.
    internal static func display(_ mangled: String) -> String {
        guard !mangled.isEmpty else { return "value of an unnamed type" }
        return _typeByName(mangled).map { String(reflecting: $0) } ?? "\(mangled) (a type this program does not know)"
    }

    /// Why a frame cannot be received as a `T`, or nil when it can; throws for a malformed frame.
    /// Either way the frame is dropped, as a message that does not decode is (and as Python drops
    /// a message that does not unpickle).
    internal static func mismatch<T>(_ type: T.Type, _ frame: FrameHeader, _ body: [UInt8]) throws -> MultiprocessingError? {
        let wantsBytes = T.self == [UInt8].self
        switch frame.kind {
        case .bytes:
            if wantsBytes { return nil }
            return MultiprocessingError(.coding,
                "The next message is raw bytes (sent with sendBytes or as [UInt8]), not a \(String(reflecting: T.self)). It was dropped; receive raw bytes with receiveBytes(), and messages of a type not known in advance with receiveMessage().")
        case .codable:
            return nil
        case .value:
            let (name, _) = try parse(body)
            if wantsBytes {
                return MultiprocessingError(.coding,
                    "The next message is a \(display(name)), not raw bytes. It was dropped; receive values with receive(_:), and messages of a type not known in advance with receiveMessage().")
            }
            guard !name.isEmpty, let expected = _mangledTypeName(T.self), expected != name else { return nil }
            return MultiprocessingError(.coding,
                "The next message is a \(display(name)), but a \(String(reflecting: T.self)) was asked for: the two ends disagree on the message's type. It was dropped; receive messages of a type not known in advance with receiveMessage().")
        }
    }

    /// Decodes the value of a `value` frame.
    internal static func decodeValue<T: Decodable>(_ type: T.Type, body: [UInt8], transfer: DescriptorTransfer) throws -> T {
        let (_, start) = try parse(body)
        do {
            return try body.withUnsafeBytes { raw in
                try WireDecoder(userInfo: [.descriptorTransfer: transfer], maximumLength: Int.max)
                    .decode(type, from: UnsafeRawBufferPointer(rebasing: raw[start...]))
            }
        } catch let error as MultiprocessingError {
            throw error
        } catch {
            throw MultiprocessingError(.coding, "Could not decode a received message as \(String(reflecting: T.self)): \(error)")
        }
    }
}

/// A message received whole before its type is known: `Connection/receiveMessage(timeout:)`.
///
/// It holds the message's bytes, whether it is raw bytes or a value, and the sender's type name.
/// ``decode(_:)`` turns it into a value (it may be called more than once); descriptors that came
/// with it are closed when the message is released, apart from those a decoded value took.
public final class ReceivedMessage: Sendable {
    /// The raw bytes of a raw-bytes message; for a value, its encoding (without its type's name).
    public let bytes: [UInt8]
    /// For a value, the sender's type as `String(reflecting:)` names it (or its mangled name, when
    /// this program does not know the type); nil for raw bytes.
    public let typeName: String?
    private let kind: FrameHeader.Kind
    private let mangledName: String
    private let transfer: DescriptorTransfer

    internal init(_ frame: FrameHeader, _ body: [UInt8], _ descriptors: [CInt]) throws {
        kind = frame.kind
        transfer = DescriptorTransfer(received: descriptors)
        switch frame.kind {
        case .bytes:
            bytes = body
            typeName = nil
            mangledName = ""
        case .codable:
            bytes = body
            typeName = "value of an unnamed type"
            mangledName = ""
        case .value:
            let (name, start) = try MessageTypeName.parse(body)
            bytes = Array(body[start...])
            mangledName = name
            typeName = MessageTypeName.display(name)
        }
    }

    deinit { transfer.closeUnclaimed() }

    /// Whether the message is raw bytes (sent with `sendBytes` or as `[UInt8]`).
    public var isRawBytes: Bool { kind == .bytes }

    /// Whether the message is a value of type `T` (as far as its sender said: a sender with no
    /// name for its type matches any `T`).
    public func holds<T>(_ type: T.Type) -> Bool {
        switch kind {
        case .bytes: return T.self == [UInt8].self
        case .codable: return true
        case .value: return mangledName.isEmpty || _mangledTypeName(T.self) == mangledName
        }
    }

    /// The message as a `T`.
    ///
    /// - Parameter type: the sender's type; `[UInt8]` for raw bytes.
    /// - Returns: the value. Descriptors it holds are its own.
    /// - Throws: ``MultiprocessingError/Code/coding`` when the message is not a `T` (the message
    ///   names both types) or its bytes do not decode.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        if kind == .bytes {
            guard T.self == [UInt8].self else {
                throw MultiprocessingError(.coding, "The message is raw bytes, not a \(String(reflecting: T.self)).")
            }
            return unsafeBitCast(bytes, to: T.self)
        }
        guard holds(type) else {
            throw MultiprocessingError(.coding, "The message is a \(typeName ?? "value"), not a \(String(reflecting: T.self)).")
        }
        do {
            return try bytes.withUnsafeBytes { raw in
                try WireDecoder(userInfo: [.descriptorTransfer: transfer], maximumLength: Int.max).decode(type, from: raw)
            }
        } catch let error as MultiprocessingError {
            throw error
        } catch {
            throw MultiprocessingError(.coding, "Could not decode the message as \(String(reflecting: T.self)): \(error)")
        }
    }
}

extension Connection {
    /// Takes ownership of a descriptor that is already connected: Python's `Connection(handle)`.
    ///
    /// A Unix stream socket becomes a duplex connection that can carry descriptors; any other
    /// stream socket (TCP) a duplex one that cannot; a pipe or FIFO one direction of a simplex
    /// pipe. The other end must speak this library's framing (another `Connection`). The
    /// descriptor is made non-blocking (a flag of the open file description, so other holders of
    /// it see the change) and close-on-exec, and is closed with the connection.
    ///
    /// - Parameters:
    ///   - descriptor: a connected stream socket, or one end of a pipe or FIFO.
    ///   - readable: whether this end receives.
    ///   - writable: whether this end sends. A socket must be both; a pipe exactly one.
    ///   - maximumMessageSize: the largest message body this end sends or accepts.
    /// - Throws: ``MultiprocessingError/Code/misuse`` for a descriptor that is not a stream socket,
    ///   pipe or FIFO (a datagram socket, a regular file), for directions it cannot serve (a pipe
    ///   both readable and writable, a read-only descriptor asked to send), or a non-positive
    ///   size; ``MultiprocessingError/Code/systemCall`` for a descriptor that is not open. When it
    ///   throws, the descriptor is left open and still the caller's.
    public convenience init(adopting descriptor: FileDescriptor, readable: Bool = true, writable: Bool = true,
                            maximumMessageSize: Int = Connection.defaultMaximumMessageSize) throws {
        guard maximumMessageSize > 0 else {
            throw MultiprocessingError.misuse("Connection(adopting:): maximumMessageSize must be positive (it was \(maximumMessageSize)).")
        }
        guard readable || writable else {
            throw MultiprocessingError.misuse("Connection(adopting:): a connection must be readable, writable or both.")
        }
        let fd = descriptor.rawValue
        let described: DescriptorKind
        do throws(Errno) {
            described = try system_describeDescriptor(fd)
        } catch {
            throw MultiprocessingError.system("Connection(adopting: \(fd)): looking at the descriptor", error)
        }
        let role: Role
        switch described.kind {
        case .streamSocket(let unix):
            guard readable && writable else {
                throw MultiprocessingError.misuse("Connection(adopting: \(fd)): a socket connection is duplex; readable: false or writable: false applies to a pipe's ends only.")
            }
            role = unix ? .duplex : .network
        case .otherSocket:
            throw MultiprocessingError.misuse("Connection(adopting: \(fd)): the socket is not a stream socket (SOCK_STREAM); messages need a byte stream.")
        case .pipe:
            guard readable != writable else {
                throw MultiprocessingError.misuse("Connection(adopting: \(fd)): a pipe carries one direction; say which with readable: false or writable: false.")
            }
            role = readable ? .reader : .writer
        case .other:
            throw MultiprocessingError.misuse("Connection(adopting: \(fd)): the descriptor is neither a stream socket nor a pipe or FIFO.")
        }
        if readable && described.accessMode == systemOWrOnly {
            throw MultiprocessingError.misuse("Connection(adopting: \(fd)): the descriptor is open for writing only, so it cannot receive.")
        }
        if writable && described.accessMode == systemORdOnly {
            throw MultiprocessingError.misuse("Connection(adopting: \(fd)): the descriptor is open for reading only, so it cannot send.")
        }
        do throws(Errno) {
            try system_setNonBlocking(fd, true)
            try system_setCloseOnExec(fd, true)
        } catch {
            throw MultiprocessingError.system("Connection(adopting: \(fd)): setting O_NONBLOCK", error)
        }
        self.init(descriptor: fd, role: role, maximumMessageSize: maximumMessageSize)
    }

    /// The descriptor of this end: Python's `fileno()`. It stays the connection's: do not close it.
    ///
    /// - Throws: ``MultiprocessingError/Code/closed`` after ``close()``.
    public var fileDescriptor: FileDescriptor {
        get throws {
            if isClosed { throw MultiprocessingError(.closed, "fileDescriptor of a closed connection.") }
            return FileDescriptor(rawValue: descriptor)
        }
    }

    /// Whether this end can carry file descriptors in its messages (a Unix socket).
    public var carriesDescriptors: Bool { role == .duplex }

    /// Receives the next message whatever its type: raw bytes, or a value with its sender's type
    /// name, to decode once the type is known (``ReceivedMessage/decode(_:)``).
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever.
    /// - Returns: the message.
    /// - Throws: as `receive(_:timeout:)`, except that no message is refused for its type.
    public func receiveMessage(timeout: Duration? = nil) throws -> ReceivedMessage {
        let (frame, body, descriptors) = try receiveFrame(timeout: timeout, interrupt: nil)
        return try ReceivedMessage(frame, body, descriptors)
    }

    /// Receives the next message whatever its type, without blocking the cooperative pool; see
    /// `receiveMessage(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits for ever.
    /// - Returns: the message.
    /// - Throws: as the blocking twin, and ``MultiprocessingError/Code/cancelled``.
    public func receiveMessage(timeout: Duration? = nil) async throws -> ReceivedMessage {
        try Deadline.validate(timeout, "Connection.receiveMessage")
        if let (frame, body, descriptors) = try receiveFrameIfReady() {
            return try ReceivedMessage(frame, body, descriptors)
        }
        let (frame, body, descriptors) = try await ipcRunBlocking { interrupt in
            try SendableFrame(self.receiveFrame(timeout: timeout, interrupt: interrupt))
        }.frame
        return try ReceivedMessage(frame, body, descriptors)
    }

    /// Receives a raw-bytes message into `buffer`: Python's `recv_bytes_into`.
    ///
    /// - Parameters:
    ///   - buffer: where the bytes go, from its start.
    ///   - timeout: how long to wait; `nil` waits for ever.
    /// - Returns: the message's length.
    /// - Throws: ``MultiprocessingError/Code/bufferTooShort`` when the message is longer than
    ///   `buffer` (the error names its length): the message is not taken, and the next receive
    ///   returns it, as Python's `BufferTooShort` leaves it to be read. ``MultiprocessingError/Code/coding``
    ///   when it is a value, not raw bytes (dropped, as by `receiveBytes(timeout:)`). Otherwise as
    ///   `receive(_:timeout:)`.
    public func receiveBytes(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration? = nil) throws -> Int {
        let room = buffer.count
        let (frame, body, descriptors) = try receiveFrame(timeout: timeout, interrupt: nil) { frame, body in
            // Only a raw-bytes frame stays when it does not fit; a value is dropped below.
            guard frame.kind != .bytes || body.count <= room else {
                return MultiprocessingError(.bufferTooShort,
                    "The next message is \(body.count) bytes, more than the \(room) bytes of room in the buffer. It was not taken: receive it into a buffer of at least \(body.count) bytes, or with receiveBytes().")
            }
            return nil
        }
        for fd in descriptors { system_close(fd) }
        if let mismatch = try MessageTypeName.mismatch([UInt8].self, frame, body) { throw mismatch }
        body.withUnsafeBytes { raw in
            if let base = buffer.baseAddress, let source = raw.baseAddress, !raw.isEmpty { base.copyMemory(from: source, byteCount: raw.count) }
        }
        return body.count
    }

    /// Receives a raw-bytes message into `array`, from `offset` on: Python's
    /// `recv_bytes_into(buffer, offset)`. The array keeps its size.
    ///
    /// - Parameters:
    ///   - array: where the bytes go.
    ///   - offset: where in `array` the message starts.
    ///   - timeout: how long to wait; `nil` waits for ever.
    /// - Returns: the message's length.
    /// - Throws: ``MultiprocessingError/Code/misuse`` for an offset outside the array; otherwise
    ///   as `receiveBytes(into:timeout:)` with the room after `offset`.
    public func receiveBytes(into array: inout [UInt8], offset: Int = 0, timeout: Duration? = nil) throws -> Int {
        guard offset >= 0, offset <= array.count else {
            throw MultiprocessingError.misuse("receiveBytes(into:offset:): the offset \(offset) is outside the array of \(array.count) bytes.")
        }
        return try array.withUnsafeMutableBytes { raw in
            try receiveBytes(into: UnsafeMutableRawBufferPointer(rebasing: raw[offset...]), timeout: timeout)
        }
    }
}

/// A frame handed back from the blocking bridge (its descriptors are plain numbers).
private struct SendableFrame: @unchecked Sendable {
    // @unchecked: FrameHeader is a plain value; the tuple is moved from one thread to the caller.
    let frame: (FrameHeader, [UInt8], [CInt])
    init(_ frame: (FrameHeader, [UInt8], [CInt])) { self.frame = frame }
}
