// The frames between a pool and its workers, and how a chunk's inputs and outputs are laid out.
//
// Each worker has a pair of shared-memory byte rings of its own (PoolRing.swift), which carry these
// frames back to back, as a stream socket would. A frame is a 16-byte header (kind, two 32-bit ids,
// body length; little-endian) and its body. The parent sends a function once per map and worker,
// then chunks that name it; the worker answers each chunk with one result frame, in order. A
// chunk's values are laid out back to back: for fixed-width numbers (`Int`, `Double` ...) as raw
// memory (one copy each way), otherwise each value in the wire format, one after the other, so a
// chunk of any size costs one frame, one copy in and one copy out.

enum PoolFrameKind: UInt32 {
    // parent → worker
    /// a = job id; body = type name length (u32), type name (its mangled name), the function's bytes.
    case function = 1
    /// a = job id, b = chunk id; body = count (u32), the inputs.
    case chunk = 2
    /// b = chunk id; body = type name length (u32), type name, the task's bytes (a ProcessTask).
    case task = 3
    /// a = job id: the worker may drop the function.
    case forget = 4

    // worker → parent
    /// The initializer ran (or there is none): the worker takes chunks.
    case ready = 10
    /// body = a WireFailure: the initializer threw.
    case initializerFailed = 11
    /// b = chunk id; body = resident bytes (u64), elapsed ns (u64), failures length (u32), failures
    /// (a [WireFailure]), then the outputs of the tasks that did not fail.
    case result = 12
}

enum PoolWire {
    static let headerSize = 16
    /// The largest body either side sends or accepts.
    static let maximumBody = 1 << 30

    static func appendHeader(_ bytes: inout [UInt8], kind: PoolFrameKind, a: UInt32, b: UInt32, length: Int) {
        bytes.appendLE(kind.rawValue)
        bytes.appendLE(a)
        bytes.appendLE(b)
        bytes.appendLE(UInt32(truncatingIfNeeded: length))
    }

    /// A whole frame around `body`.
    static func frame(_ kind: PoolFrameKind, a: UInt32 = 0, b: UInt32 = 0, body: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerSize + body.count)
        appendHeader(&bytes, kind: kind, a: a, b: b, length: body.count)
        bytes.append(contentsOf: body)
        return bytes
    }

    /// A body naming a type: its name's length, the name, then `payload`.
    static func namedBody(_ name: String, _ payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        let utf8 = Array(name.utf8)
        bytes.reserveCapacity(4 + utf8.count + payload.count)
        bytes.appendLE(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Splits a body made by ``namedBody(_:_:)``.
    static func splitNamed(_ body: UnsafeRawBufferPointer) throws -> (String, UnsafeRawBufferPointer) {
        guard body.count >= 4 else { throw MultiprocessingError(.malformedFrame, "A pool frame naming a type is shorter than its length field.") }
        let length = Int(body.loadLE(UInt32.self, at: 0))
        guard length <= body.count - 4 else { throw MultiprocessingError(.malformedFrame, "A pool frame's type name runs past its end.") }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: body[4..<(4 + length)]), as: UTF8.self)
        return (name, UnsafeRawBufferPointer(rebasing: body[(4 + length)...]))
    }
}

/// A task's failure as it travels from a worker: the index in its chunk, and what went wrong.
struct WireFailure: Codable, Sendable {
    enum Kind: UInt8, Codable { case threw = 0, unencodableResult = 1, setup = 2 }
    var index: Int
    var kind: Kind
    var typeName: String
    var message: String
    /// The error's mangled type name and bytes, when it is Encodable and encoded.
    var errorType: String?
    var errorBytes: [UInt8]?

    /// For an error a task (or an initializer) threw.
    init(index: Int, thrown error: any Error) {
        self.index = index
        self.kind = .threw
        self.typeName = String(reflecting: type(of: error))
        self.message = String(describing: error)
        if let encodable = error as? any Encodable, let name = _mangledTypeName(type(of: error)),
           let bytes = try? WireEncoder().encode(encodable) {
            errorType = name
            errorBytes = bytes
        }
    }

    init(index: Int, kind: Kind, typeName: String, message: String) {
        self.index = index
        self.kind = kind
        self.typeName = typeName
        self.message = message
    }

    /// The error itself, decoded here, when its type is known to this program and Decodable.
    var decodedError: (any Error)? {
        guard let errorType, let errorBytes, let type = _typeByName(errorType) as? any (Error & Decodable).Type else { return nil }
        return try? WireDecoder().decode(type, from: errorBytes)
    }
}

// MARK: values back to back

/// How a chunk's values are laid out: raw memory for fixed-width numbers, else wire-format values
/// one after another (each decoded in turn by one decoder state).
enum PoolValues {
    static func isRaw<T>(_: T.Type) -> Bool { T.self is any WireFixedWidthElement.Type }

    /// Appends `values` to `bytes`; throws when one cannot be encoded, naming its position.
    static func append<T: Encodable>(_ values: some Collection<T>, to bytes: inout [UInt8]) throws {
        if isRaw(T.self) {
            let stride = MemoryLayout<T>.stride
            bytes.reserveCapacity(bytes.count + values.count * stride)
            if let done: Void = values.withContiguousStorageIfAvailable({ buffer in
                bytes.append(contentsOf: UnsafeRawBufferPointer(buffer))
            }) {
                return done
            }
            for value in values { withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) } }
            return
        }
        let state = WireEncodingState(userInfo: [:])
        swap(&state.bytes, &bytes)
        defer { swap(&state.bytes, &bytes) }
        for value in values {
            try state.encodeValue(value)
            try state.closeFrames(downTo: 0)
            try state.checkMisuse()
        }
    }

    /// Encodes each value on its own: the ends of each in `bytes` (for inputs cut into chunks later).
    /// - Throws: ``MultiprocessingError/Code/coding`` naming the first value that cannot be encoded.
    static func appendEach<T: Encodable>(_ values: some Sequence<T>, to bytes: inout [UInt8], ends: inout [Int], firstIndex: Int) throws {
        let state = WireEncodingState(userInfo: [:])
        swap(&state.bytes, &bytes)
        defer { swap(&state.bytes, &bytes) }
        var index = firstIndex
        for value in values {
            do {
                try state.encodeValue(value)
                try state.closeFrames(downTo: 0)
                try state.checkMisuse()
            } catch {
                throw MultiprocessingError(.coding, "Could not encode input \(index) (\(T.self)) for the pool: \(error)")
            }
            ends.append(state.bytes.count)
            index += 1
        }
    }

    /// Decodes `count` values laid out by ``append(_:to:)``.
    static func decode<T: Decodable>(_: T.Type, count: Int, from bytes: UnsafeRawBufferPointer) throws -> [T] {
        if isRaw(T.self) {
            let stride = MemoryLayout<T>.stride
            guard bytes.count == count * stride else {
                throw MultiprocessingError(.malformedFrame, "A pool chunk holds \(bytes.count) bytes for \(count) values of \(T.self) (\(stride) bytes each).")
            }
            return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes) }
                initialized = count
            }
        }
        let state = WireDecodingState(base: bytes.baseAddress, count: bytes.count, maximumDepth: 512, userInfo: [:])
        var values: [T] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try state.decodeValue(T.self)) }
        guard state.pos == bytes.count else {
            throw MultiprocessingError(.malformedFrame, "A pool chunk has \(bytes.count - state.pos) bytes left over after its \(count) values.")
        }
        return values
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
