// The pool's shared-memory rings (Sources/Multiprocessing/Pool/PoolRing.swift): a worker killed
// while it copies an answer, one that writes garbage or impossible indices into the memory it
// shares with the driver, and answers and inputs larger than a ring. In each case the task fails
// alone (or gets its result), the driver neither crashes nor reads out of bounds, and the pool goes on.
import Foundation
import Multiprocessing
import TestHarness
import TestSupport
import Testing

@Suite("ProcessPool rings", .serialized)
struct PoolRingTests {
    /// The pool still maps correctly after the damage, on a replaced worker.
    private func stillWorks(_ pool: ProcessPool) throws {
        #expect(try pool.map(PoolSquare(), over: 0..<2000, chunking: .fixed(1)) == (0..<2000).map { $0 * $0 })
    }

    @Test(arguments: [PoolRingDamageTask.Kind.unpublishedPartialFrame, .publishedPartialFrame, .largePartialFrame])
    func aWorkerKilledHalfwayThroughAnAnswerFailsThatTaskAlone(kind: PoolRingDamageTask.Kind) throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let before = Set(pool.workerPIDs)
        do {
            let value = try pool.submit(PoolRingDamageTask(kind, thenDie: true)).get()
            Issue.record("the task answered \(value)")
        } catch let error as PoolTaskError {
            #expect(error.code == .childDied, "\(error)")
            #expect(error.exitStatus == .signaled(.kill), "\(error)")
            #expect(error.pid.map { before.contains($0) } == true, "\(error)")
        }
        try stillWorks(pool)
    }

    @Test(arguments: [PoolRingDamageTask.Kind.garbage, .impossibleTail])
    func garbageInTheAnswerRingGetsItsWorkerReplaced(kind: PoolRingDamageTask.Kind) throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let before = Set(pool.workerPIDs)
        let start = ContinuousClock.now
        do {
            let value = try pool.submit(PoolRingDamageTask(kind, thenDie: false)).get()
            Issue.record("the task answered \(value)")
        } catch let error as PoolTaskError {
            // The driver saw the damage and killed the worker: the task did not sleep its 60 s.
            #expect(error.code == .childDied, "\(error)")
            #expect(error.exitStatus == .signaled(.kill), "\(error)")
            #expect(error.pid.map { before.contains($0) } == true, "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(30))
        try stillWorks(pool)
    }

    @Test func anImpossibleTaskRingHeadGetsItsWorkerReplacedAndTheNextTaskRuns() throws {
        let marker = NSTemporaryDirectory() + "pool-ring-damaged-\(getpid())"
        try? FileManager.default.removeItem(atPath: marker)
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let pool = try ProcessPool(workers: 1)
        defer { pool.terminate() }
        let start = ContinuousClock.now
        let damaged = try pool.submit(PoolRingDamageTask(.impossibleTaskHead, thenDie: false, marker: marker))
        #expect(eventually(within: .seconds(60)) { FileManager.default.fileExists(atPath: marker) })
        // The next task must go into the damaged ring: the driver refuses the head, kills the
        // worker, fails the task it ran and gives the next one to its replacement.
        let next = try pool.submit(PoolPidTask(add: 0))
        #expect(throws: PoolTaskError.self) { _ = try damaged.get() }
        let pid = try next.get()
        #expect(pool.workerPIDs.contains(pid))
        #expect(ContinuousClock.now - start < .seconds(30))
        try stillWorks(pool)
    }

    @Test func answersAndInputsLargerThanTheRingArriveWhole() throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        // Answers of 1 MiB and more (a ring holds 256 KiB), beside small ones, in one map.
        let sizes = [0, 10, 1 << 20, 5, 3 << 20, 300_000, 1]
        let answers = try pool.map(PoolBigAnswer(), over: sizes, chunking: .fixed(1))
        #expect(answers.map(\.count) == sizes)
        for (size, answer) in zip(sizes, answers) { #expect(answer == (0..<size).map { UInt8($0 % 251) }) }
        // The same in one chunk: 4.3 MiB in one frame.
        #expect(try pool.map(PoolBigAnswer(), over: sizes, chunking: .fixed(sizes.count)).map(\.count) == sizes)
        // A submitted task's answer (the direct path), larger than the ring.
        #expect(try pool.submit(PoolBigAnswerTask(count: 2 << 20)).get().count == 2 << 20)
        // Inputs larger than the task ring.
        let inputs = [[UInt8](repeating: 7, count: 1 << 20), [1, 2, 3], [UInt8](repeating: 1, count: 700_000)]
        #expect(try pool.map(PoolBigInput(), over: inputs) == inputs.map { [$0.count, $0.reduce(0) { $0 + Int($1) }] })
    }
}
