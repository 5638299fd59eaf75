#if MPI
import Multiprocessing
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
final class MPICoordinator: @unchecked Sendable {
    private enum Command { case job(any MPIJob), stop(terminate: Bool) }
    private let commands = Mutex<[Command]>([])
    private let wake: Semaphore
    private let workers = Atomic<Int>(0)
    private let ranks: Int

    private struct RankState {
        var workers = 1
        var host = ""
        var inFlight: [UInt32: (job: any MPIJob, jobID: UInt32, range: Range<Int>)] = [:]
        var knownJobs: Set<UInt32> = []
        var bye = false
    }
    private struct Active {
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

    init(ranks: Int) throws {
        self.ranks = ranks
        wake = try Semaphore(0)
        workers.store(ranks, ordering: .relaxed)
    }

    var workerCount: Int { workers.load(ordering: .relaxed) }

    func submit(_ job: any MPIJob) {
        commands.withLock { $0.append(.job(job)) }
        try? wake.release()
    }

    func requestStop(terminate: Bool) {
        commands.withLock { $0.append(.stop(terminate: terminate)) }
        try? wake.release()
    }

    /// The loop of rank 0's MPI thread, until every serving rank said bye.
    func run(messenger: MPIMessenger, size: Int) {
        var rankStates = [RankState](repeating: RankState(), count: size)
        var active: [Active] = []
        var nextJob: UInt32 = 1
        var nextChunk: UInt32 = 1
        var stopping = false
        var terminating = false
        var stopSent = false
        var backoff = Backoff()
        var failure: PoolTaskError?

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

        loop: while true {
            var busy = false
            for command in commands.withLock({ items -> [Command] in defer { items = [] }; return items }) {
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
                if failure == nil && !terminating {
                    var progress = true
                    while progress {
                        progress = false
                        for rank in 1..<size where rankStates[rank].inFlight.count < Self.window {
                            guard let index = active.firstIndex(where: { $0.next < $0.job.count && !$0.job.isCancelled }) else { break }
                            let held = rankStates[rank].inFlight.values.contains { $0.jobID == active[index].id }
                            let count = chunkSize(active[index], rankWorkers: rankStates[rank].workers, second: held)
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
                            writer.u32(id)
                            writer.u32(nextChunk)
                            if case .fixed(let size) = job.chunking { writer.u32(UInt32(clamping: size)) } else { writer.u32(0) }
                            if single {
                                writer.string(job.functionName)
                                writer.blob(job.functionBytes)
                            }
                            job.writeChunk(range, to: &writer)
                            try messenger.send(writer.bytes, to: rank, tag: (single ? MPITag.single : MPITag.chunk).rawValue)
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
                        let count = Int(try reader.u32())
                        rankStates[rank].workers = max(1, count)
                        rankStates[rank].host = try reader.string()
                        workers.store(rankStates[1...].reduce(0) { $0 + $1.workers }, ordering: .relaxed)
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
                        while messenger.pendingSends > 0 {
                            try messenger.progress()
                            backoff.wait(wake)
                        }
                        break loop
                    }
                }
            } catch {
                // An MPI call failed: the job is broken. Fail every task; a later stop still ends the loop.
                let broken = PoolTaskError(code: .broken, message: "The MPI job failed: \(error)")
                failure = broken
                failAll(broken)
                if stopping { break loop }
            }
            if busy {
                backoff.reset()
            } else {
                // Eager while a task submitted alone is out (its reply is a round trip away); a
                // map's chunks are about 10 ms of work each, and each rank holds two.
                let eager = rankStates.contains { $0.inFlight.values.contains { $0.job.count == 1 } }
                backoff.wait(wake, eager: eager)
            }
        }
    }

    /// A rank's next chunk of `item`: about ``chunkTarget`` of that rank's wall time, from the
    /// workers' measured time per task shared among the rank's workers, plus ``perTaskOverhead``;
    /// no more than the remaining work / (2 × ranks), so that the last chunks shrink and no rank
    /// idles while another finishes, but not below ``chunkFloor``. Before any chunk of the map has
    /// come back, a rank's first chunk is 16 tasks per local worker (answered soon, so the cost is
    /// known after one round trip) and its second, sent beside it (`second`), four times that, so
    /// that the rank has work while the first answer travels.
    private func chunkSize(_ item: Active, rankWorkers: Int, second: Bool) -> Int {
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
