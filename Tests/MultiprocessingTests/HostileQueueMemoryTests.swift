import Testing
import Glibc
@testable import Multiprocessing

// Outside checks (red team): a holder of a queue's memfd that writes garbage into its header
// (the ring's fields, the capacity, the message limit). The other holders may see errors, but no
// field a hostile holder writes may make them trap or fault.

/// Fills the queue's header fields with values from a seeded generator (edge values of each
/// field's arithmetic), then uses the queue as another holder would, for `rounds` seeds.
struct GarbageQueueHeaderTask: ProcessTask {
    var firstSeed: UInt64
    var rounds: Int
    func run() throws -> String {
        var outcomes: [String: Int] = [:]
        for seed in firstSeed..<(firstSeed + UInt64(rounds)) {
            var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
            func next() -> UInt64 {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                return state
            }
            let queue = try Queue<[UInt8]>()
            for i in 0..<3 { try queue.put([UInt8](repeating: UInt8(i), count: 100 * (i + 1))) }
            let base = queue.storage.region.base
            let capacity = UInt64(queue.storage.region.size - 4096)
            let edges: [UInt64] = [0, 1, 7, 8, 9, 100, capacity - 8, capacity - 1, capacity, capacity + 8,
                                   1 << 32, 1 << 55, 1 << 56, 1 << 62, 1 << 63, UInt64.max - 7, UInt64.max]
            // The ring (head, tail, count, unfinished, live, wrap) at 128, the high-water mark at
            // 184, the gets counters at 96; each field garbage or left alone.
            for offset in [96, 104, 128, 136, 144, 152, 160, 168, 184] where next() % 3 != 0 {
                let value = next() % 4 == 0 ? next() : edges[Int(next() % UInt64(edges.count))]
                (base + offset).storeBytes(of: value, as: UInt64.self)
            }
            // And a record header in the data area, sometimes.
            if next() % 2 == 0 {
                let at = Int(next() % 1024) & ~7
                (base + 4096 + at).storeBytes(of: edges[Int(next() % UInt64(edges.count))], as: UInt64.self)
            }
            for _ in 0..<4 {
                do {
                    if next() % 2 == 0 { _ = try queue.getNowait() } else { try queue.putNowait([1, 2, 3]) }
                    outcomes["ok", default: 0] += 1
                } catch let error as MultiprocessingError {
                    outcomes["\(error.code)", default: 0] += 1
                }
            }
            _ = queue.qsize
            _ = queue.empty
        }
        return outcomes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }
}

/// Sends itself a queue whose header it has made impossible (capacity, maxsize, then
/// maximumMessageSize set to UInt64.max), and decodes it each time.
struct DecodeForgedQueueTask: ProcessTask {
    func run() throws -> String {
        var outcomes: [String] = []
        for offset in [72, 80, 88] {
            let queue = try Queue<Int>()
            (queue.storage.region.base + offset).storeBytes(of: UInt64.max, as: UInt64.self)
            do {
                _ = try throughTheWireAs(queue, Queue<Int>.self)
                outcomes.append("decoded")
            } catch is DecodingError {
                outcomes.append("refused")
            }
        }
        return outcomes.joined(separator: " ")
    }
}

@Suite("Hostile queue memory")
struct HostileQueueMemoryTests {
    /// 2,000 seeded garbage headers, in four children. Before, the holder's next get or put
    /// trapped (SIGILL) within the first seeds of each batch: "Not enough bits to represent the
    /// passed value" in `place` (a head or tail past Int.max) and in `giveBackMemory` (the
    /// high-water mark). Now an impossible ring empties the queue with `.malformedFrame`.
    @Test(arguments: [0, 1, 2, 3] as [UInt64])
    func garbageInAQueuesHeaderIsAnErrorNotACrash(batch: UInt64) throws {
        let child = ChildProcess(GarbageQueueHeaderTask(firstSeed: batch * 500, rounds: 500))
        try child.start()
        let outcome = try child.value(timeout: .seconds(300))
        #expect(outcome.contains("malformedFrame="), "\(outcome)")
    }

    /// A forged queue whose header names a capacity, maxsize or message limit past Int.max is
    /// refused when it is decoded. Before, the decode trapped converting them.
    @Test func aForgedQueueHeaderIsRefusedWhenDecoded() throws {
        let child = ChildProcess(DecodeForgedQueueTask())
        try child.start()
        #expect(try child.value(timeout: .seconds(120)) == "refused refused refused")
    }
}
