import Synchronization
import MultiprocessingSystem

/// Runs a task's jobs on the thread that waits for it.
///
/// A child process's main thread has nothing to do but run the task. Running the task's jobs right
/// there, instead of on Swift's global executor, means a task that never suspends (most of them)
/// starts no Dispatch worker thread at all: a measurable part of a child's start. Jobs that arrive
/// from elsewhere (a timer firing after `Task.sleep`, a continuation resumed by another thread) are
/// queued and run here too.
internal final class CallerThreadExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` is guarded by its Mutex; `wakeups` is a futex word touched only atomically.
    private let jobs = Mutex<[UnownedJob]>([])
    private let wakeups: UnsafeMutablePointer<UInt32>

    init() {
        wakeups = .allocate(capacity: 1)
        wakeups.initialize(to: 0)
    }

    deinit { wakeups.deallocate() }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(unowned) }
        _ = system_atomicAdd(wakeups, 1)
        system_futexWake(wakeups, count: 1, shared: false)
    }

    /// Runs jobs on this thread until `done` is set.
    func run(until done: OneShot) {
        while !done.isSet {
            let seen = system_atomicLoad(wakeups)
            let batch = jobs.withLock { jobs -> [UnownedJob] in
                defer { jobs.removeAll(keepingCapacity: true) }
                return jobs
            }
            if batch.isEmpty {
                if done.isSet { return }
                _ = try? system_futexWait(wakeups, expected: seen, timeoutNanoseconds: nil, shared: false)
                continue
            }
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// Runs `body` as a task whose jobs run on this thread, and returns its result.
    static func runBlocking<R: Sendable>(_ body: @escaping @Sendable () async -> R) -> R {
        let executor = CallerThreadExecutor()
        let result = Mutex<R?>(nil)
        let done = OneShot()
        Task(executorPreference: executor) {
            let value = await body()
            result.withLock { $0 = value }
            done.set()
            executor.poke()
        }
        executor.run(until: done)
        guard let value = result.withLock({ $0 }) else {
            preconditionFailure("the task set done without a result")
        }
        return value
    }

    private func poke() {
        _ = system_atomicAdd(wakeups, 1)
        system_futexWake(wakeups, count: 1, shared: false)
    }
}
