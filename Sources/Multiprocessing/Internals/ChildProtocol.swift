/// The messages between a parent and a child process, on the socket the child inherits.
///
/// Parent → child, once: a ``ChildHandshake`` frame (with the task's descriptors beside it, via
/// SCM_RIGHTS). Child → parent, once: a ``ChildOutcome`` frame. A frame is a 4-byte magic, a 1-byte
/// kind and an 8-byte little-endian body length, then the body. Both sides check every length
/// against a limit before allocating, so a malformed frame is an error, never a crash.
internal enum ChildProtocol {
    static let magic: [UInt8] = [0x53, 0x4D, 0x50, 0x31] // "SMP1"
    static let headerSize = 13
    /// A handshake or outcome larger than this is refused (tasks and results are values, not bulk data;
    /// bulk data belongs in a Queue or Connection).
    static let maximumBody = 1 << 30

    enum Kind: UInt8 {
        case handshake = 1
        case success = 2
        case thrown = 3
        case setupFailed = 4
        /// The task's result was over ``maximumBody``: the body is its size (8 bytes), not the result.
        case resultTooLarge = 5
    }

    static func frame(_ kind: Kind, _ body: [UInt8]) -> [UInt8] {
        var out = magic
        out.reserveCapacity(headerSize + body.count)
        out.append(kind.rawValue)
        var length = UInt64(body.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: body)
        return out
    }

    /// Parses a header; returns the kind and body length, or throws `.malformedFrame`.
    static func parseHeader(_ header: some Collection<UInt8>) throws -> (Kind, Int) {
        let bytes = Array(header)
        guard bytes.count == headerSize, Array(bytes[0..<4]) == magic else {
            throw MultiprocessingError(.malformedFrame, "The child-process channel carried bytes that are not a frame (bad magic).")
        }
        guard let kind = Kind(rawValue: bytes[4]) else {
            throw MultiprocessingError(.malformedFrame, "The child-process channel carried an unknown frame kind \(bytes[4]).")
        }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[5 + i]) << (8 * UInt64(i)) }
        guard length <= UInt64(maximumBody) else {
            throw MultiprocessingError(.malformedFrame, "A child-process frame claims \(length) bytes, over the \(maximumBody)-byte limit.")
        }
        return (kind, Int(length))
    }
}

/// What the parent tells a child: which task to run, with what arguments, under which name.
internal struct ChildHandshake {
    var taskTypeName: String
    var typeDisplayName: String
    var processName: String
    var daemon: Bool
    var taskBytes: [UInt8]
    /// The parent's key, which the child takes as its own (``CurrentProcess/authKey``).
    var authKey: [UInt8]
    /// The parent's name, for the child's ``parentProcess()``.
    var parentName: String

    func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.string(taskTypeName)
        writer.string(typeDisplayName)
        writer.string(processName)
        writer.byte(daemon ? 1 : 0)
        writer.bytes(taskBytes)
        writer.bytes(authKey)
        writer.string(parentName)
        return writer.buffer
    }

    init(taskTypeName: String, typeDisplayName: String, processName: String, daemon: Bool, taskBytes: [UInt8],
         authKey: [UInt8], parentName: String) {
        self.taskTypeName = taskTypeName
        self.typeDisplayName = typeDisplayName
        self.processName = processName
        self.daemon = daemon
        self.taskBytes = taskBytes
        self.authKey = authKey
        self.parentName = parentName
    }

    init(decoding body: [UInt8]) throws {
        var reader = ByteReader(body)
        taskTypeName = try reader.string()
        typeDisplayName = try reader.string()
        processName = try reader.string()
        daemon = try reader.byte() != 0
        taskBytes = try reader.bytes()
        authKey = try reader.bytes()
        parentName = try reader.string()
        try reader.expectEnd()
    }
}

/// How a child's task ended, as the child reports it.
internal enum ChildOutcome: Sendable {
    case success([UInt8])
    case thrown(typeName: String, message: String)
    case setupFailed(String)
    /// The result, this many bytes, was over the frame limit and was not sent.
    case resultTooLarge(UInt64)

    /// The outcome to send: a result over the frame limit is replaced by its size.
    var sendable: ChildOutcome {
        if case .success(let bytes) = self, bytes.count > ChildProtocol.maximumBody {
            return .resultTooLarge(UInt64(bytes.count))
        }
        return self
    }

    func frame() -> [UInt8] {
        switch self {
        case .resultTooLarge(let size):
            var writer = ByteWriter()
            writer.uint64(size)
            return ChildProtocol.frame(.resultTooLarge, writer.buffer)
        case .success(let bytes):
            return ChildProtocol.frame(.success, bytes)
        case .thrown(let typeName, let message):
            var writer = ByteWriter()
            writer.string(typeName)
            writer.string(message)
            return ChildProtocol.frame(.thrown, writer.buffer)
        case .setupFailed(let message):
            var writer = ByteWriter()
            writer.string(message)
            return ChildProtocol.frame(.setupFailed, writer.buffer)
        }
    }

    init(kind: ChildProtocol.Kind, body: [UInt8]) throws {
        var reader = ByteReader(body)
        switch kind {
        case .success:
            self = .success(body)
            return
        case .thrown:
            self = .thrown(typeName: try reader.string(), message: try reader.string())
        case .setupFailed:
            self = .setupFailed(try reader.string())
        case .resultTooLarge:
            self = .resultTooLarge(try reader.uint64())
        case .handshake:
            throw MultiprocessingError(.malformedFrame, "A child sent a handshake frame where its outcome belongs.")
        }
        try reader.expectEnd()
    }
}

/// Appends length-prefixed fields to a buffer.
internal struct ByteWriter {
    var buffer: [UInt8] = []

    mutating func byte(_ value: UInt8) { buffer.append(value) }

    mutating func uint64(_ value: UInt64) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { buffer.append(contentsOf: $0) }
    }

    mutating func bytes(_ value: [UInt8]) {
        uint64(UInt64(value.count))
        buffer.append(contentsOf: value)
    }

    mutating func string(_ value: String) { bytes(Array(value.utf8)) }
}

/// Reads what ``ByteWriter`` wrote, checking every length against what is left.
internal struct ByteReader {
    private let buffer: [UInt8]
    private var offset = 0

    init(_ buffer: [UInt8]) { self.buffer = buffer }

    private static func truncated() -> MultiprocessingError {
        MultiprocessingError(.malformedFrame, "A child-process frame ended in the middle of a field.")
    }

    mutating func byte() throws -> UInt8 {
        guard offset < buffer.count else { throw Self.truncated() }
        defer { offset += 1 }
        return buffer[offset]
    }

    mutating func uint64() throws -> UInt64 {
        guard buffer.count - offset >= 8 else { throw Self.truncated() }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(buffer[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return value
    }

    mutating func bytes() throws -> [UInt8] {
        let count = try uint64()
        guard count <= UInt64(buffer.count - offset) else { throw Self.truncated() }
        defer { offset += Int(count) }
        return Array(buffer[offset..<offset + Int(count)])
    }

    mutating func string() throws -> String {
        String(decoding: try bytes(), as: UTF8.self)
    }

    func expectEnd() throws {
        guard offset == buffer.count else {
            throw MultiprocessingError(.malformedFrame, "A child-process frame has \(buffer.count - offset) bytes after its last field.")
        }
    }
}
