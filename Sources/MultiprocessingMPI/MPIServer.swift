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
    private var stopping = false

    init(messenger: MPIMessenger, localPool: ProcessPool, host: String, inlineLoneTasks: Bool) throws {
        self.messenger = messenger
        self.inlineLoneTasks = inlineLoneTasks
        self.localPool = localPool
        self.host = host
        self.wake = try Semaphore(0)
    }

    /// Serves until rank 0 says stop; then stops the local pool and says bye.
    func serve() throws {
        var hello = ByteWriter()
        hello.u32(UInt32(localPool.workerCount))
        hello.string(host)
        try messenger.send(hello.bytes, to: 0, tag: MPITag.hello.rawValue)

        var backoff = Backoff()
        while true {
            var active = false
            let results = outbox.withLock { items -> [[UInt8]] in
                defer { items = [] }
                return items
            }
            for result in results {
                try messenger.send(result, to: 0, tag: MPITag.result.rawValue)
                if traceSteps, result.count >= 4 { traceStep("5-replied", result.prefix(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }) }
                active = true
            }
            if let message = try messenger.receive() {
                try handle(message)
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
    }

    private func handle(_ message: MPIMessage) throws {
        var reader = ByteReader(message.bytes)
        switch MPITag(rawValue: message.tag) {
        case .function:
            let job = try reader.u32()
            let name = try reader.string()
            let body = Array(reader.rest())
            functions[job] = (name, body, Self.isPoolFunction(name))
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
                function = (name, body, Self.isPoolFunction(name))
            } else {
                function = functions[job]
            }
            let inputs: PoolEncodedValues
            do { inputs = try PoolEncodedValues.readChunk(from: &reader) } catch {
                outbox.withLock { $0.append(Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .coding, message: "Could not read a chunk's inputs on the MPI rank: \(error)")], outputs: [])) }
                return
            }
            guard let function, function.known else {
                outbox.withLock { $0.append(Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .childStartFailed,
                    message: "The pool function of this chunk is unknown to this program on the MPI rank (is every rank running the same binary?).")], outputs: [])) }
                return
            }
            // A submitted task that finds the rank idle runs here, in the rank's own process: the hop
            // to a local worker and back (two thread hand-offs and a process round trip) is most of
            // one task's latency. Anything else, or a task while other work runs, goes to the local pool.
            if inlineLoneTasks, message.tag == MPITag.single.rawValue, busy.load(ordering: .relaxed) == 0, inlineRunning.load(ordering: .relaxed) == 0,
               let type = _typeByName(function.name) as? any PoolFunction.Type,
               let runner = (try? Self.decodeFunction(type, function.bytes)) as? _MPITaskRunner {
                runInline(runner, chunk: chunk)
                return
            }
            runInLocalPool(job: job, chunk: chunk, function: function, inputs: inputs, chunking: chunking, map: message.tag == MPITag.chunk.rawValue)
        case .forget:
            let job = try reader.u32()
            functions[job] = nil
            costs.withLock { _ = $0.removeValue(forKey: job) }
        case .stop:
            stopping = true
        default:
            throw MPIError(.protocolError, "A serving MPI rank got a message with tag \(message.tag) from rank \(message.source).")
        }
    }

    private static func isPoolFunction(_ name: String) -> Bool {
        guard let type = _typeByName(name) else { return false }
        return type is any PoolFunction.Type
    }

    private static func decodeFunction<F: PoolFunction>(_ type: F.Type, _ bytes: [UInt8]) throws -> any PoolFunction {
        try WireDecoder().decode(F.self, from: bytes)
    }

    /// Runs one submitted task on a task of this process (not on the MPI thread: it may be long, and
    /// the MPI thread keeps probing); its reply goes to the outbox like an executor's.
    private func runInline(_ runner: _MPITaskRunner, chunk: UInt32) {
        inlineRunning.add(1, ordering: .relaxed)
        Task.detached { [self] in
            let start = monotonicNanoseconds()
            if traceSteps { traceStep("3-started", chunk, at: start) }
            let reply: [UInt8]
            do {
                let output = try await runner.run(0)
                do {
                    reply = Self.reply(chunk: chunk, elapsed: monotonicNanoseconds() - start, count: 1, failures: [], outputs: try PoolEncodedValues.encode(CollectionOfOne(output)).bytes)
                } catch {
                    reply = Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .coding, message: "Could not encode a task's output on the MPI rank: \(error)")], outputs: [])
                }
            } catch {
                let failure = PoolTaskError(code: .childFailed, message: String(describing: error), indices: [0],
                                            remoteTypeName: String(reflecting: type(of: error)), remoteError: error)
                reply = Self.reply(chunk: chunk, elapsed: monotonicNanoseconds() - start, count: 1, failures: [MPIWireFailure(index: 0, error: failure)], outputs: [])
            }
            if traceSteps { traceStep("4-done", chunk) }
            outbox.withLock { $0.append(reply) }
            inlineRunning.subtract(1, ordering: .relaxed)
            try? wake.release()
        }
    }

    /// Hands a chunk to the local pool as bytes; its reply goes to the outbox from the pool's
    /// driver thread when the last task has answered.
    /// `map`: a chunk of a map (whose cost is kept for its next chunk until rank 0 says forget),
    /// not a job of one task.
    private func runInLocalPool(job: UInt32, chunk: UInt32, function: (name: String, bytes: [UInt8], known: Bool), inputs: PoolEncodedValues, chunking: Chunking, map: Bool) {
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
                let reply = Self.reply(chunk: chunk, elapsed: UInt64(outcome.workerNanoseconds), count: count,
                                       failures: outcome.failures.map { MPIWireFailure(index: $0.index, error: $0.error) }, outputs: outcome.outputs)
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
