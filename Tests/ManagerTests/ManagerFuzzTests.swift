import Foundation
import Testing
import TestHarness
import Multiprocessing
import SystemPackage
@testable import MultiprocessingManager
import ManagerTestSupport
import MultiprocessingSystem

// Issue 12, item 13: no input from an authenticated client may crash the server. A seeded fuzzer
// sends thousands of frames to a real server over real sockets: requests of every operation with
// extreme field values (timeouts, counts, indices, stored numbers), the same mutated (bits
// flipped, bytes inserted, deleted, cut), and random bytes. After every frame that closes the
// connection the server must still be running; at the end it must still serve a good client.
// The libFuzzer twin of this test, for longer runs, is in Fuzz/ (see docs/managers.md).

/// SplitMix64: a small, seeded generator, so that a failure can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Builds requests field by field, with values chosen to hit edges.
struct FuzzFrames {
    var rng: SeededGenerator
    /// Object ids by kind, made anew every few hundred frames (fuzzed destroys remove them).
    var ids: [ManagedKind: UInt64]

    enum Field { case blob, key, string, signed, count, timeout, thread, bool, double, kindByte, blobs, strings, target, arrayElements }

    /// The distributed methods of the test's Counter actor, as the compiler names them, so that
    /// fuzzed calls reach the server's decoding of their arguments.
    static let targets = ["$s18ManagerTestSupport7CounterC3add_4noteS2i_SStYaKFTE",
                          "$s18ManagerTestSupport7CounterC4failySiSSYaKFTE",
                          "$s18ManagerTestSupport7CounterC5notesSaySSGyYaKFTE"]

    /// The body layout of each operation (after the operation byte and the object id), and the
    /// kind of object it applies to.
    static let layouts: [(op: UInt8, kind: ManagedKind?, fields: [Field])] = [
        (1, nil, [.kindByte, .string, .signed, .blob]), (2, nil, [.string]), (3, nil, []), (5, nil, []), (6, nil, []),
        (7, nil, []),
        (10, .dictionary, [.key]), (11, .dictionary, [.key, .blob]), (12, .dictionary, [.key]), (13, .dictionary, [.key]),
        (14, .dictionary, []), (15, .dictionary, []), (16, .dictionary, []), (17, .dictionary, [.key, .blob]),
        (18, .dictionary, [.key, .bool, .blob, .blob]), (19, .dictionary, [.key, .signed]), (20, .dictionary, [.key, .double]),
        (21, .dictionary, [.key, .blob]), (22, .dictionary, [.key, .bool, .blob]),
        (30, .value, []), (31, .value, [.blob]), (32, .value, [.blob, .blob]), (33, .value, [.signed]), (34, .value, [.double]),
        (40, .list, [.blob]), (41, .list, [.signed]), (42, .list, [.signed, .blob]), (43, .list, []), (44, .list, []),
        (45, .list, [.signed]), (46, .list, [.signed, .blob]), (47, .list, []), (48, .list, [.blobs]),
        (120, .list, [.blob]), (121, .list, [.blob, .signed, .bool, .signed]), (122, .list, []), (123, .list, []),
        (124, .list, [.count, .blobs]),
        (130, .dictionary, [.bool, .count, .blobs, .blobs]), (131, .dictionary, [.blobs]), (132, .dictionary, []),
        (140, .array, [.signed]), (141, .array, [.signed, .blob]), (142, .array, []), (143, .array, []),
        (144, .array, [.signed, .blobs]), (145, .array, [.signed, .signed]), (146, .array, [.signed, .double]),
        // create, with an array's elements as the initial bytes
        (1, nil, [.kindByte, .string, .signed, .arrayElements]),
        (50, .queue, [.blob, .timeout]), (51, .queue, [.timeout]), (52, .queue, []),
        (53, .queue, []), (54, .queue, []), (55, .queue, [.timeout]),
        (60, .lock, [.thread, .timeout]), (61, .lock, [.thread]), (62, .lock, []),
        (60, .rLock, [.thread, .timeout]), (61, .rLock, [.thread]), (62, .rLock, []),
        (70, .semaphore, [.timeout]), (71, .semaphore, [.count]), (72, .semaphore, []), (73, .semaphore, []),
        (70, .boundedSemaphore, [.timeout]), (71, .boundedSemaphore, [.count]), (72, .boundedSemaphore, []),
        (73, .boundedSemaphore, []),
        (80, .event, []), (81, .event, []), (82, .event, []), (83, .event, [.timeout]),
        (60, .condition, [.thread, .timeout]), (61, .condition, [.thread]), (90, .condition, [.thread, .timeout]),
        (91, .condition, [.thread, .count]),
        (100, .barrier, [.timeout]), (101, .barrier, []), (102, .barrier, []), (103, .barrier, []),
        (110, nil, [.string, .string]), (111, .actor, [.target, .strings, .blobs]), (112, .actor, []),
    ]

    /// Operations that may wait on the server.
    static let blocking: Set<UInt8> = [50, 51, 55, 60, 70, 83, 90, 100]

    mutating func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
    mutating func randomBytes(_ maximum: Int) -> [UInt8] {
        (0..<Int.random(in: 0...maximum, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var w = ByteWriterRaw()
        w.varint(value)
        return w.bytes
    }
    static func signedBytes(_ value: Int64) -> [UInt8] {
        var w = ByteWriterRaw()
        w.signed(value)
        return w.bytes
    }
    static func blob(_ bytes: [UInt8]) -> [UInt8] { varint(UInt64(bytes.count)) + bytes }

    /// Raw varints at the edges: 0, 1, Int.max, 2^63, UInt64.max, and 10-byte overlong forms.
    mutating func edgeVarint() -> [UInt8] {
        pick([Self.varint(0), Self.varint(1), Self.varint(2), Self.varint(UInt64(Int64.max)),
              Self.varint(UInt64(Int64.max) + 1), Self.varint(UInt64(Int64.max) + 2), Self.varint(.max),
              Self.varint(.max - 1), Self.varint(UInt64(UInt32.max)), Self.varint(UInt64.random(in: 0...UInt64.max, using: &rng)),
              [UInt8](repeating: 0xFF, count: 10) + [0x01], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]])
    }

    /// A stored value that the server's integer, double and list-append code will read.
    mutating func storedValue() -> [UInt8] {
        pick([Self.signedBytes(.max), Self.signedBytes(.min), Self.signedBytes(0), Self.signedBytes(-1),
              Self.varint(UInt64(Int64.max)), Self.varint(UInt64(Int64.max) - 1) + [1, 2, 3],
              Self.varint(3) + Self.varint(UInt64(Int64.max)) + [1], [1, 5], [0xFF], [],
              withUnsafeBytes(of: Double.nan.bitPattern) { Array($0) },
              withUnsafeBytes(of: Double.infinity.bitPattern) { Array($0) },
              try! WireEncoder().encode([1, 2, 3]), try! WireEncoder().encode(["a", "b"]), randomBytes(24)])
    }

    mutating func value(for field: Field) -> [UInt8] {
        switch field {
        case .blob: return Self.blob(storedValue())
        case .key: return Self.blob(pick([[], [1], [2], Array("k".utf8), randomBytes(4)]))
        case .string: return Self.blob(pick([[], Array("n1".utf8), Array("n2".utf8), [0xFF, 0xFE, 0xC0], randomBytes(40)]))
        case .signed: return pick([Self.signedBytes(0), Self.signedBytes(-1), Self.signedBytes(1), Self.signedBytes(.max),
                                   Self.signedBytes(.min), Self.signedBytes(Int64(Int32.max)), Self.signedBytes(Int64.random(in: .min ... .max, using: &rng)),
                                   edgeVarint()])
        case .count: return pick([Self.varint(0), Self.varint(1), Self.varint(3), edgeVarint()])
        case .timeout:
            // 0 waits for ever; otherwise nanoseconds + 1.
            return pick([Self.varint(0), Self.varint(1), Self.varint(2), Self.varint(1_000_001), Self.varint(5_000_001), edgeVarint()])
        case .thread: return pick([Self.varint(0), Self.varint(7), Self.varint(8), edgeVarint()])
        case .bool: return [pick([0, 1, 2, 255])]
        case .double:
            let values: [Double] = [0, 1, -1, .nan, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
            return withUnsafeBytes(of: pick(values).bitPattern.littleEndian) { Array($0) }
        case .kindByte: return [pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255])]
        case .blobs:
            let n = Int.random(in: 0...4, using: &rng)
            var out = chance(20) ? edgeVarint() : Self.varint(UInt64(n))
            // An actor's arguments: wire-encoded Ints and Strings (Counter.add's types) or junk.
            for _ in 0..<n {
                out += Self.blob(chance(50) ? storedValue() : pick([Self.signedBytes(5), Self.blob(Array("note".utf8)), Self.blob([0xFF, 0xFE]),
                                                                     Self.varint(UInt64(Int64.max)), []]))
            }
            return out
        case .arrayElements:
            // A blob holding a count and that many elements (a create request's array), or junk.
            return Self.blob(chance(70) ? value(for: .blobs) : randomBytes(12))
        case .target:
            return chance(80) ? Self.blob(Array(pick(Self.targets).utf8)) : value(for: .string)
        case .strings:
            // Mostly none: a call with generic substitutions is refused before its arguments.
            let n = chance(75) ? 0 : Int.random(in: 1...2, using: &rng)
            var out = chance(20) ? edgeVarint() : Self.varint(UInt64(n))
            for _ in 0..<n { out += value(for: .string) }
            return out
        }
    }

    mutating func objectID(_ kind: ManagedKind?) -> UInt64 {
        if chance(85), let kind, let id = ids[kind] { return id }
        return pick([0, 1, 2, 3, 9999, .max, ids.values.randomElement(using: &rng) ?? 0])
    }

    /// Flips, overwrites, inserts, deletes, cuts or splices bytes of `body`.
    mutating func mutate(_ body: inout [UInt8]) {
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let position = body.isEmpty ? 0 : Int.random(in: 0..<body.count, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !body.isEmpty: body[position] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !body.isEmpty: body[position] = pick([0, 1, 0x7F, 0x80, 0xFF])
            case 2: body.insert(contentsOf: randomBytes(8), at: position)
            case 3 where !body.isEmpty: body.removeSubrange(position..<min(body.count, position + Int.random(in: 1...8, using: &rng)))
            case 4: body = Array(body.prefix(position))
            case 5: body.insert(contentsOf: edgeVarint(), at: position)
            default: body += randomBytes(16)
            }
        }
    }

    /// The next frame's body (operation byte first).
    mutating func next() -> [UInt8] {
        var body: [UInt8]
        if chance(8) {
            body = [UInt8.random(in: 0...255, using: &rng)] + randomBytes(48)
        } else {
            let layout = pick(Self.layouts)
            body = [layout.op] + Self.varint(objectID(layout.kind))
            for f in layout.fields { body += value(for: f) }
            if chance(45) {
                var tail = Array(body.dropFirst())
                mutate(&tail)
                body = [body[0]] + tail
            }
        }
        // Shutdown is a legitimate request that ends the server: not what this test is about.
        if body.first == Op.shutdown.rawValue { body[0] = Op.ping.rawValue }
        return body
    }
}

extension ManagerTests {
    @Test func fuzzedRequestsNeverStopTheServer() throws {
        let manager = Manager()
        manager.register(Counter.self)
        try manager.start()
        defer { try? manager.shutdown() }
        let pid = try #require(manager.serverPID)
        func makeObjects() throws -> [ManagedKind: UInt64] {
            var ids: [ManagedKind: UInt64] = [:]
            ids[.dictionary] = try manager.dictionary(String.self, Int.self).reference.id
            ids[.list] = try manager.list(Int.self).reference.id
            ids[.value] = try manager.value(0).reference.id
            ids[.queue] = try manager.queue(Int.self, maximumSize: 4).reference.id
            ids[.lock] = try manager.lock().reference.id
            ids[.rLock] = try manager.rLock().reference.id
            ids[.semaphore] = try manager.semaphore(value: 2).reference.id
            ids[.event] = try manager.event().reference.id
            ids[.condition] = try manager.condition().reference.id
            ids[.barrier] = try manager.barrier(parties: 2).reference.id
            ids[.actor] = try manager.create(Counter.self).id.id
            ids[.boundedSemaphore] = try manager.boundedSemaphore(value: 2).reference.id
            ids[.array] = try manager.array([1, 2, 3]).reference.id
            return ids
        }

        // A fixed seed, so that every run sends the same frames; MP_FUZZ_SEED and MP_FUZZ_FRAMES
        // (environment) replay or extend a run by hand.
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["MP_FUZZ_SEED"].flatMap { UInt64($0, radix: 16) } ?? 0x13_F022_5EED
        let total = environment["MP_FUZZ_FRAMES"].flatMap { Int($0) } ?? 20_000
        var frames = FuzzFrames(rng: SeededGenerator(seed: seed), ids: try makeObjects())
        var socket: FrameSocket?
        defer { socket?.close() }
        var tally = (ok: 0, error: 0, closed: 0, abandoned: 0)
        for round in 0..<total {
            if round > 0 && round % 200 == 0 { frames.ids = try makeObjects() }
            let body = frames.next()
            if environment["MP_FUZZ_TRACE"] != nil { print("trace \(round) \(body.prefix(24))"); fflush(nil) }
            var frame = [UInt8](repeating: 0, count: 16) + body
            frame.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: body.count, into: $0) }
            let described = "seed \(String(seed, radix: 16)), frame \(round): \(body.prefix(64).map { String($0, radix: 16) })"
            if socket == nil {
                do {
                    socket = try authenticatedSocket(manager)
                } catch {
                    Issue.record("cannot connect after \(described): \(error); server running: \(processIsRunning(pid))")
                    break
                }
            }
            guard let current = socket else { break }
            do throws(Errno) {
                try current.write(frame)
            } catch {
                current.close()
                socket = nil
                continue
            }
            let mayBlock = FuzzFrames.blocking.contains(body[0])
            guard ManagerPlatform.waitReadable(current.descriptor, milliseconds: mayBlock ? 30 : 10_000) else {
                if !mayBlock { Issue.record("no reply within 10 s to \(described)") }
                // A call that waits: hang up; the server drops the waiter.
                tally.abandoned += 1
                current.close()
                socket = nil
                continue
            }
            do {
                var reply = ByteReader(try current.readFrame())
                if try reply.byte() == ReplyStatus.ok.rawValue {
                    tally.ok += 1
                } else {
                    tally.error += 1
                    if environment["MP_FUZZ_TRACE"] != nil { print("error \(body[0]): \((try? reply.string()) ?? "") \((try? reply.string()) ?? "")") }
                }
            } catch {
                tally.closed += 1
                current.close()
                socket = nil
                guard processIsRunning(pid) else {
                    Issue.record("the server died after \(described)")
                    break
                }
            }
        }
        print("fuzz: \(total) frames, seed \(String(seed, radix: 16)): \(tally.ok) ok, \(tally.error) error replies, \(tally.closed) connections closed by the server, \(tally.abandoned) waits abandoned")
        #expect(processIsRunning(pid))
        // A good client, on a new object and a new connection, is served.
        let check = try manager.dictionary(String.self, Int.self, name: "after-fuzz")
        #expect(try check.increment("x") == 1)
        let fresh = try Manager.connect(address: manager.address!, authKey: manager.authKey)
        #expect(try fresh.dictionary(String.self, Int.self, name: "after-fuzz").get("x") == 1)
        #expect(try fresh.serverStatistics().pid == pid)
    }
}
