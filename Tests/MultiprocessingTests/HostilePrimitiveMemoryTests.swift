import Testing
import Glibc
@testable import Multiprocessing

// Outside checks (red team): a holder of a semaphore's, barrier's, condition's or event's memory
// that writes garbage into its counters (not into the robust lock: see docs/threads-and-sync.md,
// Known limits). Another holder's calls may fail or misbehave, but must not trap.

/// Writes seeded garbage into the counter words of each primitive, then uses it.
struct GarbagePrimitiveTask: ProcessTask {
    var firstSeed: UInt64
    var rounds: Int
    func run() throws -> String {
        var errors = 0
        for seed in firstSeed..<(firstSeed + UInt64(rounds)) {
            var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
            func next() -> UInt32 {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                let edges: [UInt32] = [0, 1, 2, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF]
                return state % 3 == 0 ? UInt32(truncatingIfNeeded: state >> 11) : edges[Int((state >> 5) % UInt64(edges.count))]
            }
            func garble(_ base: UnsafeMutableRawPointer, _ offsets: [Int]) {
                for offset in offsets where next() % 2 == 0 { (base + offset).storeBytes(of: next(), as: UInt32.self) }
            }
            func attempt(_ body: () throws -> Void) {
                do { try body() } catch { errors += 1 }
            }
            let semaphore = try Multiprocessing.Semaphore(2)
            let bounded = try BoundedSemaphore(2)
            let barrier = try Barrier(parties: 2)
            let condition = try Condition()
            let event = try Event()
            garble(semaphore.core.memory.base, [4, 8, 12])
            garble(bounded.core.memory.base, [4, 8, 12])
            garble(barrier.memory.base, [4, 56, 60, 64])
            garble(condition.memory.base, [4, 8, 12, 16, 20])
            garble(event.memory.base, [4, 8, 12])
            attempt { _ = semaphore.tryAcquire(); try semaphore.release(Int(next() % 3) + 1); _ = semaphore.value }
            attempt { try semaphore.acquire(timeout: .zero) }
            attempt { _ = bounded.tryAcquire(); try bounded.release(); _ = bounded.value; _ = bounded.bound }
            attempt { _ = try barrier.wait(timeout: .milliseconds(1)) }
            attempt { _ = barrier.parties; _ = barrier.waitingCount; _ = barrier.isBroken; barrier.reset() }
            attempt { try condition.withLock { try condition.notify(Int(next() % 4)); try condition.notifyAll() } }
            attempt { try condition.withLock { try condition.wait(timeout: .milliseconds(1)) } }
            attempt { event.set(); event.clear(); _ = event.isSet; try event.wait(timeout: .zero) }
        }
        return "errors=\(errors)"
    }
}

@Suite("Hostile primitive memory")
struct HostilePrimitiveMemoryTests {
    @Test(arguments: [0, 1] as [UInt64])
    func garbageInAPrimitivesCountersIsNotATrap(batch: UInt64) throws {
        let child = ChildProcess(GarbagePrimitiveTask(firstSeed: batch * 1000, rounds: 1000))
        try child.start()
        let outcome = try child.value(timeout: .seconds(300))
        #expect(outcome.hasPrefix("errors="), "\(outcome)")
    }
}
