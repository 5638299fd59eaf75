import Synchronization
import MultiprocessingSystem

/// Python's `multiprocessing.Pool` and `concurrent.futures.ProcessPoolExecutor`: long-lived worker
/// processes that run a function over many inputs.
///
/// ```swift
/// struct Square: PoolFunction { func run(_ x: Int) -> Int { x * x } }
///
/// let squares = try await ProcessPool.with { pool in
///     try await pool.map(Square(), over: 0..<100)
/// }
/// ```
///
/// What it promises, where Python's pool does not:
/// - A worker that dies (SIGKILL, the OOM killer, a trap) fails only the tasks it was running,
///   with a ``PoolTaskError`` naming its pid, its exit status and the tasks' indices; it is
///   replaced and the pool goes on (``WorkerDeathPolicy/retry(_:)`` runs those tasks again instead).
/// - A task's error, or a result that cannot be encoded, fails that task alone.
/// - An initializer that throws fails the pool's creation once, with its error; no respawn loop.
/// - Workers ignore SIGINT and SIGHUP, and die with the pool's process (they are daemon children
///   with `PR_SET_PDEATHSIG`), so nothing is left behind, even when this process is killed.
///
/// Workers are started with the fork server by default, and fed over a socket each, with chunks
/// of tasks sized from their measured cost (about a millisecond each, smaller at the end).
public final class ProcessPool: Sendable {
    let driver: PoolDriver
    /// Runs the handles' `onDone` callbacks, off the driver's thread.
    let callbacks = PoolCallbacks()
    let state = Mutex<(closed: Bool, nextJob: UInt32)>((false, 1))
    /// The number of worker processes.
    public let workerCount: Int

    /// Starts a pool and waits until its workers are ready (their initializer has run).
    ///
    /// - Parameters:
    ///   - workers: How many worker processes; ``cpuCount()`` by default.
    ///   - configuration: How workers are started; by default ``ChildProcessConfiguration/default``
    ///     with the fork server as its start method.
    ///   - initializer: A task each worker runs once before its first task (Python's `initializer`).
    ///   - recycling: When to replace a worker with a fresh process (Python's `maxtasksperchild`).
    ///   - onWorkerDeath: What happens to the tasks of a worker that dies.
    ///   - taskTimeout: How long one task may run; past it, its worker is killed, the task fails
    ///     with ``MultiprocessingError/Code/timedOut`` and the worker is replaced. Tasks are then
    ///     sent one at a time.
    /// - Throws: ``PoolTaskError`` (``MultiprocessingError/Code/childStartFailed``) when the
    ///   initializer throws (its error is ``PoolTaskError/remoteError``) or a worker dies
    ///   before it is ready; ``MultiprocessingError`` when no worker can be started or an argument is wrong.
    public init(workers: Int = cpuCount(), configuration: ChildProcessConfiguration? = nil, initializer: (any ProcessTask)? = nil,
                recycling: Recycling = .never, onWorkerDeath: WorkerDeathPolicy = .fail, taskTimeout: Duration? = nil) throws {
        guard workers >= 1 else { throw MultiprocessingError.misuse("A ProcessPool needs at least one worker; \(workers) were asked for.") }
        if let after = recycling.afterTasks, after < 1 { throw MultiprocessingError.misuse("Recycling after \(after) tasks: the count must be at least 1.") }
        if case .retry(let times) = onWorkerDeath, times < 0 { throw MultiprocessingError.misuse("onWorkerDeath: .retry(\(times)): the count must not be negative.") }
        if let taskTimeout, taskTimeout <= .zero { throw MultiprocessingError.misuse("A task timeout must be positive; \(taskTimeout) was given.") }
        let configuration = configuration ?? {
            var value = ChildProcessConfiguration.default
            value.startMethod = .forkServer
            return value
        }()
        if configuration.startMethod == .fork {
            // The pool runs a thread of its own, so a fork would be refused anyway; say why here.
            throw MultiprocessingError(.unsupported, "A ProcessPool cannot start workers with .fork: it runs a driver thread, and a fork of a multi-threaded process can hang. Use .forkServer (the default) or .spawn.")
        }
        workerCount = workers
        driver = try PoolDriver(settings: .init(workers: workers, configuration: configuration, initializer: initializer, recycling: recycling,
                                                onWorkerDeath: onWorkerDeath, taskTimeout: taskTimeout, name: "ProcessPool"))
        try driver.start()
        driver.firstReady.wait()
        if let error = driver.startError.withLock({ $0 }) {
            driver.send(.terminate)
            driver.stopped.wait()
            throw error
        }
    }

    /// The process ids of the workers alive now (Python's `[p.pid for p in pool._pool]`).
    public var workerPIDs: [Int32] { driver.pids.withLock { $0 } }

    /// What the blocking readers' spins of this pool have seen (``PoolSpin``; tests, not API).
    package var _callerSpinStatistics: PoolSpinStatistics { driver.callerSpin.withLock { $0.statistics } }

    /// Starts the blocking readers' spin policy afresh: the next allowed wait spins (tests).
    package func _resetCallerSpin() { driver.callerSpin.withLock { $0 = PoolSpin(PoolSpin.caller) } }

    /// Makes the blocking readers spin even where the worker last ran on their CPU (tests: the
    /// spin-then-sleep path, whatever the scheduler does).
    package func _callerSpinIgnoresPlacement(_ on: Bool) { driver.callerSpinIgnoresPlacement.store(on, ordering: .relaxed) }

    /// The process ids of the successors started for workers that are to be recycled, waiting
    /// (ready, or getting ready) for their workers to retire.
    internal var sparePIDs: [Int32] { driver.sparePIDs.withLock { $0 } }

    deinit {
        if !driver.stopped.isDone { driver.send(.terminate) }
    }

    // MARK: jobs

    // The maps are `@inlinable` for one line, as MPIPool's are: the copy of the caller's sequence
    // into an array, which then runs specialized in the caller's module. Unspecialized (in
    // `PoolInputs.encode`, where the types are generic), copying a `Range<Int>` went element by
    // element through the generic iterator: about half the caller's CPU in a chunk-size-1 map.

    private func newJobID() throws -> UInt32 {
        try state.withLock { state in
            guard !state.closed else { throw MultiprocessingError(.closed, "This ProcessPool is closed (or terminated): it takes no new work.") }
            defer { state.nextJob &+= 1; if state.nextJob == 0 { state.nextJob = 1 } }
            return state.nextJob
        }
    }

    private static func functionBody<F: PoolFunction>(_ function: F) throws -> [UInt8] {
        guard let name = _mangledTypeName(F.self) else {
            throw MultiprocessingError(.childStartFailed, "The pool function type \(F.self) has no runtime name a worker could look up.")
        }
        do {
            return PoolWire.namedBody(name, try WireEncoder().encode(function))
        } catch {
            throw MultiprocessingError(.coding, "Could not encode the pool function \(String(reflecting: F.self)): \(error). (A function holding a lock, queue or connection cannot be sent with each map: pass those to the workers' initializer.)")
        }
    }

    private func mapJob<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking, failFast: Bool = false)
        throws -> (PoolJob, PoolMapSink<F.Output>, PoolFailFastSink<F.Output>?) {
        if case .fixed(let size) = chunking, size < 1 { throw MultiprocessingError.misuse("A fixed chunk size must be at least 1; \(size) was given.") }
        let body = try Self.functionBody(function)
        var encoded = PoolInputs.State()
        try PoolInputs.encode(inputs, into: &encoded)
        encoded.complete = true
        let count = encoded.count
        let stored = PoolInputs(stride: PoolValues.isRaw(F.Input.self) ? MemoryLayout<F.Input>.stride : nil, state: encoded)
        let sink = PoolMapSink<F.Output>(count: count)
        let fast = failFast ? PoolFailFastSink(sink) : nil
        let job = PoolJob(id: try newJobID(), functionBody: body, taskBody: nil, inputs: stored, chunking: chunking, sink: fast ?? sink)
        // Unowned, not weak: a weak reference gives the job a side table, and every retain and
        // release of it (several per chunk in the driver) then takes the runtime's slow path (a
        // tenth of a chunk-size-1 map's CPU). The driver calls this only from the sink, holding the
        // job; and the job holds the sink, so a strong capture would be a cycle.
        fast?.onFailure = { [unowned job, driver] in driver.send(.cancel(job)) }
        if count > 0 && !driver.trySendDirectly(job) { driver.send(.job(job)) }
        return (job, sink, fast)
    }

    /// After a map's wait: the first failure (the rest of the map is cancelled), or every output.
    private func mapOutputs<Output>(_ job: PoolJob, _ sink: PoolMapSink<Output>, _ fast: PoolFailFastSink<Output>?) throws -> [Output] {
        if let failure = fast?.failure {
            cancel(job)
            throw failure
        }
        return try sink.outputs()
    }

    /// Runs `function` on every input, in the worker processes, and returns the results in order
    /// (Python's `pool.map`).
    ///
    /// The inputs are encoded here first, so an input that cannot be encoded fails the call
    /// before any task runs.
    /// - Parameters:
    ///   - function: The function, a value sent once to each worker.
    ///   - inputs: The inputs; read at once (use ``mapUnordered(_:over:window:chunking:)`` for a
    ///     lazy or endless sequence).
    ///   - chunking: How tasks are grouped into chunks; ``Chunking/adaptive`` by default.
    /// - Returns: One output per input, in the inputs' order.
    /// - Throws: The ``PoolTaskError`` of the first task that fails, as soon as it fails, naming its
    ///   index: the rest of the map is then cancelled (`mapResults(_:over:chunking:)` gives each
    ///   result instead); `CancellationError` when the calling task is cancelled (no more of its
    ///   tasks start, and a worker still running one a second later is killed and replaced), or on
    ///   SIGINT (the pool is terminated, and every worker reaped, first); ``MultiprocessingError``
    ///   for bad arguments.
    @inlinable
    public func map<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) async throws -> [F.Output] {
        try await _mapAsync(function, Array(inputs), chunking)
    }

    @usableFromInline
    func _mapAsync<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking) async throws -> [F.Output] {
        let (job, sink, fast) = try mapJob(function, inputs, chunking, failFast: true)
        try await wait(job, fast?.completion ?? sink.completion)
        return try mapOutputs(job, sink, fast)
    }

    /// The blocking twin of `map(_:over:chunking:)`.
    @available(*, noasync, message: "Use the async map from async code.")
    @inlinable
    public func map<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) throws -> [F.Output] {
        try _mapBlocking(function, Array(inputs), chunking)
    }

    @usableFromInline
    func _mapBlocking<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking) throws -> [F.Output] {
        let (job, sink, fast) = try mapJob(function, inputs, chunking, failFast: true)
        let completion = fast?.completion ?? sink.completion
        try interruptTarget.during({ completion.isDone }) { completion.wait() }
        return try mapOutputs(job, sink, fast)
    }

    /// Like `map(_:over:chunking:)`, but returns every task's result, failed or not.
    @inlinable
    public func mapResults<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) async throws -> [Result<F.Output, PoolTaskError>] {
        try await _mapResultsAsync(function, Array(inputs), chunking)
    }

    @usableFromInline
    func _mapResultsAsync<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking) async throws -> [Result<F.Output, PoolTaskError>] {
        let (job, sink, _) = try mapJob(function, inputs, chunking)
        try await wait(job, sink.completion)
        return sink.results()
    }

    /// The blocking twin of `mapResults(_:over:chunking:)`.
    @available(*, noasync, message: "Use the async mapResults from async code.")
    @inlinable
    public func mapResults<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) throws -> [Result<F.Output, PoolTaskError>] {
        try _mapResultsBlocking(function, Array(inputs), chunking)
    }

    @usableFromInline
    func _mapResultsBlocking<F: PoolFunction>(_ function: F, _ inputs: [F.Input], _ chunking: Chunking) throws -> [Result<F.Output, PoolTaskError>] {
        let (_, sink, _) = try mapJob(function, inputs, chunking)
        let completion = sink.completion
        try interruptTarget.during({ completion.isDone }) { completion.wait() }
        return sink.results()
    }

    private func wait(_ job: PoolJob, _ completion: PoolCompletion) async throws {
        if try await interruptTarget.during({ completion.isDone }, { await completion.wait() }) { return }
        driver.send(.cancel(job))
        throw CancellationError()
    }

    /// Results as tasks complete, over a lazy (even endless) input (Python's `imap_unordered`).
    ///
    /// At most `window` tasks are read from `inputs` ahead of the results the caller has taken,
    /// so memory stays bounded however long the input is.
    /// - Parameters:
    ///   - function: The function, a value sent once to each worker.
    ///   - inputs: The inputs, read as the window allows, in the iterating task.
    ///   - window: How many tasks may be read and not yet taken; 64 by default.
    ///   - chunking: How tasks are grouped into chunks.
    /// - Returns: An `AsyncSequence` of `(index, result)` pairs; iterate it once.
    public func mapUnordered<F: PoolFunction, S: Sequence<F.Input>>(_ function: F, over inputs: S, window: Int = 64, chunking: Chunking = .adaptive) throws -> PoolUnorderedResults<F, S> {
        guard window >= 1 else { throw MultiprocessingError.misuse("The window of mapUnordered must be at least 1; \(window) was given.") }
        if case .fixed(let size) = chunking, size < 1 { throw MultiprocessingError.misuse("A fixed chunk size must be at least 1; \(size) was given.") }
        let body = try Self.functionBody(function)
        let stream = PoolStream<F.Output>()
        let sink = PoolMapSink<F.Output>(count: 0, stream: stream)
        let inputsStore = PoolInputs(stride: PoolValues.isRaw(F.Input.self) ? MemoryLayout<F.Input>.stride : nil, state: .init())
        let job = PoolJob(id: try newJobID(), functionBody: body, taskBody: nil, inputs: inputsStore, chunking: chunking, sink: sink,
                          window: PoolWindow(size: window))
        driver.send(.job(job))
        return PoolUnorderedResults(pool: self, job: job, stream: stream, inputs: inputs, window: window)
    }

    /// Sends one ``ProcessTask`` to a worker (Python's `apply_async` and `executor.submit`).
    /// - Parameter task: The task; encoded here, so bad arguments fail here.
    /// - Returns: A handle to its result.
    /// - Throws: ``MultiprocessingError/Code/coding`` when the task cannot be encoded;
    ///   ``MultiprocessingError/Code/closed`` after ``close()``.
    public func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<T.Output> where T.Output: Decodable {
        try submit(task, decode: { bytes in try WireDecoder().decode(T.Output.self, from: bytes) })
    }

    /// Sends one ``ProcessTask`` that returns nothing to a worker.
    public func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<Void> where T.Output == Void {
        try submit(task, decode: { _ in () })
    }

    private func submit<T: ProcessTask, Output>(_ task: T, decode: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Output) throws -> PoolTaskHandle<Output> {
        guard let name = _mangledTypeName(T.self) else {
            throw MultiprocessingError(.childStartFailed, "The task type \(T.self) has no runtime name a worker could look up.")
        }
        let bytes: [UInt8]
        do {
            bytes = try WireEncoder().encode(task)
        } catch {
            throw MultiprocessingError(.coding, "Could not encode the task \(String(reflecting: T.self)) for the pool: \(error)")
        }
        let sink = PoolTaskSink<Output>(decode: decode, callbacks: callbacks)
        let job = PoolJob(id: try newJobID(), functionBody: nil, taskBody: PoolWire.namedBody(name, bytes), inputs: nil, chunking: .fixed(1), sink: sink)
        // One task: sent from here when the driver sleeps, one wake-up fewer on its way.
        if !driver.trySendDirectly(job) { driver.send(.job(job)) }
        return PoolTaskHandle(sink: sink, cancel: { [weak self] in self?.cancel(job) },
                              settle: { [driver] blocking in driver.settleDirect(job, reading: blocking) }, interruptTarget: interruptTarget)
    }

    func cancel(_ job: PoolJob) { driver.send(.cancel(job)) }

    // MARK: lifecycle

    /// Takes no more work; what was submitted still runs (Python's `close`).
    public func close() {
        let first = state.withLock { state in
            defer { state.closed = true }
            return !state.closed
        }
        if first { driver.send(.close) }
    }

    /// Waits until the work submitted has run and every worker has exited; call ``close()`` first
    /// (Python's `join`).
    /// - Throws: ``MultiprocessingError/Code/misuse`` when the pool was not closed or terminated.
    @available(*, noasync, message: "Use the async join from async code.")
    public func join() throws {
        guard state.withLock({ $0.closed }) else { throw MultiprocessingError.misuse("join() before close(): call close() (or terminate()) first, as in Python.") }
        let stopped = driver.stopped
        try interruptTarget.during({ stopped.isDone }) { stopped.wait() }
        callbacks.drain()
    }

    /// Waits, without blocking a thread, until the work has run and every worker has exited.
    public func join() async throws {
        guard state.withLock({ $0.closed }) else { throw MultiprocessingError.misuse("join() before close(): call close() (or terminate()) first, as in Python.") }
        let stopped = driver.stopped
        if try await interruptTarget.during({ stopped.isDone }, { await stopped.wait() }) {
            await callbacks.drain()
            if !Task.isCancelled { return }
        }
        throw CancellationError()
    }

    /// Stops at once: tasks not finished fail with ``MultiprocessingError/Code/cancelled``, workers
    /// get SIGTERM, then SIGKILL a second later, and are reaped (Python's `terminate`). Returns
    /// when every worker is gone.
    public func terminate() {
        state.withLock { $0.closed = true }
        driver.send(.terminate)
        driver.stopped.wait()
    }

    /// Runs `body` with a new pool, then closes and joins it; when `body` throws (or the task is
    /// cancelled), terminates it instead. Either way every worker is gone when this returns.
    /// - Parameters: As ``init(workers:configuration:initializer:recycling:onWorkerDeath:taskTimeout:)``.
    public static func with<R>(workers: Int = cpuCount(), configuration: ChildProcessConfiguration? = nil, initializer: (any ProcessTask)? = nil,
                               recycling: Recycling = .never, onWorkerDeath: WorkerDeathPolicy = .fail, taskTimeout: Duration? = nil,
                               _ body: (ProcessPool) async throws -> R) async throws -> R {
        let pool = try ProcessPool(workers: workers, configuration: configuration, initializer: initializer, recycling: recycling,
                                   onWorkerDeath: onWorkerDeath, taskTimeout: taskTimeout)
        return try await pool.scoped(body)
    }
}

/// A task submitted to a ``ProcessPool`` or a ``ThreadPool``: Python's `AsyncResult` and `Future`.
public final class PoolTaskHandle<Output: Sendable>: Sendable {
    private let sink: PoolTaskSink<Output>
    private let cancelAction: @Sendable () -> Void
    /// For a task sent straight to a worker: `true` reads its answer on this thread (a blocking
    /// wait), `false` hands it to the pool's driver (any other wait). Nil for a thread pool.
    private let settle: (@Sendable (Bool) -> Void)?
    /// The process pool a SIGINT stops while this handle's result is awaited (none for a thread pool).
    private let interruptTarget: PoolInterruptTarget?
    /// For an external pool (MPIPool): called first by ``value`` and ``get()``, so that the waiting
    /// thread can drive the pool's progress itself for a while (`true` from `get()`).
    private let drive: (@Sendable (Bool) -> Void)?

    init(sink: PoolTaskSink<Output>, cancel: @escaping @Sendable () -> Void, settle: (@Sendable (Bool) -> Void)? = nil,
         interruptTarget: PoolInterruptTarget? = nil, drive: (@Sendable (Bool) -> Void)? = nil) {
        self.sink = sink
        self.cancelAction = cancel
        self.settle = settle
        self.interruptTarget = interruptTarget
        self.drive = drive
    }

    /// Whether the task has finished (or failed, or was cancelled).
    public var isDone: Bool {
        settle?(false)
        return sink.completion.isDone
    }

    /// Waits for the result.
    /// - Throws: The task's ``PoolTaskError``; `CancellationError` when the waiting task is
    ///   cancelled (the pool task is then cancelled too), or on SIGINT (a process pool is then
    ///   terminated, and every worker reaped, first).
    public var value: Output {
        get async throws {
            drive?(false)
            settle?(false)
            let completion = sink.completion
            let finished = if let interruptTarget {
                try await interruptTarget.during({ completion.isDone }, { await completion.wait() })
            } else {
                await completion.wait()
            }
            if finished == false {
                cancel()
                throw CancellationError()
            }
            return try result.get()
        }
    }

    /// The blocking twin of ``value``.
    @available(*, noasync, message: "Use value from async code.")
    public func get() throws -> Output {
        drive?(true)
        let completion = sink.completion
        if let interruptTarget {
            try interruptTarget.during({ completion.isDone }) { [settle] in
                settle?(true)
                completion.wait()
            }
        } else {
            settle?(true)
            completion.wait()
        }
        return try result.get()
    }

    private var result: Result<Output, PoolTaskError> {
        sink.result ?? .failure(PoolTaskError(code: .cancelled, message: "The task was cancelled."))
    }

    /// Cancels the task: if it has not started, it never runs; if it runs, its worker is killed a
    /// second later (and replaced). Its ``value`` then throws ``MultiprocessingError/Code/cancelled``.
    public func cancel() {
        cancelAction()
        sink.fail(start: 0, count: 1, error: PoolTaskError(code: .cancelled, message: "The task was cancelled.", indices: [0]))
    }

    /// Calls `callback` with the result when the task ends (at once, on this thread, if it has):
    /// Python's `add_done_callback` and `apply_async(callback=, error_callback=)`.
    ///
    /// Callbacks run on a thread of the pool's own, one at a time in the order their tasks ended,
    /// never on the thread that delivers results; so a callback may call `get()` or `value` of
    /// any handle, `submit`, `close`, `join` or `terminate` of the pool, or block. One that runs
    /// longer than 100 ms hands the callbacks after it to another thread. `join()` returns once
    /// every callback has run (but a callback's own, when it calls `join()`).
    public func onDone(_ callback: @escaping @Sendable (Result<Output, PoolTaskError>) -> Void) {
        settle?(false)
        let now = sink.onDone.withLock { callbacks -> Bool in
            if sink.completion.isDone { return true }
            callbacks.append(callback)
            return false
        }
        if now { callback(result) }
    }
}

/// The results of ``ProcessPool/mapUnordered(_:over:window:chunking:)``: `(index, result)` pairs as tasks complete.
public struct PoolUnorderedResults<F: PoolFunction, S: Sequence<F.Input>>: AsyncSequence {
    public typealias Element = (index: Int, result: Result<F.Output, PoolTaskError>)
    fileprivate let pool: ProcessPool
    fileprivate let job: PoolJob
    fileprivate let stream: PoolStream<F.Output>
    fileprivate let inputs: S
    fileprivate let window: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(results: self, source: inputs.makeIterator())
    }

    /// Cancels the job when the iterator goes away, so that a loop left early (`break`) leaves no
    /// endless job behind for `close()` and `join()` to wait for.
    fileprivate final class EndOfIteration: Sendable {
        let pool: ProcessPool
        let job: PoolJob
        init(pool: ProcessPool, job: PoolJob) {
            self.pool = pool
            self.job = job
        }
        deinit { pool.cancel(job) }
    }

    /// Reads inputs as the window allows and returns results as they arrive.
    public struct Iterator: AsyncIteratorProtocol {
        fileprivate let results: PoolUnorderedResults
        fileprivate var source: S.Iterator
        fileprivate var read = 0
        fileprivate var taken = 0
        fileprivate var exhausted = false
        fileprivate let end: EndOfIteration

        fileprivate init(results: PoolUnorderedResults, source: S.Iterator) {
            self.results = results
            self.source = source
            self.end = EndOfIteration(pool: results.pool, job: results.job)
        }

        public mutating func next() async throws -> Element? {
            // Top the window up: read inputs and hand them to the pool in one append.
            if !exhausted && read - taken < results.window {
                var batch: [F.Input] = []
                while read + batch.count - taken < results.window, let value = source.next() { batch.append(value) }
                if read + batch.count - taken < results.window { exhausted = true }
                if !batch.isEmpty || exhausted {
                    let first = read
                    guard let store = results.job.inputs else { return nil }
                    try store.state.withLock { state in
                        try PoolInputs.encode(batch, firstIndex: first, into: &state)
                        if exhausted { state.complete = true }
                    }
                    read += batch.count
                    results.pool.poke()
                }
            }
            if taken == read && exhausted { return nil }
            while true {
                if let item = results.stream.take() {
                    taken += 1
                    results.job.window?.consumed.store(taken, ordering: .releasing)
                    if taken % Swift.max(1, results.window / 4) == 0 { results.pool.poke() }
                    return (item.0, item.1)
                }
                if Task.isCancelled {
                    results.pool.cancel(results.job)
                    throw CancellationError()
                }
                let stream = results.stream
                try await results.pool.interruptTarget.during({ false }, { await stream.waitForItem() })
            }
        }
    }
}

extension ProcessPool {
    /// Wakes the driver: new inputs of a mapUnordered, or room in its window.
    fileprivate func poke() { driver.poke() }
}

extension PoolDriver {
    func poke() { signalWake() }
}
