#if MPI
import Multiprocessing
import Synchronization

// The messages between MPIPool's rank 0 and its serving ranks. Each is one MPIMessenger message: its
// tag says the kind, its bytes are little-endian fields and, for values, the wire codec's bytes.

enum MPITag: Int {
    // serving rank → rank 0
    /// u32 local workers, string host.
    case hello = 1
    /// u32 chunk id, u64 elapsed ns, u32 failure count, failures, then the outputs (a wire-encoded
    /// array of the outputs of the tasks that did not fail).
    case result = 2
    /// The rank has stopped its local pool and will finalize.
    case bye = 3

    // rank 0 → serving rank
    /// u32 job id, string function type (mangled), the function's wire bytes.
    case function = 10
    /// u32 job id, u32 chunk id, u32 the local pool's fixed chunk size (0: adaptive), the inputs
    /// (a wire-encoded array).
    case chunk = 11
    /// u32 job id: the rank may drop the function.
    case forget = 12
    /// Stop serving: finish nothing more, stop the local pool, say bye.
    case stop = 13
    /// A job of one task (a map of one input; a submitted task is a `task`), function and input in one
    /// message, so it needs neither a `function` message before nor a `forget` after: u32 job id,
    /// u32 chunk id, u32 fixed chunk size (0: adaptive), string function type, blob the function's
    /// wire bytes, then the inputs (a wire-encoded array of one).
    case single = 14
    /// A submitted task: u32 job id, u32 chunk id, string task type (mangled), then the task's
    /// wire bytes (the rest), encoded once in `submit`. Its result's outputs are the task output's
    /// wire bytes as they are (empty for Void), decoded once where `value`/`get()` takes them.
    case task = 15
}

struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ value: String) {
        let utf8 = Array(value.utf8)
        u32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
    mutating func blob(_ value: [UInt8]) {
        u64(UInt64(value.count))
        bytes.append(contentsOf: value)
    }
    mutating func rest(_ value: [UInt8]) { bytes.append(contentsOf: value) }
}

struct ByteReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - position else {
            throw MPIError(.protocolError, "An MPIPool message of \(bytes.count) bytes ends early (needs \(count) at \(position)).")
        }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func u8() throws -> UInt8 { try take(1).first ?? 0 }
    mutating func u32() throws -> UInt32 {
        let slice = try take(4)
        return slice.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
    mutating func u64() throws -> UInt64 {
        let slice = try take(8)
        return slice.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    mutating func string() throws -> String {
        let count = Int(try u32())
        return String(decoding: try take(count), as: UTF8.self)
    }
    mutating func blob() throws -> [UInt8] {
        let count = try u64()
        guard count <= UInt64(bytes.count) else { throw MPIError(.protocolError, "An MPIPool message's field of \(count) bytes runs past its end.") }
        return Array(try take(Int(count)))
    }
    mutating func rest() -> ArraySlice<UInt8> {
        defer { position = bytes.count }
        return bytes[position...]
    }
}

/// One task's failure as it travels from a serving rank.
struct MPIWireFailure {
    var index: Int
    var code: String
    var typeName: String
    var message: String
    /// The error's mangled type name and wire bytes, when it is Encodable.
    var errorType: String
    var errorBytes: [UInt8]

    init(index: Int, error: PoolTaskError) {
        self.index = index
        self.code = error.code.description
        self.typeName = error.remoteTypeName ?? ""
        // The local pool's message names the task's index in the chunk; rank 0 names it in the map.
        self.message = error.code == .childFailed ? error.remoteError.map { String(describing: $0) } ?? error.message : error.message
        self.errorType = ""
        self.errorBytes = []
        if let remote = error.remoteError, let encodable = remote as? any Encodable, let name = _mangledTypeName(type(of: remote)),
           let bytes = try? WireEncoder().encode(encodable) {
            errorType = name
            errorBytes = bytes
        }
    }

    init(index: Int, code: MultiprocessingError.Code, message: String) {
        self.index = index
        self.code = code.description
        self.typeName = ""
        self.message = message
        self.errorType = ""
        self.errorBytes = []
    }

    init(from reader: inout ByteReader) throws {
        index = Int(try reader.u32())
        code = try reader.string()
        typeName = try reader.string()
        message = try reader.string()
        errorType = try reader.string()
        errorBytes = try reader.blob()
    }

    func write(to writer: inout ByteWriter) {
        writer.u32(UInt32(index))
        writer.string(code)
        writer.string(typeName)
        writer.string(message)
        writer.string(errorType)
        writer.blob(errorBytes)
    }

    static let codes: [MultiprocessingError.Code] = [.childFailed, .childDied, .coding, .timedOut, .childStartFailed, .cancelled, .broken, .misuse]

    /// The error at rank 0, for the task at `taskIndex` of the map, run on `rank`.
    func poolTaskError(taskIndex: Int, rank: Int, host: String) -> PoolTaskError {
        let code = Self.codes.first { $0.description == self.code } ?? .childFailed
        var decoded: (any Error)?
        if !errorType.isEmpty, let type = _typeByName(errorType) as? any (Error & Decodable).Type {
            decoded = try? WireDecoder().decode(type, from: errorBytes)
        }
        let place = host.isEmpty ? "MPI rank \(rank)" : "MPI rank \(rank) (\(host))"
        let text = code == .childFailed ? "Task \(taskIndex) threw on \(place): \(message)" : "Task \(taskIndex) on \(place): \(message)"
        return PoolTaskError(code: code, message: text, indices: [taskIndex],
                             remoteTypeName: typeName.isEmpty ? nil : typeName, remoteError: decoded)
    }
}

/// A submitted ProcessTask, carried to a serving rank's local pool as a one-input pool function:
/// the task by type name and bytes, and its output back as wire bytes (empty for Void).
struct _MPITaskRunner: PoolFunction {
    var typeName: String
    var taskBytes: [UInt8]

    init(typeName: String, taskBytes: [UInt8]) {
        self.typeName = typeName
        self.taskBytes = taskBytes
    }

    func run(_ input: Int) async throws -> [UInt8] {
        guard let type = Self.taskType(typeName) else {
            throw MultiprocessingError(.childStartFailed, "The task type \(typeName) is unknown to this program on the MPI rank (is every rank running the same binary?).")
        }
        return try await Self.run(type, taskBytes)
    }

    /// Task types by name, looked up once per process (`_typeByName` demangles the name each time:
    /// a good part of one task's time on a serving rank).
    private static let taskTypes = Mutex<[String: any ProcessTask.Type]>([:])

    static func taskType(_ name: String) -> (any ProcessTask.Type)? {
        if let known = taskTypes.withLock({ $0[name] }) { return known }
        guard let type = _typeByName(name) as? any ProcessTask.Type else { return nil }
        taskTypes.withLock { $0[name] = type }
        return type
    }

    static func run<T: ProcessTask>(_ type: T.Type, _ bytes: [UInt8]) async throws -> [UInt8] {
        let task = try WireDecoder().decode(T.self, from: bytes)
        let output = try await task.run()
        if let encodable = output as? any Encodable { return try WireEncoder().encode(encodable) }
        return []
    }
}
#endif

#if MPI
// A chunk's inputs on the wire: u32 count, u32 stride (0: the values are wire-encoded, each one's
// u32 length follows), then the values in the local pool's layout (`PoolEncodedValues`), so that a
// serving rank hands them to its workers without decoding them; a result's outputs come back in
// that layout too (back to back, as the workers encoded them).
extension PoolEncodedValues {
    /// Writes values `range` as a chunk's inputs.
    func writeChunk(_ range: Range<Int>, to writer: inout ByteWriter) {
        writer.u32(UInt32(range.count))
        if let stride {
            writer.u32(UInt32(stride))
        } else {
            writer.u32(0)
            var previous = range.lowerBound == 0 ? 0 : ends[range.lowerBound - 1]
            for index in range {
                writer.u32(UInt32(ends[index] - previous))
                previous = ends[index]
            }
        }
        let bytes = byteRange(range)
        self.bytes.withUnsafeBytes { writer.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[bytes])) }
    }

    /// Reads a chunk's inputs written by ``writeChunk(_:to:)``: the rest of the message.
    static func readChunk(from reader: inout ByteReader) throws -> PoolEncodedValues {
        let count = Int(try reader.u32())
        let stride = Int(try reader.u32())
        var ends: [Int] = []
        if stride == 0 {
            guard count <= (reader.bytes.count - reader.position) / 4 else {
                throw MPIError(.protocolError, "An MPIPool chunk of \(reader.bytes.count) bytes claims \(count) inputs.")
            }
            ends.reserveCapacity(count)
            var end = 0
            for _ in 0..<count {
                end += Int(try reader.u32())
                ends.append(end)
            }
        }
        return try PoolEncodedValues(bytes: Array(reader.rest()), count: count, stride: stride == 0 ? nil : stride, ends: ends)
    }
}
#endif
