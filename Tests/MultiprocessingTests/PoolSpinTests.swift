// The direct round trip's bounded, adaptive spin (issue 15, one task in flight): a blocking get()
// polls for its answer a short while before it sleeps, and a worker polls for its next task a
// short while after a direct answer. These tests check that answers stay right, that a worker's
// death and a late answer still end the wait, and that the spin turns itself off when it does not
// pay or when busy workers fill the cores. They assert outcomes and counters, never durations (the
// suite runs beside CPU hogs); the only sleeps make a task or the next submit late on purpose.
import Foundation
import Multiprocessing
import Synchronization
import TestHarness
import TestSupport
import Testing

@Suite("ProcessPool adaptive spin", .serialized)
struct PoolSpinTests {
    /// The caller's counters are consistent: every spin ended one way.
    private func expectConsistent(_ statistics: PoolSpinStatistics, _ comment: Comment? = nil) {
        #expect(statistics.attempts == statistics.successes + statistics.timeouts + statistics.deschedules, comment)
        #expect(statistics.budgetNanoseconds > 0 && statistics.budgetNanoseconds <= 25_000, comment)
    }

    @Test func manyRoundTripsUnderTheSpinGiveEachTaskItsOwnAnswer() throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let pids = Set(pool.workerPIDs.map(Int.init))
        for i in 0..<3000 {
            let answer = try pool.submit(PoolSquareAndPidTask(x: i)).get()
            #expect(answer.count == 2 && answer[0] == i * i + 1 && pids.contains(answer[1]), "task \(i): \(answer)")
        }
        // Two callers at once, and a map beside them: each task gets its own answer.
        let wrong = Mutex<[String]>([])
        let threads = (0..<2).map { caller in
            Foundation.Thread {
                for i in 0..<1000 {
                    let x = caller * 1_000_000 + i
                    do {
                        let answer = try pool.submit(PoolSquareAndPidTask(x: x)).get()
                        if answer.count != 2 || answer[0] != x * x + 1 { wrong.withLock { $0.append("caller \(caller) task \(i): \(answer)") } }
                    } catch {
                        wrong.withLock { $0.append("caller \(caller) task \(i): \(error)") }
                    }
                }
            }
        }
        for thread in threads {
            thread.start()
        }
        #expect(try pool.map(PoolSquare(), over: 0..<2000, chunking: .fixed(1)) == (0..<2000).map { $0 * $0 })
        #expect(eventually(within: .seconds(300)) { threads.allSatisfy { $0.isFinished } })
        #expect(wrong.withLock { $0 } == [])
        #expect(Set(pool.workerPIDs.map(Int.init)) == pids)
        expectConsistent(pool._callerSpinStatistics)
    }

    @Test func aWorkerKilledWhileTheCallerSpinsFailsThatTaskWithItsDeath() throws {
        // One worker, so that the spin is allowed on two cores (one busy worker, one caller).
        let pool = try ProcessPool(workers: 1)
        defer { pool.terminate() }
        // Beside CPU hogs the scheduler tends to put the caller on the worker's CPU, where the
        // caller declines to spin: this test is about a spin that a death ends, so it spins anyway.
        pool._callerSpinIgnoresPlacement(true)
        var spunOnADeath = 0
        for round in 0..<10 {
            for i in 0..<50 { _ = try pool.submit(PoolSquareAndPidTask(x: i)).get() }
            let victim = pool.workerPIDs
            pool._resetCallerSpin()
            let before = pool._callerSpinStatistics
            #expect {
                _ = try pool.submit(PoolKillOwnWorkerTask()).get()
            } throws: { error in
                guard let error = error as? PoolTaskError else { return false }
                return error.code == .childDied && error.exitStatus == .signaled(.kill) && error.pid.map(victim.contains) == true
            }
            let after = pool._callerSpinStatistics
            // At most one spin for that get(), and it cannot have seen an answer: there is none.
            #expect(after.attempts - before.attempts <= 1, "round \(round)")
            #expect(after.successes == before.successes, "round \(round)")
            if after.attempts > before.attempts {
                spunOnADeath += 1
                #expect(after.skipLeft > 0, "round \(round): a spin that did not pay turns the spin off")
            }
            expectConsistent(after, "round \(round)")
            // The pool goes on with the replacement.
            let answer = try pool.submit(PoolSquareAndPidTask(x: 7)).get()
            #expect(answer.first == 50)
        }
        // On a machine with one core the spin is never allowed, so there is nothing to count.
        if cpuCount() >= 2 { #expect(spunOnADeath > 0, "the caller spun in none of the 10 deaths") }
    }

    @Test func aCallerThatSpinsThenSleepsWakesWhenALateAnswerArrives() throws {
        let pool = try ProcessPool(workers: 1)
        defer { pool.terminate() }
        let pid = try #require(pool.workerPIDs.first)
        // As above: the spin-then-sleep path runs whatever CPU the scheduler gives each side.
        pool._callerSpinIgnoresPlacement(true)
        var spunOnALateAnswer = 0
        for round in 0..<5 {
            for i in 0..<20 { _ = try pool.submit(PoolSquareAndPidTask(x: i)).get() }
            pool._resetCallerSpin()
            let before = pool._callerSpinStatistics
            // 50 ms is 2 000 times the longest spin: the answer always comes after it.
            #expect(try pool.submit(PoolSleepThenPidTask(milliseconds: 50)).get() == pid)
            let after = pool._callerSpinStatistics
            #expect(after.successes == before.successes, "round \(round)")
            if after.attempts > before.attempts {
                spunOnALateAnswer += 1
                // The spin collapsed: the next waits do not spin.
                #expect(after.timeouts + after.deschedules == before.timeouts + before.deschedules + 1, "round \(round)")
                #expect(after.skipLeft > 0, "round \(round)")
                // And the next long task is not spun for: it is one of the waits skipped.
                #expect(try pool.submit(PoolSleepThenPidTask(milliseconds: 50)).get() == pid)
                let next = pool._callerSpinStatistics
                #expect(next.attempts == after.attempts, "round \(round)")
                #expect(next.skipped == after.skipped + 1 || next.skipLeft == after.skipLeft, "round \(round)")
            }
            expectConsistent(after, "round \(round)")
        }
        if cpuCount() >= 2 { #expect(spunOnALateAnswer > 0, "the caller spun for none of the 5 late answers") }
    }

    @Test func aWorkersSpinCollapsesWhenItsNextTaskComesLate() throws {
        let pool = try ProcessPool(workers: 1)
        defer { pool.terminate() }
        var collapsed = 0
        for round in 0..<20 {
            // Starts the worker's policy afresh; it may spin after this task when the pool allows it.
            let reset = try pool.submit(PoolWorkerSpinTask(reset: true)).get()
            #expect(reset.attempts == 0)
            // The next task comes 50 ms later: 2 000 times the longest spin.
            usleep(50_000)
            let report = try pool.submit(PoolWorkerSpinTask(reset: false)).get()
            #expect(report.pid == reset.pid)
            #expect(report.successes == 0, "round \(round)")
            if reset.maySpinAfterThis && report.declined == 0 {
                // Exactly one spin, which failed and turned the spin off for the next waits.
                #expect(report.attempts == 1 && report.failures == 1, "round \(round): \(report)")
                #expect(report.skipLeft > 0, "round \(round): \(report)")
                collapsed += 1
            } else {
                // Not allowed, or declined (its answer woke the reader, or the reader ran on its CPU).
                #expect(report.attempts == 0, "round \(round): \(report)")
                #expect(report.declined <= (reset.maySpinAfterThis ? 1 : 0), "round \(round): \(report)")
            }
            if collapsed >= 3 { break }
        }
        // Whether the worker spins at all depends on where the scheduler runs the two processes
        // (never on the caller's CPU); so the rounds check what happened, not that it happened.
    }

    @Test func noSpinWhileBusyWorkersFillTheCores() throws {
        // One worker more than the cores, all but one running long tasks: the last one's caller
        // and worker would each take a core that a busy worker needs. The driver may queue two
        // long tasks on one worker, so the check applies to the reports that ran while every
        // long task ran, each on a worker of its own (from the times and pids they answer).
        let cores = cpuCount()
        let pool = try ProcessPool(workers: cores + 1)
        defer { pool.terminate() }
        var checked = 0
        for _ in 0..<4 where checked == 0 {
            _ = try pool.submit(PoolSquareAndPidTask(x: 1)).get()
            let long = try (0..<cores).map { _ in try pool.submit(PoolTimedSleepTask(milliseconds: 1500)) }
            var reports: [(PoolWorkerSpinReport, PoolSpinStatistics, PoolSpinStatistics)] = []
            for _ in 0..<5 {
                pool._resetCallerSpin()
                let before = pool._callerSpinStatistics
                let report = try pool.submit(PoolWorkerSpinTask(reset: true)).get()
                reports.append((report, before, pool._callerSpinStatistics))
            }
            let ran = try long.map { try $0.get() }
            guard Set(ran.map { $0[0] }).count == cores else { continue }
            for (report, before, after) in reports where ran.allSatisfy({ $0[1] < report.at && report.at < $0[2] }) {
                checked += 1
                #expect(!report.maySpinAfterThis, "\(report)")
                #expect(after.attempts == before.attempts && after.skipped == before.skipped && after.declined == before.declined, "\(after)")
            }
        }
        #expect(checked > 0, "no report ran while every long task ran on a worker of its own, in 4 rounds")
    }

    @Test func aMapLeavesNoWorkerSpinning() throws {
        let pool = try ProcessPool(workers: 1)
        defer { pool.terminate() }
        let before = try pool.submit(PoolWorkerSpinTask(reset: true)).get()
        // 2 000 chunks of one task: the worker runs dry between many of them, and must sleep at
        // once then, not spin (the driver cleared its permission with the first chunk).
        #expect(try pool.map(PoolSquare(), over: 0..<2000, chunking: .fixed(1)) == (0..<2000).map { $0 * $0 })
        let after = try pool.submit(PoolWorkerSpinTask(reset: false)).get()
        #expect(after.pid == before.pid)
        // At most the one spin after the first report (which the map's first chunk may end).
        #expect(after.attempts + after.declined <= 1, "\(after)")
        #expect(after.skipped == 0, "\(after)")
    }
}
