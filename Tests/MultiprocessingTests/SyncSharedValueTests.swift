import Testing
import Synchronization
import Glibc
@testable import Multiprocessing
import MultiprocessingSystem

/// Encodes `value` as it would be sent to a child, and decodes it from duplicates of the descriptors,
/// as the child would receive them.
func throughTheWire<T: Codable>(_ value: T, as type: T.Type = T.self) throws -> (T, descriptorCount: Int) {
    let sending = DescriptorTransfer()
    let bytes = try WireEncoder(userInfo: [.descriptorTransfer: sending]).encode(value)
    let received = DescriptorTransfer(received: try sending.descriptors.map { fd in
        let copy = dup(fd)
        if copy < 0 { throw MultiprocessingError(.systemCall, "dup") }
        return copy
    })
    defer { received.closeUnclaimed() }
    let decoded = try WireDecoder(userInfo: [.descriptorTransfer: received]).decode(T.self, from: bytes)
    return (decoded, sending.descriptors.count)
}

@Suite("SyncSharedValue")
struct SyncSharedValueTests {
    @Test("atomic add from many threads is exact; compareExchange and exchange")
    func atomics() throws {
        let counter = try SharedValue<Int>(0)
        let small = try SharedValue<UInt8>(250)
        let threads = (0..<8).map { _ in
            OSThread { for _ in 0..<10_000 { counter.add(1); small.add(1) } }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        #expect(counter.atomicLoad() == 80_000)
        #expect(small.atomicLoad() == UInt8(truncatingIfNeeded: 250 + 80_000))
        #expect(counter.compareExchange(expected: 1, desired: 2) == (false, 80_000))
        #expect(counter.compareExchange(expected: 80_000, desired: 7) == (true, 80_000))
        #expect(counter.exchange(9) == 7)
        #expect(counter.subtract(10) == -1)
        let wide = try SharedValue<Int128>(1)   // no atomic instruction: the lock instead
        wide.add(Int128(1) << 100)
        #expect(wide.atomicLoad() == (Int128(1) << 100) + 1)
    }

    @Test("withLock makes read-modify-write exact; value and load/store; any BitwiseCopyable T")
    func locked() throws {
        struct Point: BitwiseCopyable, Equatable { var x: Double; var y: Double }
        let point = try SharedValue(Point(x: 0, y: 0))
        let threads = (0..<4).map { _ in
            OSThread { for _ in 0..<5_000 { try point.withLock { $0.x += 1; $0.y -= 1 } } }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        #expect(point.value == Point(x: 20_000, y: -20_000))
        point.value = Point(x: 1, y: 2)
        #expect(try point.load() == Point(x: 1, y: 2))
        try point.store(Point(x: 3, y: 4))
        #expect(point.value.y == 4)
        // The built-in lock is the one withLock takes, and it is re-entrant (Python's get_lock() is
        // an RLock): withLock inside it takes it once more, and another thread must wait.
        try point.lock.acquire()
        try point.withLock(timeout: .milliseconds(10)) { $0.x += 1 }
        let other = OSThread { try point.withLock(timeout: .milliseconds(10)) { _ in } }
        try other.start()
        try other.join(timeout: .seconds(10))
        #expect((other.error as? MultiprocessingError)?.code == .timedOut)
        try point.lock.release()
        #expect(point.value.x == 4)
    }

    @Test("SharedArray: subscripts, bulk withLock, atomics per element, toArray")
    func array() throws {
        let squares = try SharedArray<Int>(repeating: 0, count: 10)
        #expect(squares.count == 10)
        for i in 0..<10 { squares[i] = i * i }
        #expect(squares.toArray() == (0..<10).map { $0 * $0 })
        #expect(squares.reduce(0, +) == 285)
        try squares.withLock { buffer in for i in buffer.indices { buffer[i] += 1 } }
        #expect(squares[3] == 10)
        let hits = try SharedArray<Int32>([0, 0, 0])
        let threads = (0..<4).map { n in
            OSThread { for k in 0..<3_000 { hits.add(1, at: (k + n) % 3) } }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        #expect(hits.toArray() == [4_000, 4_000, 4_000])
        #expect(hits.compareExchange(at: 1, expected: 4_000, desired: -1) == (true, 4_000))
        #expect(hits.atomicLoad(at: 1) == -1)
        // A large array gets a memfd of its own.
        let big = try SharedArray<UInt64>(repeating: 7, count: 100_000)
        #expect(big.memory.region.size >= 800_000)
        #expect(big[99_999] == 7)
    }

    @Test("primitives travel through the wire format: one descriptor for many, one mapping per memfd")
    func codable() throws {
        struct Bundle: Codable {
            var locks: [Lock]
            var value: SharedValue<Int>
            var array: SharedArray<Int16>
            var event: Event
        }
        let bundle = Bundle(locks: try (0..<100).map { _ in try Lock() }, value: try SharedValue(5),
                            array: try SharedArray([1, 2, 3]), event: try Event())
        let (copy, descriptors) = try throughTheWire(bundle)
        // A hundred locks and the rest share arena chunks: a handful of descriptors, not 103.
        #expect(descriptors <= 2)
        // Decoding found the existing mapping instead of mapping again.
        #expect(copy.locks[0].core.memory.base == bundle.locks[0].core.memory.base)
        #expect(copy.value.atomicLoad() == 5)
        copy.value.add(1)
        #expect(bundle.value.atomicLoad() == 6)
        #expect(copy.array.toArray() == [1, 2, 3])
        try copy.locks[7].acquire()
        #expect(bundle.locks[7].isLocked)
        try bundle.locks[7].release()
        copy.event.set()
        #expect(bundle.event.isSet)
    }

    @Test("decoding a primitive as the wrong kind, or with the wrong element type, fails clearly")
    func wrongKind() throws {
        let event = try Event()
        let sending = DescriptorTransfer()
        let bytes = try WireEncoder(userInfo: [.descriptorTransfer: sending]).encode(event)
        let received = DescriptorTransfer(received: sending.descriptors.map { dup($0) })
        defer { received.closeUnclaimed() }
        #expect(throws: DecodingError.self) {
            _ = try WireDecoder(userInfo: [.descriptorTransfer: received]).decode(Lock.self, from: bytes)
        }
        let value = try SharedValue<Int64>(1)
        #expect(try throughTheWire(value).0.atomicLoad() == 1)
        #expect(throws: DecodingError.self) { _ = try throughTheWireAs(value, SharedValue<Int8>.self) }
    }
}

/// Encodes as one type and decodes as another.
func throughTheWireAs<T: Encodable, U: Decodable>(_ value: T, _ type: U.Type) throws -> U {
    let sending = DescriptorTransfer()
    let bytes = try WireEncoder(userInfo: [.descriptorTransfer: sending]).encode(value)
    let received = DescriptorTransfer(received: sending.descriptors.map { dup($0) })
    defer { received.closeUnclaimed() }
    return try WireDecoder(userInfo: [.descriptorTransfer: received]).decode(U.self, from: bytes)
}
