#if MPI
import MultiprocessingSystem
import Multiprocessing
import Synchronization

/// A serving rank (1 ... N-1): receives functions and chunks from rank 0, runs each chunk on its
/// local ProcessPool, and sends the results back. Its MPI thread makes every MPI call; two executor
/// threads run the (at most two) chunks in flight, each in a blocking `mapResults` of the local pool.
final class MPIServer: @unchecked Sendable {
    private let messenger: MPIMessenger
    private let localPool: ProcessPool
    private let host: String
    /// Decoded functions, by job id (only the MPI thread touches it).
    private var functions: [UInt32: any PoolFunction] = [:]

    private struct Work { var chunk: UInt32; var run: @Sendable () -> [UInt8] }
    private let queue = Mutex<[Work]>([])
    private let queued: Semaphore
    private let outbox = Mutex<[[UInt8]]>([])
    private let wake: Semaphore
    private let busy = Atomic<Int>(0)
    /// Submitted tasks running in this process (``runInline(_:chunk:)``), not in the local pool.
    private let inlineRunning = Atomic<Int>(0)
    private let inlineLoneTasks: Bool
    private var executors: [OSThread] = []
    private var stopping = false

    init(messenger: MPIMessenger, localPool: ProcessPool, host: String, inlineLoneTasks: Bool) throws {
        self.messenger = messenger
        self.inlineLoneTasks = inlineLoneTasks
        self.localPool = localPool
        self.host = host
        self.queued = try Semaphore(0)
        self.wake = try Semaphore(0)
    }

    /// Serves until rank 0 says stop; then stops the local pool and says bye.
    func serve() throws {
        for number in 0..<2 {
            let thread = OSThread(name: "MPIPool-executor-\(number)", daemon: true) { [self] in executorLoop() }
            try thread.start()
            executors.append(thread)
        }
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
                let idle = busy.load(ordering: .relaxed) == 0 && inlineRunning.load(ordering: .relaxed) == 0 && queue.withLock({ $0.isEmpty })
                backoff.wait(wake, eager: idle)
            }
        }
        // Stop: drop queued work, stop the local pool (kills its workers), and say bye.
        queue.withLock { $0 = [] }
        stoppingFlag.store(true, ordering: .relaxed)
        localPool.terminate()
        try? queued.release(executors.count)
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
            if let type = _typeByName(name) as? any PoolFunction.Type {
                functions[job] = try? Self.decodeFunction(type, body)
            }
        case .chunk, .single:
            let job = try reader.u32()
            let chunk = try reader.u32()
            if traceSteps { traceStep("2-arrived", chunk) }
            let fixed = Int(try reader.u32())
            let chunking: Chunking = fixed > 0 ? .fixed(fixed) : .adaptive
            let function: (any PoolFunction)?
            if message.tag == MPITag.single.rawValue {
                let name = try reader.string()
                let body = try reader.blob()
                function = (_typeByName(name) as? any PoolFunction.Type).flatMap { try? Self.decodeFunction($0, body) }
            } else {
                function = functions[job]
            }
            let inputs = Array(reader.rest())
            // A submitted task that finds the rank idle runs here, in the rank's own process: the hop
            // to a local worker and back (two thread hand-offs and a process round trip) is most of
            // one task's latency. Anything else, or a task while other work runs, goes to the local pool.
            if inlineLoneTasks, let runner = function as? _MPITaskRunner, busy.load(ordering: .relaxed) == 0,
               inlineRunning.load(ordering: .relaxed) == 0, queue.withLock({ $0.isEmpty }) {
                runInline(runner, chunk: chunk)
                return
            }
            let pool = localPool
            enqueue(Work(chunk: chunk) { Self.run(function, chunk: chunk, inputs: inputs, chunking: chunking, pool: pool) })
        case .forget:
            functions[try reader.u32()] = nil
        case .stop:
            stopping = true
        default:
            throw MPIError(.protocolError, "A serving MPI rank got a message with tag \(message.tag) from rank \(message.source).")
        }
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
                    reply = Self.reply(chunk: chunk, elapsed: monotonicNanoseconds() - start, count: 1, failures: [], outputs: try WireEncoder().encode([output]))
                } catch {
                    reply = Self.reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .coding, message: "Could not encode a task's output on the MPI rank: \(error)")], outputs: [])
                }
            } catch {
                let failure = PoolTaskError(code: .childFailed, message: String(describing: error), indices: [0],
                                            remoteTypeName: String(reflecting: type(of: error)), remoteError: error)
                let none = (try? WireEncoder().encode([[UInt8]]())) ?? []
                reply = Self.reply(chunk: chunk, elapsed: monotonicNanoseconds() - start, count: 1, failures: [MPIWireFailure(index: 0, error: failure)], outputs: none)
            }
            if traceSteps { traceStep("4-done", chunk) }
            outbox.withLock { $0.append(reply) }
            inlineRunning.subtract(1, ordering: .relaxed)
            try? wake.release()
        }
    }

    private func enqueue(_ work: Work) {
        queue.withLock { $0.append(work) }
        try? queued.release()
    }

    private func executorLoop() {
        while true {
            try? queued.acquire()
            guard let work = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else {
                if stoppingFlag.load(ordering: .relaxed) { return }
                continue
            }
            busy.add(1, ordering: .relaxed)
            if traceSteps { traceStep("3-started", work.chunk) }
            let reply = work.run()
            if traceSteps { traceStep("4-done", work.chunk) }
            outbox.withLock { $0.append(reply) }
            busy.subtract(1, ordering: .relaxed)
            try? wake.release()
        }
    }
    private let stoppingFlag = Atomic<Bool>(false)

    /// Runs one chunk on the local pool: the result message's bytes.
    private static func run(_ function: (any PoolFunction)?, chunk: UInt32, inputs: [UInt8], chunking: Chunking, pool: ProcessPool) -> [UInt8] {
        let start = monotonicNanoseconds()
        guard let function else {
            return reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .childStartFailed,
                message: "The pool function of this chunk is unknown to this program on the MPI rank, or could not be decoded (is every rank running the same binary?).")], outputs: [])
        }
        return runTyped(function, chunk: chunk, inputs: inputs, chunking: chunking, pool: pool, start: start)
    }

    private static func runTyped<F: PoolFunction>(_ function: F, chunk: UInt32, inputs bytes: [UInt8], chunking: Chunking, pool: ProcessPool, start: UInt64) -> [UInt8] {
        let inputs: [F.Input]
        do {
            inputs = try WireDecoder().decode([F.Input].self, from: bytes)
        } catch {
            return reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .coding, message: "Could not decode a chunk's inputs on the MPI rank: \(error)")], outputs: [])
        }
        var failures: [MPIWireFailure] = []
        var outputs: [F.Output] = []
        outputs.reserveCapacity(inputs.count)
        do {
            let results = try pool.mapResults(function, over: inputs, chunking: chunking)
            for (index, result) in results.enumerated() {
                switch result {
                case .success(let value): outputs.append(value)
                case .failure(let error): failures.append(MPIWireFailure(index: index, error: error))
                }
            }
        } catch {
            let failure = MPIWireFailure(index: 0, code: .broken, message: "The MPI rank's local pool failed: \(error)")
            return reply(chunk: chunk, elapsed: 0, count: nil, failures: [failure], outputs: [])
        }
        let encoded: [UInt8]
        do {
            encoded = try WireEncoder().encode(outputs)
        } catch {
            return reply(chunk: chunk, elapsed: 0, count: nil, failures: [MPIWireFailure(index: 0, code: .coding, message: "Could not encode a chunk's outputs on the MPI rank: \(error)")], outputs: [])
        }
        return reply(chunk: chunk, elapsed: monotonicNanoseconds() - start, count: inputs.count, failures: failures, outputs: encoded)
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
