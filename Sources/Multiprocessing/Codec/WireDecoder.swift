/// Decodes values written by ``WireEncoder``.
///
/// The input may be hostile (a peer process that crashed mid-write, or one that lies): decoding
/// never traps, every length is checked against the bytes that remain before anything is
/// allocated, nesting is bounded, and bytes left over after the value are an error.
public struct WireDecoder: Sendable {
    /// Values handed to every `init(from:)` through `Decoder.userInfo`; a ``DescriptorTransfer``
    /// under ``Swift/CodingUserInfoKey/descriptorTransfer`` lets a ``SharedDescriptor`` be decoded.
    public var userInfo: [CodingUserInfoKey: any Sendable]

    /// The largest input accepted, in bytes (default 1 GiB).
    public var maximumLength: Int

    /// The deepest nesting of values accepted (default 512), so that input describing a deeply
    /// recursive value fails instead of overflowing the stack.
    public var maximumDepth: Int

    /// A decoder with the given `userInfo` and limits.
    ///
    /// - Parameters:
    ///   - userInfo: Values handed to every `init(from:)` through `Decoder.userInfo`.
    ///   - maximumLength: The largest input accepted, in bytes.
    ///   - maximumDepth: The deepest nesting of values accepted.
    public init(userInfo: [CodingUserInfoKey: any Sendable] = [:], maximumLength: Int = 1 << 30, maximumDepth: Int = 512) {
        self.userInfo = userInfo
        self.maximumLength = maximumLength
        self.maximumDepth = maximumDepth
    }

    /// Decodes a value of type `type` that fills `bytes` exactly.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - bytes: The encoded value; it must stay valid for the duration of the call.
    /// - Returns: The decoded value.
    /// - Throws: `DecodingError` that names what was wrong and the coding path where: truncated or
    ///   corrupt input, a missing key, a type mismatch, trailing bytes, or input over the limits.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        guard bytes.count <= maximumLength else {
            throw DecodingError.dataCorrupted(.init(codingPath: [],
                debugDescription: "The input is \(bytes.count) bytes, over the decoder's maximumLength of \(maximumLength)."))
        }
        let state = WireDecodingState(base: bytes.baseAddress, count: bytes.count, maximumDepth: maximumDepth,
                                      userInfo: wireUserInfo(userInfo))
        let value = try state.decodeValue(T.self)
        guard state.pos == bytes.count else {
            throw DecodingError.dataCorrupted(.init(codingPath: [],
                debugDescription: "\(bytes.count - state.pos) bytes of trailing garbage follow the \(T.self) value that ends at byte \(state.pos)."))
        }
        return value
    }

    /// Decodes a value of type `type` that fills `bytes` exactly.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - bytes: The encoded value (an array or slice is read in place).
    /// - Returns: The decoded value.
    /// - Throws: As ``decode(_:from:)-(_,UnsafeRawBufferPointer)``.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: some Sequence<UInt8>) throws -> T {
        if let result = try bytes.withContiguousStorageIfAvailable({ try decode(type, from: UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return try Array(bytes).withUnsafeBytes { try decode(type, from: $0) }
    }
}

// MARK: - State

/// One decode call's state: the input, the read position and the bound it must not pass, the
/// coding path and the nesting depth.
final class WireDecodingState {
    let base: UnsafeRawPointer?
    // One decode call owns this state on one thread, so the runtime's exclusivity checks on every
    // access (a measurable share of decoding time) buy nothing here.
    @exclusivity(unchecked) var pos = 0
    @exclusivity(unchecked) var limit: Int
    @exclusivity(unchecked) var path: [any CodingKey] = []
    @exclusivity(unchecked) var depth = 0
    /// Counts containers opened, to tell a value that read nothing.
    @exclusivity(unchecked) var containersOpened = 0
    let maximumDepth: Int
    let userInfo: [CodingUserInfoKey: Any]

    init(base: UnsafeRawPointer?, count: Int, maximumDepth: Int, userInfo: [CodingUserInfoKey: Any]) {
        self.base = base
        self.limit = count
        self.maximumDepth = maximumDepth
        self.userInfo = userInfo
    }

    // MARK: Errors

    func corrupted(_ message: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: path, debugDescription: message))
    }

    func truncated(_ what: String) -> DecodingError {
        corrupted("The input ends inside \(what) (at byte \(pos) of a value that must end by byte \(limit)).")
    }

    // MARK: Primitives

    @inline(__always)
    func readByte(what: @autoclosure () -> String) throws -> UInt8 {
        guard pos < limit, let base else { throw truncated(what()) }
        let byte = base.load(fromByteOffset: pos, as: UInt8.self)
        pos += 1
        return byte
    }

    func readBool() throws -> Bool {
        switch try readByte(what: "a Bool") {
        case 0: return false
        case 1: return true
        case let byte: throw corrupted("A Bool is stored as \(byte), not 0 or 1.")
        }
    }

    /// Reads an unsigned LEB128 varint that must fit `T`.
    @inline(__always)
    func readUnsigned<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws -> T {
        guard pos < limit, let base else { throw truncated("\(T.self)") }
        let first = base.load(fromByteOffset: pos, as: UInt8.self)
        if first < 0x80 {
            pos += 1
            return T(first)
        }
        return try readUnsignedSlow(T.self)
    }

    private func readUnsignedSlow<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws -> T {
        var result: T = 0
        var shift = 0
        while true {
            let byte = try readByte(what: "a varint \(T.self)")
            let bits = T(byte & 0x7F)
            if shift >= T.bitWidth || (shift + 7 > T.bitWidth && bits >> (T.bitWidth - shift) != 0) {
                throw corrupted("A varint at byte \(pos - 1) is too large for \(T.self).")
            }
            result |= bits << shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    /// Reads a zigzag varint that must fit `T`.
    @inline(__always)
    func readSigned<T: FixedWidthInteger & SignedInteger>(_: T.Type) throws -> T {
        let zigzag = try readUnsigned(T.Magnitude.self)
        return T(truncatingIfNeeded: zigzag >> 1) ^ (0 - T(truncatingIfNeeded: zigzag & 1))
    }

    @inline(__always)
    func readFixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard limit - pos >= size, let base else { throw truncated("a \(size)-byte number") }
        let value = base.loadUnaligned(fromByteOffset: pos, as: T.self)
        pos += size
        return T(littleEndian: value)
    }

    /// Reads a varint length and checks that that many bytes remain.
    @inline(__always)
    func readLength(what: @autoclosure () -> String) throws -> Int {
        let length = try readUnsigned(UInt64.self)
        guard length <= UInt64(limit - pos) else {
            throw corrupted("\(what()) claims \(length) bytes, but only \(limit - pos) remain.")
        }
        return Int(length)
    }

    /// The bytes `[start, start + count)`, which the caller has checked.
    @inline(__always)
    func bytes(_ start: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { $0 + start }, count: count)
    }

    func readString() throws -> String {
        let length = try readLength(what: "A String")
        if length == 0 { return "" }
        let raw = bytes(pos, length)
        guard let string = String(validating: raw.assumingMemoryBound(to: UInt8.self), as: UTF8.self) else {
            throw corrupted("A String of \(length) bytes at byte \(pos) is not valid UTF-8.")
        }
        pos += length
        return string
    }

    /// Reads an element count and returns the raw elements, checked to fit before any allocation.
    func readArrayBytes(elementSize: Int, what: String) throws -> UnsafeRawBufferPointer {
        let count = try readUnsigned(UInt64.self)
        let (total, overflow) = count.multipliedReportingOverflow(by: UInt64(elementSize))
        guard !overflow, total <= UInt64(limit - pos) else {
            throw corrupted("\(what) claims \(count) elements of \(elementSize) bytes, but only \(limit - pos) bytes remain.")
        }
        let raw = bytes(pos, Int(total))
        pos += Int(total)
        return raw
    }

    // MARK: Values

    /// Decodes one value at `pos` (primitives, byte arrays and Optionals directly, the rest through
    /// `init(from:)`), leaving `pos` after it.
    func decodeValue<T: Decodable>(_: T.Type) throws -> T {
        if let special = T.self as? any WireDecodableSpecial.Type {
            guard let value = try special.wireDecode(from: self) as? T else {
                throw corrupted("Internal error: \(special) did not decode as \(T.self).")
            }
            return value
        }
        depth += 1
        defer { depth -= 1 }
        guard depth <= maximumDepth else {
            throw corrupted("Values are nested deeper than the decoder's maximumDepth of \(maximumDepth).")
        }
        let start = pos
        let opened = containersOpened
        let value = try T(from: WireDecoderImpl(state: self, start: start, end: limit, detached: false, pathCount: path.count, ownKeys: []))
        if containersOpened == opened && pos == start && pos < limit, let base, base.load(fromByteOffset: pos, as: UInt8.self) == 0 {
            // A type whose init(from:) reads nothing, such as a synthesized empty struct, whose
            // encode(to:) still opened a keyed container: skip that empty container's one byte.
            pos += 1
        }
        return value
    }

    /// Runs `body` reading `[start, end)`, which it must consume exactly, then restores the position.
    @inline(__always)
    func within<R>(_ start: Int, _ end: Int, what: @autoclosure () -> String, _ body: () throws -> R) throws -> R {
        let savedPos = pos
        let savedLimit = limit
        pos = start
        limit = end
        defer {
            pos = savedPos
            limit = savedLimit
        }
        let result = try body()
        guard pos == end else {
            throw corrupted("\(end - pos) bytes are left over after \(what()).")
        }
        return result
    }

    /// Reads a keyed container's header at `start` (within `end`) and returns its body.
    func keyedHeader(at start: Int, end: Int) throws -> (bodyStart: Int, bodyEnd: Int) {
        let savedPos = pos
        let savedLimit = limit
        defer { pos = savedPos; limit = savedLimit }
        pos = start
        limit = end
        let length = try readLength(what: "A keyed container")
        return (pos, pos + length)
    }

    /// Reads an unkeyed container's header at `start` (within `end`): its body's end, where the
    /// elements start and how many there are (each takes at least one byte, so the count is checked).
    func unkeyedHeader(at start: Int, end: Int) throws -> (elementsStart: Int, bodyEnd: Int, count: Int) {
        let savedPos = pos
        let savedLimit = limit
        defer { pos = savedPos; limit = savedLimit }
        pos = start
        limit = end
        let length = try readLength(what: "An unkeyed container")
        limit = pos + length
        let count = try readUnsigned(UInt64.self)
        guard count <= UInt64(limit - pos) else {
            throw corrupted("An unkeyed container claims \(count) elements, but its body has only \(limit - pos) bytes.")
        }
        return (pos, limit, Int(count))
    }

    func pushPath(_ ownKeys: [any CodingKey], _ key: some CodingKey) {
        if !ownKeys.isEmpty { path.append(contentsOf: ownKeys) }
        path.append(key)
    }

    func popPath(_ ownKeys: [any CodingKey]) {
        path.removeLast(ownKeys.count + 1)
    }
}

// MARK: - Decoder

/// The `Decoder` handed to one value's `init(from:)`.
struct WireDecoderImpl: Decoder {
    let state: WireDecodingState
    /// The value's bytes: `[start, end)`; it may end before `end` unless `detached`.
    let start: Int
    let end: Int
    /// A super decoder, used after its container moved on: it must not move the shared position.
    let detached: Bool
    let pathCount: Int
    /// Keys of nested containers between the shared path's prefix and this decoder.
    let ownKeys: [any CodingKey]

    var codingPath: [any CodingKey] { Array(state.path.prefix(pathCount)) + ownKeys }
    var userInfo: [CodingUserInfoKey: Any] { state.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        state.containersOpened &+= 1
        let body = try state.keyedHeader(at: start, end: end)
        if detached {
            guard body.bodyEnd == end else {
                throw state.corrupted("\(end - body.bodyEnd) bytes are left over after a keyed container.")
            }
        } else {
            state.pos = body.bodyEnd
        }
        return KeyedDecodingContainer(WireKeyedDecodingContainer<Key>(
            state: state, start: body.bodyStart, end: body.bodyEnd, pathCount: pathCount, ownKeys: ownKeys))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        state.containersOpened &+= 1
        let header = try state.unkeyedHeader(at: start, end: end)
        if detached {
            guard header.bodyEnd == end else {
                throw state.corrupted("\(end - header.bodyEnd) bytes are left over after an unkeyed container.")
            }
        } else {
            state.pos = header.bodyEnd
        }
        return WireUnkeyedDecodingContainer(state: state, cursor: header.elementsStart, end: header.bodyEnd,
                                            count: header.count, pathCount: pathCount, ownKeys: ownKeys)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        state.containersOpened &+= 1
        return WireSingleValueDecodingContainer(decoder: self)
    }
}

// MARK: - Keyed

final class WireKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    struct Entry {
        var keyStart: Int
        var keyLength: Int
        /// -1 for a nil value.
        var valueStart: Int
        var valueEnd: Int
        var next: Int
    }

    let state: WireDecodingState
    let start: Int
    let end: Int
    let pathCount: Int
    let ownKeys: [any CodingKey]
    /// Where the next entry in encoding order starts: keys are usually decoded in that order.
    @exclusivity(unchecked) private var cursor: Int
    /// Every entry, built the first time a key is not where the cursor expects it.
    @exclusivity(unchecked) private var index: [Entry]?
    @exclusivity(unchecked) private var hint = 0

    init(state: WireDecodingState, start: Int, end: Int, pathCount: Int, ownKeys: [any CodingKey]) {
        self.state = state
        self.start = start
        self.end = end
        self.pathCount = pathCount
        self.ownKeys = ownKeys
        self.cursor = start
    }

    var codingPath: [any CodingKey] { Array(state.path.prefix(pathCount)) + ownKeys }

    var allKeys: [Key] {
        guard let entries = try? buildIndex() else { return [] }
        return entries.compactMap { entry in
            guard let name = String(validating: state.bytes(entry.keyStart, entry.keyLength).assumingMemoryBound(to: UInt8.self), as: UTF8.self) else { return nil }
            return Key(stringValue: name)
        }
    }

    private func parseEntry(at position: Int) throws -> Entry {
        let savedPos = state.pos
        let savedLimit = state.limit
        defer { state.pos = savedPos; state.limit = savedLimit }
        state.pos = position
        state.limit = end
        let keyLength = try state.readLength(what: "A key")
        let keyStart = state.pos
        state.pos += keyLength
        // The value's length + 1, or 0 for nil.
        let marker = try state.readUnsigned(UInt64.self)
        if marker == 0 {
            return Entry(keyStart: keyStart, keyLength: keyLength, valueStart: -1, valueEnd: -1, next: state.pos)
        }
        guard marker - 1 <= UInt64(end - state.pos) else {
            throw state.corrupted("The value of a key claims \(marker - 1) bytes, but only \(end - state.pos) remain.")
        }
        let valueStart = state.pos
        let valueEnd = valueStart + Int(marker - 1)
        return Entry(keyStart: keyStart, keyLength: keyLength, valueStart: valueStart, valueEnd: valueEnd, next: valueEnd)
    }

    private func buildIndex() throws -> [Entry] {
        if let index { return index }
        var entries: [Entry] = []
        var position = start
        while position < end {
            let entry = try parseEntry(at: position)
            entries.append(entry)
            position = entry.next
        }
        index = entries
        return entries
    }

    @inline(__always)
    private func matches(_ entry: Entry, _ key: Key) -> Bool {
        matches(entry, name: key.stringValue)
    }

    @inline(__always)
    private func matches(_ entry: Entry, name: String) -> Bool {
        var name = name
        return name.withUTF8 { utf8 in
            guard utf8.count == entry.keyLength else { return false }
            guard let base = state.base else { return utf8.isEmpty }
            let stored = base + entry.keyStart
            for offset in 0..<utf8.count where utf8[offset] != stored.load(fromByteOffset: offset, as: UInt8.self) {
                return false
            }
            return true
        }
    }

    /// Finds `key`'s entry: at the cursor when keys come in encoding order, else in the index.
    private func find(_ key: Key) throws -> Entry? {
        if index == nil {
            if cursor < end {
                let entry = try parseEntry(at: cursor)
                if matches(entry, key) {
                    cursor = entry.next
                    return entry
                }
            }
            _ = try buildIndex()
        }
        guard let entries = index, !entries.isEmpty else { return nil }
        for step in 0..<entries.count {
            let position = (hint + step) % entries.count
            if matches(entries[position], key) {
                hint = position + 1
                return entries[position]
            }
        }
        return nil
    }

    private func keyNotFound(_ key: Key) -> DecodingError {
        .keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value for key \"\(key.stringValue)\"."))
    }

    /// Decodes the value of `key` with `body`, or returns nil when the key is absent or nil.
    /// Primitives (`pushKey: false`) can't look at the coding path, so their key joins it only
    /// when they throw.
    @inline(__always)
    private func decodeEntry<T>(_ key: Key, _: T.Type, required: Bool, pushKey: Bool = true, _ body: () throws -> T) throws -> T? {
        guard let entry = try find(key) else {
            if required { throw keyNotFound(key) }
            return nil
        }
        guard entry.valueStart >= 0 else {
            if required {
                throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [key],
                    debugDescription: "Expected \(T.self) for key \"\(key.stringValue)\" but found nil."))
            }
            return nil
        }
        guard pushKey else {
            do {
                return try state.within(entry.valueStart, entry.valueEnd, what: "the \(T.self) value", body)
            } catch DecodingError.dataCorrupted(let context) {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath + [key], debugDescription: context.debugDescription))
            }
        }
        state.pushPath(ownKeys, key)
        defer { state.popPath(ownKeys) }
        return try state.within(entry.valueStart, entry.valueEnd, what: "the \(T.self) value", body)
    }

    @inline(__always)
    private func required<T>(_ key: Key, _ type: T.Type, _ body: () throws -> T) throws -> T {
        guard let value = try decodeEntry(key, type, required: true, pushKey: false, body) else { throw keyNotFound(key) }
        return value
    }

    @inline(__always)
    private func optional<T>(_ key: Key, _ type: T.Type, _ body: () throws -> T) throws -> T? {
        try decodeEntry(key, type, required: false, pushKey: false, body)
    }

    func contains(_ key: Key) -> Bool {
        if index == nil, cursor < end, let entry = try? parseEntry(at: cursor), matches(entry, key) { return true }
        guard let entries = try? buildIndex() else { return false }
        return entries.contains { matches($0, key) }
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if index == nil, cursor < end, let entry = try? parseEntry(at: cursor), matches(entry, key) {
            if entry.valueStart < 0 { cursor = entry.next }
            return entry.valueStart < 0
        }
        let entries = try buildIndex()
        guard let entry = entries.first(where: { matches($0, key) }) else { throw keyNotFound(key) }
        return entry.valueStart < 0
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try required(key, type) { try state.readBool() } }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try required(key, type) { try state.readString() } }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try required(key, type) { Double(bitPattern: try state.readFixed(UInt64.self)) } }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try required(key, type) { Float(bitPattern: try state.readFixed(UInt32.self)) } }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try required(key, type) { try state.readSigned(Int.self) } }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try required(key, type) { Int8(bitPattern: try state.readByte(what: "Int8")) } }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try required(key, type) { try state.readSigned(Int16.self) } }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try required(key, type) { try state.readSigned(Int32.self) } }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try required(key, type) { try state.readSigned(Int64.self) } }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try required(key, type) { try state.readSigned(Int128.self) } }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try required(key, type) { try state.readUnsigned(UInt.self) } }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try required(key, type) { try state.readByte(what: "UInt8") } }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try required(key, type) { try state.readUnsigned(UInt16.self) } }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try required(key, type) { try state.readUnsigned(UInt32.self) } }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try required(key, type) { try state.readUnsigned(UInt64.self) } }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try required(key, type) { try state.readUnsigned(UInt128.self) } }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        guard let value = try decodeEntry(key, type, required: true, { try state.decodeValue(T.self) }) else { throw keyNotFound(key) }
        return value
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try optional(key, type) { try state.readBool() } }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try optional(key, type) { try state.readString() } }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try optional(key, type) { Double(bitPattern: try state.readFixed(UInt64.self)) } }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try optional(key, type) { Float(bitPattern: try state.readFixed(UInt32.self)) } }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try optional(key, type) { try state.readSigned(Int.self) } }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try optional(key, type) { Int8(bitPattern: try state.readByte(what: "Int8")) } }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try optional(key, type) { try state.readSigned(Int16.self) } }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try optional(key, type) { try state.readSigned(Int32.self) } }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try optional(key, type) { try state.readSigned(Int64.self) } }
    func decodeIfPresent(_ type: Int128.Type, forKey key: Key) throws -> Int128? { try optional(key, type) { try state.readSigned(Int128.self) } }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try optional(key, type) { try state.readUnsigned(UInt.self) } }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try optional(key, type) { try state.readByte(what: "UInt8") } }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try optional(key, type) { try state.readUnsigned(UInt16.self) } }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try optional(key, type) { try state.readUnsigned(UInt32.self) } }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try optional(key, type) { try state.readUnsigned(UInt64.self) } }
    func decodeIfPresent(_ type: UInt128.Type, forKey key: Key) throws -> UInt128? { try optional(key, type) { try state.readUnsigned(UInt128.self) } }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try decodeEntry(key, type, required: false) { try state.decodeValue(T.self) } }

    /// The entry of a key that must hold a non-nil value, for nested containers and super decoders.
    private func requiredEntry(_ key: Key, what: String) throws -> Entry {
        guard let entry = try find(key) else { throw keyNotFound(key) }
        guard entry.valueStart >= 0 else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [key],
                debugDescription: "Expected \(what) for key \"\(key.stringValue)\" but found nil."))
        }
        return entry
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let entry = try requiredEntry(key, what: "a keyed container")
        let decoder = WireDecoderImpl(state: state, start: entry.valueStart, end: entry.valueEnd, detached: true,
                                      pathCount: pathCount, ownKeys: ownKeys + [key])
        return try decoder.container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let entry = try requiredEntry(key, what: "an unkeyed container")
        let decoder = WireDecoderImpl(state: state, start: entry.valueStart, end: entry.valueEnd, detached: true,
                                      pathCount: pathCount, ownKeys: ownKeys + [key])
        return try decoder.unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        // "super" need not be one of `Key`'s cases, so look it up by name.
        guard let entry = try buildIndex().first(where: { matches($0, name: "super") }) else {
            throw DecodingError.keyNotFound(WireSuperKey(), .init(codingPath: codingPath, debugDescription: "No value for key \"super\"."))
        }
        guard entry.valueStart >= 0 else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [WireSuperKey()],
                debugDescription: "Expected a super value for key \"super\" but found nil."))
        }
        return WireDecoderImpl(state: state, start: entry.valueStart, end: entry.valueEnd, detached: true,
                               pathCount: pathCount, ownKeys: ownKeys + [WireSuperKey()])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        let entry = try requiredEntry(key, what: "a super value")
        return WireDecoderImpl(state: state, start: entry.valueStart, end: entry.valueEnd, detached: true,
                               pathCount: pathCount, ownKeys: ownKeys + [key])
    }
}

// MARK: - Unkeyed

struct WireUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let state: WireDecodingState
    private var cursor: Int
    let end: Int
    let elementCount: Int
    let pathCount: Int
    let ownKeys: [any CodingKey]
    private(set) var currentIndex = 0

    init(state: WireDecodingState, cursor: Int, end: Int, count: Int, pathCount: Int, ownKeys: [any CodingKey]) {
        self.state = state
        self.cursor = cursor
        self.end = end
        self.elementCount = count
        self.pathCount = pathCount
        self.ownKeys = ownKeys
    }

    var codingPath: [any CodingKey] { Array(state.path.prefix(pathCount)) + ownKeys }
    var count: Int? { elementCount }
    var isAtEnd: Bool { currentIndex >= elementCount }

    /// Decodes the next element with `body`, which reads from the cursor.
    @inline(__always)
    private mutating func next<T>(_: T.Type, _ body: (WireDecodingState) throws -> T) throws -> T {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [WireIndexKey(currentIndex)],
                debugDescription: "The unkeyed container has no element \(currentIndex); it holds \(elementCount)."))
        }
        let savedPos = state.pos
        let savedLimit = state.limit
        state.pushPath(ownKeys, WireIndexKey(currentIndex))
        defer {
            state.popPath(ownKeys)
            state.pos = savedPos
            state.limit = savedLimit
        }
        state.pos = cursor
        state.limit = end
        let value = try body(state)
        cursor = state.pos
        currentIndex += 1
        if currentIndex == elementCount && cursor != end {
            throw state.corrupted("\(end - cursor) bytes are left over after the last element of an unkeyed container.")
        }
        return value
    }

    /// True (and the element consumed) when the next element is a 0 byte, as `encodeNil()` writes.
    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any?.self, .init(codingPath: codingPath + [WireIndexKey(currentIndex)],
                debugDescription: "The unkeyed container has no element \(currentIndex); it holds \(elementCount)."))
        }
        guard cursor < end, let base = state.base, base.load(fromByteOffset: cursor, as: UInt8.self) == 0 else { return false }
        cursor += 1
        currentIndex += 1
        if currentIndex == elementCount && cursor != end {
            throw state.corrupted("\(end - cursor) bytes are left over after the last element of an unkeyed container.")
        }
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type) { state in try state.readBool() } }
    mutating func decode(_ type: String.Type) throws -> String { try next(type) { state in try state.readString() } }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type) { state in Double(bitPattern: try state.readFixed(UInt64.self)) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type) { state in Float(bitPattern: try state.readFixed(UInt32.self)) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(type) { state in try state.readSigned(Int.self) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(type) { state in Int8(bitPattern: try state.readByte(what: "Int8")) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(type) { state in try state.readSigned(Int16.self) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(type) { state in try state.readSigned(Int32.self) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(type) { state in try state.readSigned(Int64.self) } }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try next(type) { state in try state.readSigned(Int128.self) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(type) { state in try state.readUnsigned(UInt.self) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(type) { state in try state.readByte(what: "UInt8") } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(type) { state in try state.readUnsigned(UInt16.self) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(type) { state in try state.readUnsigned(UInt32.self) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(type) { state in try state.readUnsigned(UInt64.self) } }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try next(type) { state in try state.readUnsigned(UInt128.self) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next(type) { state in try state.decodeValue(T.self) } }

    /// An element written by `encode(_:)` of an Optional carries a presence tag; read it as one.
    mutating func decodeIfPresent<T: Decodable>(_ type: T.Type) throws -> T? { try next(T?.self) { state in try state.decodeValue(T?.self) } }
    mutating func decodeIfPresent(_ type: Bool.Type) throws -> Bool? { try decodeIfPresent(Bool.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: String.Type) throws -> String? { try decodeIfPresent(String.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Double.Type) throws -> Double? { try decodeIfPresent(Double.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Float.Type) throws -> Float? { try decodeIfPresent(Float.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Int.Type) throws -> Int? { try decodeIfPresent(Int.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Int8.Type) throws -> Int8? { try decodeIfPresent(Int8.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Int16.Type) throws -> Int16? { try decodeIfPresent(Int16.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Int32.Type) throws -> Int32? { try decodeIfPresent(Int32.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Int64.Type) throws -> Int64? { try decodeIfPresent(Int64.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: Int128.Type) throws -> Int128? { try decodeIfPresent(Int128.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: UInt.Type) throws -> UInt? { try decodeIfPresent(UInt.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: UInt8.Type) throws -> UInt8? { try decodeIfPresent(UInt8.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: UInt16.Type) throws -> UInt16? { try decodeIfPresent(UInt16.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: UInt32.Type) throws -> UInt32? { try decodeIfPresent(UInt32.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: UInt64.Type) throws -> UInt64? { try decodeIfPresent(UInt64.self as any Decodable.Type, as: type) }
    mutating func decodeIfPresent(_ type: UInt128.Type) throws -> UInt128? { try decodeIfPresent(UInt128.self as any Decodable.Type, as: type) }

    private mutating func decodeIfPresent<T: Decodable>(_ open: any Decodable.Type, as _: T.Type) throws -> T? {
        try next(T?.self) { state in try state.decodeValue(T?.self) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (end, pathCount, ownKeys) = (self.end, self.pathCount, self.ownKeys + [WireIndexKey(currentIndex)])
        return try next(KeyedDecodingContainer<NestedKey>.self) { state in
            let decoder = WireDecoderImpl(state: state, start: state.pos, end: end, detached: false,
                                          pathCount: pathCount, ownKeys: ownKeys)
            return try decoder.container(keyedBy: type)
        }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (end, pathCount, ownKeys) = (self.end, self.pathCount, self.ownKeys + [WireIndexKey(currentIndex)])
        return try next((any UnkeyedDecodingContainer).self) { state in
            let decoder = WireDecoderImpl(state: state, start: state.pos, end: end, detached: false,
                                          pathCount: pathCount, ownKeys: ownKeys)
            return try decoder.unkeyedContainer()
        }
    }

    /// The next element as a decoder of its own. Elements carry no length, so its extent is known
    /// only if it is a container; a super decoder over an unkeyed element must open one.
    mutating func superDecoder() throws -> any Decoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [WireIndexKey(currentIndex)],
                debugDescription: "The unkeyed container has no element \(currentIndex); it holds \(elementCount)."))
        }
        let elementStart = cursor
        let elementEnd = try elementExtent(at: elementStart)
        let decoder = WireDecoderImpl(state: state, start: elementStart, end: elementEnd, detached: true,
                                      pathCount: pathCount, ownKeys: ownKeys + [WireIndexKey(currentIndex)])
        _ = try next(Bool.self) { state in state.pos = elementEnd; return true }
        return decoder
    }

    /// Where a container element starting at `start` ends (from its body-length prefix).
    private func elementExtent(at start: Int) throws -> Int {
        let savedPos = state.pos
        let savedLimit = state.limit
        defer { state.pos = savedPos; state.limit = savedLimit }
        state.pos = start
        state.limit = end
        let length = try state.readLength(what: "A super value")
        return state.pos + length
    }
}

// MARK: - Single value

struct WireSingleValueDecodingContainer: SingleValueDecodingContainer {
    let decoder: WireDecoderImpl
    var state: WireDecodingState { decoder.state }
    var codingPath: [any CodingKey] { decoder.codingPath }

    /// Reads the value with `body` from the decoder's start. A detached decoder's value must fill
    /// its range and leaves the shared position alone; otherwise the position ends after the value.
    @inline(__always)
    private func read<T>(_ body: () throws -> T) throws -> T {
        if decoder.detached {
            return try state.within(decoder.start, decoder.end, what: "a single value", body)
        }
        state.pos = decoder.start
        return try body()
    }

    /// True (and consumed) when the value is a 0 byte, as `encodeNil()` writes. A non-nil value
    /// carries no tag, so pair `decodeNil()` only with values that never start with a 0 byte, or
    /// encode an `Optional` as a whole (which is tagged).
    func decodeNil() -> Bool {
        let start = decoder.start
        guard start < decoder.end, let base = state.base, base.load(fromByteOffset: start, as: UInt8.self) == 0 else { return false }
        if !decoder.detached { state.pos = start + 1 }
        return true
    }

    func decode(_ type: Bool.Type) throws -> Bool { try read { try state.readBool() } }
    func decode(_ type: String.Type) throws -> String { try read { try state.readString() } }
    func decode(_ type: Double.Type) throws -> Double { try read { Double(bitPattern: try state.readFixed(UInt64.self)) } }
    func decode(_ type: Float.Type) throws -> Float { try read { Float(bitPattern: try state.readFixed(UInt32.self)) } }
    func decode(_ type: Int.Type) throws -> Int { try read { try state.readSigned(Int.self) } }
    func decode(_ type: Int8.Type) throws -> Int8 { try read { Int8(bitPattern: try state.readByte(what: "Int8")) } }
    func decode(_ type: Int16.Type) throws -> Int16 { try read { try state.readSigned(Int16.self) } }
    func decode(_ type: Int32.Type) throws -> Int32 { try read { try state.readSigned(Int32.self) } }
    func decode(_ type: Int64.Type) throws -> Int64 { try read { try state.readSigned(Int64.self) } }
    func decode(_ type: Int128.Type) throws -> Int128 { try read { try state.readSigned(Int128.self) } }
    func decode(_ type: UInt.Type) throws -> UInt { try read { try state.readUnsigned(UInt.self) } }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try read { try state.readByte(what: "UInt8") } }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try read { try state.readUnsigned(UInt16.self) } }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try read { try state.readUnsigned(UInt32.self) } }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try read { try state.readUnsigned(UInt64.self) } }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try read { try state.readUnsigned(UInt128.self) } }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try read { try state.decodeValue(T.self) } }
}
