import SystemPackage
import MultiprocessingSystem

// What runs in a pool's worker process: a ProcessTask that serves chunks until its channel closes.

/// A worker of a ``ProcessPool``: started as a daemon ``ChildProcess``, it runs the pool's
/// initializer, says it is ready, then runs chunks from its task ring and answers each with one
/// frame in its answer ring (``PoolRing``), until the parent closes the channel.
struct PoolWorkerTask: ProcessTask {
    /// The socket to the driver: wake-ups, and its end when the pool is done with this worker.
    var channel: SharedDescriptor
    /// The memfd of the worker's rings.
    var memory: SharedDescriptor
    var initializer: (any ProcessTask)?
    /// Whether to measure resident memory after each chunk (for ``Recycling/aboveResidentBytes``).
    var measureMemory: Bool

    init(channel: SharedDescriptor, memory: SharedDescriptor, initializer: (any ProcessTask)?, measureMemory: Bool) {
        self.channel = channel
        self.memory = memory
        self.initializer = initializer
        self.measureMemory = measureMemory
    }

    private enum Key: String, CodingKey { case channel, memory, initializerType, initializer, measureMemory }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(channel, forKey: .channel)
        try container.encode(memory, forKey: .memory)
        try container.encode(measureMemory, forKey: .measureMemory)
        if let initializer {
            guard let name = _mangledTypeName(type(of: initializer)) else {
                throw EncodingError.invalidValue(0, .init(codingPath: encoder.codingPath, debugDescription: "The initializer's type \(type(of: initializer)) has no runtime name a worker could look up."))
            }
            try container.encode(name, forKey: .initializerType)
            try container.encode(initializer, forKey: .initializer)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        channel = try container.decode(SharedDescriptor.self, forKey: .channel)
        memory = try container.decode(SharedDescriptor.self, forKey: .memory)
        measureMemory = try container.decode(Bool.self, forKey: .measureMemory)
        if let name = try container.decodeIfPresent(String.self, forKey: .initializerType) {
            guard let type = _typeByName(name) as? any ProcessTask.Type else {
                throw DecodingError.dataCorruptedError(forKey: .initializerType, in: container, debugDescription: "The pool's initializer type is unknown to the worker's program (it must not be private or declared in a function).")
            }
            initializer = try container.decode(type, forKey: .initializer)
        } else {
            initializer = nil
        }
    }

    func run() async {
        system_ignoreInterrupts()
        let fd = channel.fileDescriptor.rawValue
        let ring: PoolRing
        do {
            ring = try PoolRing(adopting: memory.fileDescriptor.rawValue)
        } catch {
            system_writeStderr("multiprocessing: pool worker \(system_getpid()) could not map its rings: \(error); exiting.\n")
            system__exit(70)
        }
        let loop = PoolWorkerLoop(fd: fd, ring: ring, measureMemory: measureMemory)
        PoolRingTesting.current = (ring, fd)
        PoolSpinTesting.worker = loop
        if let initializer {
            do {
                _ = try await initializer.run()
            } catch {
                let failure = (try? WireEncoder().encode(WireFailure(index: 0, thrown: error))) ?? []
                loop.send(PoolWire.frame(.initializerFailed, body: failure), urgent: true)
                return
            }
        }
        loop.send(PoolWire.frame(.ready, body: []), urgent: true)
        await loop.serve()
    }
}

/// Runs one function's chunks in a worker, whatever its types.
protocol PoolChunkRunner {
    func run(count: Int, inputs: [UInt8], reply: inout [UInt8]) async
}

/// The function of one map, decoded in the worker.
struct PoolFunctionRunner<F: PoolFunction>: PoolChunkRunner {
    let function: F

    func run(count: Int, inputs: [UInt8], reply: inout [UInt8]) async {
        let values: [F.Input]
        do {
            values = try inputs.withUnsafeBytes { try PoolValues.decode(F.Input.self, count: count, from: $0) }
        } catch {
            let failures = (0..<count).map { WireFailure(index: $0, kind: .setup, typeName: "", message: "The worker could not decode the chunk's inputs: \(error)") }
            PoolWorkerLoop.appendReply(&reply, elapsed: 0, failures: failures, outputs: [])
            return
        }
        let start = system_clockMonotonicNanoseconds()
        let outcome = await function._runChunk(values)
        let outputs = outcome.outputs
        var failures = outcome.failures.map { WireFailure(index: $0.index, thrown: $0.error) }
        let elapsed = system_clockMonotonicNanoseconds() - start
        var encoded: [UInt8] = []
        do {
            try PoolValues.append(outputs, to: &encoded)
        } catch {
            // One (or more) of the results cannot be encoded: find which, fail those alone.
            encoded = []
            var failed = failures
            var kept = 0
            var position = 0
            for index in 0..<values.count {
                if failures.contains(where: { $0.index == index }) { continue }
                let output = outputs[position]
                position += 1
                var one: [UInt8] = []
                do {
                    try PoolValues.append(CollectionOfOne(output), to: &one)
                    encoded.append(contentsOf: one)
                    kept += 1
                } catch {
                    failed.append(WireFailure(index: index, kind: .unencodableResult, typeName: String(reflecting: F.Output.self),
                                              message: "The result of task \(index) of the chunk could not be encoded: \(error)"))
                }
            }
            failures = failed.sorted { $0.index < $1.index }
        }
        PoolWorkerLoop.appendReply(&reply, elapsed: elapsed, failures: failures, outputs: encoded)
    }
}

/// A function the worker could not decode: every chunk of its map fails with why.
struct PoolBrokenRunner: PoolChunkRunner {
    let message: String
    func run(count: Int, inputs: [UInt8], reply: inout [UInt8]) async {
        let failures = (0..<count).map { WireFailure(index: $0, kind: .setup, typeName: "", message: message) }
        PoolWorkerLoop.appendReply(&reply, elapsed: 0, failures: failures, outputs: [])
    }
}

/// The worker's loop: takes frames from its task ring into one buffer, runs each, puts each
/// answer in its answer ring.
final class PoolWorkerLoop {
    let fd: Int32
    let ring: PoolRing
    let measureMemory: Bool
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0
    private var end = 0
    private var taskHead: UInt64 = 0
    private var runners: [UInt32: any PoolChunkRunner] = [:]
    private var taskTypes: [String: any ProcessTask.Type] = [:]
    /// The poll for the next task after a direct answer (``PoolSpin``).
    private(set) var spin = PoolSpin(PoolSpin.worker)
    /// Whether the last answer had to wake whoever waits for it (it sleeps, so no spin after it).
    private var answerWokeReader = false
    /// An answer went out since the loop last looked at whether to spin.
    private var spinAfterAnswer = false

    init(fd: Int32, ring: PoolRing, measureMemory: Bool) {
        self.fd = fd
        self.ring = ring
        self.measureMemory = measureMemory
        taskHead = ring.load(PoolRing.Offset.taskHead)
    }

    /// Puts a whole frame in the answer ring (waiting for room when it is full), then wakes the
    /// driver if it sleeps and wants it: it asked for this many answers, or `urgent` (a failure,
    /// the worker's start). A parent that is gone ends the worker.
    @discardableResult
    func send(_ frame: [UInt8], urgent: Bool) -> Bool {
        var tail = ring.load(PoolRing.Offset.answerTail)
        var sent = 0
        frame.withUnsafeBytes { raw in
            while sent < raw.count {
                guard let n = ring.produce(.answers, UnsafeRawBufferPointer(rebasing: raw[sent...]), tail: &tail) else {
                    system_writeStderr("multiprocessing: pool worker \(system_getpid()) found its answer ring corrupt; exiting.\n")
                    system__exit(70)
                }
                sent += n
                // Full: the driver must take some first.
                if sent < raw.count && !sleep(until: { ring.available(.answers, head: ring.load(PoolRing.Offset.answerHead)).map { $0 < ring.capacity } ?? true }) {
                    system__exit(0)
                }
            }
        }
        let published = ring.load(PoolRing.Offset.published) &+ 1
        ring.store(PoolRing.Offset.published, published)
        let wakeAt = ring.load(PoolRing.Offset.wakeAt)
        if wakeAt != 0 && (urgent || published >= wakeAt) && ring.exchange(PoolRing.Offset.wakeAt, 0) != 0 {
            PoolWake.poke(fd)
            return true
        }
        return false
    }

    /// Waits until `ready()` holds: wakes the driver first if it sleeps (it may be waiting for
    /// this worker's answers), says that this worker sleeps, looks again, then waits on that word
    /// (a futex; ``PoolRing/wakeWorker()``). False when the driver is done with this worker (its
    /// word, or, looked at once a second, the socket's end): time to end. A wake-up may be
    /// spurious: the caller looks at the ring again.
    private func sleep(until ready: () -> Bool) -> Bool {
        wakeDriverIfItWaits()
        ring.store32(PoolRing.Offset.workerSleeps, 1)
        if ready() {
            ring.store32(PoolRing.Offset.workerSleeps, 0)
            return true
        }
        if ring.load32(PoolRing.Offset.workerClosed) != 0 { return false }
        let woken = (try? system_futexWait(ring.word32(PoolRing.Offset.workerSleeps), expected: 1, timeoutNanoseconds: 1_000_000_000, shared: true)) ?? true
        ring.store32(PoolRing.Offset.workerSleeps, 0)
        if ring.load32(PoolRing.Offset.workerClosed) != 0 { return false }
        return woken || !channelEnded()
    }

    /// Whether the driver's end of the socket is closed (the driver ended without saying so).
    private func channelEnded() -> Bool {
        var scratch = [UInt8](repeating: 0, count: 64)
        let result: Result<Int, Errno> = scratch.withUnsafeMutableBytes { raw in
            do throws(Errno) { return .success(try system_receiveNonBlocking(fd, raw)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let n): return n == 0
        case .failure(let error): return error != .wouldBlock && error != .resourceTemporarilyUnavailable && error != .interrupted
        }
    }

    /// For tests (``PoolSpinTesting/resetWorker()``), from a task this loop runs.
    func resetSpin() { spin = PoolSpin(PoolSpin.worker) }

    /// Wakes the driver (or a direct reader) if it sleeps and asked to be woken.
    private func wakeDriverIfItWaits() {
        if ring.load(PoolRing.Offset.wakeAt) != 0 && ring.exchange(PoolRing.Offset.wakeAt, 0) != 0 { PoolWake.poke(fd) }
    }

    /// A result body: resident bytes and elapsed time (patched by the caller for memory), failures, outputs.
    static func appendReply(_ reply: inout [UInt8], elapsed: Int64, failures: [WireFailure], outputs: [UInt8]) {
        reply.appendLE(UInt64(0))
        reply.appendLE(UInt64(max(0, elapsed)))
        let failureBytes = failures.isEmpty ? [] : ((try? WireEncoder().encode(failures)) ?? [])
        reply.appendLE(UInt32(failureBytes.count))
        reply.append(contentsOf: failureBytes)
        reply.append(contentsOf: outputs)
    }

    func serve() async {
        while true {
            // Run every complete frame in the buffer.
            while end - start >= PoolWire.headerSize {
                let (kind, a, b, length) = buffer.withUnsafeBytes { raw in
                    (raw.loadLE(UInt32.self, at: start), raw.loadLE(UInt32.self, at: start + 4),
                     raw.loadLE(UInt32.self, at: start + 8), Int(raw.loadLE(UInt32.self, at: start + 12)))
                }
                guard length <= PoolWire.maximumBody else {
                    system_writeStderr("multiprocessing: pool worker \(system_getpid()) received a frame of \(length) bytes; exiting.\n")
                    system__exit(70)
                }
                let total = PoolWire.headerSize + length
                if end - start < total {
                    if total > buffer.count - start { grow(to: total) }
                    break
                }
                let body = Array(buffer[(start + PoolWire.headerSize)..<(start + total)])
                start += total
                await handle(kind: kind, a: a, b: b, body: body)
            }
            if start == end { start = 0; end = 0 }
            if end == buffer.count { grow(to: end - start + (1 << 16)) }
            var head = taskHead
            let taken = buffer.withUnsafeMutableBytes { raw in
                ring.consume(.tasks, into: UnsafeMutableRawBufferPointer(rebasing: raw[end...]), head: &head)
            }
            guard let taken else {
                system_writeStderr("multiprocessing: pool worker \(system_getpid()) found its task ring corrupt; exiting.\n")
                system__exit(70)
            }
            taskHead = head
            if taken > 0 {
                end += taken
                // The driver may wait for room to send more.
                if ring.load32(PoolRing.Offset.taskSpaceWanted) != 0 && ring.exchange32(PoolRing.Offset.taskSpaceWanted, 0) != 0 { PoolWake.poke(fd) }
                continue
            }
            // Once after each answer, when the driver allows it (a direct task, and the cores
            // allow it): poll the ring a short while for the caller's next task before sleeping.
            // The sleep flag stays clear meanwhile, so a sender makes no wake-up call. Not when
            // the answer had to wake its reader (it sleeps: no next task soon), nor when the
            // reader last ran on this CPU (it would wait for the spin to end: two processes that
            // wake each other tend to share a CPU when the other one is busy).
            if spinAfterAnswer {
                spinAfterAnswer = false
                if ring.load32(PoolRing.Offset.workerMaySpin) != 0 {
                    wakeDriverIfItWaits()
                    let me = PoolSpin.cpuTag()
                    ring.store32(PoolRing.Offset.workerCPU, me)
                    if answerWokeReader || PoolSpin.sameCPU(ring.load32(PoolRing.Offset.callerCPU), me) {
                        spin.decline()
                    } else {
                        let head = taskHead
                        if spin.spin(until: { (ring.available(.tasks, head: head) ?? 1) > 0 }) { continue }
                    }
                }
            }
            if !sleep(until: { (ring.available(.tasks, head: taskHead) ?? 1) > 0 }) { return } // the pool closed the channel: done
        }
    }

    /// Makes room for `needed` bytes from `start`, moving what is buffered to the front.
    private func grow(to needed: Int) {
        if start > 0 {
            buffer.withUnsafeMutableBytes { raw in
                if let base = raw.baseAddress { base.copyMemory(from: base + start, byteCount: end - start) }
            }
            end -= start
            start = 0
        }
        if needed > buffer.count {
            buffer.append(contentsOf: repeatElement(0, count: needed - buffer.count))
        }
    }

    private func handle(kind: UInt32, a: UInt32, b: UInt32, body: [UInt8]) async {
        switch PoolFrameKind(rawValue: kind) {
        case .function?:
            runners[a] = Self.runner(from: body)
        case .forget?:
            runners[a] = nil
        case .chunk?:
            var reply: [UInt8] = []
            reply.reserveCapacity(PoolWire.headerSize + 64 + body.count)
            PoolWire.appendHeader(&reply, kind: .result, a: a, b: b, length: 0)
            let count = body.count >= 4 ? Int(body.withUnsafeBytes { $0.loadLE(UInt32.self, at: 0) }) : 0
            let runner = runners[a] ?? PoolBrokenRunner(message: "The worker received a chunk of map #\(a) before its function.")
            await runner.run(count: count, inputs: Array(body.dropFirst(4)), reply: &reply)
            finish(&reply)
        case .task?:
            var reply: [UInt8] = []
            PoolWire.appendHeader(&reply, kind: .result, a: a, b: b, length: 0)
            await runTask(body, reply: &reply)
            finish(&reply)
        default:
            // Not ours: the channel is corrupt. End, and let the pool see a dead worker.
            system_writeStderr("multiprocessing: pool worker \(system_getpid()) received an unknown frame kind \(kind); exiting.\n")
            system__exit(70)
        }
    }

    /// Patches the body length and resident bytes into a reply, and sends it.
    private func finish(_ reply: inout [UInt8]) {
        let length = UInt32(reply.count - PoolWire.headerSize)
        withUnsafeBytes(of: length.littleEndian) { bytes in
            for i in 0..<4 { reply[12 + i] = bytes[i] }
        }
        if measureMemory {
            let rss = UInt64(system_residentBytes()).littleEndian
            withUnsafeBytes(of: rss) { bytes in
                for i in 0..<8 { reply[PoolWire.headerSize + i] = bytes[i] }
            }
        }
        // Each answer is published before the next chunk starts: the pool takes the first chunk
        // not answered to be the one a dead worker was running, so none may wait in a buffer here.
        // An answer with failures wakes the driver at once (a map fails early).
        let failed = reply.withUnsafeBytes { $0.count >= PoolWire.headerSize + 20 && $0.loadLE(UInt32.self, at: PoolWire.headerSize + 16) != 0 }
        answerWokeReader = send(reply, urgent: failed)
        spinAfterAnswer = true
    }

    private static func runner(from body: [UInt8]) -> any PoolChunkRunner {
        do {
            return try body.withUnsafeBytes { raw in
                let (name, payload) = try PoolWire.splitNamed(raw)
                guard let type = _typeByName(name) else {
                    return PoolBrokenRunner(message: "The worker could not find the pool function's type by its runtime name. A PoolFunction type must not be private, fileprivate or declared inside a function, and the worker must run a program that contains it.")
                }
                guard let functionType = type as? any PoolFunction.Type else {
                    return PoolBrokenRunner(message: "\(type) does not conform to PoolFunction in the worker's program.")
                }
                return try makeRunner(functionType, payload)
            }
        } catch {
            return PoolBrokenRunner(message: "The worker could not decode the pool function: \(error)")
        }
    }

    private static func makeRunner<F: PoolFunction>(_: F.Type, _ payload: UnsafeRawBufferPointer) throws -> any PoolChunkRunner {
        PoolFunctionRunner(function: try WireDecoder().decode(F.self, from: payload))
    }

    private func runTask(_ body: [UInt8], reply: inout [UInt8]) async {
        let task: any ProcessTask
        do {
            task = try body.withUnsafeBytes { raw throws -> any ProcessTask in
                let (name, payload) = try PoolWire.splitNamed(raw)
                let type: any ProcessTask.Type
                if let known = taskTypes[name] {
                    type = known
                } else {
                    guard let found = _typeByName(name) as? any ProcessTask.Type else {
                        throw MultiprocessingError(.childStartFailed, "The worker could not find the task type by its runtime name, or it is not a ProcessTask there. A task type must not be private, fileprivate or declared inside a function.")
                    }
                    taskTypes[name] = found
                    type = found
                }
                return try WireDecoder().decode(type, from: payload)
            }
        } catch {
            Self.appendReply(&reply, elapsed: 0, failures: [WireFailure(index: 0, kind: .setup, typeName: "", message: "\(error)")], outputs: [])
            return
        }
        let start = system_clockMonotonicNanoseconds()
        let value: any Sendable
        do {
            value = try await task.run()
        } catch {
            Self.appendReply(&reply, elapsed: system_clockMonotonicNanoseconds() - start, failures: [WireFailure(index: 0, thrown: error)], outputs: [])
            return
        }
        let elapsed = system_clockMonotonicNanoseconds() - start
        if value is Void {
            Self.appendReply(&reply, elapsed: elapsed, failures: [], outputs: [])
            return
        }
        guard let encodable = value as? any Encodable else {
            Self.appendReply(&reply, elapsed: elapsed, failures: [WireFailure(index: 0, kind: .unencodableResult, typeName: String(reflecting: type(of: value)), message: "The task's result type \(type(of: value)) is not Encodable.")], outputs: [])
            return
        }
        do {
            Self.appendReply(&reply, elapsed: elapsed, failures: [], outputs: try WireEncoder().encode(encodable))
        } catch {
            Self.appendReply(&reply, elapsed: elapsed, failures: [WireFailure(index: 0, kind: .unencodableResult, typeName: String(reflecting: type(of: value)), message: "The task's result could not be encoded: \(error)")], outputs: [])
        }
    }
}
