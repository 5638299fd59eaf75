#if MPI
import Multiprocessing
import MultiprocessingSystem
import Synchronization

/// One chunk's outcome at rank 0: its outputs in order, and its failures by index in the map.
struct MPIChunkOutcome<Output: Sendable>: Sendable {
    var start: Int
    var count: Int
    var outputs: [Output]
    var failures: [(index: Int, error: PoolTaskError)]

    var results: [Result<Output, PoolTaskError>] {
        var all: [Result<Output, PoolTaskError>] = []
        all.reserveCapacity(count)
        var next = 0
        var failureAt = 0
        for index in start..<(start + count) {
            if failureAt < failures.count, failures[failureAt].index == index {
                all.append(.failure(failures[failureAt].error))
                failureAt += 1
            } else if next < outputs.count {
                all.append(.success(outputs[next]))
                next += 1
            }
        }
        return all
    }
}

/// The right to make MPI calls on rank 0, held by one thread at a time (MPICoordinator).
final class MPIRole: Sendable {
    private let held = Atomic<Bool>(false)

    /// Takes the role if it is free.
    func tryTake() -> Bool {
        held.compareExchange(expected: false, desired: true, successOrdering: .acquiring, failureOrdering: .relaxed).exchanged
    }

    /// Takes the role, spinning while another thread holds it (only ever for one step's time:
    /// the MPI thread's start and end).
    func take() {
        while !tryTake() { system_sleep(nanoseconds: 1000) }
    }

    func give() { held.store(false, ordering: .releasing) }
}

/// What the coordinator needs of a map, whatever its types.
protocol MPIJob: AnyObject, Sendable {
    var functionName: String { get }
    var functionBytes: [UInt8] { get }
    var count: Int { get }
    var chunking: Chunking { get }
    var createdAt: UInt64 { get }
    var isCancelled: Bool { get }
    /// Writes inputs `range` (encoded when the job was made, in the caller).
    func writeChunk(_ range: Range<Int>, to writer: inout ByteWriter)
    /// A submitted task (``MPITaskJob``): sent as one `task` message, `functionName` the task's
    /// type and `functionBytes` the task's wire bytes, with no inputs.
    var isTask: Bool { get }
    /// Whether someone waits for the job's results without driving the loop: every map; a
    /// submitted task once its handle's `onDone`, `isDone`, or a `value`/`get()` that stopped
    /// driving asked for it. A task nobody wants yet does not keep the MPI thread awake.
    var isWanted: Bool { get }
    func deliver(_ range: Range<Int>, reply: inout ByteReader, rank: Int, host: String)
    func fail(_ range: Range<Int>, _ error: PoolTaskError)
}

/// A map (or one submitted task) at rank 0: its inputs, and the chunks' outcomes as they arrive.
final class MPIMapJob<F: PoolFunction>: MPIJob, @unchecked Sendable {
    let functionName: String
    let functionBytes: [UInt8]
    let count: Int
    let chunking: Chunking
    /// When the job was made (``traceSteps``).
    let createdAt: UInt64
    /// The inputs in the local pool's layout, encoded in the caller (so an input that cannot be
    /// encoded fails the call before anything is sent, as with `ProcessPool`).
    private let inputs: PoolEncodedValues

    private struct State {
        var outcomes: [MPIChunkOutcome<F.Output>] = []
        var delivered = 0
        var done = false
        var cancelled = false
        var continuation: CheckedContinuation<[MPIChunkOutcome<F.Output>], any Error>?
    }
    private let state = Mutex(State())
    private let stream: AsyncThrowingStream<(index: Int, result: Result<F.Output, PoolTaskError>), any Error>.Continuation?
    /// For a submitted task: called once with its result.
    var onSingle: (@Sendable (Result<F.Output, PoolTaskError>) -> Void)?

    init(function: F, inputs: [F.Input], chunking: Chunking, stream: AsyncThrowingStream<(index: Int, result: Result<F.Output, PoolTaskError>), any Error>.Continuation?) throws {
        if case .fixed(let size) = chunking, size < 1 { throw MultiprocessingError(.misuse, "A fixed chunk size must be at least 1; \(size) was given.") }
        guard let name = _mangledTypeName(F.self) else {
            throw MultiprocessingError(.childStartFailed, "The pool function type \(F.self) has no runtime name a rank could look up.")
        }
        do { functionBytes = try WireEncoder().encode(function) } catch {
            throw MultiprocessingError(.coding, "Could not encode the pool function \(String(reflecting: F.self)) for the MPIPool: \(error)")
        }
        functionName = name
        createdAt = traceSteps ? monotonicNanoseconds() : 0
        self.inputs = try PoolEncodedValues.encode(inputs)
        self.count = inputs.count
        self.chunking = chunking
        self.stream = stream
        if inputs.isEmpty { stream?.finish() }
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }
    var isTask: Bool { false }

    private let wanted = Atomic<Bool>(false)
    var isWanted: Bool { onSingle == nil || wanted.load(ordering: .acquiring) }
    /// A submitted task's result is wanted (``isWanted``).
    func want() { wanted.store(true, ordering: .releasing) }

    func setContinuation(_ continuation: CheckedContinuation<[MPIChunkOutcome<F.Output>], any Error>) {
        let cancelled = state.withLock { state -> Bool in
            if state.cancelled { return true }
            state.continuation = continuation
            return false
        }
        if cancelled { continuation.resume(throwing: CancellationError()) }
    }

    /// The caller's task was cancelled: it gets CancellationError now; chunks not sent are dropped.
    func cancel() {
        let continuation = state.withLock { state -> CheckedContinuation<[MPIChunkOutcome<F.Output>], any Error>? in
            state.cancelled = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(throwing: CancellationError())
        stream?.finish(throwing: CancellationError())
    }

    func writeChunk(_ range: Range<Int>, to writer: inout ByteWriter) {
        inputs.writeChunk(range, to: &writer)
    }

    func deliver(_ range: Range<Int>, reply: inout ByteReader, rank: Int, host: String) {
        do {
            let whole = try reply.u8() != 0
            let failureCount = Int(try reply.u32())
            var failures: [MPIWireFailure] = []
            for _ in 0..<failureCount {
                let failure = try MPIWireFailure(from: &reply)
                guard failure.index >= (failures.last.map { $0.index + 1 } ?? 0), failure.index < range.count else {
                    throw MPIError(.protocolError, "A chunk of \(range.count) tasks came back with a failure at index \(failure.index), out of order or past its end.")
                }
                failures.append(failure)
            }
            if whole, let failure = failures.first {
                record(MPIChunkOutcome(start: range.lowerBound, count: range.count, outputs: [],
                                       failures: range.map { ($0, failure.poolTaskError(taskIndex: $0, rank: rank, host: host)) }))
                return
            }
            guard failures.count <= range.count else {
                throw MPIError(.protocolError, "A chunk of \(range.count) tasks came back with \(failures.count) failures.")
            }
            let rest = reply.rest()
            let outputs = try rest.withUnsafeBytes { try PoolEncodedValues.decode(F.Output.self, count: range.count - failures.count, from: $0) }
            record(MPIChunkOutcome(start: range.lowerBound, count: range.count, outputs: outputs,
                                   failures: failures.map { (range.lowerBound + $0.index, $0.poolTaskError(taskIndex: range.lowerBound + $0.index, rank: rank, host: host)) }))
        } catch {
            fail(range, PoolTaskError(code: .coding, message: "Could not decode the results of tasks \(range.lowerBound) ..< \(range.upperBound) from MPI rank \(rank): \(error)", indices: Array(range)))
        }
    }

    func fail(_ range: Range<Int>, _ error: PoolTaskError) {
        record(MPIChunkOutcome(start: range.lowerBound, count: range.count, outputs: [], failures: range.map { ($0, error.narrowed(to: $0)) }))
    }

    private func record(_ outcome: MPIChunkOutcome<F.Output>) {
        if let onSingle {
            if let result = outcome.results.first { onSingle(result) }
            return
        }
        if let stream {
            for (offset, result) in outcome.results.enumerated() { stream.yield((outcome.start + offset, result)) }
        }
        let finished = state.withLock { state -> (CheckedContinuation<[MPIChunkOutcome<F.Output>], any Error>?, [MPIChunkOutcome<F.Output>])? in
            if stream == nil { state.outcomes.append(outcome) }
            state.delivered += outcome.count
            guard state.delivered >= count, !state.done else { return nil }
            state.done = true
            defer { state.continuation = nil; state.outcomes = [] }
            return (state.continuation, state.outcomes.sorted { $0.start < $1.start })
        }
        guard let finished else { return }
        finished.0?.resume(returning: finished.1)
        stream?.finish()
    }
}

/// A submitted task at rank 0: the task's wire bytes, encoded once in `submit` and sent as they
/// are (a `task` message), and its output's wire bytes decoded once, by `decode`, when the reply
/// is delivered.
final class MPITaskJob<Output: Sendable>: MPIJob, @unchecked Sendable {
    let functionName: String
    let functionBytes: [UInt8]
    var count: Int { 1 }
    var chunking: Chunking { .fixed(1) }
    let createdAt: UInt64
    var isCancelled: Bool { false }
    var isTask: Bool { true }
    private let decode: @Sendable (ArraySlice<UInt8>) throws -> Output
    /// Called once with the task's result.
    var onSingle: (@Sendable (Result<Output, PoolTaskError>) -> Void)?

    init(typeName: String, taskBytes: [UInt8], decode: @escaping @Sendable (ArraySlice<UInt8>) throws -> Output) {
        functionName = typeName
        functionBytes = taskBytes
        self.decode = decode
        createdAt = traceSteps ? monotonicNanoseconds() : 0
    }

    private let wanted = Atomic<Bool>(false)
    var isWanted: Bool { wanted.load(ordering: .acquiring) }
    /// The task's result is wanted (``MPIJob/isWanted``).
    func want() { wanted.store(true, ordering: .releasing) }

    func writeChunk(_ range: Range<Int>, to writer: inout ByteWriter) {}

    func deliver(_ range: Range<Int>, reply: inout ByteReader, rank: Int, host: String) {
        let result: Result<Output, PoolTaskError>
        do {
            _ = try reply.u8()   // the whole-chunk flag: one task either way
            let failureCount = Int(try reply.u32())
            if failureCount > 0 {
                let failure = try MPIWireFailure(from: &reply)
                guard failure.index == 0 else {
                    throw MPIError(.protocolError, "A submitted task came back with a failure at index \(failure.index).")
                }
                result = .failure(failure.poolTaskError(taskIndex: 0, rank: rank, host: host))
            } else {
                do { result = .success(try decode(reply.rest())) } catch {
                    result = .failure(PoolTaskError(code: .coding, message: "Could not decode the task's result from its MPI rank: \(error)", indices: [0]))
                }
            }
        } catch {
            result = .failure(PoolTaskError(code: .coding, message: "Could not decode the results of tasks 0 ..< 1 from MPI rank \(rank): \(error)", indices: [0]))
        }
        onSingle?(result)
    }

    func fail(_ range: Range<Int>, _ error: PoolTaskError) {
        onSingle?(.failure(error.narrowed(to: 0)))
    }
}

extension PoolTaskError {
    func narrowed(to index: Int) -> PoolTaskError {
        var copy = self
        copy.indices = [index]
        return copy
    }
}

/// Rank 0's MPI thread: hands out chunks, two in flight per serving rank, sized to about 10 ms of
/// work each from the measured cost of the map's earlier chunks (smaller toward the end, so that no
/// rank idles while another finishes a long chunk), and collects the results.
///
/// The loop's state is the MPI role: whoever holds `role` may make MPI calls, one thread at a time.
/// Mostly that is the MPI thread; but a caller that waits for a submitted task in `value` or
/// `get()` takes the role itself while it waits (`drive`), and a `submit` that finds the role free
/// sends its task itself, so one task in flight costs no thread hand-off on rank 0 (each is a
/// futex wake-up, about 5 µs here). That needs `MPI_THREAD_SERIALIZED`; with less, only the MPI
/// thread calls MPI.
final class MPICoordinator: @unchecked Sendable {
    enum Command { case job(any MPIJob), stop(terminate: Bool) }
    private let commands = Mutex<[Command]>([])
    private let wake: Semaphore
    private let workers = Atomic<Int>(0)
    private let ranks: Int
    /// The right to call MPI and touch the loop's state: taken with a compare-and-swap, never
    /// waited for (a thread that finds it taken does something else), so no lock's kernel path is
    /// in the way. (Synchronization.Mutex's `withLockIfAvailable` here failed for minutes on end
    /// in some runs while the lock was free.)
    private let role = MPIRole()
    /// The loop's state; nil until the MPI thread starts the loop. Touched only by the role's holder.
    private var loop: Loop?
    /// Whether threads other than the MPI thread may hold the role (MPI provides SERIALIZED).
    private let shared = Atomic<Bool>(false)
    /// Callers driving the loop in `value`/`get()`: while there are any, the MPI thread sleeps.
    private let drivers = Atomic<Int>(0)
    /// The loop has ended (every serving rank said bye): nobody drives it any more.
    private let ended = Atomic<Bool>(false)

    struct RankState {
        var workers = 1
        var host = ""
        var inFlight: [UInt32: (job: any MPIJob, jobID: UInt32, range: Range<Int>)] = [:]
        var knownJobs: Set<UInt32> = []
        var bye = false
    }
    struct Active {
        var id: UInt32
        var job: any MPIJob
        var next = 0
        var outstanding = 0
        /// The chunks' measured worker time (the sum of the local workers' running times for
        /// the chunk's tasks) and tasks, each halved at every new chunk (a decaying sum).
        var measuredNanoseconds = 0.0
        var measuredTasks = 0.0
        /// A worker's time per task: decaying sums of time over tasks, so a big chunk counts for
        /// more than a small one (with the mean of per-chunk figures, the 16 tasks of a map's first
        /// chunk held the next chunks small for several round trips).
        var nanosecondsPerTask: Double? { measuredTasks > 0 ? measuredNanoseconds / measuredTasks : nil }
    }

    /// The target wall time of one chunk on a rank.
    static let chunkTarget = 10_000_000.0
    /// The smallest chunk of the tail, in wall time on a rank: below it a chunk's fixed costs (two
    /// messages, a job of the local pool) outweigh what a finer split gains.
    static let chunkFloor = 1_000_000.0
    /// What a task costs besides its worker's time, in nanoseconds: the codec, the messages, the
    /// local pool's rings. Measured here (`perf record -e task-clock`, a map of 2,000,000 trivial
    /// tasks on 1 + 2 ranks): about 10 ns of CPU per task on rank 0 and 13 ns on a serving rank,
    /// beside 13 ns in its workers; 50 is a round figure above those, so that the chunks of trivial
    /// tasks stay bounded (about 200,000 tasks) instead of growing without end.
    static let perTaskOverhead = 50.0
    /// Chunks in flight per serving rank.
    static let window = 2
    /// How long a caller in `value` or `get()` drives the loop for its task before it sleeps and
    /// leaves the loop to the MPI thread (`MULTIPROCESSING_MPI_DRIVE_US`, for measurements).
    static let driveNanoseconds: UInt64 = {
        if let text = system_getenv("MULTIPROCESSING_MPI_DRIVE_US"), let micros = UInt64(text) { return micros * 1000 }
        return 200_000
    }()

    init(ranks: Int) throws {
        self.ranks = ranks
        wake = try Semaphore(0)
        workers.store(ranks, ordering: .relaxed)
    }

    var workerCount: Int { workers.load(ordering: .relaxed) }

    /// Queues a job for the loop. `direct`: a submitted task whose caller will likely wait for
    /// it; if the role is free, this thread sends it now and leaves the MPI thread asleep (the
    /// handle's `value`/`get()` drives the loop, and its `onDone`/`isDone` wake the MPI thread).
    func submit(_ job: any MPIJob, direct: Bool = false) {
        commands.withLock { $0.append(.job(job)) }
        if direct, shared.load(ordering: .acquiring), drivers.load(ordering: .relaxed) == 0,
           let outcome = stepIfFree(), !outcome.ended, outcome.idle {
            return
        }
        try? wake.release()
    }

    func requestStop(terminate: Bool) {
        commands.withLock { $0.append(.stop(terminate: terminate)) }
        try? wake.release()
    }

    /// The MPI thread should look for results now (a handle's `onDone` or `isDone` wants one).
    func wakeUp() { try? wake.release() }

    /// A caller waiting for a submitted task (`done` tells when it has its result): drives the
    /// loop on this thread for up to ``driveNanoseconds``, so that the reply is received and
    /// delivered here, with no thread hand-off either way. Returns when done, when the time is
    /// up, or at once when other threads may not call MPI.
    func drive(until done: () -> Bool) {
        guard shared.load(ordering: .acquiring), !ended.load(ordering: .acquiring) else { return }
        drivers.add(1, ordering: .relaxed)
        // Given up with the task still out, the handle's settle wants the task and wakes the MPI thread.
        defer { drivers.subtract(1, ordering: .relaxed) }
        let start = monotonicNanoseconds()
        while !done() {
            if role.tryTake() {
                let outcome = loop.map { step($0) }
                role.give()
                guard let outcome, !outcome.ended else { return }
            }
            else { system_schedYield() }   // the holder may be preempted on this CPU: let it run
            if monotonicNanoseconds() &- start >= Self.driveNanoseconds { return }
        }
    }

    private func takeCommands() -> [Command] {
        commands.withLock { items -> [Command] in
            if items.isEmpty { return [] }
            defer { items = [] }
            return items
        }
    }

    private func step(_ loop: Loop) -> Loop.Outcome {
        loop.step(takeCommands(), coordinator: self)
    }

    /// One step if the role is free and the loop runs; nil otherwise.
    private func stepIfFree() -> Loop.Outcome? {
        guard role.tryTake() else { return nil }
        defer { role.give() }
        return loop.map { step($0) }
    }

    /// The loop of rank 0's MPI thread, until every serving rank said bye.
    /// - Parameter sharedCalls: Whether MPI provides `MPI_THREAD_SERIALIZED`, so that callers may
    ///   take the role.
    func run(messenger: MPIMessenger, size: Int, sharedCalls: Bool) {
        role.take()
        loop = Loop(messenger: messenger, size: size)
        role.give()
        shared.store(sharedCalls, ordering: .releasing)
        var backoff = Backoff()
        var yielded = false
        while true {
            if drivers.load(ordering: .relaxed) > 0 {
                // A caller drives the loop while it waits: stay out of its way (no second thread
                // spinning on 2 cores), and sleep until it gives up or the sleep ends.
                yielded = true
                backoff.wait(wake, eager: false)
                continue
            }
            if yielded {
                yielded = false
                backoff.reset()
            }
            // A caller holds the role for a moment (a submit sending its task): look again soon.
            guard let outcome = stepIfFree() else {
                backoff.wait(wake, eager: true)
                continue
            }
            if outcome.ended { break }
            if outcome.busy {
                backoff.reset()
            } else if outcome.idle {
                // Nothing to watch: sleep until a thread has something (a map, a stop, a task's
                // result wanted). No timed wake-ups while callers drive their own tasks.
                try? wake.acquire()
                while wake.tryAcquire() {}
                backoff.reset()
            } else {
                backoff.wait(wake, eager: outcome.eager)
            }
        }
        ended.store(true, ordering: .releasing)
        // Every rank said bye: complete the sends still out, then the caller finalizes.
        role.take()
        defer { role.give() }
        while let loop, loop.messenger.pendingSends > 0, (try? loop.messenger.progress()) != nil {
            backoff.wait(wake)
        }
    }

    /// The loop's state. @unchecked: only the holder of `role` touches it.
    final class Loop: @unchecked Sendable {
        struct Outcome: Sendable {
            /// Something happened (a message, a job, a stop): look again at once.
            var busy: Bool
            /// A task submitted alone is out: its reply is a round trip away.
            var eager: Bool
            /// Every serving rank said bye.
            var ended: Bool
            /// Nothing for the MPI thread to watch: every rank said hello, no send is pending, no
            /// map has work out or to hand out, no stop is under way, and no task in flight is
            /// wanted (``MPIJob/isWanted``).
            var idle = false
        }
        let messenger: MPIMessenger
        let size: Int
        var rankStates: [RankState]
        var active: [Active] = []
        var nextJob: UInt32 = 1
        var nextChunk: UInt32 = 1
        var stopping = false
        var terminating = false
        var stopSent = false
        var failure: PoolTaskError?
        var finished = false
        /// Serving ranks that said hello.
        var hellos = 0

        init(messenger: MPIMessenger, size: Int) {
            self.messenger = messenger
            self.size = size
            rankStates = [RankState](repeating: RankState(), count: size)
        }

        func failAll(_ error: PoolTaskError) {
            for index in active.indices {
                let item = active[index]
                if item.next < item.job.count { item.job.fail(item.next..<item.job.count, error) }
                active[index].next = item.job.count
            }
            for rank in 1..<size {
                for (_, flight) in rankStates[rank].inFlight { flight.job.fail(flight.range, error) }
                rankStates[rank].inFlight = [:]
            }
            active = []
        }

        /// One turn of the loop: take the commands, hand out chunks, receive what arrived.
        func step(_ commands: [Command], coordinator: MPICoordinator) -> Outcome {
            if finished { return Outcome(busy: false, eager: false, ended: true) }
            var busy = false
            for command in commands {
                busy = true
                switch command {
                case .job(let job):
                    if stopping || failure != nil {
                        job.fail(0..<job.count, failure ?? PoolTaskError(code: .cancelled, message: "The MPIPool was stopped before the task ran."))
                        continue
                    }
                    if job.count == 0 { continue }
                    active.append(Active(id: nextJob, job: job))
                    nextJob &+= 1
                    if nextJob == 0 { nextJob = 1 }
                case .stop(let terminate):
                    stopping = true
                    if terminate && !terminating {
                        terminating = true
                        for index in active.indices {
                            let item = active[index]
                            if item.next < item.job.count {
                                item.job.fail(item.next..<item.job.count, PoolTaskError(code: .cancelled, message: "The MPIPool was terminated before the task ran."))
                                active[index].next = item.job.count
                            }
                        }
                    }
                }
            }

            // A map whose caller was cancelled, with nothing in flight, is done (else a later join
            // would wait for it forever).
            active.removeAll { $0.job.isCancelled && $0.outstanding == 0 }
            do {
                // Hand out chunks: the oldest map first, up to `window` in flight per rank.
                if failure == nil && !terminating && !active.isEmpty {
                    var progress = true
                    while progress {
                        progress = false
                        for rank in 1..<size where rankStates[rank].inFlight.count < MPICoordinator.window {
                            guard let index = active.firstIndex(where: { $0.next < $0.job.count && !$0.job.isCancelled }) else { break }
                            let held = rankStates[rank].inFlight.values.contains { $0.jobID == active[index].id }
                            let count = coordinator.chunkSize(active[index], rankWorkers: rankStates[rank].workers, second: held)
                            let range = active[index].next..<(active[index].next + count)
                            active[index].next += count
                            active[index].outstanding += 1
                            let job = active[index].job
                            let id = active[index].id
                            // A job of one task goes in one message, function and all.
                            let single = job.count == 1
                            if !single && !rankStates[rank].knownJobs.contains(id) {
                                var writer = ByteWriter()
                                writer.u32(id)
                                writer.string(job.functionName)
                                writer.rest(job.functionBytes)
                                try messenger.send(writer.bytes, to: rank, tag: MPITag.function.rawValue)
                                rankStates[rank].knownJobs.insert(id)
                            }
                            var writer = ByteWriter()
                            if job.isTask {
                                writer.bytes.reserveCapacity(12 + job.functionName.utf8.count + job.functionBytes.count)
                                writer.u32(id)
                                writer.u32(nextChunk)
                                writer.string(job.functionName)
                                writer.rest(job.functionBytes)
                                try messenger.send(writer.bytes, to: rank, tag: MPITag.task.rawValue)
                            } else {
                                writer.u32(id)
                                writer.u32(nextChunk)
                                if case .fixed(let size) = job.chunking { writer.u32(UInt32(clamping: size)) } else { writer.u32(0) }
                                if single {
                                    writer.string(job.functionName)
                                    writer.blob(job.functionBytes)
                                }
                                job.writeChunk(range, to: &writer)
                                try messenger.send(writer.bytes, to: rank, tag: (single ? MPITag.single : MPITag.chunk).rawValue)
                            }
                            if traceSteps {
                                traceStep("0-submitted", nextChunk, at: job.createdAt)
                                traceStep("1-sent", nextChunk)
                            }
                            rankStates[rank].inFlight[nextChunk] = (job, id, range)
                            nextChunk &+= 1
                            if nextChunk == 0 { nextChunk = 1 }
                            busy = true
                            progress = true
                        }
                    }
                }

                while let message = try messenger.receive() {
                    busy = true
                    var reader = ByteReader(message.bytes)
                    let rank = message.source
                    guard rank > 0, rank < size else { continue }
                    switch MPITag(rawValue: message.tag) {
                    case .hello:
                        hellos += 1
                        let count = Int(try reader.u32())
                        rankStates[rank].workers = max(1, count)
                        rankStates[rank].host = try reader.string()
                        coordinator.workers.store(rankStates[1...].reduce(0) { $0 + $1.workers }, ordering: .relaxed)
                    case .result:
                        let chunk = try reader.u32()
                        let elapsed = try reader.u64()
                        guard let flight = rankStates[rank].inFlight.removeValue(forKey: chunk) else { continue }
                        if traceSteps { traceStep("6-received", chunk) }
                        flight.job.deliver(flight.range, reply: &reader, rank: rank, host: rankStates[rank].host)
                        if traceSteps { traceStep("7-delivered", chunk) }
                        if let index = active.firstIndex(where: { $0.id == flight.jobID }) {
                            active[index].outstanding -= 1
                            if elapsed > 0 {
                                active[index].measuredNanoseconds = 0.5 * active[index].measuredNanoseconds + Double(elapsed)
                                active[index].measuredTasks = 0.5 * active[index].measuredTasks + Double(flight.range.count)
                            }
                            let item = active[index]
                            if item.outstanding == 0 && (item.next >= item.job.count || item.job.isCancelled) {
                                active.remove(at: index)
                                for other in 1..<size where rankStates[other].knownJobs.remove(item.id) != nil {
                                    var writer = ByteWriter()
                                    writer.u32(item.id)
                                    try messenger.send(writer.bytes, to: other, tag: MPITag.forget.rawValue)
                                }
                            }
                        }
                    case .bye:
                        rankStates[rank].bye = true
                    default:
                        throw MPIError(.protocolError, "Rank 0 got a message with tag \(message.tag) from rank \(rank).")
                    }
                }

                if stopping && (terminating || failure != nil || (active.isEmpty && rankStates.allSatisfy { $0.inFlight.isEmpty })) {
                    if !stopSent {
                        for rank in 1..<size { try messenger.send([], to: rank, tag: MPITag.stop.rawValue) }
                        stopSent = true
                    }
                    if rankStates[1...].allSatisfy(\.bye) {
                        let cancelled = PoolTaskError(code: .cancelled, message: "The MPIPool was terminated while the task ran.")
                        failAll(cancelled)
                        finished = true
                        return Outcome(busy: true, eager: false, ended: true)
                    }
                }
            } catch {
                // An MPI call failed: the job is broken. Fail every task; a later stop still ends the loop.
                let broken = PoolTaskError(code: .broken, message: "The MPI job failed: \(error)")
                failure = broken
                failAll(broken)
                if stopping {
                    finished = true
                    return Outcome(busy: true, eager: false, ended: true)
                }
            }
            // Eager while a task submitted alone is out (its reply is a round trip away); a
            // map's chunks are about 10 ms of work each, and each rank holds two.
            let eager = !busy && rankStates.contains { $0.inFlight.values.contains { $0.job.count == 1 } }
            let idle = !stopping && hellos == size - 1 && messenger.pendingSends == 0
                && active.allSatisfy { $0.next >= $0.job.count || $0.job.isCancelled }
                && rankStates.allSatisfy { $0.inFlight.values.allSatisfy { !$0.job.isWanted } }
            return Outcome(busy: busy, eager: eager, ended: false, idle: idle)
        }
    }

    /// A rank's next chunk of `item`: about ``chunkTarget`` of that rank's wall time, from the
    /// workers' measured time per task shared among the rank's workers, plus ``perTaskOverhead``;
    /// no more than the remaining work / (2 × ranks), so that the last chunks shrink and no rank
    /// idles while another finishes, but not below ``chunkFloor``. Before any chunk of the map has
    /// come back, a rank's first chunk is 16 tasks per local worker (answered soon, so the cost is
    /// known after one round trip) and its second, sent beside it (`second`), four times that, so
    /// that the rank has work while the first answer travels.
    func chunkSize(_ item: Active, rankWorkers: Int, second: Bool) -> Int {
        let remaining = item.job.count - item.next
        // A fixed chunk size is what each local worker gets at a time; a rank's chunk is a whole
        // number of those, sized like an adaptive one, so that a small size does not cost a message each.
        var unit = 1
        if case .fixed(let size) = item.job.chunking { unit = size }
        var wanted: Int
        if let perTask = item.nanosecondsPerTask {
            let wall = perTask / Double(max(1, rankWorkers)) + Self.perTaskOverhead
            let cap = max(1, remaining / (2 * ranks))
            let floor = Int(min(Double(1 << 22), Self.chunkFloor / wall))
            wanted = max(floor, min(cap, Int(min(Double(1 << 22), Self.chunkTarget / wall))))
        } else {
            wanted = min(max(1, remaining / (2 * ranks)), (second ? 64 : 16) * rankWorkers * unit)
        }
        let units = max(1, wanted / unit)
        return min(remaining, units * unit)
    }
}
#endif
