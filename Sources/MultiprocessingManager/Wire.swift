import Multiprocessing
import MultiprocessingSystem

// The pieces of the manager protocol below its messages (Protocol/Messages.swift): operation
// bytes, object kinds, the reply status byte, and the reader and writer of the binary layout
// (Protocol/Layout.swift), whose varints are the wire format's.

/// The operation byte that starts a request (Protocol/Layout.swift): the tag of a request's case.
internal enum Op: UInt8 {
    // manager
    case create = 1, lookup = 2, destroy = 3, shutdown = 4, ping = 5, serverInfo = 6
    /// How many calls wait on the object now (for tests and diagnostics).
    case waiters = 7
    // dictionary
    case dGet = 10, dSet, dDelete, dContains, dCount, dItems, dClear, dSetIfAbsent, dCompareAndSwap, dAddInt, dAddDouble, dAppend, dCompareAndDelete
    // value / namespace
    case vGet = 30, vSet, vCompareAndSwap, vAddInt, vAddDouble
    // list
    case lAppend = 40, lGet, lSet, lCount, lSnapshot, lRemoveAt, lInsert, lClear, lExtend
    // queue (qInfo, qTaskDone, qJoin: issue 18; new operations, so no new protocol version)
    case qPut = 50, qGet, qCount, qInfo, qTaskDone, qJoin, qShutdown
    // lock, rlock, and a condition's lock
    case acquire = 60, release, isLocked
    // semaphore
    case semAcquire = 70, semRelease, semValue, semInfo
    // event
    case evSet = 80, evClear, evIsSet, evWait
    // condition
    case cWait = 90, cNotify
    // barrier
    case bWait = 100, bReset, bAbort, bInfo
    // distributed actors
    case actorCreate = 110, actorCall, actorResolve
    // list, issue 18 (new operations, so no new protocol version)
    case lCountOf = 120, lIndexOf, lReverse, lVersionedSnapshot, lReplace
    // dictionary, issue 18 (new operations, so no new protocol version)
    case dUpdate = 130, dGetMany, dPopLast
    // fixed-length array, issue 18
    case aGet = 140, aSet, aCount, aSnapshot, aSetSlice, aAddInt, aAddDouble
}

/// The kinds of object a server holds.
public enum ManagedKind: UInt8, Sendable, Codable {
    /// A dictionary of encoded keys to encoded values.
    case dictionary = 1
    /// A list of encoded elements.
    case list = 2
    /// One encoded value (``ManagedValue`` and ``ManagedNamespace``).
    case value = 3
    /// A FIFO queue, optionally bounded.
    case queue = 4
    /// A non-recursive lock.
    case lock = 5
    /// A recursive lock.
    case rLock = 6
    /// A counting semaphore.
    case semaphore = 7
    /// An event flag.
    case event = 8
    /// A condition variable with its own recursive lock.
    case condition = 9
    /// A barrier.
    case barrier = 10
    /// A distributed actor instance.
    case actor = 11
    /// A semaphore whose count may not rise above its initial value.
    case boundedSemaphore = 12
    /// A fixed-length array of encoded elements.
    case array = 13

    internal static let allKinds: [ManagedKind] = [.dictionary, .list, .value, .queue, .lock, .rLock, .semaphore, .event, .condition, .barrier, .actor, .boundedSemaphore, .array]
}

/// Reply status bytes. An ok reply's body follows in the wire format; an error reply's body is
/// three strings (varint byte count, UTF-8): the error code's name, the message, and the name of
/// the remote error type (empty for none).
internal enum ReplyStatus: UInt8 {
    case ok = 0
    case error = 1
    /// An error, after which the server closes the connection (a request over its size limit):
    /// the client must not use the connection again.
    case closing = 2
}

/// Appends the binary layout.
internal struct ByteWriter {
    internal var bytes: [UInt8]

    /// A reply frame.
    internal init(status: ReplyStatus) {
        bytes = [UInt8](repeating: 0, count: ManagerPlatform.frameHeaderSize)
        bytes.reserveCapacity(64)
        bytes.append(status.rawValue)
    }

    internal mutating func byte(_ value: UInt8) { bytes.append(value) }
    internal mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    /// The codec's varint, so that values built here read back as the wire format.
    internal mutating func varint(_ value: UInt64) { bytes.wireAppendVarint(value) }

    internal mutating func signed(_ value: Int64) { bytes.wireAppendSigned(value) }

    internal mutating func double(_ value: Double) {
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    internal mutating func blob(_ value: [UInt8]) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    internal mutating func blob(_ value: ArraySlice<UInt8>) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    internal mutating func string(_ value: String) { blob(Array(value.utf8)) }

    /// Writes the frame header over the reserved bytes; the frame is ready to send.
    internal mutating func finish() -> [UInt8] {
        let length = bytes.count - ManagerPlatform.frameHeaderSize
        bytes.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: length, into: $0) }
        return bytes
    }
}

/// Reads the binary layout; every read checks bounds and throws on a short or bad message.
internal struct ByteReader {
    internal let bytes: [UInt8]
    internal var position: Int

    internal init(_ bytes: [UInt8], at position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    internal var isAtEnd: Bool { position >= bytes.count }

    internal static func malformed(_ what: String) -> MultiprocessingError {
        MultiprocessingError(.malformedFrame, "A manager message is malformed: \(what).")
    }

    internal mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw ByteReader.malformed("it ended early") }
        defer { position += 1 }
        return bytes[position]
    }

    internal mutating func bool() throws -> Bool { try byte() != 0 }

    internal mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw ByteReader.malformed("a number is too long") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
    }

    internal mutating func signed() throws -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    internal mutating func int() throws -> Int {
        let value = try varint()
        guard value <= UInt64(Int.max) else { throw ByteReader.malformed("a count is too large") }
        return Int(value)
    }

    internal mutating func double() throws -> Double {
        guard bytes.count - position >= 8 else { throw ByteReader.malformed("it ended early") }
        var raw: UInt64 = 0
        for i in 0..<8 { raw |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += 8
        return Double(bitPattern: raw)
    }

    internal mutating func blob() throws -> [UInt8] {
        let count = try int()
        guard count <= bytes.count - position else { throw ByteReader.malformed("a value claims more bytes than the message holds") }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    internal mutating func string() throws -> String {
        String(decoding: try blob(), as: UTF8.self)
    }
}

/// `value` (not negative) in whole nanoseconds, rounded up (a wait never ends early) and saturating
/// at Int64.max. `Duration` holds 128-bit attoseconds and `components` traps on one longer than
/// Int64.max seconds (`.seconds(Int64.max) * 2`), so those saturate first.
internal func wireTimeoutNanoseconds(_ value: Duration) -> Int64 {
    if value >= .nanoseconds(Int64.max) { return .max }
    let (seconds, attoseconds) = value.components
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return .max }
    let (total, overflow2) = whole.addingReportingOverflow((attoseconds + 999_999_999) / 1_000_000_000)
    return overflow2 ? .max : total
}

/// Encodes and decodes user values with the module's wire format.
internal enum ValueCoding {
    internal static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        do {
            return try WireEncoder().encode(value)
        } catch let error as MultiprocessingError {
            throw error
        } catch {
            throw MultiprocessingError(.coding, "Could not encode a \(T.self) for the manager: \(error)")
        }
    }

    internal static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        do {
            return try WireDecoder().decode(type, from: bytes)
        } catch let error as MultiprocessingError {
            throw error
        } catch {
            throw MultiprocessingError(.coding, "A value from the manager is not a \(T.self): \(error)")
        }
    }
}
