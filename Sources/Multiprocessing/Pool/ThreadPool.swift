import Synchronization

/// What a process pool and a thread pool (and, later, an MPI pool) have in common, so that code
/// can take either: `func render(on pool: some WorkerPool)`.
public protocol WorkerPool: AnyObject, Sendable {
    /// How many workers (processes or threads) the pool runs.
    var workerCount: Int { get }
    /// Runs `function` on every input; the results in order. See `ProcessPool/map(_:over:chunking:)`.
    func map<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking) async throws -> [F.Output]
    /// Every task's result, failed or not, in order.
    func mapResults<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking) async throws -> [Result<F.Output, PoolTaskError>]
    /// Runs one task; a handle to its result.
    func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<T.Output> where T.Output: Decodable
    /// Runs one task that returns nothing.
    func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<Void> where T.Output == Void
    /// Takes no more work.
    func close()
    /// Waits until the work has run and the workers have ended; call ``close()`` first.
    func join() async throws
    /// Stops: work not started fails with ``MultiprocessingError/Code/cancelled``.
    func terminate()
}

extension ProcessPool: WorkerPool {}

extension WorkerPool {
    /// Runs `body` with this pool, then closes and joins it; terminates it when `body` throws (the
    /// scoped `with` of both pools).
    internal func scoped<R>(_ body: (Self) async throws -> R) async throws -> R {
        do {
            let result = try await body(self)
            close()
            try await join()
            return result
        } catch {
            terminate()
            throw error
        }
    }
}

/// Python's `multiprocessing.pool.ThreadPool` and `ThreadPoolExecutor`: the same API as
/// ``ProcessPool``, with threads of this process as workers.
///
/// Nothing is encoded: functions, inputs and results stay in memory. A thread cannot be killed, so
/// ``terminate()`` fails the work not yet started and waits for the tasks that run; a task that
/// crashes crashes the process, as any thread's crash does. Use it for work that waits (I/O) or
/// that must share memory; use ``ProcessPool`` for isolation.
public final class ThreadPool: WorkerPool {
    private struct Item: Sendable {
        var run: @Sendable () -> Void
        var cancel: @Sendable () -> Void
    }
    private struct State {
        var items: [Item] = []
        var head = 0
        var closed = false
        var terminated = false
    }
    /// The work not yet taken, and a count of it that the threads wait on.
    private final class WorkQueue: Sendable {
        let state = Mutex(State())
        let available: Semaphore
        init() throws { available = try Semaphore(0) }
    }
    private let queue: WorkQueue
    private var available: Semaphore { queue.available }
    private let threads: [OSThread]
    /// Runs the handles' `onDone` callbacks, off the worker threads.
    private let callbacks = PoolCallbacks()
    public let workerCount: Int

    /// Starts `workers` threads.
    /// - Parameters:
    ///   - workers: How many threads; ``cpuCount()`` by default.
    ///   - initializer: A task each thread runs first (Python's `initializer`); one that throws
    ///     fails the creation with its error.
    /// - Throws: ``MultiprocessingError/Code/misuse`` for fewer than one worker; the
    ///   initializer's error as a ``PoolTaskError``.
    public init(workers: Int = cpuCount(), initializer: (any ProcessTask)? = nil) throws {
        guard workers >= 1 else { throw MultiprocessingError.misuse("A ThreadPool needs at least one worker; \(workers) were asked for.") }
        workerCount = workers
        let queue = try WorkQueue()
        self.queue = queue
        let failures = Mutex<[PoolTaskError]>([])
        let started = try Semaphore(0)
        var threads: [OSThread] = []
        for number in 0..<workers {
            let thread = OSThread(name: "ThreadPool-worker-\(number + 1)", daemon: true) {
                if let initializer {
                    let outcome = CallerThreadExecutor.runBlocking { () async -> PoolTaskError? in
                        do {
                            _ = try await initializer.run()
                            return nil
                        } catch {
                            return PoolTaskError(code: .childStartFailed, message: "The pool's initializer threw: \(error)",
                                                 remoteTypeName: String(reflecting: type(of: error)), remoteError: error)
                        }
                    }
                    if let outcome { failures.withLock { $0.append(outcome) } }
                }
                try? started.release()
                ThreadPool.serve(queue)
            }
            threads.append(thread)
        }
        self.threads = threads
        for thread in threads { try thread.start() }
        for _ in 0..<workers { try started.acquire() }
        if let failure = failures.withLock({ $0.first }) {
            terminate()
            throw failure
        }
    }

    private static func serve(_ queue: WorkQueue) {
        while true {
            try? queue.available.acquire()
            let item = queue.state.withLock { state -> Item?? in
                if state.head < state.items.count {
                    let item = state.items[state.head]
                    state.head += 1
                    if state.head > 1024 && state.head * 2 > state.items.count {
                        state.items.removeFirst(state.head)
                        state.head = 0
                    }
                    return .some(item)
                }
                return state.closed || state.terminated ? .some(nil) : nil
            }
            switch item {
            case .some(.some(let item)): item.run()
            case .some(.none): return
            case .none: continue
            }
        }
    }

    private func enqueue(_ items: [Item]) throws {
        try queue.state.withLock { state in
            guard !state.closed && !state.terminated else {
                throw MultiprocessingError(.closed, "This ThreadPool is closed (or terminated): it takes no new work.")
            }
            state.items.append(contentsOf: items)
        }
        try? available.release(items.count)
    }

    // MARK: map

    private final class MapState<Output: Sendable>: Sendable {
        let completion = PoolCompletion()
        let cancelled = Atomic<Bool>(false)
        let results: Mutex<(chunks: [(start: Int, outcome: _PoolChunkOutcome<Output>)], left: Int, cancelled: [Int], failed: Bool)>
        init(chunks: Int) { results = Mutex(([], chunks, [], false)) }
    }

    /// Runs the chunks; with `failFast`, the first chunk with a failure ends the wait and the chunks
    /// not started are skipped.
    private func run<F: PoolFunction>(_ function: F, _ inputs: some Sequence<F.Input>, _ chunking: Chunking, failFast: Bool = false) async throws -> (Int, [(start: Int, outcome: _PoolChunkOutcome<F.Output>)]) {
        let values = Array(inputs)
        let size: Int
        switch chunking {
        case .fixed(let n):
            guard n >= 1 else { throw MultiprocessingError.misuse("A fixed chunk size must be at least 1; \(n) was given.") }
            size = n
        case .adaptive:
            size = max(1, values.count / (workerCount * 8))
        }
        let starts = Array(stride(from: 0, to: values.count, by: size))
        let job = MapState<F.Output>(chunks: starts.count)
        if starts.isEmpty { return (0, []) }
        let items = starts.map { start -> Item in
            let slice = Array(values[start..<min(values.count, start + size)])
            let finish: @Sendable (_PoolChunkOutcome<F.Output>?) -> Void = { outcome in
                let done = job.results.withLock { results -> Bool in
                    if let outcome { results.chunks.append((start, outcome)) } else { results.cancelled.append(start) }
                    results.left -= 1
                    if failFast, let outcome, !outcome.failures.isEmpty, !results.failed {
                        results.failed = true
                        job.cancelled.store(true, ordering: .relaxed)
                        return true
                    }
                    return results.left == 0
                }
                if done { job.completion.complete() }
            }
            return Item(run: {
                if job.cancelled.load(ordering: .relaxed) { finish(nil); return }
                finish(CallerThreadExecutor.runBlocking { await function._runChunk(slice) })
            }, cancel: { finish(nil) })
        }
        try enqueue(items)
        if await job.completion.wait() == false {
            job.cancelled.store(true, ordering: .relaxed)
            throw CancellationError()
        }
        let (chunks, cancelled, failed) = job.results.withLock { ($0.chunks, $0.cancelled, $0.failed) }
        if !failed, let start = cancelled.min() {
            throw PoolTaskError(code: .cancelled, message: "The pool was terminated before task \(start) ran.", indices: [start])
        }
        return (values.count, chunks.sorted { $0.start < $1.start })
    }

    public func map<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) async throws -> [F.Output] {
        let (count, chunks) = try await run(function, inputs, chunking, failFast: true)
        var all: [F.Output] = []
        all.reserveCapacity(count)
        for chunk in chunks {
            if let failure = chunk.outcome.failures.first {
                let index = chunk.start + failure.index
                throw PoolTaskError(code: .childFailed, message: "Task \(index) threw: \(failure.error)", indices: [index],
                                    remoteTypeName: String(reflecting: type(of: failure.error)), remoteError: failure.error)
            }
            all.append(contentsOf: chunk.outcome.outputs)
        }
        return all
    }

    public func mapResults<F: PoolFunction>(_ function: F, over inputs: some Sequence<F.Input>, chunking: Chunking = .adaptive) async throws -> [Result<F.Output, PoolTaskError>] {
        let (count, chunks) = try await run(function, inputs, chunking)
        var all: [Result<F.Output, PoolTaskError>] = []
        all.reserveCapacity(count)
        for chunk in chunks {
            var next = 0
            var failureAt = 0
            let total = chunk.outcome.outputs.count + chunk.outcome.failures.count
            for offset in 0..<total {
                if failureAt < chunk.outcome.failures.count, chunk.outcome.failures[failureAt].index == offset {
                    let error = chunk.outcome.failures[failureAt].error
                    let index = chunk.start + offset
                    all.append(.failure(PoolTaskError(code: .childFailed, message: "Task \(index) threw: \(error)", indices: [index],
                                                      remoteTypeName: String(reflecting: type(of: error)), remoteError: error)))
                    failureAt += 1
                } else {
                    all.append(.success(chunk.outcome.outputs[next]))
                    next += 1
                }
            }
        }
        return all
    }

    // MARK: submit

    public func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<T.Output> where T.Output: Decodable {
        try submitTask(task)
    }

    public func submit<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<Void> where T.Output == Void {
        try submitTask(task)
    }

    private func submitTask<T: ProcessTask>(_ task: T) throws -> PoolTaskHandle<T.Output> {
        let sink = PoolTaskSink<T.Output>(decode: { _ in throw MultiprocessingError(.unsupported, "A thread pool's result is never decoded.") },
                                          callbacks: callbacks)
        let cancelled = Atomic<Bool>(false)
        let item = Item(run: {
            if cancelled.load(ordering: .relaxed) { return }
            let result = CallerThreadExecutor.runBlocking { () async -> Result<T.Output, PoolTaskError> in
                do {
                    return .success(try await task.run())
                } catch {
                    return .failure(PoolTaskError(code: .childFailed, message: "The task threw: \(error)", indices: [0],
                                                  remoteTypeName: String(reflecting: type(of: error)), remoteError: error))
                }
            }
            sink.resolve(result)
        }, cancel: {
            sink.resolve(.failure(PoolTaskError(code: .cancelled, message: "The pool was terminated before the task ran.", indices: [0])))
        })
        try enqueue([item])
        return PoolTaskHandle(sink: sink, cancel: { cancelled.store(true, ordering: .relaxed) })
    }

    // MARK: lifecycle

    public func close() {
        let first = queue.state.withLock { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        // One wake-up per thread, so that each sees the end once the queue is empty.
        if first { try? available.release(workerCount) }
    }

    /// Waits until the work has run and every thread has ended; call ``close()`` first.
    public func join() async throws {
        guard queue.state.withLock({ $0.closed || $0.terminated }) else { throw MultiprocessingError.misuse("join() before close(): call close() (or terminate()) first, as in Python.") }
        for thread in threads { try await thread.join() }
        await callbacks.drain()
    }

    /// The blocking twin of `join()`.
    @available(*, noasync, message: "Use the async join from async code.")
    public func join() throws {
        guard queue.state.withLock({ $0.closed || $0.terminated }) else { throw MultiprocessingError.misuse("join() before close(): call close() (or terminate()) first, as in Python.") }
        for thread in threads { try thread.join() }
        callbacks.drain()
    }

    /// Fails the work not started (``MultiprocessingError/Code/cancelled``), then waits for the
    /// threads, which finish the tasks they run (a thread cannot be killed).
    public func terminate() {
        let dropped = queue.state.withLock { state -> [Item] in
            let first = !state.terminated
            state.terminated = true
            guard first else { return [] }
            let left = Array(state.items[state.head...])
            state.items = []
            state.head = 0
            return left
        }
        for item in dropped { item.cancel() }
        try? available.release(workerCount)
        for thread in threads where thread.isAlive { try? thread.join() }
    }

    /// Runs `body` with a new thread pool, then closes and joins it; terminates it when `body` throws.
    public static func with<R>(workers: Int = cpuCount(), initializer: (any ProcessTask)? = nil, _ body: (ThreadPool) async throws -> R) async throws -> R {
        let pool = try ThreadPool(workers: workers, initializer: initializer)
        return try await pool.scoped(body)
    }
}
