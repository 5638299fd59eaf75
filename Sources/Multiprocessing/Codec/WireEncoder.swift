/// # The wire format
///
/// Every message between processes carries one `Codable` value in this format. It is binary,
/// compact and self-delimiting: a reader can always tell where a value ends without a schema
/// beyond the Swift type it decodes into.
///
/// Why varints: most integers in messages are small (counts, indices, ids, lengths), and LEB128
/// writes those in one byte while staying self-delimiting; signed integers are zigzag-mapped first so
/// small negatives stay short too. Decoding a varint is a tight loop over bytes already in cache, far
/// cheaper than text. Floating-point numbers are fixed-width little-endian (their bit patterns don't
/// shrink), and arrays of fixed-width numbers (`[UInt8]`, `[Int]`, `[Double]` …) are copied as raw
/// little-endian memory, so a 64 KiB byte payload costs one `memcpy` each way.
///
/// | value | bytes |
/// |---|---|
/// | `Bool` | 1 byte, 0 or 1 |
/// | `Int8`, `UInt8` | 1 byte |
/// | other unsigned integers | LEB128 varint |
/// | other signed integers | zigzag, then LEB128 varint |
/// | `Float`, `Double` | 4 / 8 bytes, little-endian bit pattern |
/// | `String` | varint byte count, UTF-8 |
/// | `Optional` | 0 (nil) or 1 followed by the wrapped value |
/// | array of fixed-width numbers | varint element count, raw little-endian elements |
/// | keyed container | varint body length; body = entries: key, varint (value length + 1, or 0 for nil), value |
/// | unkeyed container | varint body length; body = varint element count, elements back to back |
///
/// A key is its `stringValue` as a `String` (varint byte count, UTF-8). Never its `intValue`: the
/// standard library's dictionary key gives `"01"` the `intValue` 1, so an integer form would turn
/// `"01"` into `"1"`. Every keyed value carries its length, so a decoder reads keys in any order,
/// skips keys it doesn't know and answers `contains` without decoding; it matches keys in
/// encoding order first and builds an index of the container only when the order differs.
///
/// Lengths precede their content but are known only after it: the encoder reserves one byte and
/// widens it (shifting what follows) for content of 128 bytes or more. Before it appends a large
/// payload whose size it knows (a byte array, a string), it widens every open length field first,
/// while only a few bytes follow them, and later fills them with padded varints (LEB128 allows
/// continuation bytes that add nothing), so a big payload is copied once, not once per nesting level.
public struct WireEncoder: Sendable {
    /// Values handed to every `encode(to:)` through `Encoder.userInfo`; a ``DescriptorTransfer``
    /// under ``Swift/CodingUserInfoKey/descriptorTransfer`` lets a ``SharedDescriptor`` be encoded.
    public var userInfo: [CodingUserInfoKey: any Sendable]

    /// An encoder with the given `userInfo`.
    ///
    /// - Parameter userInfo: Values handed to every `encode(to:)` through `Encoder.userInfo`.
    public init(userInfo: [CodingUserInfoKey: any Sendable] = [:]) {
        self.userInfo = userInfo
    }

    /// Encodes `value` into a new byte array.
    ///
    /// - Parameter value: The value to encode.
    /// - Returns: The encoded bytes.
    /// - Throws: `EncodingError.invalidValue` when the value refuses to be encoded (for example a
    ///   ``SharedDescriptor`` without a transfer) or when its `encode(to:)` misuses the containers.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(value, into: &bytes)
        return bytes
    }

    /// Encodes `value` and appends it to `bytes`, so a framer can write its header first and
    /// send the whole frame without copying.
    ///
    /// - Parameters:
    ///   - value: The value to encode.
    ///   - bytes: The buffer to append to. On error it is left as it was.
    /// - Throws: As ``encode(_:)``.
    public func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws {
        let state = WireEncodingState(userInfo: wireUserInfo(userInfo))
        let start = bytes.count
        swap(&state.bytes, &bytes)
        defer { swap(&state.bytes, &bytes) }
        do {
            try state.encodeValue(value)
            try state.closeFrames(downTo: 0)
            try state.checkMisuse()
        } catch {
            state.bytes.removeSubrange(start...)
            throw error
        }
    }
}

// MARK: - State

/// One encode call's state: the output, the coding path and the stack of open containers.
///
/// Containers write straight into one buffer. A Codable container never says when it is done, so
/// a container is closed (its length patched) when its owner's `encode(to:)` returns or when an
/// enclosing container is written to again; using a closed container is an error, not corruption.
final class WireEncodingState {
    struct Frame {
        enum Kind { case keyed, unkeyed, superEncoder }
        var kind: Kind
        var id: Int
        /// The slot of the body length (an unkeyed container's count slot is the next one), or -1.
        var headerSlot: Int
        /// The slot of the enclosing keyed entry's value length, or -1.
        var parentValueSlot: Int
        var count: Int
        /// The coding path length to restore on close, and the container's own path length.
        var pathCount: Int
        var ownPathCount: Int
    }

    // One encode call owns this state on one thread, so the runtime's exclusivity checks on every
    // access (a measurable share of encoding time) buy nothing here.
    @exclusivity(unchecked) var bytes: [UInt8] = []
    @exclusivity(unchecked) var path: [any CodingKey] = []
    @exclusivity(unchecked) var frames: [Frame] = []
    @exclusivity(unchecked) var nextFrameID = 0
    /// Length fields reserved before their content and not yet written, innermost last.
    @exclusivity(unchecked) var slots: [Slot] = []

    /// A reserved length field: where it is and how many bytes it has.
    struct Slot {
        var position: Int
        var width: Int
    }
    var misuse: (path: [any CodingKey], message: String)?
    let userInfo: [CodingUserInfoKey: Any]

    init(userInfo: [CodingUserInfoKey: Any]) {
        self.userInfo = userInfo
    }

    // MARK: Values

    /// Encodes one value at the current position: directly for primitives, byte arrays and
    /// Optionals, else through its `encode(to:)`, closing whatever containers it opened.
    func encodeValue<T: Encodable>(_ value: T) throws {
        if let special = value as? any WireEncodableSpecial {
            if let size = special.wireEncodedSize { reserveForLargeValue(size) }
            try special.wireEncode(into: self)
            return
        }
        let depth = frames.count
        try value.encode(to: WireEncoderImpl(state: self, depth: depth, superFrame: nil, start: bytes.count))
        try closeFrames(downTo: depth)
    }

    /// Encodes `value` as an element of an unkeyed container; such an element must write at least
    /// one byte, so that a decoder can bound an element count by the bytes it has.
    func encodeElement<T: Encodable>(_ value: T, index: Int) throws {
        let start = bytes.count
        path.append(WireIndexKey(index))
        defer { path.removeLast() }
        try encodeValue(value)
        if bytes.count == start {
            throw EncodingError.invalidValue(value, .init(codingPath: path,
                debugDescription: "\(T.self) encodes to nothing, which the wire format can't store as an element of an unkeyed container."))
        }
    }

    @inline(__always)
    func appendString(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            reserveForLargeValue(utf8.count)
            bytes.wireAppendVarint(UInt(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    @inline(__always)
    func appendKey(_ key: some CodingKey) {
        appendString(key.stringValue)
    }

    // MARK: Length slots

    /// Reserves a one-byte length field and returns its slot index.
    @inline(__always)
    func pushSlot() -> Int {
        slots.append(Slot(position: bytes.count, width: 1))
        bytes.append(0)
        return slots.count - 1
    }

    /// Writes `value` into the innermost slot and closes it. A slot widened in advance gets a
    /// padded varint (LEB128 allows continuation bytes that add nothing); one that is too narrow
    /// is widened now, shifting the bytes after it.
    @inline(__always)
    func popSlot(_ index: Int, value: Int) {
        precondition(index == slots.count - 1, "length slots close innermost first")
        let slot = slots.removeLast()
        if slot.width == 1 && value < 0x80 {
            bytes[slot.position] = UInt8(truncatingIfNeeded: value)
        } else if wireVarintSize(value) <= slot.width {
            var rest = UInt(value)
            for offset in 0..<(slot.width - 1) {
                bytes[slot.position + offset] = UInt8(truncatingIfNeeded: rest & 0x7F) | 0x80
                rest >>= 7
            }
            bytes[slot.position + slot.width - 1] = UInt8(truncatingIfNeeded: rest)
        } else {
            var encoded: [UInt8] = []
            encoded.wireAppendVarint(UInt(value))
            bytes.replaceSubrange(slot.position..<(slot.position + slot.width), with: encoded)
        }
    }

    /// Closes the innermost slot with the length of what follows it, plus `plus`.
    @inline(__always)
    func popSlot(_ index: Int, contentPlus plus: Int) {
        let slot = slots[index]
        popSlot(index, value: bytes.count - slot.position - slot.width + plus)
    }

    /// Before `size` bytes are appended in one go, widens every open length slot so that none
    /// has to shift that payload when it is written: only the few bytes written since are moved.
    @inline(__always)
    func reserveForLargeValue(_ size: Int) {
        guard size >= 4096, !slots.isEmpty else { return }
        widenSlots(to: wireVarintSize(2 * size + bytes.count))
    }

    private func widenSlots(to width: Int) {
        var delta = 0
        for index in slots.indices {
            slots[index].position += delta
            let extra = width - slots[index].width
            if extra > 0 {
                bytes.insert(contentsOf: repeatElement(0, count: extra), at: slots[index].position + slots[index].width)
                slots[index].width = width
                delta += extra
            }
        }
    }

    /// Closes a keyed entry's value-length slot once its value is complete (stored as length + 1).
    @inline(__always)
    func finishValue(slot: Int) {
        popSlot(slot, contentPlus: 1)
    }

    // MARK: Containers

    func openFrame(_ kind: Frame.Kind, parentValueSlot: Int, pathCount: Int) -> (index: Int, id: Int) {
        let id = nextFrameID
        nextFrameID += 1
        let headerSlot: Int
        switch kind {
        case .keyed: headerSlot = pushSlot()
        case .unkeyed: headerSlot = pushSlot(); _ = pushSlot()
        case .superEncoder: headerSlot = -1
        }
        frames.append(Frame(kind: kind, id: id, headerSlot: headerSlot, parentValueSlot: parentValueSlot, count: 0, pathCount: pathCount, ownPathCount: path.count))
        return (frames.count - 1, id)
    }

    /// Closes every container above `depth`: patches its lengths and restores the coding path.
    func closeFrames(downTo depth: Int) throws {
        while frames.count > depth {
            let frame = frames.removeLast()
            switch frame.kind {
            case .keyed:
                popSlot(frame.headerSlot, contentPlus: 0)
            case .unkeyed:
                popSlot(frame.headerSlot + 1, value: frame.count)
                popSlot(frame.headerSlot, contentPlus: 0)
            case .superEncoder:
                break
            }
            if frame.parentValueSlot >= 0 {
                finishValue(slot: frame.parentValueSlot)
            }
            path.removeSubrange(frame.pathCount...)
        }
    }

    /// Makes the container `(index, id)` the innermost open one before it writes, closing any
    /// container nested in it; throws if it was already closed.
    @inline(__always)
    func prepareWrite(index: Int, id: Int) throws {
        if frames.count == index + 1 && frames[index].id == id { return }
        try prepareWriteSlow(index: index, id: id)
    }

    private func prepareWriteSlow(index: Int, id: Int) throws {
        try checkMisuse()
        guard index >= 0, index < frames.count, frames[index].id == id else {
            throw EncodingError.invalidValue(id, .init(codingPath: path,
                debugDescription: "A container was written to after the value that owns it finished encoding (or after a container enclosing it was written to again)."))
        }
        try closeFrames(downTo: index + 1)
    }

    func recordMisuse(_ message: String) {
        if misuse == nil { misuse = (path, message) }
    }

    func checkMisuse() throws {
        if let misuse {
            throw EncodingError.invalidValue(misuse.message, .init(codingPath: misuse.path, debugDescription: misuse.message))
        }
    }
}

// MARK: - Encoder

/// The `Encoder` handed to one value's `encode(to:)`.
struct WireEncoderImpl: Encoder {
    let state: WireEncodingState
    /// The number of open containers when this value started.
    let depth: Int
    /// Set when this encoder came from `superEncoder()`: the frame it writes inside.
    let superFrame: (index: Int, id: Int)?
    /// Where this value's bytes start, to catch a second container request.
    let start: Int

    var codingPath: [any CodingKey] { state.path }
    var userInfo: [CodingUserInfoKey: Any] { state.userInfo }

    /// Checks that this encoder may start its (only) container now; returns false after recording
    /// the misuse otherwise.
    private func begin() -> Bool {
        if let superFrame {
            guard superFrame.index < state.frames.count, state.frames[superFrame.index].id == superFrame.id else {
                state.recordMisuse("A super encoder was used after its container moved on.")
                return false
            }
            do { try state.closeFrames(downTo: superFrame.index + 1) } catch { return false }
        } else {
            guard state.frames.count >= depth else {
                state.recordMisuse("An encoder was used after its value finished encoding.")
                return false
            }
            do { try state.closeFrames(downTo: depth) } catch { return false }
        }
        guard state.bytes.count == start else {
            state.recordMisuse("A value asked its encoder for a second container; the wire format holds one container per value.")
            return false
        }
        return true
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        guard begin() else { return KeyedEncodingContainer(WireKeyedEncodingContainer<Key>(state: state, index: -1, id: -1)) }
        let frame = state.openFrame(.keyed, parentValueSlot: -1, pathCount: state.path.count)
        return KeyedEncodingContainer(WireKeyedEncodingContainer<Key>(state: state, index: frame.index, id: frame.id))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        guard begin() else { return WireUnkeyedEncodingContainer(state: state, index: -1, id: -1) }
        let frame = state.openFrame(.unkeyed, parentValueSlot: -1, pathCount: state.path.count)
        return WireUnkeyedEncodingContainer(state: state, index: frame.index, id: frame.id)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        WireSingleValueEncodingContainer(state: state, encoder: self, valid: begin())
    }
}

// MARK: - Keyed

struct WireKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: WireEncodingState
    let index: Int
    let id: Int

    var codingPath: [any CodingKey] {
        index >= 0 && index < state.frames.count ? Array(state.path.prefix(state.frames[index].ownPathCount)) : state.path
    }

    /// Starts an entry whose value's size isn't known: key and a reserved value-length slot.
    @inline(__always)
    private func beginEntry(_ key: Key) throws -> Int {
        try state.prepareWrite(index: index, id: id)
        state.appendKey(key)
        return state.pushSlot()
    }

    mutating func encodeNil(forKey key: Key) throws {
        try state.prepareWrite(index: index, id: id)
        state.appendKey(key)
        state.bytes.append(0)
    }

    /// An entry with a primitive value: at most 19 bytes, so its length always fits one byte.
    @inline(__always)
    private mutating func encodePrimitive(_ key: Key, _ write: (inout [UInt8]) -> Void) throws {
        try state.prepareWrite(index: index, id: id)
        state.appendKey(key)
        let position = state.bytes.count
        state.bytes.append(0)
        write(&state.bytes)
        state.bytes[position] = UInt8(truncatingIfNeeded: state.bytes.count - position)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try encodePrimitive(key) { $0.append(value ? 1 : 0) } }
    mutating func encode(_ value: String, forKey key: Key) throws {
        try state.prepareWrite(index: index, id: id)
        state.appendKey(key)
        var value = value
        value.withUTF8 { utf8 in
            // The size is known: write the entry's length first.
            state.reserveForLargeValue(utf8.count)
            state.bytes.wireAppendVarint(UInt(wireVarintSize(utf8.count) + utf8.count + 1))
            state.bytes.wireAppendVarint(UInt(utf8.count))
            state.bytes.append(contentsOf: utf8)
        }
    }
    mutating func encode(_ value: Double, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendFixed(value.bitPattern) } }
    mutating func encode(_ value: Float, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendFixed(value.bitPattern) } }
    mutating func encode(_ value: Int, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendSigned(value) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try encodePrimitive(key) { $0.append(UInt8(bitPattern: value)) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendSigned(value) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendSigned(value) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendSigned(value) } }
    mutating func encode(_ value: Int128, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendSigned(value) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendVarint(value) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try encodePrimitive(key) { $0.append(value) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendVarint(value) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendVarint(value) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendVarint(value) } }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { try encodePrimitive(key) { $0.wireAppendVarint(value) } }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        if let special = value as? any WireEncodableSpecial, let size = special.wireEncodedSize {
            // A byte array or other fixed-width array: its size is known, write the length first.
            try state.prepareWrite(index: index, id: id)
            state.appendKey(key)
            state.reserveForLargeValue(size)
            state.bytes.wireAppendVarint(UInt(size + 1))
            try special.wireEncode(into: state)
            return
        }
        let slot = try beginEntry(key)
        state.path.append(key)
        defer { state.path.removeLast() }
        try state.encodeValue(value)
        state.finishValue(slot: slot)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        guard let slot = try? beginEntry(key) else {
            state.recordMisuse("A nested container was requested from a container that is closed.")
            return KeyedEncodingContainer(WireKeyedEncodingContainer<NestedKey>(state: state, index: -1, id: -1))
        }
        let pathCount = state.path.count
        state.path.append(key)
        let frame = state.openFrame(.keyed, parentValueSlot: slot, pathCount: pathCount)
        return KeyedEncodingContainer(WireKeyedEncodingContainer<NestedKey>(state: state, index: frame.index, id: frame.id))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        guard let slot = try? beginEntry(key) else {
            state.recordMisuse("A nested container was requested from a container that is closed.")
            return WireUnkeyedEncodingContainer(state: state, index: -1, id: -1)
        }
        let pathCount = state.path.count
        state.path.append(key)
        let frame = state.openFrame(.unkeyed, parentValueSlot: slot, pathCount: pathCount)
        return WireUnkeyedEncodingContainer(state: state, index: frame.index, id: frame.id)
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(key: WireSuperKey())
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder(key: key)
    }

    private mutating func superEncoder(key: some CodingKey) -> any Encoder {
        do {
            try state.prepareWrite(index: index, id: id)
        } catch {
            state.recordMisuse("A super encoder was requested from a container that is closed.")
            return WireEncoderImpl(state: state, depth: Int.max, superFrame: nil, start: -1)
        }
        state.appendKey(key)
        let slot = state.pushSlot()
        let pathCount = state.path.count
        state.path.append(key)
        let frame = state.openFrame(.superEncoder, parentValueSlot: slot, pathCount: pathCount)
        return WireEncoderImpl(state: state, depth: frame.index + 1, superFrame: frame, start: state.bytes.count)
    }
}

// MARK: - Unkeyed

struct WireUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let state: WireEncodingState
    let index: Int
    let id: Int

    var codingPath: [any CodingKey] {
        index >= 0 && index < state.frames.count ? Array(state.path.prefix(state.frames[index].ownPathCount)) : state.path
    }

    var count: Int {
        index >= 0 && index < state.frames.count && state.frames[index].id == id ? state.frames[index].count : 0
    }

    /// Readies the container for one more element and returns its index.
    @inline(__always)
    private func beginElement() throws -> Int {
        try state.prepareWrite(index: index, id: id)
        let element = state.frames[index].count
        state.frames[index].count = element + 1
        return element
    }

    mutating func encodeNil() throws { _ = try beginElement(); state.bytes.append(0) }
    mutating func encode(_ value: Bool) throws { _ = try beginElement(); state.bytes.append(value ? 1 : 0) }
    mutating func encode(_ value: String) throws { _ = try beginElement(); state.appendString(value) }
    mutating func encode(_ value: Double) throws { _ = try beginElement(); state.bytes.wireAppendFixed(value.bitPattern) }
    mutating func encode(_ value: Float) throws { _ = try beginElement(); state.bytes.wireAppendFixed(value.bitPattern) }
    mutating func encode(_ value: Int) throws { _ = try beginElement(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int8) throws { _ = try beginElement(); state.bytes.append(UInt8(bitPattern: value)) }
    mutating func encode(_ value: Int16) throws { _ = try beginElement(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int32) throws { _ = try beginElement(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int64) throws { _ = try beginElement(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int128) throws { _ = try beginElement(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: UInt) throws { _ = try beginElement(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt8) throws { _ = try beginElement(); state.bytes.append(value) }
    mutating func encode(_ value: UInt16) throws { _ = try beginElement(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt32) throws { _ = try beginElement(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt64) throws { _ = try beginElement(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt128) throws { _ = try beginElement(); state.bytes.wireAppendVarint(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let element = try beginElement()
        try state.encodeElement(value, index: element)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        guard let element = try? beginElement() else {
            state.recordMisuse("A nested container was requested from a container that is closed.")
            return KeyedEncodingContainer(WireKeyedEncodingContainer<NestedKey>(state: state, index: -1, id: -1))
        }
        let pathCount = state.path.count
        state.path.append(WireIndexKey(element))
        let frame = state.openFrame(.keyed, parentValueSlot: -1, pathCount: pathCount)
        return KeyedEncodingContainer(WireKeyedEncodingContainer<NestedKey>(state: state, index: frame.index, id: frame.id))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        guard let element = try? beginElement() else {
            state.recordMisuse("A nested container was requested from a container that is closed.")
            return WireUnkeyedEncodingContainer(state: state, index: -1, id: -1)
        }
        let pathCount = state.path.count
        state.path.append(WireIndexKey(element))
        let frame = state.openFrame(.unkeyed, parentValueSlot: -1, pathCount: pathCount)
        return WireUnkeyedEncodingContainer(state: state, index: frame.index, id: frame.id)
    }

    mutating func superEncoder() -> any Encoder {
        guard let element = try? beginElement() else {
            state.recordMisuse("A super encoder was requested from a container that is closed.")
            return WireEncoderImpl(state: state, depth: Int.max, superFrame: nil, start: -1)
        }
        let pathCount = state.path.count
        state.path.append(WireIndexKey(element))
        let frame = state.openFrame(.superEncoder, parentValueSlot: -1, pathCount: pathCount)
        return WireEncoderImpl(state: state, depth: frame.index + 1, superFrame: frame, start: state.bytes.count)
    }
}

// MARK: - Single value

struct WireSingleValueEncodingContainer: SingleValueEncodingContainer {
    let state: WireEncodingState
    let encoder: WireEncoderImpl
    let valid: Bool
    private var used = false

    init(state: WireEncodingState, encoder: WireEncoderImpl, valid: Bool) {
        self.state = state
        self.encoder = encoder
        self.valid = valid
    }

    var codingPath: [any CodingKey] { state.path }

    @inline(__always)
    private mutating func begin() throws {
        guard valid else { try state.checkMisuse(); return }
        guard !used else {
            throw EncodingError.invalidValue(0, .init(codingPath: state.path,
                debugDescription: "A single value container was asked to encode a second value."))
        }
        used = true
    }

    mutating func encodeNil() throws { try begin(); state.bytes.append(0) }
    mutating func encode(_ value: Bool) throws { try begin(); state.bytes.append(value ? 1 : 0) }
    mutating func encode(_ value: String) throws { try begin(); state.appendString(value) }
    mutating func encode(_ value: Double) throws { try begin(); state.bytes.wireAppendFixed(value.bitPattern) }
    mutating func encode(_ value: Float) throws { try begin(); state.bytes.wireAppendFixed(value.bitPattern) }
    mutating func encode(_ value: Int) throws { try begin(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int8) throws { try begin(); state.bytes.append(UInt8(bitPattern: value)) }
    mutating func encode(_ value: Int16) throws { try begin(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int32) throws { try begin(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int64) throws { try begin(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: Int128) throws { try begin(); state.bytes.wireAppendSigned(value) }
    mutating func encode(_ value: UInt) throws { try begin(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt8) throws { try begin(); state.bytes.append(value) }
    mutating func encode(_ value: UInt16) throws { try begin(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt32) throws { try begin(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt64) throws { try begin(); state.bytes.wireAppendVarint(value) }
    mutating func encode(_ value: UInt128) throws { try begin(); state.bytes.wireAppendVarint(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try begin()
        try state.encodeValue(value)
    }
}
