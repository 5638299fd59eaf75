// Tasks for the suite of the direct round trip's adaptive spin
// (Tests/MultiprocessingTests/PoolSpinTests.swift).
public import Multiprocessing
import Glibc

/// What a pool worker's spin has seen, and whether the driver let it spin after this task.
public struct PoolWorkerSpinReport: Codable, Sendable, Equatable {
    public var pid: Int32
    public var maySpinAfterThis: Bool
    public var attempts: Int
    public var successes: Int
    public var failures: Int
    public var skipped: Int
    public var declined: Int
    public var skipLeft: Int
    /// CLOCK_MONOTONIC when it ran (the same clock in every process).
    public var at: Int64
}

/// Answers its worker's spin statistics (after starting them afresh when `reset`).
public struct PoolWorkerSpinTask: ProcessTask {
    public var reset: Bool
    public init(reset: Bool) { self.reset = reset }
    public func run() -> PoolWorkerSpinReport {
        if reset { _ = PoolSpinTesting.resetWorker() }
        let statistics = PoolSpinTesting.workerStatistics ?? PoolSpinStatistics()
        return PoolWorkerSpinReport(pid: getpid(), maySpinAfterThis: PoolSpinTesting.workerMaySpin ?? false,
                                    attempts: statistics.attempts, successes: statistics.successes,
                                    failures: statistics.timeouts + statistics.deschedules,
                                    skipped: statistics.skipped, declined: statistics.declined, skipLeft: statistics.skipLeft, at: spinTestClock())
    }
}

/// Returns `x * x + 1` and its worker's pid: an answer that only the right task can give.
public struct PoolSquareAndPidTask: ProcessTask {
    public var x: Int
    public init(x: Int) { self.x = x }
    public func run() -> [Int] { [x * x + 1, Int(getpid())] }
}

private func spinTestClock() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Sleeps, then answers its worker's pid and when it started and ended (CLOCK_MONOTONIC).
public struct PoolTimedSleepTask: ProcessTask {
    public var milliseconds: Int
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    public func run() -> [Int64] {
        let start = spinTestClock()
        usleep(UInt32(milliseconds * 1000))
        return [Int64(getpid()), start, spinTestClock()]
    }
}
