/// Turns values into message bodies and back, for connections and queues.
///
/// `[UInt8]` takes a fast path: its bytes are the body, with no encoder involved (frame kind
/// `bytes`). Every other value is encoded with the module's binary wire encoding (frame kind
/// `codable`). A ``DescriptorTransfer`` in the coder's `userInfo` collects or hands back the file
/// descriptors that values such as a ``Connection`` or a lock hold.
internal enum IPCMessageCoding {
    internal static func isRawBytes<T>(_ type: T.Type) -> Bool {
        type == [UInt8].self
    }

    /// Encodes `value`. With `transfer == nil` a value that holds descriptors fails to encode.
    internal static func encode<T: Encodable>(_ value: T, transfer: DescriptorTransfer?) throws -> (kind: FrameHeader.Kind, body: [UInt8]) {
        if isRawBytes(T.self) {
            return (.bytes, unsafeBitCast(value, to: [UInt8].self))
        }
        do {
            return (.codable, try wireEncode(value, transfer: transfer))
        } catch let error as MultiprocessingError {
            throw error
        } catch {
            throw MultiprocessingError(.coding, "Could not encode a \(T.self) for sending: \(error)")
        }
    }

    /// Decodes a body of `kind` as a `T`.
    internal static func decode<T: Decodable>(_ type: T.Type, kind: FrameHeader.Kind, body: [UInt8], transfer: DescriptorTransfer?) throws -> T {
        if kind == .bytes {
            guard isRawBytes(T.self) else {
                throw MultiprocessingError(.coding,
                    "Received raw bytes (sent with sendBytes or as [UInt8]) where a \(T.self) was expected; receive them with receiveBytes, or send the value itself.")
            }
            return unsafeBitCast(body, to: T.self)
        }
        do {
            return try wireDecode(T.self, from: body, transfer: transfer)
        } catch let error as MultiprocessingError {
            throw error
        } catch {
            throw MultiprocessingError(.coding, "Could not decode a received message as \(T.self): \(error)")
        }
    }

    private static func wireEncode<T: Encodable>(_ value: T, transfer: DescriptorTransfer?) throws -> [UInt8] {
        let encoder = transfer.map { WireEncoder(userInfo: [.descriptorTransfer: $0]) } ?? WireEncoder()
        return try encoder.encode(value)
    }

    private static func wireDecode<T: Decodable>(_ type: T.Type, from body: [UInt8], transfer: DescriptorTransfer?) throws -> T {
        // The body is already bounded by the frame's maximumMessageSize.
        let decoder = transfer.map { WireDecoder(userInfo: [.descriptorTransfer: $0], maximumLength: Int.max) }
            ?? WireDecoder(maximumLength: Int.max)
        return try body.withUnsafeBytes { try decoder.decode(type, from: $0) }
    }
}
