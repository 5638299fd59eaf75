#if MPI
import Multiprocessing
import Synchronization

/// Where a serving rank runs a submitted task that finds the rank idle: on the thread that holds
/// the rank's MPI role, synchronously, in the loop that received it (``MPIServer``), so that the
/// task starts with no thread hand-off and its reply goes out from the same thread.
///
/// A task made with this executor as its preference (`Task(executorPreference:)`) has its first
/// job enqueued here at once; the MPI thread takes it (``take()``) and runs it with
/// `runSynchronously(on:)`. A task that runs to its end without suspending (any synchronous
/// `run()`) is then done when that call returns. One that suspends (a sleep, an actor) has its
/// next job enqueued here from whichever thread resumes it; `enqueue` then wakes the MPI thread
/// (`wake`), which runs it on its next turn. Child tasks inherit the preference, so they run here
/// too, one job at a time.
final class MPIInlineExecutor: TaskExecutor {
    private let jobs = Mutex<[UnownedJob]>([])
    /// Whether there are jobs, read without the lock on every turn of the MPI loop.
    private let queued = Atomic<Bool>(false)
    /// The MPI loop's semaphore: released when a job comes from another thread.
    private let wake: Semaphore
    /// Set while the MPI thread itself makes a task (its first job comes at once and is run right
    /// after, so no wake-up is needed).
    private let making = Atomic<Bool>(false)

    init(wake: Semaphore) { self.wake = wake }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        queued.store(true, ordering: .sequentiallyConsistent)
        if !making.load(ordering: .relaxed) { try? wake.release() }
    }

    var hasJobs: Bool { queued.load(ordering: .sequentiallyConsistent) }

    /// The jobs enqueued so far, oldest first.
    func take() -> [UnownedJob] {
        jobs.withLock { items -> [UnownedJob] in
            queued.store(false, ordering: .sequentiallyConsistent)
            defer { items = [] }
            return items
        }
    }

    /// Runs `job` here, on the calling thread.
    func run(_ job: UnownedJob) {
        job.runSynchronously(on: asUnownedTaskExecutor())
    }

    /// Makes a task with this executor as its preference; its first job is queued when this
    /// returns (``take()``).
    func makeTask(_ operation: sending @escaping () async -> Void) {
        making.store(true, ordering: .relaxed)
        Task(executorPreference: self, operation: operation)
        making.store(false, ordering: .relaxed)
    }
}
#endif
