import Testing
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif
@testable import Multiprocessing
import MultiprocessingSystem

// MARK: - Fixtures

private struct Box<T: Codable & Equatable & Sendable>: Codable, Equatable, Sendable {
    var value: T
    var list: [T]
    var maybe: T?
}

private enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rect(Int, Int)
    case named(String, tags: [String]?)
    case empty
}

private struct Everything: Codable, Equatable {
    var bool = true
    var int = -42
    var int8 = Int8.min
    var int16 = Int16.max
    var int32 = Int32.min
    var int64 = Int64.max
    var int128 = Int128.min
    var uint = UInt.max
    var uint8 = UInt8.max
    var uint16 = UInt16.max
    var uint32 = UInt32.max
    var uint64 = UInt64.max
    var uint128 = UInt128.max
    var float: Float = -1.5
    var double = Double.pi
    var string = "héllo, 世界 🎉"
    var empty = ""
    var optionalSet: Int? = 7
    var optionalNil: String? = nil
    var nestedOptional: Int?? = .some(nil)
    var shapes: [Shape] = [.circle(radius: 2), .rect(3, -4), .named("n", tags: ["a", "b"]), .named("m", tags: nil), .empty]
    var table: [String: [Int]] = ["one": [1], "two": [2, 2], "none": []]
    var intKeyed: [Int: String] = [1: "a", -5: "b"]
    var sparse: [Int?] = [1, nil, 3]
    var bytes: [UInt8] = [0, 1, 2, 255]
    var doubles: [Double] = [0, -0.0, .infinity, 1e300]
    var nestedArrays: [[String]] = [[], ["x"], ["y", "z"]]
    var box = Box(value: Box(value: "in", list: ["a"], maybe: nil), list: [], maybe: Box(value: "x", list: [], maybe: "y"))
}

private struct Small: Codable, Equatable {
    var id: Int
    var count: Int
    var flag: Bool
    var name: String
}

private struct Empty: Codable, Equatable {}

/// Decodes keys in reverse order and checks `contains`, so order-independence is exercised.
private struct Reversed: Decodable, Equatable {
    enum CodingKeys: String, CodingKey { case id, count, flag, name, missing }
    var name: String
    var flag: Bool
    var count: Int
    var id: Int
    var hadMissing: Bool

    static let expected = Reversed(name: "abc", flag: true, count: 2, id: 1, hadMissing: false)

    init(name: String, flag: Bool, count: Int, id: Int, hadMissing: Bool) {
        (self.name, self.flag, self.count, self.id, self.hadMissing) = (name, flag, count, id, hadMissing)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        hadMissing = container.contains(.missing)
        name = try container.decode(String.self, forKey: .name)
        flag = try container.decode(Bool.self, forKey: .flag)
        count = try container.decode(Int.self, forKey: .count)
        id = try container.decode(Int.self, forKey: .id)
    }
}

/// Only some of `Small`'s keys: unknown keys are skipped.
private struct Partial: Decodable, Equatable {
    var name: String
}

/// A key `Small` does not have.
private struct NeedsMissing: Decodable {
    var id: Int
    var missing: Int
}

private class Animal: Codable {
    var legs: Int
    init(legs: Int) { self.legs = legs }
}

private final class Dog: Animal {
    var name: String
    enum CodingKeys: String, CodingKey { case name }
    init(name: String, legs: Int) {
        self.name = name
        super.init(legs: legs)
    }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        try super.init(from: container.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try super.encode(to: container.superEncoder())
        try container.encode(name, forKey: .name)
    }
}

/// `superEncoder(forKey:)` / `superDecoder(forKey:)` with one of the type's own keys.
private struct KeyedSuper: Codable {
    enum CodingKeys: String, CodingKey { case base, tail }
    var inner: Small
    init(inner: Small) { self.inner = inner }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try inner.encode(to: container.superEncoder(forKey: .base))
        try container.encode(true, forKey: .tail)
    }
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        #expect(try container.decode(Bool.self, forKey: .tail))
        inner = try Small(from: container.superDecoder(forKey: .base))
    }
}

/// Hand-written nested containers, keyed inside unkeyed inside keyed.
private struct Manual: Codable, Equatable {
    var points: [(x: Int, y: Int)]
    var label: String

    static func == (a: Manual, b: Manual) -> Bool {
        a.label == b.label && a.points.map { [$0.x, $0.y] } == b.points.map { [$0.x, $0.y] }
    }

    enum Keys: String, CodingKey { case points, label, x, y }

    init(points: [(x: Int, y: Int)], label: String) {
        self.points = points
        self.label = label
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var list = container.nestedUnkeyedContainer(forKey: .points)
        for point in points {
            var pair = list.nestedContainer(keyedBy: Keys.self)
            try pair.encode(point.x, forKey: .x)
            try pair.encode(point.y, forKey: .y)
        }
        try container.encode(label, forKey: .label)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        label = try container.decode(String.self, forKey: .label)
        var list = try container.nestedUnkeyedContainer(forKey: .points)
        var points: [(x: Int, y: Int)] = []
        while !list.isAtEnd {
            let pair = try list.nestedContainer(keyedBy: Keys.self)
            points.append((try pair.decode(Int.self, forKey: .x), try pair.decode(Int.self, forKey: .y)))
        }
        self.points = points
    }
}

private indirect enum Chain: Codable {
    case end
    case link(Chain)
}

private struct Holder: Codable {
    var label: String
    var descriptor: SharedDescriptor
    var again: SharedDescriptor
}

/// Writes to a container after a container nested in it has moved on: must throw, not corrupt.
private struct Interleaved: Encodable {
    enum Keys: String, CodingKey { case a, b, c }
    func encode(to encoder: any Encoder) throws {
        var outer = encoder.container(keyedBy: Keys.self)
        var inner = outer.nestedContainer(keyedBy: Keys.self, forKey: .a)
        try inner.encode(1, forKey: .a)
        try outer.encode(2, forKey: .b)
        try inner.encode(3, forKey: .c)
    }
}

/// A deterministic generator (SplitMix64), so fuzz failures reproduce.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
    let bytes = try WireEncoder().encode(value)
    return try WireDecoder().decode(T.self, from: bytes)
}

private func varint(_ value: UInt64) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.wireAppendVarint(value)
    return bytes
}

private func isDataCorrupted(_ error: any Error) -> Bool {
    if case DecodingError.dataCorrupted = error { return true }
    return false
}

// MARK: - Tests

@Suite("Codec")
struct CodecTests {
    @Test func everyKindRoundTrips() throws {
        let value = Everything()
        let decoded = try roundTrip(value)
        #expect(decoded == value)
        // -0.0 == 0.0, so check the bits survived too.
        #expect(decoded.doubles[1].sign == .minus)
    }

    @Test func primitivesAtTopLevelRoundTrip() throws {
        #expect(try roundTrip(0) == 0)
        #expect(try roundTrip(Int.min) == Int.min)
        #expect(try roundTrip(UInt64.max) == UInt64.max)
        #expect(try roundTrip("") == "")
        #expect(try roundTrip(false) == false)
        #expect(try roundTrip(Optional<Int>.none) == nil)
        #expect(try roundTrip(Optional(Optional<Int>.none)) == .some(nil))
        let nan = try WireDecoder().decode(Double.self, from: WireEncoder().encode(Double.nan))
        #expect(nan.isNaN)
    }

    @Test func smallValuesAreCompact() throws {
        #expect(try WireEncoder().encode(5).count == 1)
        #expect(try WireEncoder().encode(-1).count == 1)
        #expect(try WireEncoder().encode(UInt64.max).count == 10)
        // Body length 1, keys "id" "count" "flag" "name" 4 × (1 + name), values 1 + 1 + 1 + 4,
        // each with a 1-byte length: 31 bytes (JSONEncoder writes 42).
        let small = try WireEncoder().encode(Small(id: 1, count: 2, flag: true, name: "abc"))
        #expect(small.count == 31)
    }

    @Test func nestedGenericsEnumsAndDictionariesRoundTrip() throws {
        let boxes = Box(value: [Shape.rect(1, 2)], list: [[], [.empty]], maybe: [.named("q", tags: [])])
        #expect(try roundTrip(boxes) == boxes)
        let table: [String: [Int]] = ["a": [1, 2, 3], "b": [], "01": [1], "1": [2]]
        #expect(try roundTrip(table) == table)
        let nested: [String: [String: Int?]] = ["x": ["y": nil, "z": 1]]
        #expect(try roundTrip(nested) == nested)
    }

    @Test func emptyContainersRoundTrip() throws {
        #expect(try roundTrip([Int]()) == [])
        #expect(try roundTrip([String]()) == [])
        #expect(try roundTrip([String: Int]()) == [:])
        #expect(try roundTrip(Empty()) == Empty())
        #expect(try roundTrip([Empty(), Empty()]) == [Empty(), Empty()])
        #expect(try roundTrip([[UInt8]]([[], []])) == [[], []])
    }

    @Test func largeByteArraysTakeTheFastPath() throws {
        var generator = SplitMix64(state: 1)
        let bytes = (0..<(8 << 20)).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let encoded = try WireEncoder().encode(bytes)
        // Length varint (4 bytes for 8 MiB) plus the raw bytes: no per-element overhead.
        #expect(encoded.count == bytes.count + 4)
        #expect(try WireDecoder().decode([UInt8].self, from: encoded) == bytes)
        // Inside nested structs, arrays and Optionals (whose enclosing lengths are widened before
        // the payload is written, and padded) and beside a large string.
        let payload = Array(bytes[0..<65_536])
        let message = Box(value: Box(value: payload, list: [payload, [], payload], maybe: payload), list: [], maybe: nil)
        #expect(try roundTrip(message) == message)
        let big = [String(repeating: "é", count: 100_000): [Box(value: "x", list: [String(repeating: "z", count: 70_000)], maybe: nil)]]
        #expect(try roundTrip(big) == big)
        // Every prefix of a value whose length fields are padded still fails cleanly.
        let padded = try WireEncoder().encode(Box(value: [UInt8](repeating: 3, count: 5000), list: [], maybe: nil))
        for length in stride(from: 0, to: padded.count, by: 97) {
            #expect(throws: DecodingError.self) { try WireDecoder().decode(Box<[UInt8]>.self, from: padded[0..<length]) }
        }
        let contiguous = ContiguousArray(bytes[0..<1000])
        #expect(try roundTrip(contiguous) == contiguous)
        let ints = (0..<1000).map { $0 * -7919 }
        let encodedInts = try WireEncoder().encode(ints)
        #expect(encodedInts.count == 2 + 8 * 1000)
        #expect(try WireDecoder().decode([Int].self, from: encodedInts) == ints)
    }

    @Test func keysDecodeInAnyOrderAndUnknownKeysAreSkipped() throws {
        let bytes = try WireEncoder().encode(Small(id: 1, count: 2, flag: true, name: "abc"))
        let reversed = try WireDecoder().decode(Reversed.self, from: bytes)
        #expect(reversed == Reversed.expected)
        #expect(try WireDecoder().decode(Partial.self, from: bytes) == Partial(name: "abc"))
    }

    @Test func missingKeyIsKeyNotFoundWithItsPath() throws {
        let bytes = try WireEncoder().encode(["outer": Small(id: 1, count: 2, flag: true, name: "abc")])
        do {
            _ = try WireDecoder().decode([String: NeedsMissing].self, from: bytes)
            Issue.record("decoding succeeded without the key")
        } catch DecodingError.keyNotFound(let key, let context) {
            #expect(key.stringValue == "missing")
            #expect(context.codingPath.map(\.stringValue) == ["outer"])
        }
    }

    @Test func typeMismatchReportsTheCodingPath() throws {
        let bytes = try WireEncoder().encode(Box(value: "x", list: ["a", "b"], maybe: nil))
        do {
            _ = try WireDecoder().decode(Box<Double>.self, from: bytes)
            Issue.record("decoding a String as a Double succeeded")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.codingPath.map(\.stringValue) == ["value"])
            #expect(context.debugDescription.contains("left over") || context.debugDescription.contains("ends inside"))
        }
    }

    @Test func superEncoderAndManualNestedContainersRoundTrip() throws {
        let dog = try WireDecoder().decode(Dog.self, from: WireEncoder().encode(Dog(name: "Rex", legs: 4)))
        #expect(dog.name == "Rex" && dog.legs == 4)
        let keyed = try WireDecoder().decode(KeyedSuper.self, from: WireEncoder().encode(KeyedSuper(inner: Small(id: 1, count: 2, flag: false, name: ""))))
        #expect(keyed.inner == Small(id: 1, count: 2, flag: false, name: ""))
        let manual = Manual(points: [(1, 2), (-3, 4)], label: "path")
        #expect(try roundTrip(manual) == manual)
    }

    @Test func sharedDescriptorTravelsThroughUserInfo() throws {
        // A pipe's write end travels, as the encoder collected it, over a socket with SCM_RIGHTS.
        let pipe = try system_pipe()
        let socket = try system_socketpair()
        defer { [pipe.read, pipe.write, socket.0, socket.1].forEach(system_close) }
        let sending = DescriptorTransfer()
        let value = Holder(label: "l", descriptor: SharedDescriptor(FileDescriptor(rawValue: pipe.write)),
                           again: SharedDescriptor(FileDescriptor(rawValue: pipe.write)))
        let bytes = try WireEncoder(userInfo: [.descriptorTransfer: sending]).encode(value)
        #expect(sending.descriptors == [pipe.write])
        _ = try bytes.withUnsafeBytes { try system_sendWithDescriptors(socket.0, $0, sending.descriptors) }

        var buffer = [UInt8](repeating: 0, count: 256)
        let (count, received) = try buffer.withUnsafeMutableBytes { try system_receiveWithDescriptors(socket.1, $0) }
        #expect(received.count == 1)
        let receiving = DescriptorTransfer(received: received)
        let decoded = try WireDecoder(userInfo: [.descriptorTransfer: receiving]).decode(Holder.self, from: buffer[0..<count])
        defer {
            system_close(decoded.descriptor.fileDescriptor.rawValue)
            system_close(decoded.again.fileDescriptor.rawValue)
        }
        #expect(decoded.label == "l")
        // Every claim gets a duplicate of its own; the received original closes with the transfer.
        #expect(decoded.descriptor.fileDescriptor.rawValue != received[0])
        #expect(decoded.again.fileDescriptor.rawValue != received[0])
        #expect(decoded.again.fileDescriptor.rawValue != decoded.descriptor.fileDescriptor.rawValue)
        receiving.closeUnclaimed()
        #expect(fcntl(received[0], F_GETFD) == -1)

        // The received descriptor is the pipe's write end: what goes in comes out of the read end.
        try [UInt8]([7, 8, 9]).withUnsafeBytes { try system_writeAll(decoded.again.fileDescriptor.rawValue, $0) }
        var out = [UInt8](repeating: 0, count: 3)
        _ = try out.withUnsafeMutableBytes { try system_readExactly(pipe.read, $0) }
        #expect(out == [7, 8, 9])

        // Without a transfer on the decoding side, decoding fails with a clear error.
        #expect(throws: DecodingError.self) { try WireDecoder().decode(Holder.self, from: bytes) }
    }

    @Test func sharedDescriptorWithoutTransferFailsToEncode() throws {
        let value = Holder(label: "l", descriptor: SharedDescriptor(FileDescriptor(rawValue: 3)),
                           again: SharedDescriptor(FileDescriptor(rawValue: 3)))
        do {
            _ = try WireEncoder().encode(value)
            Issue.record("a descriptor was encoded without a transfer")
        } catch EncodingError.invalidValue(_, let context) {
            #expect(context.codingPath.map(\.stringValue) == ["descriptor"])
        }
    }

    @Test func encodeAppendsAfterAnExistingHeader() throws {
        var frame: [UInt8] = [0xAA, 0xBB, 0xCC, 0xDD]
        try WireEncoder().encode(Small(id: 9, count: 8, flag: false, name: "n"), into: &frame)
        #expect(Array(frame[0..<4]) == [0xAA, 0xBB, 0xCC, 0xDD])
        #expect(try WireDecoder().decode(Small.self, from: frame[4...]) == Small(id: 9, count: 8, flag: false, name: "n"))
        // A failed encode leaves the buffer as it was.
        let before = frame
        #expect(throws: EncodingError.self) {
            try WireEncoder().encode(Holder(label: "", descriptor: .init(.standardInput), again: .init(.standardInput)), into: &frame)
        }
        #expect(frame == before)
    }

    @Test func interleavedContainerWritesThrow() {
        #expect(throws: EncodingError.self) { try WireEncoder().encode(Interleaved()) }
    }

    @Test func everyTruncatedPrefixThrows() throws {
        let bytes = try WireEncoder().encode(Everything())
        for length in 0..<bytes.count {
            #expect(throws: DecodingError.self, "prefix of \(length) bytes") {
                try WireDecoder().decode(Everything.self, from: bytes[0..<length])
            }
        }
    }

    @Test func trailingGarbageIsAnError() throws {
        var bytes = try WireEncoder().encode(Small(id: 1, count: 2, flag: true, name: "abc"))
        bytes.append(0)
        do {
            _ = try WireDecoder().decode(Small.self, from: bytes)
            Issue.record("trailing byte accepted")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.debugDescription.contains("trailing"))
        }
    }

    @Test func randomGarbageThrowsOrDecodesButNeverCrashes() throws {
        var generator = SplitMix64(state: 0xC0DEC)
        let valid = try WireEncoder().encode(Everything())
        var decodedCount = 0
        for round in 0..<4000 {
            var input: [UInt8]
            if round % 2 == 0 {
                // Pure noise.
                input = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                // A valid encoding with a few bytes changed: reaches deep into the structure.
                input = valid
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    input[Int.random(in: 0..<input.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            if (try? WireDecoder().decode(Everything.self, from: input)) != nil { decodedCount += 1 }
            _ = try? WireDecoder().decode([String: [Int]].self, from: input)
            _ = try? WireDecoder().decode([Shape].self, from: input)
            _ = try? WireDecoder().decode(Box<Box<String>>.self, from: input)
        }
        // Some mutations only touch a value's payload (a string's letters, an integer), which still decodes.
        #expect(decodedCount > 0)
    }

    @Test func hugeClaimedLengthsFailBeforeAllocating() throws {
        let claims: [[UInt8]] = [
            varint(1 << 60),                 // a 2^60-element array
            [0xFF, 0xFF, 0xFF, 0x7F],         // 4 bytes claiming 2^28 - 1
        ]
        for claim in claims {
            for attempt in [
                { try WireDecoder().decode([UInt8].self, from: claim) as Any },
                { try WireDecoder().decode([Int].self, from: claim) as Any },
                { try WireDecoder().decode([String].self, from: claim) as Any },
                { try WireDecoder().decode(String.self, from: claim) as Any },
                { try WireDecoder().decode([String: Int].self, from: claim) as Any },
                { try WireDecoder().decode(Small.self, from: claim) as Any },
            ] as [() throws -> Any] {
                do {
                    _ = try attempt()
                    Issue.record("a huge claimed length was accepted")
                } catch {
                    #expect(isDataCorrupted(error), "\(error)")
                }
            }
        }
        // An element count over the bytes in the body: a body of 2 bytes claiming 2^20 elements.
        let countClaim: [UInt8] = [4] + varint(1 << 20) + [0]
        #expect(throws: DecodingError.self) { try WireDecoder().decode([String].self, from: countClaim) }
        // count × 8 overflows Int.
        #expect(throws: DecodingError.self) { try WireDecoder().decode([Int].self, from: varint(1 << 62)) }
    }

    @Test func nestingIsBounded() throws {
        var chain = Chain.end
        for _ in 0..<200 { chain = .link(chain) }
        let bytes = try WireEncoder().encode(chain)
        #expect(throws: DecodingError.self) { try WireDecoder(maximumDepth: 100).decode(Chain.self, from: bytes) }
        _ = try WireDecoder().decode(Chain.self, from: bytes)
    }

    @Test func inputOverMaximumLengthIsRefused() throws {
        let bytes = try WireEncoder().encode([UInt8](repeating: 1, count: 100))
        #expect(throws: DecodingError.self) { try WireDecoder(maximumLength: 50).decode([UInt8].self, from: bytes) }
    }
}

