/// The frame that carries one message on a ``Connection``'s byte stream.
///
/// A pipe or a stream socket carries bytes, not messages, so every message is sent as one frame:
/// a fixed 16-byte header, then the body.
///
///     offset  size  field
///     0       4     magic: the bytes "MPF1" (0x4D 0x50 0x46 0x31)
///     4       1     kind: 0 = raw bytes, 1 = a Codable value in the module's binary encoding,
///                   2 = a Codable value preceded by its type's name (what a Connection sends):
///                   a 16-bit little-endian name length, the mangled name in UTF-8, then the value
///     5       1     descriptor count: file descriptors sent with the frame's first byte
///                   (SCM_RIGHTS, sockets only), 0...64
///     6       2     reserved, both zero
///     8       8     body length in bytes, unsigned little-endian
///
/// The receiver checks the whole header before it allocates anything: a wrong magic, an unknown
/// kind, a non-zero reserved byte, too many descriptors, or a length above the receiving
/// connection's `maximumMessageSize` throws ``MultiprocessingError/Code/malformedFrame``. So a
/// stray writer or a corrupted stream can never make a receiver allocate a huge buffer or crash.
///
/// End of stream is told apart precisely: the writer closing between two frames is
/// ``MultiprocessingError/Code/endOfStream``; the writer closing inside a frame (part of a header,
/// or a body shorter than its header said) is ``MultiprocessingError/Code/malformedFrame``, because
/// a message was cut.
internal struct FrameHeader: Equatable {
    internal static let size = 16
    internal static let magic: (UInt8, UInt8, UInt8, UInt8) = (0x4D, 0x50, 0x46, 0x31)
    /// The most descriptors one frame may carry (the C shim's SCM_RIGHTS buffer).
    internal static let maximumDescriptors = 64

    internal enum Kind: UInt8 {
        case bytes = 0
        case codable = 1
        case value = 2
    }

    internal var kind: Kind
    internal var descriptorCount: Int
    internal var length: Int

    /// Writes the header into the first 16 bytes of `buffer`.
    internal func write(to buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= FrameHeader.size, "a frame header needs 16 bytes")
        buffer[0] = FrameHeader.magic.0
        buffer[1] = FrameHeader.magic.1
        buffer[2] = FrameHeader.magic.2
        buffer[3] = FrameHeader.magic.3
        buffer[4] = kind.rawValue
        buffer[5] = UInt8(descriptorCount)
        buffer[6] = 0
        buffer[7] = 0
        buffer.storeBytes(of: UInt64(length).littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    internal var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: FrameHeader.size)
        result.withUnsafeMutableBytes { write(to: $0) }
        return result
    }

    /// Checks and reads a header. Nothing is allocated from its fields before they pass.
    internal static func parse(_ raw: UnsafeRawBufferPointer, maximumMessageSize: Int) throws(MultiprocessingError) -> FrameHeader {
        precondition(raw.count >= size, "a frame header is 16 bytes")
        guard raw[0] == magic.0, raw[1] == magic.1, raw[2] == magic.2, raw[3] == magic.3 else {
            let shown = (0..<4).map { hex(raw[$0]) }.joined(separator: " ")
            throw MultiprocessingError(.malformedFrame,
                "The connection received bytes that do not start a frame (got \(shown), expected the magic 4D 50 46 31): something other than a Connection wrote into this descriptor, or two writers interleaved. The stream cannot be trusted any more; close it.")
        }
        guard let kind = Kind(rawValue: raw[4]) else {
            throw MultiprocessingError(.malformedFrame, "A frame header names an unknown message kind \(raw[4]); this stream was not written by this version of the library.")
        }
        guard raw[6] == 0, raw[7] == 0 else {
            throw MultiprocessingError(.malformedFrame, "A frame header has non-zero reserved bytes; this stream was not written by this version of the library.")
        }
        let descriptors = Int(raw[5])
        guard descriptors <= maximumDescriptors else {
            throw MultiprocessingError(.malformedFrame, "A frame header announces \(descriptors) file descriptors; at most \(maximumDescriptors) can travel with one message.")
        }
        let length = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard length <= UInt64(maximumMessageSize) else {
            throw MultiprocessingError(.malformedFrame,
                "A frame header announces a message of \(length) bytes, more than this connection's maximumMessageSize (\(maximumMessageSize) bytes). Nothing was allocated. If the sender is right, raise maximumMessageSize on the receiving Connection.")
        }
        return FrameHeader(kind: kind, descriptorCount: descriptors, length: Int(length))
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F"]
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
