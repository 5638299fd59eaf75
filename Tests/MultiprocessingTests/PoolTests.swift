// ProcessPool (issue 15): real worker processes, real signals, /proc checks.
import Foundation
import Multiprocessing
import TestHarness
import TestSupport
import Testing

/// The children of this process that are alive (not zombies), read from /proc.
func liveChildren() -> Set<Int32> {
    let me = getpid()
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return Set(entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, fields[0] != "Z", Int32(fields[1]) == me else { return nil }
        return pid
    })
}

@Suite("ProcessPool", .serialized)
struct PoolTests {
    @Test func mapReturnsResultsInOrder() async throws {
        let pool = try ProcessPool(workers: 2)
        let squares = try await pool.map(PoolSquare(), over: 0..<10_000)
        #expect(squares == (0..<10_000).map { $0 * $0 })
        let fixed = try await pool.map(PoolSquare(), over: Array(0..<1000), chunking: .fixed(7))
        #expect(fixed == (0..<1000).map { $0 * $0 })
        let ones = try await pool.map(PoolSquare(), over: [3, 4, 5], chunking: .fixed(1))
        #expect(ones == [9, 16, 25])
        let empty = try await pool.map(PoolSquare(), over: [Int]())
        #expect(empty.isEmpty)
        pool.close()
        try await pool.join()
    }

    @Test func blockingMapAndSubmit() throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        #expect(try pool.map(PoolReadGreeting(), over: [1, 2]) == ["unset 1", "unset 2"])
        let handle = try pool.submit(PoolPidTask(add: 0))
        let pid = try handle.get()
        #expect(pool.workerPIDs.contains(pid))
    }
}
