// ProcessPool's task timeout at the edges of Duration (issue 15; an outside check's "a timeout of
// Int64.max"): the driver added it to a task's start in nanoseconds, and Int64.max seconds
// overflowed there, a trap in the driver thread that took the caller's process down with it.
import Multiprocessing
import TestSupport
import Testing

@Suite("ProcessPool task timeout bounds", .serialized)
struct PoolTimeoutBoundsTests {
    /// Timeouts as long as Duration holds are "never" in practice: tasks run and answer.
    @Test(arguments: [Duration.seconds(Int64.max), .nanoseconds(Int64.max), .seconds(Int64.max / 2) * 2])
    func aTimeoutAsLongAsDurationHoldsRunsTasks(timeout: Duration) async throws {
        let pool = try ProcessPool(workers: 2, taskTimeout: timeout)
        defer { pool.terminate() }
        #expect(try await pool.map(PoolSquare(), over: 0..<50, chunking: .fixed(1)) == (0..<50).map { $0 * $0 })
        let pid = try await pool.submit(PoolPidTask(add: 0)).value
        #expect(pool.workerPIDs.contains(pid))
        let slept = try await pool.mapResults(PoolSleepThenTell(milliseconds: 20), over: [0, 1, 2])
        #expect(slept.map { try? $0.get().input } == [0, 1, 2])
    }

    /// The smallest positive timeout still fails a task (and only it) rather than misbehaving.
    @Test func theSmallestTimeoutFailsTasksOneByOne() async throws {
        let pool = try ProcessPool(workers: 1, taskTimeout: .nanoseconds(1))
        defer { pool.terminate() }
        let results = try await pool.mapResults(PoolSleepThenTell(milliseconds: 200), over: [0, 1])
        for (index, result) in results.enumerated() {
            guard case .failure(let error) = result else { Issue.record("task \(index) did not time out"); continue }
            #expect(error.code == .timedOut)
            #expect(error.indices == [index])
        }
    }

    /// The other counts a caller gives, at Int.max: a chunk that large, recycling after that
    /// many tasks, a resident limit that large, and mapUnordered's window.
    @Test func countsAtIntMaxAreAccepted() async throws {
        let pool = try ProcessPool(workers: 2, recycling: Recycling(afterTasks: .max, aboveResidentBytes: .max))
        defer { pool.terminate() }
        #expect(try await pool.map(PoolSquare(), over: 0..<100, chunking: .fixed(.max)) == (0..<100).map { $0 * $0 })
        var seen: [Int: Int] = [:]
        for try await (index, value) in try pool.mapUnordered(PoolSquare(), over: 0..<100, window: .max) { seen[index] = try value.get() }
        #expect(seen.count == 100 && seen.allSatisfy { $0.value == $0.key * $0.key })
    }
}
