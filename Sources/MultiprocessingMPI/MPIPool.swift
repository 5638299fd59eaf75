#if MPI
public import Multiprocessing
import MultiprocessingSystem
import Synchronization

/// The same pool as `ProcessPool`, over the ranks of an MPI job, one or many hosts: static SPMD.
///
/// Every rank runs the same program (`mpirun -n N app`) and calls ``start(workersPerRank:inlineSubmit:)``. On
/// rank 0 it returns the pool, which hands chunks of each map to the other ranks; on ranks 1 ... N-1
/// it serves (each such rank runs a local `ProcessPool` over its share of its host's cores, so MPI
/// carries chunks between hosts and shared memory carries tasks inside one) and never returns: the
/// process exits when rank 0 joins or terminates the pool. With one rank (`mpirun -n 1`, or no
/// `mpirun` at all), rank 0 runs the work on a local `ProcessPool` itself.
///
/// Functions and tasks are found by type name, as a `ProcessPool`'s are, which works because every
/// rank runs the same binary. A task's thrown error reaches the caller as a `PoolTaskError` with
/// the error's type name and message (and the error itself when it is `Codable`).
///
/// One thread of the process at a time makes MPI calls (`MPI_THREAD_SERIALIZED`, or the MPI thread
/// alone at `MPI_THREAD_FUNNELED`), and none ever sits in a
/// blocking receive: it probes (`MPI_Improbe`) with a short spin, then sleeps backing off to about a
/// millisecond. A rank that dies ends the whole MPI job (that is MPI's failure model); a worker
/// process that dies inside a rank is handled by that rank's local pool, as on one machine.
///
/// ```swift
/// let pool = try MPIPool.start()     // ranks 1 ... N-1 serve here and never return
/// let squares = try await pool.map(Square(), over: 0..<1_000_000)
/// pool.close()
/// try await pool.join()              // the serving ranks exit; MPI is finalized
/// ```
public final class MPIPool: WorkerPool {
    /// How many workers run the pool's tasks: the local pool's with one rank, else the serving
    /// ranks' local workers (known once each rank has said hello; 1 per rank until then).
    public var workerCount: Int {
        if let local { return local.workerCount }
        return coordinator?.workerCount ?? 0
    }
    /// The number of ranks in the job (`MPI_Comm_size` of the world).
    public let worldSize: Int

    private let local: ProcessPool?
    private let coordinator: MPICoordinator?
    private let mpiThread: OSThread
    private let closed = Atomic<Bool>(false)
    /// Runs the submitted handles' `onDone` callbacks off the thread that delivers results, as a
    /// `ProcessPool`'s do (docs/pool.md, "Callbacks").
    private let callbacks = PoolCallbacks()

    private init(worldSize: Int, local: ProcessPool?, coordinator: MPICoordinator?, mpiThread: OSThread) {
        self.worldSize = worldSize
        self.local = local
        self.coordinator = coordinator
        self.mpiThread = mpiThread
    }

    /// Starts MPI and the pool. Call it once per process, on every rank (with the same arguments),
    /// before using MPI otherwise.
    ///
    /// Before `MPI_Init_thread`, a rank that will run tasks starts its local `ProcessPool` (and so
    /// the fork server), because MPI starts threads of its own. Which rank this is, is read before
    /// MPI runs from the launcher's variables (`OMPI_COMM_WORLD_RANK`, `PMI_RANK`, `PMIX_RANK`).
    /// - Parameters:
    ///   - workersPerRank: The local pool's workers on each rank that runs tasks; by default this
    ///     host's cores divided by the ranks on this host (at least 1).
    ///   - inlineSubmit: Whether a task given to `submit(_:)` that finds its serving rank idle
    ///     runs in that rank's own process (on its MPI thread, which a standby thread relieves
    ///     of MPI when the task runs past 1 ms) instead of in a local worker:
    ///     it then costs two MPI messages and no process round trip. Such a task shares the rank's
    ///     process, as every task of `mpi4py.futures` does: one that crashes its process ends the MPI
    ///     job, where a local worker's crash fails only its task (`childDied`). Pass `false` to run
    ///     every task in a local worker. Maps always run in the local workers.
    /// - Returns: On rank 0, the pool. On other ranks it does not return: it serves, and the process
    ///   exits (status 0) when rank 0 joins or terminates the pool.
    /// - Throws: ``MPIError`` when MPI cannot start (or was started before); `MultiprocessingError`
    ///   when the local pool cannot start.
    public static func start(workersPerRank: Int? = nil, inlineSubmit: Bool = true) throws -> MPIPool {
        let launch = LaunchGuess.fromEnvironment()
        if let workersPerRank, workersPerRank < 1 { throw MPIError(.misuse, "MPIPool needs at least one worker per rank; \(workersPerRank) were asked for.") }
        let workers = workersPerRank ?? max(1, cpuCount() / max(1, launch.localSize))
        let trace = system_getenv("MULTIPROCESSING_MPI_TRACE") == "1"
        // A rank that runs tasks starts its local pool, and so the fork server, before MPI's threads exist.
        var localPool: ProcessPool? = (launch.rank != 0 || launch.size == 1) ? try ProcessPool(workers: workers) : nil
        let threadsBefore = system_threadCount()

        let started = StartReport()
        let thread = OSThread(name: "MPIPool-mpi", daemon: true) {
            let initialized: (rank: Int, size: Int, messenger: MPIMessenger)
            let level: MPIThreadLevel
            do {
                // SERIALIZED lets a caller waiting for its task make the MPI calls itself, one
                // thread at a time (MPICoordinator.drive); FUNNELED is enough for the rest.
                level = try MPIEnvironment.initialize(threadLevel: .serialized, minimum: .funneled)
                let world = MPICommunicator.world
                // A test hook: MULTIPROCESSING_MPI_PART_LIMIT=N sends every message above N bytes in parts.
                let partLimit = system_getenv("MULTIPROCESSING_MPI_PART_LIMIT").flatMap { Int($0) } ?? Int(Int32.max)
                initialized = (try world.rank(), try world.size(), try MPIMessenger(communicator: world, partLimit: partLimit))
            } catch {
                started.fail(error)
                return
            }
            let ready = started.ready(rank: initialized.rank, size: initialized.size)
            switch ready {
            case .serve(let pool):
                let server: MPIServer
                do {
                    server = try MPIServer(messenger: initialized.messenger, localPool: pool, host: MPIEnvironment.processorName, inlineLoneTasks: inlineSubmit,
                                          sharedCalls: level >= .serialized)
                    try server.serve()
                } catch {
                    writeError("MPIPool: serving rank \(initialized.rank) failed: \(error)\n")
                    MPIEnvironment.abort(code: 1)
                }
                flushTrace()
                _ = try? MPIEnvironment.finalize()
                system_exit(0)
            case .coordinate(let coordinator):
                coordinator.run(messenger: initialized.messenger, size: initialized.size, sharedCalls: level >= .serialized)
                flushTrace()
                _ = try? MPIEnvironment.finalize()
            case .alone:
                started.waitForStop()
                _ = try? MPIEnvironment.finalize()
            }
        }
        try thread.start()
        let (rank, size) = try started.waitForInit()
        if trace {
            writeError("MPIPool: rank \(rank) of \(size): local pool \(localPool.map { "of \($0.workerCount) workers" } ?? "none") started before MPI_Init_thread (threads: \(threadsBefore) before, \(system_threadCount()) after)\n")
        }
        if rank != 0 {
            // A launcher that set no rank variable: start the local pool now (spawned, so safe with MPI's threads).
            if localPool == nil { localPool = try ProcessPool(workers: workers) }
            guard let localPool else { system_exit(1) }
            started.decide(.serve(localPool))
            try thread.join()
            system_exit(0)   // not reached: the MPI thread exits the process
        }
        if size == 1 {
            if localPool == nil { localPool = try ProcessPool(workers: workers) }
            started.decide(.alone)
            return MPIPool(worldSize: 1, local: localPool, coordinator: nil, mpiThread: thread)
        }
        localPool?.terminate()
        let coordinator = try MPICoordinator(ranks: size - 1)
        started.decide(.coordinate(coordinator))
        return MPIPool(worldSize: size, local: nil, coordinator: coordinator, mpiThread: thread)
    }

    /// Starts the pool, runs `body` with it on rank 0, then closes and joins it (the serving ranks
    /// exit); terminates it when `body` throws. On ranks 1 ... N-1 it serves and never returns.
    public static func with<R>(workersPerRank: Int? = nil, inlineSubmit: Bool = true, _ body: (MPIPool) async throws -> R) async throws -> R {
        let pool = try start(workersPerRank: workersPerRank, inlineSubmit: inlineSubmit)
        do {
            let result = try await body(pool)
            pool.close()
            try await pool.join()
            return result
        } catch {
            pool.terminate()
            throw error
        }
    }

    // MARK: maps

    private func checkOpen() throws {
        if closed.load(ordering: .relaxed) { throw MultiprocessingError(.closed, "This MPIPool is closed (or terminated): it takes no new work.") }
    }

    // The maps are `@inlinable` for one line: the copy of the caller's sequence into an array,
    // which then runs specialized in the caller's module. Unspecialized (here, where the types are
    // generic), copying a `Range<Int>` of a million inputs went element by element through the
    // generic iterator: half of rank 0's samples in a map of trivial tasks.

    /// Runs `function` on every input, on the serving ranks, and returns the results in order.
    ///
    /// The inputs are encoded here first, so an input that cannot be encoded fails the call
    /// (`MultiprocessingError`, code `coding`, naming its index) before any task runs.
    /// - Throws: The first failed task's `PoolTaskError` (by input index), after every task ran.
    @inlinable
    public func map<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) async throws -> [F.Output] {
        try await _map(function, Array(inputs), chunking)
    }

    @usableFromInline
    func _map<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking) async throws -> [F.Output] {
        if let local { return try await local.map(function, over: inputs, chunking: chunking) }
        let chunks = try await runMap(function, inputs, chunking)
        var all: [F.Output] = []
        all.reserveCapacity(chunks.reduce(0) { $0 + $1.outputs.count })
        for chunk in chunks {
            if let failure = chunk.failures.first { throw failure.error }
            all.append(contentsOf: chunk.outputs)
        }
        return all
    }

    /// Every task's result, failed or not, in order.
    @inlinable
    public func mapResults<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) async throws -> [Result<F.Output, PoolTaskError>] {
        try await _mapResults(function, Array(inputs), chunking)
    }

    @usableFromInline
    func _mapResults<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking) async throws -> [Result<F.Output, PoolTaskError>] {
        if let local { return try await local.mapResults(function, over: inputs, chunking: chunking) }
        let chunks = try await runMap(function, inputs, chunking)
        var all: [Result<F.Output, PoolTaskError>] = []
        for chunk in chunks { all.append(contentsOf: chunk.results) }
        return all
    }

    /// The results as their chunks arrive, each with its input's index (Python's `imap_unordered`).
    @inlinable
    public func mapUnordered<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) throws -> AsyncThrowingStream<(index: Int, result: Result<F.Output, PoolTaskError>), any Error> {
        try _mapUnordered(function, Array(inputs), chunking)
    }

    @usableFromInline
    func _mapUnordered<F: PoolFunction>(_ function: F, _ values: [F.Input], _ chunking: Chunking) throws -> AsyncThrowingStream<(index: Int, result: Result<F.Output, PoolTaskError>), any Error> {
        try checkOpen()
        let (stream, continuation) = AsyncThrowingStream<(index: Int, result: Result<F.Output, PoolTaskError>), any Error>.makeStream()
        if let local {
            let task = Task {
                do {
                    let results = try await local.mapResults(function, over: values, chunking: chunking)
                    for (index, result) in results.enumerated() { continuation.yield((index, result)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
            return stream
        }
        guard let coordinator else { throw MPIError(.misuse, "This MPIPool has no coordinator.") }
        let job = try MPIMapJob(function: function, inputs: values, chunking: chunking, stream: continuation)
        coordinator.submit(job)
        return stream
    }

    private func runMap<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking) async throws -> [MPIChunkOutcome<F.Output>] {
        try checkOpen()
        guard let coordinator else { throw MPIError(.misuse, "This MPIPool has no coordinator.") }
        if inputs.isEmpty { return [] }
        let job = try MPIMapJob(function: function, inputs: inputs, chunking: chunking, stream: nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                job.setContinuation(continuation)
                coordinator.submit(job)
            }
        } onCancel: {
            job.cancel()
        }
    }

    // MARK: submit

    /// Runs one task on a serving rank; a handle to its result.
    public func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<T.Output> where T.Output: Decodable {
        if let local { return try local.submit(task) }
        return try submitRemote(task) { bytes in try bytes.withUnsafeBytes { try WireDecoder().decode(T.Output.self, from: $0) } }
    }

    /// Runs one task that returns nothing on a serving rank.
    public func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<Void> where T.Output == Void {
        if let local { return try local.submit(task) }
        return try submitRemote(task) { _ in () }
    }

    private func submitRemote<T: ProcessTask, Output: Sendable>(_ task: T, decode: @escaping @Sendable (ArraySlice<UInt8>) throws -> Output) throws -> PoolTaskHandle<Output> {
        try checkOpen()
        guard let coordinator else { throw MPIError(.misuse, "This MPIPool has no coordinator.") }
        guard let name = _mangledTypeName(T.self) else {
            throw MultiprocessingError(.childStartFailed, "The task type \(T.self) has no runtime name a rank could look up.")
        }
        let bytes: [UInt8]
        do { bytes = try WireEncoder().encode(task) } catch {
            throw MultiprocessingError(.coding, "Could not encode the task \(String(reflecting: T.self)) for the MPIPool: \(error)")
        }
        // Cancelling the handle fails it at once; a task already sent still runs on its rank, and
        // its result is then ignored (the first result a handle gets wins). A caller waiting in
        // `value` or `get()` drives rank 0's loop itself for a while (MPICoordinator.drive).
        let done = MPIDoneFlag()
        let job = MPITaskJob(typeName: name, taskBytes: bytes, decode: decode)
        let (handle, resolve) = PoolTaskHandle<Output>._external(
            cancel: { done.set() },
            settle: { _ in
                guard !done.isSet else { return }
                job.want()
                coordinator.wakeUp()
            },
            drive: { _ in coordinator.drive(until: { done.isSet }) },
            callbacks: callbacks)
        job.onSingle = { result in
            defer { done.set() }
            resolve(result)
        }
        coordinator.submit(job, direct: true)
        return handle
    }

    // MARK: lifecycle

    /// Takes no more work.
    public func close() {
        closed.store(true, ordering: .relaxed)
        local?.close()
    }

    /// Waits until the work has run, then stops the serving ranks (they exit) and finalizes MPI
    /// here; call ``close()`` first. After it, this process makes no more MPI calls.
    public func join() async throws {
        guard closed.load(ordering: .relaxed) else { throw MultiprocessingError(.misuse, "join() before close(): call close() (or terminate()) first, as in Python.") }
        if let local {
            try await local.join()
            coordinatorLessStop()
        } else if let coordinator {
            coordinator.requestStop(terminate: false)
        }
        try await mpiThread.join()
        await callbacks.drain()
    }

    /// Stops: work not started fails with `MultiprocessingError.Code.cancelled`; the serving ranks
    /// stop their local pools (killing the workers) and exit; MPI is finalized here.
    public func terminate() {
        closed.store(true, ordering: .relaxed)
        if let local {
            local.terminate()
            coordinatorLessStop()
        } else if let coordinator {
            coordinator.requestStop(terminate: true)
        }
        try? mpiThread.join()
    }

    private func coordinatorLessStop() { StartReport.stopAlone() }
}

/// Set once a submitted task has its result (or was cancelled): what a driving caller waits for.
final class MPIDoneFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// The rank and size the launcher set in the environment, read before MPI starts.
struct LaunchGuess {
    var rank: Int
    var size: Int
    var localSize: Int

    static func fromEnvironment() -> LaunchGuess {
        func first(_ names: [String]) -> Int? {
            for name in names { if let text = system_getenv(name), let value = Int(text) { return value } }
            return nil
        }
        let rank = first(["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"]) ?? 0
        let size = first(["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]) ?? 1
        let localSize = first(["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"]) ?? 1
        return LaunchGuess(rank: rank, size: size, localSize: localSize)
    }
}

/// The hand-over between the thread that calls `start` and the MPI thread.
final class StartReport: Sendable {
    enum Role: Sendable { case serve(ProcessPool), coordinate(MPICoordinator), alone }
    private struct State {
        var initialized: Result<(Int, Int), any Error>?
        var role: Role?
    }
    private let state = Mutex(State())
    private let initDone: Semaphore
    private let roleDone: Semaphore
    private static let aloneStop = Mutex<Semaphore?>(nil)

    init() {
        // A Semaphore is a small shared mapping; failing to make one is running out of memory.
        initDone = (try? Semaphore(0)) ?? StartReport.unavailable()
        roleDone = (try? Semaphore(0)) ?? StartReport.unavailable()
    }

    private static func unavailable() -> Semaphore {
        writeError("MPIPool: could not create a semaphore (out of memory or mappings).\n")
        system_exit(1)
    }

    func fail(_ error: any Error) {
        state.withLock { $0.initialized = .failure(error) }
        try? initDone.release()
    }

    /// Called on the MPI thread once MPI runs: waits for the caller's decision.
    func ready(rank: Int, size: Int) -> Role {
        if size == 1 { StartReport.aloneStop.withLock { $0 = try? Semaphore(0) } }
        state.withLock { $0.initialized = .success((rank, size)) }
        try? initDone.release()
        while true {
            try? roleDone.acquire()
            if let role = state.withLock({ $0.role }) { return role }
        }
    }

    func waitForInit() throws -> (Int, Int) {
        while true {
            try? initDone.acquire()
            if let result = state.withLock({ $0.initialized }) { return try result.get() }
        }
    }

    func decide(_ role: Role) {
        state.withLock { $0.role = role }
        try? roleDone.release()
    }

    /// With one rank, the MPI thread only waits to finalize.
    func waitForStop() {
        guard let semaphore = StartReport.aloneStop.withLock({ $0 }) else { return }
        try? semaphore.acquire()
    }

    static func stopAlone() {
        if let semaphore = aloneStop.withLock({ $0 }) { try? semaphore.release() }
    }
}
#endif
