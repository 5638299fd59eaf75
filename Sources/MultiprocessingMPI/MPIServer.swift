#if MPI
import MultiprocessingSystem
import Multiprocessing
import Synchronization

/// A serving rank (1 ... N-1): receives functions and chunks from rank 0, runs each chunk on its
/// local ProcessPool, and sends the results back. Its MPI thread makes every MPI call. A chunk's
/// inputs stay bytes: they go to the local workers' rings as rank 0 encoded them
/// (`ProcessPool.mapEncoded`), and the workers' encoded outputs go back to rank 0 as they are,
/// so no value is decoded here; the local pool's driver thread puts each finished chunk's reply
/// in the outbox and wakes the MPI thread.
final class MPIServer: @unchecked Sendable {
    private let messenger: MPIMessenger
    private let localPool: ProcessPool
    private let host: String
    /// The maps' functions, by job id: type name, wire bytes, and whether this program knows the
    /// type (only the MPI thread touches it).
    private var functions: [UInt32: (name: String, bytes: [UInt8], known: Bool)] = [:]
    /// A local worker's time per task in each map's last chunk here, plus a little (the local
    /// pool's own estimate adds 50 ns), so that the local pool sizes the next chunk's pieces at
    /// once instead of probing from one task for every chunk.
    private let costs = Mutex<[UInt32: Double]>([:])

    private let outbox = Mutex<[[UInt8]]>([])
    private let wake: Semaphore
    /// Chunks running in the local pool.
    private let busy = Atomic<Int>(0)
    /// Submitted tasks running in this process (``runInline(_:chunk:)``), not in the local pool.
    private let inlineRunning = Atomic<Int>(0)
    private let inlineLoneTasks: Bool
    /// Touched only by the holder of ``role``.
    private var stopping = false
    /// Pool-function types by name (a `_typeByName` lookup is a demangling each time); touched
    /// only by the holder of ``role``.
    private var types: [String: (any PoolFunction.Type)?] = [:]

    // MARK: the MPI role (a lone task on the MPI thread)

    /// Whether a lone submitted task runs on the MPI thread itself (``MPIInlineExecutor``), with a
    /// standby thread that takes the MPI role over if it runs long: needs MPI_THREAD_SERIALIZED
    /// (any thread may call MPI, one at a time). Without it, the task runs on a detached Swift task.
    private let onMPIThread: Bool
    /// The right to make MPI calls and touch the loop's state, held by one thread at a time: the
    /// thread that initialized MPI, or the standby when it took over (``standBy()``).
    private let role = MPIRole()
    private let executor: MPIInlineExecutor
    /// When the job running inline (on the thread that gave the role up for it) started; 0: none.
    private let inlineSince = Atomic<UInt64>(0)
    /// When a job last ran inline: the standby polls while that is recent, and parks otherwise.
    private let lastInline = Atomic<UInt64>(0)
    /// Some thread runs the executor's jobs (at most one does at a time).
    private let jobsRunning = Atomic<Bool>(false)
    private let standbyWake: Semaphore
    private let standbyParked = Atomic<Bool>(false)
    /// The loop has ended (bye sent and its sends complete).
    private let finished = Atomic<Bool>(false)
    /// The thread that initialized MPI waits in ``standBy()``; it should be the one that
    /// finalizes, so a standby that ends the loop hands the end back to it.
    private let initThreadStandingBy = Atomic<Bool>(false)
    /// Which thread finalizes MPI and exits (the first to claim it).
    private let finalizerClaimed = Atomic<Bool>(false)
    private var standbyThread: OSThread?

    /// How long a job may run inline before the standby takes the MPI role over
    /// (`MULTIPROCESSING_MPI_INLINE_US`, for tests and measurements; 1 ms, the probe back-off's
    /// longest sleep, by default). The standby looks every that long, so the MPI role is without a
    /// holder for one to two of these at most.
    static let inlineBound: UInt64 = {
        if let text = system_getenv("MULTIPROCESSING_MPI_INLINE_US"), let micros = UInt64(text), micros > 0 { return micros * 1000 }
        return 1_000_000
    }()
    /// How long after the last inline job the standby keeps polling instead of parking.
    static let standbyRecent: UInt64 = 100_000_000

    init(messenger: MPIMessenger, localPool: ProcessPool, host: String, inlineLoneTasks: Bool, sharedCalls: Bool = false) throws {
        self.messenger = messenger
        self.inlineLoneTasks = inlineLoneTasks
        self.localPool = localPool
        self.host = host
        self.wake = try Semaphore(0)
        self.standbyWake = try Semaphore(0)
        self.executor = MPIInlineExecutor(wake: wake)
        self.onMPIThread = inlineLoneTasks && sharedCalls
    }

    /// Serves until rank 0 says stop; then stops the local pool and says bye. Called on the thread
    /// that initialized MPI; returns on it when that thread should finalize. (If the loop ends on
    /// the standby while this thread runs a long task, the standby finalizes and exits.)
    func serve() throws {
        role.take()
        var hello = ByteWriter()
        hello.u32(UInt32(localPool.workerCount))
        hello.string(host)
        try messenger.send(hello.bytes, to: 0, tag: MPITag.hello.rawValue)
        if onMPIThread {
            let thread = OSThread(name: "MPIPool-standby", daemon: true) { [self] in standbyMain() }
            try thread.start()
            standbyThread = thread
        }
        while true {
            if try loop() { return }
            // The standby took the role while a task ran here: this thread stands by now.
            initThreadStandingBy.store(true, ordering: .sequentiallyConsistent)
            let took = standBy()
            initThreadStandingBy.store(false, ordering: .sequentiallyConsistent)
            if !took {
                if finalizerClaimed.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged { return }
                parkForever()
            }
        }
    }

    /// The standby thread: waits, takes the MPI role when a job has run inline too long, serves,
    /// and stands by again when it gave the role up for a job of its own that ran long.
    private func standbyMain() -> Void {
        while standBy() {
            do {
                if try loop() {
                    // The loop ended here. The thread that initialized MPI finalizes if it stands by;
                    // if it is inside a task (a terminate while a long task ran), this one does.
                    try? standbyWake.release()
                    if !initThreadStandingBy.load(ordering: .sequentiallyConsistent),
                       finalizerClaimed.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged {
                        flushTrace()
                        _ = try? MPIEnvironment.finalize()
                        system_exit(0)
                    }
                    parkForever()
                }
            } catch {
                writeError("MPIPool: a serving rank's MPI loop failed: \(error)\n")
                MPIEnvironment.abort(code: 1)
            }
        }
        parkForever()
    }

    private func parkForever() -> Never {
        while true { system_sleep(nanoseconds: 1_000_000_000) }
    }

    /// Waits without the role. Returns true when this thread took the MPI role (a job has run
    /// inline for ``inlineBound``), false when the loop has ended.
    private func standBy() -> Bool {
        while true {
            if finished.load(ordering: .sequentiallyConsistent) { return false }
            let now = monotonicNanoseconds()
            let since = inlineSince.load(ordering: .sequentiallyConsistent)
            if since != 0, now &- since >= Self.inlineBound, role.tryTake() {
                if finished.load(ordering: .sequentiallyConsistent) { return false }
                if traceSteps { traceStep("8-standby-took", 0) }
                return true
            }
            if now &- lastInline.load(ordering: .relaxed) < Self.standbyRecent || since != 0 {
                _ = try? standbyWake.acquire(timeout: .nanoseconds(Int64(Self.inlineBound)))
            } else {
                // Park until a job runs inline again (its thread wakes this one, see runJobs).
                standbyParked.store(true, ordering: .sequentiallyConsistent)
                if inlineSince.load(ordering: .sequentiallyConsistent) == 0 && !finished.load(ordering: .sequentiallyConsistent) {
                    _ = try? standbyWake.acquire()
                }
                standbyParked.store(false, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// The MPI loop, on the role's holder. Returns true when it ended (stop: bye sent), false when
    /// this thread lost the role (the standby took it while a job ran here).
    private func loop() throws -> Bool {
        var backoff = Backoff()
        while true {
            var active = false
            // Jobs of a task that ran here and was resumed since (another thread enqueued them and
            // released `wake`). While another thread runs jobs (it gave the role up for a long
            // one), they wait for it.
            if executor.hasJobs, !jobsRunning.load(ordering: .relaxed) {
                guard runJobs() else { return false }
                active = true
            }
            try flushOutbox()
            if let message = try messenger.receive() {
                guard try handle(message) else { return false }
                active = true
            }
            if stopping { break }
            if active {
                backoff.reset()
            } else {
                // Idle, the next chunk may come any moment: eager. Running work: a chunk's time away.
                let idle = busy.load(ordering: .relaxed) == 0 && inlineRunning.load(ordering: .relaxed) == 0
                backoff.wait(wake, eager: idle)
            }
        }
        // Stop: stop the local pool (kills its workers, fails what it held), and say bye.
        localPool.terminate()
        try messenger.send([], to: 0, tag: MPITag.bye.rawValue)
        while messenger.pendingSends > 0 {
            try messenger.progress()
            backoff.wait(wake)
        }
        finished.store(true, ordering: .sequentiallyConsistent)
        try? standbyWake.release()
        return true
    }

    private func flushOutbox() throws {
        let results = outbox.withLock { items -> [[UInt8]] in
            if items.isEmpty { return [] }
            defer { items = [] }
            return items
        }
        for result in results {
            try messenger.send(result, to: 0, tag: MPITag.result.rawValue)
            if traceSteps, result.count >= 4 { traceStep("5-replied", result.prefix(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }) }
        }
    }

    /// Runs the executor's queued jobs here, with the MPI role given up meanwhile (the standby
    /// takes it if they run long). Returns whether this thread holds the role again after them.
    private func runJobs() -> Bool {
        let jobs = executor.take()
        if jobs.isEmpty { return true }
        jobsRunning.store(true, ordering: .relaxed)
        let now = monotonicNanoseconds()
        lastInline.store(now, ordering: .relaxed)
        inlineSince.store(now, ordering: .sequentiallyConsistent)
        if standbyParked.load(ordering: .sequentiallyConsistent) { try? standbyWake.release() }
        role.give()
        for job in jobs { executor.run(job) }
        inlineSince.store(0, ordering: .sequentiallyConsistent)
        jobsRunning.store(false, ordering: .relaxed)
        if role.tryTake() { return true }
        // The standby serves now; it sends what these jobs put in the outbox, and runs later jobs.
        try? wake.release()
        return false
    }

    /// Handles one message. Returns false when this thread lost the MPI role meanwhile (a task
    /// that ran inline here for longer than ``inlineBound``).
    private func handle(_ message: MPIMessage) throws -> Bool {
        var reader = ByteReader(message.bytes)
        switch MPITag(rawValue: message.tag) {
        case .function:
            let job = try reader.u32()
            let name = try reader.string()
            let body = Array(reader.rest())
            functions[job] = (name, body, isPoolFunction(name))
        case .chunk, .single:
            let job = try reader.u32()
            let chunk = try reader.u32()
            if traceSteps { traceStep("2-arrived", chunk) }
            let fixed = Int(try reader.u32())
            let chunking: Chunking = fixed > 0 ? .fixed(fixed) : .adaptive
            let function: (name: String, bytes: [UInt8], known: Bool)?
            if message.tag == MPITag.single.rawValue {
                let name = try reader.string()
                let body = try reader.blob()
                function = (name, body, isPoolFunction(name))
            } else {
                function = functions[job]
            }
            let inputs: PoolEncodedValues
            do { inputs = try PoolEncodedValues.readChunk(from: &reader) } catch {
                outbox.withLock { $0.append(Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .coding, message: "Could not read a chunk's inputs on the MPI rank: \(error)")], outputs: [])) }
                return true
            }
            guard let function, function.known else {
                outbox.withLock { $0.append(Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .childStartFailed,
                    message: "The pool function of this chunk is unknown to this program on the MPI rank (is every rank running the same binary?).")], outputs: [])) }
                return true
            }
            // Maps (of one input too) always run in the local pool; submitted tasks come as `task`.
            runInLocalPool(job: job, chunk: chunk, function: function, inputs: inputs, chunking: chunking, map: message.tag == MPITag.chunk.rawValue)
        case .task:
            let job = try reader.u32()
            let chunk = try reader.u32()
            if traceSteps { traceStep("2-arrived", chunk) }
            let runner = _MPITaskRunner(typeName: try reader.string(), taskBytes: Array(reader.rest()))
            // A submitted task that finds the rank idle runs here, in the rank's own process: the hop
            // to a local worker and back (two thread hand-offs and a process round trip) is most of
            // one task's latency. A task while other work runs goes to the local pool.
            if inlineLoneTasks, busy.load(ordering: .relaxed) == 0, inlineRunning.load(ordering: .relaxed) == 0 {
                if onMPIThread { return try runOnMPIThread(runner, chunk: chunk) }
                runInline(runner, chunk: chunk)
                return true
            }
            runTaskInLocalPool(job: job, chunk: chunk, runner: runner)
        case .forget:
            let job = try reader.u32()
            functions[job] = nil
            costs.withLock { _ = $0.removeValue(forKey: job) }
        case .stop:
            stopping = true
        default:
            throw MPIError(.protocolError, "A serving MPI rank got a message with tag \(message.tag) from rank \(message.source).")
        }
        return true
    }

    private func poolFunctionType(_ name: String) -> (any PoolFunction.Type)? {
        if let known = types[name] { return known }
        let type = _typeByName(name) as? any PoolFunction.Type
        types[name] = type
        return type
    }

    private func isPoolFunction(_ name: String) -> Bool { poolFunctionType(name) != nil }

    /// Runs one submitted task on a detached task of this process (MPI at FUNNELED: the MPI thread
    /// cannot hand its role over, so it does not run the task itself); its reply goes to the
    /// outbox like an executor's.
    private func runInline(_ runner: _MPITaskRunner, chunk: UInt32) {
        inlineRunning.add(1, ordering: .relaxed)
        Task.detached { [self] in
            let reply = await Self.runTask(runner, chunk: chunk)
            outbox.withLock { $0.append(reply) }
            inlineRunning.subtract(1, ordering: .relaxed)
            try? wake.release()
        }
    }

    /// Runs one submitted task here, on the thread that holds the MPI role, and sends its reply
    /// at once: no thread hand-off either way. The task is a Swift task whose executor is
    /// ``MPIInlineExecutor``: a synchronous one runs to its end inside this call; one that
    /// suspends goes on when it is resumed, on the role's holder's next turn. While it runs here
    /// the role is free, and the standby takes it after ``inlineBound`` (``runJobs()``).
    /// Returns whether this thread still holds the role.
    private func runOnMPIThread(_ runner: _MPITaskRunner, chunk: UInt32) throws -> Bool {
        inlineRunning.add(1, ordering: .relaxed)
        executor.makeTask { [self] in
            let reply = await Self.runTask(runner, chunk: chunk)
            outbox.withLock { $0.append(reply) }
            inlineRunning.subtract(1, ordering: .relaxed)
            // Run here, the reply goes out right after (``flushOutbox``); resumed on another
            // thread's turn, that turn sends it too.
        }
        guard !jobsRunning.load(ordering: .relaxed) else { return true }
        guard runJobs() else { return false }
        try flushOutbox()
        return true
    }

    /// A submitted task's reply message: its encoded output, or its error.
    private static func runTask(_ runner: _MPITaskRunner, chunk: UInt32) async -> [UInt8] {
        let start = monotonicNanoseconds()
        if traceSteps { traceStep("3-started", chunk, at: start) }
        let reply: [UInt8]
        do {
            let output = try await runner.run(0)
            // The output's wire bytes as `run` made them: a `task` reply (MPITag.task).
            reply = Self.reply(chunk: chunk, elapsed: monotonicNanoseconds() - start, count: 1, failures: [], outputs: output)
        } catch {
            let failure = PoolTaskError(code: .childFailed, message: String(describing: error), indices: [0],
                                        remoteTypeName: String(reflecting: type(of: error)), remoteError: error)
            reply = Self.reply(chunk: chunk, elapsed: monotonicNanoseconds() - start, count: 1, failures: [MPIWireFailure(index: 0, error: failure)], outputs: [])
        }
        if traceSteps { traceStep("4-done", chunk) }
        return reply
    }

    /// Hands a chunk to the local pool as bytes; its reply goes to the outbox from the pool's
    /// driver thread when the last task has answered.
    /// `map`: a chunk of a map (whose cost is kept for its next chunk until rank 0 says forget),
    /// not a job of one task.
    /// `unwrapTaskOutput`: a submitted task's (``runTaskInLocalPool(job:chunk:runner:)``).
    private func runInLocalPool(job: UInt32, chunk: UInt32, function: (name: String, bytes: [UInt8], known: Bool), inputs: PoolEncodedValues, chunking: Chunking, map: Bool,
                                unwrapTaskOutput: Bool = false) {
        busy.add(1, ordering: .relaxed)
        if traceSteps { traceStep("3-started", chunk) }
        let count = inputs.count
        let hint = map ? costs.withLock { $0[job] } : nil
        do {
            try localPool.mapEncoded(functionName: function.name, functionBytes: function.bytes, inputs: inputs, chunking: chunking, nanosecondsPerTask: hint) { [self] outcome in
                if traceSteps { traceStep("4-done", chunk) }
                if map, outcome.workerNanoseconds > 0 {
                    let perTask = Double(outcome.workerNanoseconds) / Double(max(1, count - outcome.failures.count)) + 50
                    costs.withLock { $0[job] = perTask }
                }
                var outputs = outcome.outputs
                var failures = outcome.failures.map { MPIWireFailure(index: $0.index, error: $0.error) }
                if unwrapTaskOutput, failures.isEmpty {
                    do { outputs = try outputs.withUnsafeBytes { try PoolEncodedValues.decode([UInt8].self, count: 1, from: $0) }.first ?? [] } catch {
                        failures = [MPIWireFailure(index: 0, code: .coding, message: "Could not read a task's output from the MPI rank's local pool: \(error)")]
                        outputs = []
                    }
                }
                let reply = Self.reply(chunk: chunk, elapsed: UInt64(outcome.workerNanoseconds), count: count, failures: failures, outputs: outputs)
                outbox.withLock { $0.append(reply) }
                busy.subtract(1, ordering: .relaxed)
                try? wake.release()
            }
        } catch {
            let failure = MPIWireFailure(index: 0, code: .broken, message: "The MPI rank's local pool failed: \(error)")
            outbox.withLock { $0.append(Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [failure], outputs: [])) }
            busy.subtract(1, ordering: .relaxed)
        }
    }

    /// A submitted task (`task` message) while the rank is busy: the task goes to a local worker as
    /// a one-input pool function (``_MPITaskRunner``, which returns the output's wire bytes), and
    /// the worker's output, a pool-encoded `[UInt8]`, is unwrapped here, so rank 0 gets the output's
    /// wire bytes whichever way the task ran.
    private func runTaskInLocalPool(job: UInt32, chunk: UInt32, runner: _MPITaskRunner) {
        let function: (name: String, bytes: [UInt8], known: Bool)
        let inputs: PoolEncodedValues
        do {
            guard let name = _mangledTypeName(_MPITaskRunner.self) else {
                throw MPIError(.protocolError, "_MPITaskRunner has no runtime name.")
            }
            function = (name, try WireEncoder().encode(runner), true)
            inputs = try PoolEncodedValues.encode(CollectionOfOne(0))
        } catch {
            outbox.withLock { $0.append(Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .coding, message: "Could not hand a task to the MPI rank's local pool: \(error)")], outputs: [])) }
            return
        }
        runInLocalPool(job: job, chunk: chunk, function: function, inputs: inputs, chunking: .fixed(1), map: false, unwrapTaskOutput: true)
    }

    /// A result message. `count` nil: the whole chunk failed with `failures[0]`.
    private static func reply(chunk: UInt32, elapsed: UInt64, count: Int?, failures: [MPIWireFailure], outputs: [UInt8]) -> [UInt8] {
        var writer = ByteWriter()
        writer.u32(chunk)
        writer.u64(elapsed)
        writer.u8(count == nil ? 1 : 0)
        writer.u32(UInt32(failures.count))
        for failure in failures { failure.write(to: &writer) }
        writer.rest(outputs)
        return writer.bytes
    }
}

/// Waiting between probes, never in a blocking receive. A thread that expects a message soon
/// (`eager`) spins (probes again at once) for 200 µs after the last activity, then sleeps 20 µs at
/// a time until 2 ms have passed, then sleeps doubling to about a millisecond; one that does not
/// (its rank has work running, so the next message is a chunk's time away) sleeps from the start,
/// 20 µs doubling to a millisecond. Each sleep is cut short by a wake-up from another thread of
/// this process.
///
/// Why this shape (measured with `MULTIPROCESSING_MPI_TRACE=2`, docs/benchmarks.md): with one task
/// in flight the next message comes tens to a few hundred microseconds after the last one, so
/// sleeps that double at once reach a millisecond and cost the round trip milliseconds (3.5 ms
/// medians); on a loaded machine a thread that spins long is preempted and then scheduled late,
/// where one that wakes from a short sleep runs at once; and spinning while a map runs takes the
/// cores the local workers need (default chunking fell from 0.82 M to 0.63 M tasks/s on 2 cores
/// when every wait spun). `MULTIPROCESSING_MPI_SPIN_US` and `MULTIPROCESSING_MPI_SHORT_US` change
/// the two eager phases (for measurements).
struct Backoff {
    /// How long an eager wait spins after the last activity, in nanoseconds.
    static let spinNanoseconds: UInt64 = microseconds("MULTIPROCESSING_MPI_SPIN_US", 200)
    /// How long after the last activity an eager wait's sleeps stay short (20 µs) before they double.
    static let shortNanoseconds: UInt64 = microseconds("MULTIPROCESSING_MPI_SHORT_US", 2000)

    private static func microseconds(_ name: String, _ value: UInt64) -> UInt64 {
        if let text = system_getenv(name), let micros = UInt64(text) { return micros * 1000 }
        return value * 1000
    }

    private var idleSince: UInt64?
    private var sleeps = 0

    mutating func reset() {
        idleSince = nil
        sleeps = 0
    }

    mutating func wait(_ wake: Semaphore, eager: Bool = true) {
        let now = monotonicNanoseconds()
        guard let since = idleSince else {
            idleSince = now
            if eager { return }
            return sleep(wake)
        }
        let idle = now &- since
        if eager && idle < Self.spinNanoseconds { return }   // spin: probe again at once
        if !eager || idle >= Self.shortNanoseconds { sleeps += 1 }
        sleep(wake)
    }

    private func sleep(_ wake: Semaphore) {
        let nanoseconds = min(20_000 << min(sleeps, 6), 1_000_000)   // 20 µs ... 1 ms
        _ = try? wake.acquire(timeout: .nanoseconds(nanoseconds))
        while wake.tryAcquire() {}
    }
}
#endif
