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

@Suite("ProcessPool failures", .serialized)
struct PoolFailureTests {
    @Test func aThrownErrorComesBackWholeAndFailsThatTaskAlone() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let results = try await pool.mapResults(PoolEvenOnly(), over: 0..<100)
        for (index, result) in results.enumerated() {
            switch result {
            case .success(let value):
                #expect(index % 2 == 0 && value == index / 2)
            case .failure(let error):
                #expect(index % 2 == 1)
                #expect(error.code == .childFailed)
                #expect(error.indices == [index])
                #expect(error.remoteTypeName?.hasSuffix("PoolOddError") == true)
                #expect(error.message.contains("\(index) is odd"))
                #expect(error.remoteError as? PoolOddError == PoolOddError(value: index))
            }
        }
        // map throws the first failure to arrive (it fails early: pool.md), which is task 2 (5) or
        // task 3 (7): they run on different workers, and either may answer first under load.
        await #expect {
            _ = try await pool.map(PoolEvenOnly(), over: [2, 4, 5, 7])
        } throws: { error in
            guard let indices = (error as? PoolTaskError)?.indices else { return false }
            return indices == [2] || indices == [3]
        }
    }

    @Test func anUnencodableResultFailsThatTaskAloneTwentyTimes() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let pids = Set(pool.workerPIDs)
        for round in 0..<20 {
            let results = try await pool.mapResults(PoolSometimesUnencodable(every: 10), over: (0..<50).map { $0 + round })
            for (offset, result) in results.enumerated() {
                let x = offset + round
                if x % 10 == 0 {
                    guard case .failure(let error) = result else { Issue.record("task \(offset) should have failed"); continue }
                    #expect(error.code == .coding)
                    #expect(error.indices == [offset])
                    #expect(error.message.contains("refuses to be encoded"))
                } else {
                    #expect((try? result.get()) == PoolFragile(value: x, poisoned: false))
                }
            }
        }
        // The workers lived on: the same processes, and the pool still works.
        #expect(Set(pool.workerPIDs) == pids)
        #expect(try await pool.map(PoolSquare(), over: [5]) == [25])
    }

    @Test func aThrowingInitializerFailsCreationOnceAndLeavesNothing() throws {
        var failure: PoolTaskError?
        do {
            _ = try ProcessPool(workers: 3, initializer: PoolFailingInitializer())
        } catch let error as PoolTaskError {
            failure = error
        }
        let error = try #require(failure)
        #expect(error.code == .childStartFailed)
        #expect(error.message.contains("initializer") && error.message.contains("7 is odd"))
        #expect(error.remoteError as? PoolOddError == PoolOddError(value: 7))
        // The pool is gone with its workers (the one that failed among them): nothing respawns.
        let pid = try #require(error.pid)
        #expect(!processIsRunning(pid))
        #expect(eventually(within: .seconds(60)) { zombieChildren(of: getpid()).isEmpty })
    }

    @Test func anInitializerRunsInEveryWorker() async throws {
        try await ProcessPool.with(workers: 2, initializer: PoolSetGreeting(greeting: "hello")) { pool in
            let greetings = try await pool.map(PoolReadGreeting(), over: 0..<20, chunking: .fixed(1))
            #expect(greetings == (0..<20).map { "hello \($0)" })
        }
    }

    /// A worker SIGKILLed in the middle of a map: the map returns, the tasks that worker was
    /// running fail with its pid, -SIGKILL and their indices, every other task has its result.
    @Test func aWorkerKilledDuringMapFailsOnlyItsTasks() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        var totalFailed = 0
        for round in 0..<100 {
            let victim = try #require(pool.workerPIDs.first)
            async let results = pool.mapResults(PoolSleepThenTell(milliseconds: 2), over: 0..<40, chunking: .fixed(2))
            // Kill it once it is running a task of this map.
            usleep(8_000)
            kill(victim, SIGKILL)
            let all = try await results
            var failed = 0
            for (index, result) in all.enumerated() {
                switch result {
                case .success(let answer):
                    #expect(answer.input == index)
                case .failure(let error):
                    failed += 1
                    #expect(error.code == .childDied, "round \(round)")
                    #expect(error.pid == victim)
                    #expect(error.exitStatus == .signaled(.kill))
                    #expect(error.exitStatus?.code == -9)
                    #expect(error.indices.contains(index))
                    #expect(error.message.contains("\(victim)") && error.message.contains("SIGKILL"))
                }
            }
            #expect(failed <= 2, "only the chunk it was running fails")
            totalFailed += failed
            // The monitor thread reaps a child as soon as it ends, but after its pidfd says so.
            #expect(eventually(within: .seconds(60)) { zombieChildren(of: getpid()).isEmpty })
        }
        #expect(totalFailed > 0, "no round killed a worker while it ran a task")
        // Replaced: still two workers, and the pool works.
        #expect(eventually(within: .seconds(60)) { pool.workerPIDs.count == 2 })
        #expect(try await pool.map(PoolSquare(), over: 0..<10) == (0..<10).map { $0 * $0 })
    }

    @Test func withRetryEveryTaskOfAKilledWorkerStillGetsItsResult() async throws {
        let pool = try ProcessPool(workers: 2, onWorkerDeath: .retry(3))
        defer { pool.terminate() }
        for _ in 0..<20 {
            let victim = try #require(pool.workerPIDs.first)
            async let results = pool.map(PoolSleepThenTell(milliseconds: 2), over: 0..<40, chunking: .fixed(4))
            usleep(8_000)
            kill(victim, SIGKILL)
            let all = try await results
            #expect(all.map(\.input) == Array(0..<40))
        }
    }

    @Test func aTaskThatKillsItsWorkerFailsAloneEvenWithRetries() async throws {
        let pool = try ProcessPool(workers: 2, onWorkerDeath: .retry(2))
        defer { pool.terminate() }
        let results = try await pool.mapResults(PoolCrashOn(poison: 13), over: 0..<40, chunking: .fixed(5))
        for (index, result) in results.enumerated() {
            if index == 13 {
                guard case .failure(let error) = result else { Issue.record("the poison task succeeded"); continue }
                #expect(error.code == .childDied)
                #expect(error.indices == [13])
                #expect(error.exitStatus == .signaled(.kill))
            } else {
                #expect((try? result.get()) == index)
            }
        }
    }

    @Test func aTaskPastTheTimeoutFailsAndItsWorkerIsReplaced() async throws {
        let pool = try ProcessPool(workers: 2, taskTimeout: .seconds(2))
        defer { pool.terminate() }
        let results = try await pool.mapResults(PoolSleepThenTell(milliseconds: 0), over: [0, 1, 2])
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        let slow = try await pool.mapResults(PoolSleepThenTellSlowOn(slow: 1, milliseconds: 30_000), over: [0, 1, 2])
        guard case .failure(let error) = slow[1] else { Issue.record("the slow task did not time out"); return }
        #expect(error.code == .timedOut)
        #expect(error.indices == [1])
        #expect((try? slow[0].get()) == 0 && (try? slow[2].get()) == 2)
        #expect(eventually(within: .seconds(60)) { pool.workerPIDs.count == 2 })
    }

    @Test func workersIgnoreSIGINTAndSIGHUP() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let pids = pool.workerPIDs
        for pid in pids {
            kill(pid, SIGINT)
            kill(pid, SIGHUP)
        }
        #expect(try await pool.map(PoolSquare(), over: 0..<100, chunking: .fixed(1)) == (0..<100).map { $0 * $0 })
        #expect(Set(pool.workerPIDs) == Set(pids))
    }
}

@Suite("ProcessPool lifecycle", .serialized)
struct PoolLifecycleTests {
    @Test func cancellingAMapThrowsCancellationErrorAndTheScopeLeavesNoProcess() async throws {
        let workers = Mutex_<[Int32]>([])
        let mapping = Mutex_<Bool>(false)
        let task = Task {
            try await ProcessPool.with(workers: 2) { pool in
                workers.set(pool.workerPIDs)
                mapping.set(true)
                return try await pool.map(PoolSleepThenTell(milliseconds: 120_000), over: 0..<8, chunking: .fixed(1))
            }
        }
        // However long the machine takes to start the pool (no bound: it is not what is tested).
        while !mapping.get() { usleep(10_000) }
        usleep(200_000)
        let cancelled = ContinuousClock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        // The scope terminated and reaped its workers before it returned.
        #expect(workers.get().count == 2)
        for pid in workers.get() { #expect(!processIsRunning(pid)) }
        #expect(liveChildren().isDisjoint(with: workers.get()))
        #expect(ContinuousClock.now - cancelled < .seconds(60), "the 120 s tasks were not waited for")
    }

    @Test func closeThenJoinRunsWhatWasSubmittedAndEndsTheWorkers() async throws {
        let pool = try ProcessPool(workers: 2)
        let workers = pool.workerPIDs
        let handles = try (0..<10).map { try pool.submit(PoolPidTask(add: Int32($0))) }
        pool.close()
        #expect(throws: MultiprocessingError.self) { _ = try pool.submit(PoolPidTask(add: 0)) }
        try await pool.join()
        for handle in handles { _ = try await handle.value }
        #expect(liveChildren().isDisjoint(with: workers))
    }

    @Test func terminateFailsWhatIsPendingAndEndsTheWorkers() async throws {
        let pool = try ProcessPool(workers: 2)
        let workers = pool.workerPIDs
        let handles = try (0..<6).map { _ in try pool.submit(PoolSleepTask(milliseconds: 10_000)) }
        usleep(100_000)
        pool.terminate()
        for handle in handles {
            await #expect(throws: PoolTaskError.self) { try await handle.value }
        }
        #expect(liveChildren().isDisjoint(with: workers))
    }

    @Test func aSubmittedTaskCanBeCancelledAndCallsBack() async throws {
        let pool = try ProcessPool(workers: 1)
        defer { pool.terminate() }
        let slow = try pool.submit(PoolSleepTask(milliseconds: 10_000))
        let next = try pool.submit(PoolPidTask(add: 1))
        let called = Mutex_<Int32?>(nil)
        next.onDone { result in called.set(try? result.get()) }
        slow.cancel()
        await #expect(throws: PoolTaskError.self) { try await slow.value }
        let value = try await next.value
        #expect(eventually { called.get() == value })
    }

    @Test func recyclingReplacesWorkersAndKeepsEveryResult() async throws {
        let pool = try ProcessPool(workers: 2, recycling: .after(tasks: 5))
        defer { pool.terminate() }
        let answers = try await pool.map(PoolSleepThenTell(milliseconds: 0), over: 0..<100, chunking: .fixed(1))
        #expect(answers.map(\.input) == Array(0..<100))
        let pids = Set(answers.map(\.pid))
        #expect(pids.count >= 20, "100 tasks, 5 per worker: at least 20 workers, saw \(pids.count)")
        #expect(eventually(within: .seconds(60)) { zombieChildren(of: getpid()).isEmpty })
    }

    @Test func aLeakingTaskUnderAMemoryLimitIsRecycledWithoutErrors() async throws {
        let pool = try ProcessPool(workers: 2, recycling: .above(residentBytes: 64 << 20))
        defer { pool.terminate() }
        let results = try await pool.map(PoolLeak(megabytes: 8), over: 0..<60, chunking: .fixed(1))
        #expect(results == Array(0..<60))
    }

    @Test func mapUnorderedReadsALazyInputWithinItsWindow() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let counter = Mutex_<Int>(0)
        let inputs = (0..<20_000).lazy.map { x -> Int in counter.set(counter.get() + 1); return x }
        var seen = Set<Int>()
        var maxAhead = 0
        for try await (index, result) in try pool.mapUnordered(PoolSquare(), over: inputs, window: 64) {
            #expect(try result.get() == index * index)
            seen.insert(index)
            maxAhead = max(maxAhead, counter.get() - seen.count)
        }
        #expect(seen.count == 20_000)
        #expect(maxAhead <= 64)
    }
}

@Suite("ProcessPool mapUnordered memory", .serialized)
struct PoolUnorderedMemoryTests {
    /// This process's resident memory, from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    /// An endless input, read through a window of 64: the parent's memory stays flat (the inputs
    /// sent and answered are dropped, the results taken are gone).
    @Test func anEndlessInputThroughAWindowKeepsMemoryFlat() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        // 100-byte inputs: 400 000 of them are 40 MB if anything keeps them.
        let padding = String(repeating: "x", count: 90)
        let endless = (0...).lazy.map { "\(padding)\($0 % 10_000_000_000)" }
        var taken = 0
        var baseline = 0
        for try await (index, result) in try pool.mapUnordered(PoolLength(), over: endless, window: 64) {
            #expect(try result.get() == 90 + String(index).utf8.count)
            taken += 1
            if taken == 50_000 { baseline = Self.residentBytes() }
            if taken == 450_000 { break }
        }
        // A pool that kept the inputs would grow by 40 MB; the bound leaves room for the suites
        // that run beside this one in the same process (the issue's 10 MB over 10 million items is
        // measured in a process of its own: tenMillionItemsThroughAWindowOf64KeepMemoryFlat).
        let growth = Self.residentBytes() - baseline
        #expect(growth < 20 << 20, "grew by \(growth) bytes over 400 000 items")
    }
}

/// A tiny lock box for test bookkeeping.
final class Mutex_<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ newValue: Value) { lock.lock(); value = newValue; lock.unlock() }
}

@Suite("ProcessPool when its parent dies", .serialized)
struct PoolParentDeathTests {
    /// SIGKILL or SIGINT to a process running a long map: its workers die with it (daemon children
    /// with PR_SET_PDEATHSIG), or are terminated by the pool (SIGINT); none is orphaned.
    @Test(arguments: [SIGKILL, SIGINT])
    func theWorkersOfAKilledParentDieWithIt(signal: Int32) throws {
        let path = NSTemporaryDirectory() + "pool-parent-\(getpid())-\(signal)"
        defer { unlink(path) }
        let parent = ChildProcess(PoolParentScenario(path: path))
        try parent.start()
        #expect(eventually(within: .seconds(30)) { FileManager.default.fileExists(atPath: path) })
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let workers = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        #expect(workers.count == 2)
        for pid in workers { #expect(processIsRunning(pid)) }
        kill(parent.pid ?? 0, signal)
        try parent.join(timeout: .seconds(30))
        // SIGKILL kills it. SIGINT kills it too if it comes before map waits; once map waits, it
        // ends the map with CancellationError (the pool terminated and its workers reaped first),
        // which its task throws: exit code 1. (PoolBehaviourTests waits for the wait.)
        if signal == SIGINT {
            #expect(parent.exitStatus == .exited(1) || parent.exitStatus == .signaled(.interrupt), "\(String(describing: parent.exitStatus))")
        } else {
            #expect(parent.exitStatus == .signaled(Signal(rawValue: signal)))
        }
        // Within the grace period plus a second, every worker is gone.
        #expect(eventually(within: .seconds(2)) { workers.allSatisfy { !processIsRunning($0) } })
    }
}
