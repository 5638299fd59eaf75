// Shared pieces of the wire format: varints, the coding key for unkeyed positions, and the
// "special" protocols through which primitives, byte arrays and Optionals skip `Codable`'s
// container machinery. The format itself is described at the top of WireEncoder.swift.

// MARK: - Varints

extension Array where Element == UInt8 {
    /// Appends `value` as unsigned LEB128: 7 bits a byte, low group first, high bit = "more follows".
    /// `package`: the manager writes its request fields and server-side values with it, so that
    /// what it stores reads back as the wire format.
    @inlinable
    package mutating func wireAppendVarint<T: FixedWidthInteger & UnsignedInteger>(_ value: T) {
        var value = value
        while value >= 0x80 {
            append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        append(UInt8(truncatingIfNeeded: value))
    }

    /// Appends a signed integer zigzag-mapped (0, -1, 1, -2 … → 0, 1, 2, 3 …) so small negative
    /// numbers stay short.
    @inlinable
    package mutating func wireAppendSigned<T: FixedWidthInteger & SignedInteger>(_ value: T) {
        let zigzag = (value << 1) ^ (value >> (T.bitWidth - 1))
        wireAppendVarint(T.Magnitude(truncatingIfNeeded: zigzag))
    }

    /// Appends the little-endian bytes of a fixed-width integer.
    @inline(__always)
    mutating func wireAppendFixed<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

/// The number of bytes `value` takes as a varint.
@inline(__always)
func wireVarintSize(_ value: Int) -> Int {
    var value = UInt(value)
    var size = 1
    while value >= 0x80 { value >>= 7; size += 1 }
    return size
}

/// `Encoder.userInfo` is `[CodingUserInfoKey: Any]`; ours holds only `Sendable` values.
func wireUserInfo(_ userInfo: [CodingUserInfoKey: any Sendable]) -> [CodingUserInfoKey: Any] {
    if userInfo.isEmpty { return [:] }
    var result: [CodingUserInfoKey: Any] = [:]
    for (key, value) in userInfo { result[key] = value }
    return result
}

// MARK: - Keys

/// The coding key of an element of an unkeyed container, for coding paths in errors.
struct WireIndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "Index \(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { return nil }
}

/// The key `superEncoder()` / `superDecoder()` use, as `JSONEncoder` does.
struct WireSuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(intValue: Int) { return nil }
    init?(stringValue: String) { guard stringValue == "super" else { return nil } }
}

// MARK: - Fast paths

/// A type the encoder writes itself instead of calling its `encode(to:)`: primitives, Optionals
/// (a presence tag, so `nil` inside arrays is unambiguous) and arrays of fixed-width numbers.
protocol WireEncodableSpecial {
    func wireEncode(into state: WireEncodingState) throws
    /// The exact encoded size when known up front, so that a keyed entry writes its length
    /// before the value instead of shifting a large payload to widen a reserved length byte.
    var wireEncodedSize: Int? { get }
}

extension WireEncodableSpecial {
    var wireEncodedSize: Int? { nil }
}

/// The decoding twin of ``WireEncodableSpecial``; a type conforms to both or neither.
protocol WireDecodableSpecial {
    static func wireDecode(from state: WireDecodingState) throws -> Self
}

/// A number whose arrays travel as a count and their raw little-endian bytes (one copy, no
/// per-element `Codable`).
protocol WireFixedWidthElement: BitwiseCopyable, Codable {}
extension UInt8: WireFixedWidthElement {}
extension Int8: WireFixedWidthElement {}
extension UInt16: WireFixedWidthElement {}
extension Int16: WireFixedWidthElement {}
extension UInt32: WireFixedWidthElement {}
extension Int32: WireFixedWidthElement {}
extension UInt64: WireFixedWidthElement {}
extension Int64: WireFixedWidthElement {}
extension UInt: WireFixedWidthElement {}
extension Int: WireFixedWidthElement {}
extension Float: WireFixedWidthElement {}
extension Double: WireFixedWidthElement {}

#if !_endian(little)
#error("The wire format's array fast path copies memory as little-endian; add byte swapping for this platform.")
#endif

extension Array: WireEncodableSpecial where Element: WireFixedWidthElement {
    var wireEncodedSize: Int? { wireVarintSize(count) + count * MemoryLayout<Element>.stride }

    func wireEncode(into state: WireEncodingState) throws {
        state.bytes.wireAppendVarint(UInt(count))
        withUnsafeBytes { state.bytes.append(contentsOf: $0) }
    }
}

extension Array: WireDecodableSpecial where Element: WireFixedWidthElement {
    static func wireDecode(from state: WireDecodingState) throws -> [Element] {
        let raw = try state.readArrayBytes(elementSize: MemoryLayout<Element>.stride, what: "[\(Element.self)]")
        return [Element](unsafeUninitializedCapacity: raw.count / MemoryLayout<Element>.stride) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
            initialized = buffer.count
        }
    }
}

extension ContiguousArray: WireEncodableSpecial where Element: WireFixedWidthElement {
    var wireEncodedSize: Int? { wireVarintSize(count) + count * MemoryLayout<Element>.stride }

    func wireEncode(into state: WireEncodingState) throws {
        state.bytes.wireAppendVarint(UInt(count))
        withUnsafeBytes { state.bytes.append(contentsOf: $0) }
    }
}

extension ContiguousArray: WireDecodableSpecial where Element: WireFixedWidthElement {
    static func wireDecode(from state: WireDecodingState) throws -> ContiguousArray<Element> {
        let raw = try state.readArrayBytes(elementSize: MemoryLayout<Element>.stride, what: "ContiguousArray<\(Element.self)>")
        return ContiguousArray<Element>(unsafeUninitializedCapacity: raw.count / MemoryLayout<Element>.stride) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
            initialized = buffer.count
        }
    }
}

extension Optional: WireEncodableSpecial where Wrapped: Encodable {
    func wireEncode(into state: WireEncodingState) throws {
        switch self {
        case .none:
            state.bytes.append(0)
        case .some(let wrapped):
            state.bytes.append(1)
            try state.encodeValue(wrapped)
        }
    }
}

extension Optional: WireDecodableSpecial where Wrapped: Decodable {
    static func wireDecode(from state: WireDecodingState) throws -> Wrapped? {
        switch try state.readByte(what: "an Optional's presence tag") {
        case 0: return nil
        case 1: return try state.decodeValue(Wrapped.self)
        case let tag: throw state.corrupted("an Optional's presence tag is \(tag), not 0 or 1")
        }
    }
}

extension Bool: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.append(self ? 1 : 0) }
    static func wireDecode(from state: WireDecodingState) throws -> Bool { try state.readBool() }
}

extension String: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.appendString(self) }
    static func wireDecode(from state: WireDecodingState) throws -> String { try state.readString() }
}

extension Double: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendFixed(bitPattern) }
    static func wireDecode(from state: WireDecodingState) throws -> Double { Double(bitPattern: try state.readFixed(UInt64.self)) }
}

extension Float: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendFixed(bitPattern) }
    static func wireDecode(from state: WireDecodingState) throws -> Float { Float(bitPattern: try state.readFixed(UInt32.self)) }
}

extension Int8: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.append(UInt8(bitPattern: self)) }
    static func wireDecode(from state: WireDecodingState) throws -> Int8 { Int8(bitPattern: try state.readByte(what: "Int8")) }
}

extension UInt8: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.append(self) }
    static func wireDecode(from state: WireDecodingState) throws -> UInt8 { try state.readByte(what: "UInt8") }
}

extension Int16: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendSigned(self) }
    static func wireDecode(from state: WireDecodingState) throws -> Int16 { try state.readSigned(Int16.self) }
}
extension Int32: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendSigned(self) }
    static func wireDecode(from state: WireDecodingState) throws -> Int32 { try state.readSigned(Int32.self) }
}
extension Int64: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendSigned(self) }
    static func wireDecode(from state: WireDecodingState) throws -> Int64 { try state.readSigned(Int64.self) }
}
extension Int: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendSigned(self) }
    static func wireDecode(from state: WireDecodingState) throws -> Int { try state.readSigned(Int.self) }
}
extension Int128: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendSigned(self) }
    static func wireDecode(from state: WireDecodingState) throws -> Int128 { try state.readSigned(Int128.self) }
}
extension UInt16: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendVarint(self) }
    static func wireDecode(from state: WireDecodingState) throws -> UInt16 { try state.readUnsigned(UInt16.self) }
}
extension UInt32: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendVarint(self) }
    static func wireDecode(from state: WireDecodingState) throws -> UInt32 { try state.readUnsigned(UInt32.self) }
}
extension UInt64: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendVarint(self) }
    static func wireDecode(from state: WireDecodingState) throws -> UInt64 { try state.readUnsigned(UInt64.self) }
}
extension UInt: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendVarint(self) }
    static func wireDecode(from state: WireDecodingState) throws -> UInt { try state.readUnsigned(UInt.self) }
}
extension UInt128: WireEncodableSpecial, WireDecodableSpecial {
    func wireEncode(into state: WireEncodingState) throws { state.bytes.wireAppendVarint(self) }
    static func wireDecode(from state: WireDecodingState) throws -> UInt128 { try state.readUnsigned(UInt128.self) }
}
