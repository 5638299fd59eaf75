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

    private struct Work { var run: @Sendable () -> [UInt8] }
    private let queue = Mutex<[Work]>([])
    private let queued: Semaphore
    private let outbox = Mutex<[[UInt8]]>([])
    private let wake: Semaphore
    private let busy = Atomic<Int>(0)
    private var executors: [OSThread] = []
    private var stopping = false

    init(messenger: MPIMessenger, localPool: ProcessPool, host: String) throws {
        self.messenger = messenger
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
                active = true
            }
            if let message = try messenger.receive() {
                try handle(message)
                active = true
            }
            if stopping { break }
            if active { backoff.reset() } else { backoff.wait(wake) }
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
        case .chunk:
            let job = try reader.u32()
            let chunk = try reader.u32()
            let fixed = Int(try reader.u32())
            let chunking: Chunking = fixed > 0 ? .fixed(fixed) : .adaptive
            let inputs = Array(reader.rest())
            let function = functions[job]
            let pool = localPool
            enqueue(Work { Self.run(function, chunk: chunk, inputs: inputs, chunking: chunking, pool: pool) })
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
            let reply = work.run()
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

/// Waiting between probes: a short spin (64 probes), then sleeps doubling from 20 µs to about a
/// millisecond, each cut short by a wake-up from another thread of this process. The spin is short
/// on purpose: a rank that spins long takes the core its own local workers need.
struct Backoff {
    private var idle = 0

    mutating func reset() { idle = 0 }

    mutating func wait(_ wake: Semaphore) {
        idle += 1
        if idle <= 64 { return }   // spin: probe again at once
        let nanoseconds = min(10_000 << min(idle - 64, 7), 1_000_000)   // 20 µs ... 1 ms
        _ = try? wake.acquire(timeout: .nanoseconds(nanoseconds))
        while wake.tryAcquire() {}
    }
}
#endif
