// A task submitted to an idle ProcessPool goes from its caller straight to a worker, and a
// blocking get() reads the answer itself (issue 15, the one-in-flight latency). These tests
// check that every other way to wait, a worker's death, cancellation, a long task and the
// pool's end still give each task its answer or its error.
import Foundation
import Multiprocessing
import Synchronization
import TestHarness
import TestSupport
import Testing

@Suite("ProcessPool direct tasks", .serialized)
struct PoolDirectTests {
    @Test func blockingRoundTripsGiveEachTaskItsOwnAnswer() throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let pids = Set(pool.workerPIDs)
        for i in 0..<500 {
            let answer = try pool.submit(PoolPidTask(add: Int32(i))).get()
            #expect(pids.contains(answer - Int32(i)), "task \(i)")
        }
        #expect(Set(pool.workerPIDs) == pids)
    }

    @Test func aTaskNoOneReadsDirectlyStillCompletesForEveryOtherWait() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        // The async value.
        let first = try pool.submit(PoolPidTask(add: 0))
        let answered = try await first.value
        #expect(pool.workerPIDs.contains(answered))
        // A done callback, with no wait at all.
        let called = Mutex<Int32?>(nil)
        let second = try pool.submit(PoolPidTask(add: 0))
        second.onDone { result in called.withLock { $0 = try? result.get() } }
        #expect(eventually(within: .seconds(60)) { called.withLock { $0 } != nil })
        // isDone, polled.
        let third = try pool.submit(PoolPidTask(add: 0))
        #expect(eventually(within: .seconds(60)) { third.isDone })
        let thirdAnswer = try await third.value
        #expect(pool.workerPIDs.contains(thirdAnswer))
    }

    @Test func closeAndJoinFinishTasksNobodyWaitedFor() async throws {
        let pool = try ProcessPool(workers: 2)
        let handles = try (0..<3).map { try pool.submit(PoolPidTask(add: Int32($0))) }
        pool.close()
        try await pool.join()
        for (i, handle) in handles.enumerated() {
            #expect(handle.isDone)
            #expect(try await handle.value > Int32(i))
        }
    }

    @Test func aTaskThatKillsItsWorkerFailsAloneAndThePoolGoesOn() throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        for _ in 0..<5 {
            let victim = Set(pool.workerPIDs)
            #expect {
                _ = try pool.submit(PoolKillOwnWorkerTask()).get()
            } throws: { error in
                guard let error = error as? PoolTaskError else { return false }
                return error.code == .childDied && error.exitStatus == .signaled(.kill) && error.pid.map(victim.contains) == true
            }
            let answered = try pool.submit(PoolPidTask(add: 0)).get()
            #expect(pool.workerPIDs.contains(answered))
        }
        #expect(eventually(within: .seconds(60)) { pool.workerPIDs.count == 2 })
    }

    @Test func withRetryATaskThatKillsEveryWorkerFailsOnce() throws {
        let pool = try ProcessPool(workers: 2, onWorkerDeath: .retry(1))
        defer { pool.terminate() }
        #expect {
            _ = try pool.submit(PoolKillOwnWorkerTask()).get()
        } throws: { error in
            (error as? PoolTaskError)?.code == .childDied
        }
        let answered = try pool.submit(PoolPidTask(add: 0)).get()
        #expect(pool.workerPIDs.contains(answered))
    }

    @Test func aLongTaskAndAMapBesideItBothFinish() throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let long = try pool.submit(PoolSleepThenPidTask(milliseconds: 300))
        #expect(try pool.map(PoolSquare(), over: 0..<200, chunking: .fixed(1)) == (0..<200).map { $0 * $0 })
        let answered = try long.get()
        #expect(pool.workerPIDs.contains(answered))
        // And a long one read by its caller: the caller hands it to the driver, which reads it.
        let secondAnswer = try pool.submit(PoolSleepThenPidTask(milliseconds: 200)).get()
        #expect(pool.workerPIDs.contains(secondAnswer))
    }

    @Test func cancellingATaskWhoseCallerWaitsEndsTheWaitAndThePoolGoesOn() throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let handle = try pool.submit(PoolSleepTask(milliseconds: 60_000))
        let canceller = Foundation.Thread {
            usleep(100_000)
            handle.cancel()
        }
        canceller.start()
        #expect {
            try handle.get()
        } throws: { error in
            (error as? PoolTaskError)?.code == .cancelled
        }
        let answered = try pool.submit(PoolPidTask(add: 0)).get()
        #expect(pool.workerPIDs.contains(answered))
    }

    @Test func terminateEndsATaskWhoseCallerWaits() throws {
        let pool = try ProcessPool(workers: 2)
        let workers = pool.workerPIDs
        let handle = try pool.submit(PoolSleepTask(milliseconds: 60_000))
        let terminator = Foundation.Thread {
            usleep(100_000)
            pool.terminate()
        }
        terminator.start()
        #expect(throws: PoolTaskError.self) { try handle.get() }
        pool.terminate()
        #expect(liveChildren().isDisjoint(with: workers))
    }
}
