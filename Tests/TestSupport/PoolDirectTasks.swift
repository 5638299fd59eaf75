// Tasks for the suite of tasks a caller sends straight to a worker
// (Tests/MultiprocessingTests/PoolDirectTests.swift).
import Glibc
public import Multiprocessing

/// A submitted task that SIGKILLs its own worker.
public struct PoolKillOwnWorkerTask: ProcessTask {
    public init() {}
    public func run() -> Int32 {
        kill(getpid(), SIGKILL)
        return 0
    }
}

/// A submitted task that sleeps, then answers its worker's pid.
public struct PoolSleepThenPidTask: ProcessTask {
    public var milliseconds: Int
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    public func run() -> Int32 {
        usleep(UInt32(milliseconds * 1000))
        return getpid()
    }
}
