// ThreadPool, and code written once for any WorkerPool (issue 15).
import Glibc
import Multiprocessing
import TestSupport
import Testing

/// Written once, run on both kinds of pool.
func squaresAndErrors(on pool: some WorkerPool) async throws -> ([Int], [Result<Int, PoolTaskError>]) {
    let squares = try await pool.map(PoolSquare(), over: 0..<1000, chunking: .adaptive)
    let halves = try await pool.mapResults(PoolEvenOnly(), over: 0..<4, chunking: .fixed(1))
    return (squares, halves)
}

@Suite("ThreadPool and WorkerPool", .serialized)
struct PoolThreadTests {
    @Test func bothPoolsRunTheSameCode() async throws {
        let threads = try ThreadPool(workers: 2)
        let processes = try ProcessPool(workers: 2)
        defer { processes.terminate() }
        for pool in [threads as any WorkerPool, processes as any WorkerPool] {
            let (squares, halves) = try await squaresAndErrors(on: pool)
            #expect(squares == (0..<1000).map { $0 * $0 })
            #expect((try? halves[0].get()) == 0 && (try? halves[2].get()) == 1)
            guard case .failure(let error) = halves[1] else { Issue.record("1 is odd"); continue }
            #expect(error.code == .childFailed)
            #expect(error.indices == [1])
            #expect(error.remoteError as? PoolOddError == PoolOddError(value: 1))
        }
        threads.close()
        try await threads.join()
    }

    @Test func aThreadPoolSubmitsTasksAndRunsItsInitializer() async throws {
        try await ThreadPool.with(workers: 2, initializer: PoolSetGreeting(greeting: "hi")) { pool in
            let pid = try await pool.submit(PoolPidTask(add: 0)).value
            #expect(pid == getpid())
            #expect(try await pool.map(PoolReadGreeting(), over: [1]) == ["hi 1"])
        }
        #expect(throws: PoolTaskError.self) { _ = try ThreadPool(workers: 2, initializer: PoolFailingInitializer()) }
    }
}

@Suite("ProcessPool mapUnordered left early", .serialized)
struct PoolUnorderedEarlyExitTests {
    /// A loop over an endless mapUnordered that breaks: close() and join() still end.
    @Test func closeAndJoinEndAfterALoopOverAnEndlessInputBreaks() async throws {
        let pool = try ProcessPool(workers: 2)
        var taken = 0
        for try await (_, result) in try pool.mapUnordered(PoolSquare(), over: (0...).lazy, window: 16) {
            _ = try result.get()
            taken += 1
            if taken == 1000 { break }
        }
        pool.close()
        try await pool.join()
        #expect(taken == 1000)
    }
}
