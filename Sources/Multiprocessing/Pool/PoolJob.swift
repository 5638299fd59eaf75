import Synchronization

/// Where a job's results go. Called under the pool driver's lock only (on its thread, or on a
/// caller's that reads a direct answer).
protocol PoolJobSink: AnyObject, Sendable {
    /// A worker's answer for tasks `start..<start+count`: decodes the outputs and failures.
    func deliver(start: Int, count: Int, body: UnsafeRawBufferPointer, pid: Int32)
    /// Tasks that failed without an answer (worker death, timeout, cancellation).
    func fail(start: Int, count: Int, error: PoolTaskError)
}

/// The encoded inputs of a job: values back to back, cut into chunks by the driver.
final class PoolInputs: Sendable {
    struct State {
        var bytes: [UInt8] = []
        /// The end of each value in `bytes`; empty when values are raw fixed-width (`stride`).
        var ends: [Int] = []
        var count = 0
        /// No more inputs will be appended.
        var complete = false
        /// The index of the first value still kept (a mapUnordered drops what no worker can need).
        var first = 0
    }
    let stride: Int?
    let state: Mutex<State>

    init(stride: Int?, state: State) {
        self.stride = stride
        self.state = Mutex(state)
    }

    /// Encodes `values` in the caller, so that an input that cannot be encoded fails before dispatch.
    static func encode<T: Encodable>(_ values: some Sequence<T>, firstIndex: Int = 0, into state: inout State) throws {
        if PoolValues.isRaw(T.self) {
            let array = Array(values)
            try PoolValues.append(array, to: &state.bytes)
            state.count += array.count
        } else {
            let before = state.ends.count
            try PoolValues.appendEach(values, to: &state.bytes, ends: &state.ends, firstIndex: firstIndex)
            state.count += state.ends.count - before
        }
    }

    /// The chunk frame for tasks `start..<start+count` of job `id`: its header, the count, then
    /// the tasks' bytes (under one lock: the driver sends one per chunk).
    func appendChunkFrame(id: UInt32, chunk: UInt32, start global: Int, count: Int, into bytes: inout [UInt8]) {
        state.withLock { state in
            let start = global - state.first
            let range: Range<Int>
            if let stride {
                range = (start * stride)..<((start + count) * stride)
            } else {
                range = (start == 0 ? 0 : state.ends[start - 1])..<state.ends[start + count - 1]
            }
            PoolWire.appendHeader(&bytes, kind: .chunk, a: id, b: chunk, length: 4 + range.count)
            bytes.appendLE(UInt32(count))
            state.bytes.withUnsafeBytes { raw in
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[range]))
            }
        }
    }

    var snapshot: (count: Int, complete: Bool) { state.withLock { ($0.count, $0.complete) } }

    /// Drops the values before index `index`, which no worker will be sent again.
    func discard(below index: Int) {
        state.withLock { state in
            let drop = index - state.first
            guard drop > 4096 || (drop > 0 && drop * 2 > state.count - state.first) else { return }
            if let stride {
                state.bytes.removeFirst(drop * stride)
            } else {
                let bytes = state.ends[drop - 1]
                state.bytes.removeFirst(bytes)
                state.ends.removeFirst(drop)
                for i in state.ends.indices { state.ends[i] -= bytes }
            }
            state.first = index
        }
    }
}

/// One map, mapUnordered or submitted task, as the driver sees it.
final class PoolJob: @unchecked Sendable {
    // @unchecked: the `driver*` fields are touched only by the pool's driver thread; the rest is immutable.
    let id: UInt32
    /// The body of the function frame (a map), or nil (a task).
    let functionBody: [UInt8]?
    /// The body of the task frame (a submitted task), or nil (a map).
    let taskBody: [UInt8]?
    let inputs: PoolInputs?
    let chunking: Chunking
    let sink: any PoolJobSink
    /// The window of mapUnordered: at most this many tasks dispatched and not yet consumed.
    let window: PoolWindow?

    /// A submitted task its caller sent straight to an idle worker (``PoolDriver/trySendDirectly(_:)``):
    /// who reads its answer. ``PoolDirect`` values; changed only by compare-and-swap.
    let direct = Atomic<UInt8>(PoolDirect.none)
    /// The slot and descriptor it went to (written under the driver's lock before `direct` is set).
    var directSlot = 0
    var directFD: Int32 = -1
    /// Whether its blocking reader may spin for the answer before it sleeps (the cores allow it).
    var directSpin = false
    /// Whether its worker slept when it was sent (it was woken, wherever the scheduler puts it).
    var directWokeWorker = false

    // driver-only (or whoever holds the driver's lock)
    var dispatched = 0
    var answered = 0
    var nanosecondsPerTask: Double?
    var cancelledAt: Int64?
    var probe = 1

    init(id: UInt32, functionBody: [UInt8]?, taskBody: [UInt8]?, inputs: PoolInputs?, chunking: Chunking, sink: any PoolJobSink, window: PoolWindow? = nil) {
        self.id = id
        self.functionBody = functionBody
        self.taskBody = taskBody
        self.inputs = inputs
        self.chunking = chunking
        self.sink = sink
        self.window = window
    }

    var taskCount: (count: Int, complete: Bool) {
        if let inputs { return inputs.snapshot }
        return (1, true)
    }
}

/// Who reads the answer of a task sent directly to a worker.
enum PoolDirect {
    /// Not sent directly (or settled): the driver reads it like any other.
    static let none: UInt8 = 0
    /// Sent directly; nobody has claimed the answer yet. The driver does not poll that worker.
    static let unclaimed: UInt8 = 1
    /// A blocking `get()` reads the answer on its own thread.
    static let reader: UInt8 = 2
    /// Handed to the driver (an async wait, a callback, or any driver round that saw it first).
    static let driver: UInt8 = 3
}

/// How many results of a mapUnordered the consumer has taken, so that dispatch stays within its window.
final class PoolWindow: Sendable {
    let size: Int
    let consumed = Atomic<Int>(0)
    init(size: Int) { self.size = size }
}

/// A one-time completion that a blocking or an async caller waits for.
final class PoolCompletion: Sendable {
    private let flag = OneShot()
    private let waiters = Mutex<(done: Bool, next: UInt64, continuations: [UInt64: CheckedContinuation<Void, Never>])>((false, 0, [:]))

    var isDone: Bool { flag.isSet }

    func complete() {
        let continuations = waiters.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.done = true
            let all = Array(state.continuations.values)
            state.continuations = [:]
            return all
        }
        flag.set()
        for continuation in continuations { continuation.resume() }
    }

    func wait() { _ = flag.wait(until: .never) }

    /// Waits; returns early (false) when the task is cancelled.
    func wait() async -> Bool {
        let key = waiters.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = waiters.withLock { state -> Bool in
                    if state.done || Task.isCancelled { return true }
                    state.continuations[key] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let continuation = waiters.withLock { $0.continuations.removeValue(forKey: key) }
            continuation?.resume()
        }
        return flag.isSet
    }
}

/// Decodes a worker's answer: (failures by index in the chunk, the outputs' bytes, elapsed ns, resident bytes).
struct PoolReply {
    var residentBytes: Int
    var elapsed: Int64
    var failures: [WireFailure]
    var outputs: UnsafeRawBufferPointer

    init(_ body: UnsafeRawBufferPointer) throws {
        guard body.count >= 20 else { throw MultiprocessingError(.malformedFrame, "A pool worker's answer is shorter than its header.") }
        residentBytes = Int(truncatingIfNeeded: body.loadLE(UInt64.self, at: 0))
        elapsed = Int64(truncatingIfNeeded: body.loadLE(UInt64.self, at: 8))
        let failureLength = Int(body.loadLE(UInt32.self, at: 16))
        guard failureLength <= body.count - 20 else { throw MultiprocessingError(.malformedFrame, "A pool worker's answer lists failures past its end.") }
        failures = failureLength == 0 ? [] : try WireDecoder().decode([WireFailure].self, from: UnsafeRawBufferPointer(rebasing: body[20..<(20 + failureLength)]))
        outputs = UnsafeRawBufferPointer(rebasing: body[(20 + failureLength)...])
    }

    /// The task error for a failure in a chunk that starts at `start`.
    static func error(_ failure: WireFailure, start: Int, pid: Int32) -> PoolTaskError {
        let index = start + failure.index
        switch failure.kind {
        case .threw:
            return PoolTaskError(code: .childFailed, message: "Task \(index) threw in pool worker \(pid): \(failure.message)", indices: [index], pid: pid,
                                 remoteTypeName: failure.typeName, remoteError: failure.decodedError)
        case .unencodableResult:
            return PoolTaskError(code: .coding, message: "The result of task \(index) could not be sent back by pool worker \(pid): \(failure.message)", indices: [index], pid: pid,
                                 remoteTypeName: failure.typeName.isEmpty ? nil : failure.typeName)
        case .setup:
            return PoolTaskError(code: .childStartFailed, message: "Pool worker \(pid) could not run task \(index): \(failure.message)", indices: [index], pid: pid)
        }
    }
}

/// The results of a map: chunks of outputs as they arrive, and failures by index.
final class PoolMapSink<Output: Codable & Sendable>: PoolJobSink, @unchecked Sendable {
    // @unchecked: `chunks` and `failures` are written by the driver thread only, and read by the
    // caller only after `completion` (whose futex and lock order the accesses).
    let count: Int
    let completion = PoolCompletion()
    private var chunks: [(start: Int, outputs: [Output])] = []
    /// Each chunk's start, beside `chunks`: the chunks are put in order by sorting these plain
    /// integers (sorting the tuples themselves copied, retained and released each chunk's array
    /// many times over: a fifth of a chunk-size-1 map's time).
    private var starts: [Int] = []
    private var failures: [Int: PoolTaskError] = [:]
    private var answered = 0
    /// For mapUnordered: each result as it arrives, instead of keeping them.
    let stream: PoolStream<Output>?
    /// For fixed-width outputs (`Int`, `Double` ...) of a map: every output's bytes at its index
    /// (`stride` bytes each), so that an answer costs one copy and no generic code (this class is
    /// not specialized: each array or tuple of `Output` made per chunk cost metadata look-ups, a
    /// third of the driver's time at chunk size 1). Nil otherwise (`chunks` then).
    private var raw: [UInt8]?
    private let stride: Int

    init(count: Int, stream: PoolStream<Output>? = nil) {
        self.count = count
        self.stream = stream
        stride = MemoryLayout<Output>.stride
        if stream == nil && PoolValues.isRaw(Output.self) { raw = [UInt8](repeating: 0, count: count * stride) }
        if count == 0 && stream == nil { completion.complete() }
    }

    /// An answer of fixed-width outputs: copied to their places. False when its size is wrong.
    private func deliverRaw(start: Int, count: Int, reply: PoolReply, pid: Int32) -> Bool {
        guard reply.outputs.count == (count - reply.failures.count) * stride, raw != nil else { return false }
        raw?.withUnsafeMutableBytes { target in
            guard let base = target.baseAddress, let source = reply.outputs.baseAddress else { return }
            if reply.failures.isEmpty {
                (base + start * stride).copyMemory(from: source, byteCount: count * stride)
                return
            }
            var next = 0
            var failureAt = 0
            for offset in 0..<count {
                if failureAt < reply.failures.count, reply.failures[failureAt].index == offset {
                    failureAt += 1
                } else {
                    (base + (start + offset) * stride).copyMemory(from: source + next * stride, byteCount: stride)
                    next += 1
                }
            }
        }
        for failure in reply.failures { failures[start + failure.index] = PoolReply.error(failure, start: start, pid: pid) }
        return true
    }

    func deliver(start: Int, count: Int, body: UnsafeRawBufferPointer, pid: Int32) {
        do {
            let reply = try PoolReply(body)
            if raw != nil {
                guard deliverRaw(start: start, count: count, reply: reply, pid: pid) else {
                    throw MultiprocessingError(.malformedFrame, "A pool chunk holds \(reply.outputs.count) bytes for \(count - reply.failures.count) values of \(Output.self) (\(stride) bytes each).")
                }
                answered += count
                if answered == self.count { completion.complete() }
                return
            }
            let outputs = try PoolValues.decode(Output.self, count: count - reply.failures.count, from: reply.outputs)
            if let stream {
                var next = 0
                var failureAt = 0
                for offset in 0..<count {
                    if failureAt < reply.failures.count, reply.failures[failureAt].index == offset {
                        stream.yield(start + offset, .failure(PoolReply.error(reply.failures[failureAt], start: start, pid: pid)))
                        failureAt += 1
                    } else {
                        stream.yield(start + offset, .success(outputs[next]))
                        next += 1
                    }
                }
                return
            }
            if reply.failures.isEmpty {
                chunks.append((start, outputs))
                starts.append(start)
            } else {
                var next = 0
                var failureAt = 0
                for offset in 0..<count {
                    if failureAt < reply.failures.count, reply.failures[failureAt].index == offset {
                        failures[start + offset] = PoolReply.error(reply.failures[failureAt], start: start, pid: pid)
                        failureAt += 1
                    } else {
                        chunks.append((start + offset, [outputs[next]]))
                        starts.append(start + offset)
                        next += 1
                    }
                }
            }
        } catch {
            fail(start: start, count: count, error: PoolTaskError(code: .coding, message: "Could not decode the results of tasks \(start)..<\(start + count) from pool worker \(pid): \(error)",
                                                                 indices: Array(start..<(start + count)), pid: pid))
            return
        }
        answered += count
        if answered == self.count { completion.complete() }
    }

    func fail(start: Int, count: Int, error: PoolTaskError) {
        if let stream {
            for index in start..<(start + count) { stream.yield(index, .failure(error.narrowed(to: [index]))) }
            return
        }
        for index in start..<(start + count) { failures[index] = error }
        answered += count
        if answered == self.count { completion.complete() }
    }

    /// After completion: every output in order, or the failure of the lowest failed index.
    func outputs() throws(PoolTaskError) -> [Output] {
        if let first = failures.keys.min(), let error = failures[first] { throw error }
        if let raw { return rawOutputs(raw) }
        var all: [Output] = []
        all.reserveCapacity(count)
        for position in order() { all.append(contentsOf: chunks[position].outputs) }
        return all
    }

    /// The positions of `chunks` in the order of their starts.
    private func order() -> [Int] {
        if zip(starts, starts.dropFirst()).allSatisfy({ $0 < $1 }) { return Array(starts.indices) }
        let starts = self.starts
        return starts.indices.sorted { starts[$0] < starts[$1] }
    }

    /// Every output laid out in `raw`, as an array (one copy).
    private func rawOutputs(_ raw: [UInt8]) -> [Output] {
        [Output](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { raw.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) } }
            initialized = count
        }
    }

    /// After completion: each task's result, in order.
    func results() -> [Result<Output, PoolTaskError>] {
        if let raw {
            let outputs = rawOutputs(raw)
            return (0..<count).map { index in failures[index].map { .failure($0.narrowed(to: [index])) } ?? .success(outputs[index]) }
        }
        chunks = order().map { chunks[$0] }
        starts.sort()
        var all: [Result<Output, PoolTaskError>] = []
        all.reserveCapacity(count)
        var chunkAt = 0
        var offset = 0
        for index in 0..<count {
            if let error = failures[index] {
                all.append(.failure(error.narrowed(to: [index])))
                continue
            }
            while chunkAt < chunks.count && offset >= chunks[chunkAt].outputs.count { chunkAt += 1; offset = 0 }
            all.append(.success(chunks[chunkAt].outputs[offset]))
            offset += 1
        }
        return all
    }
}

/// The result of one submitted task.
final class PoolTaskSink<Output: Sendable>: PoolJobSink, Sendable {
    let completion = PoolCompletion()
    private let stored = Mutex<Result<Output, PoolTaskError>?>(nil)
    /// The result, once there is one (the driver's, or a cancellation's, whichever came first).
    var result: Result<Output, PoolTaskError>? { stored.withLock { $0 } }
    private let decode: @Sendable (UnsafeRawBufferPointer) throws -> Output
    let onDone = Mutex<[@Sendable (Result<Output, PoolTaskError>) -> Void]>([])
    /// Where the callbacks run (``PoolCallbacks``: off the completing thread); nil runs them on it.
    private let callbacks: PoolCallbacks?

    init(decode: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Output, callbacks: PoolCallbacks? = nil) {
        self.decode = decode
        self.callbacks = callbacks
    }

    func deliver(start: Int, count: Int, body: UnsafeRawBufferPointer, pid: Int32) {
        do {
            let reply = try PoolReply(body)
            if let failure = reply.failures.first {
                finish(.failure(PoolReply.error(failure, start: start, pid: pid)))
            } else {
                finish(.success(try decode(reply.outputs)))
            }
        } catch {
            finish(.failure(PoolTaskError(code: .coding, message: "Could not decode the task's result from pool worker \(pid): \(error)", indices: [start], pid: pid)))
        }
    }

    func fail(start: Int, count: Int, error: PoolTaskError) {
        finish(.failure(error))
    }

    /// Sets the result directly (a thread pool's task).
    func resolve(_ result: Result<Output, PoolTaskError>) { finish(result) }

    private func finish(_ result: Result<Output, PoolTaskError>) {
        let first = stored.withLock { stored -> Bool in
            guard stored == nil else { return false }
            stored = result
            return true
        }
        guard first else { return }
        completion.complete()
        let callbacks = onDone.withLock { callbacks in
            defer { callbacks = [] }
            return callbacks
        }
        if let runner = self.callbacks {
            runner.run(callbacks, with: result)
        } else {
            for callback in callbacks { callback(result) }
        }
    }
}

/// The buffer between the driver and a mapUnordered consumer.
final class PoolStream<Output: Sendable>: Sendable {
    struct State {
        var buffered: [(Int, Result<Output, PoolTaskError>)] = []
        var head = 0
        var waiter: CheckedContinuation<Void, Never>?
    }
    let state = Mutex(State())

    func yield(_ index: Int, _ result: Result<Output, PoolTaskError>) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.buffered.append((index, result))
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Takes the next buffered result, if any.
    func take() -> (Int, Result<Output, PoolTaskError>)? {
        state.withLock { state in
            guard state.head < state.buffered.count else { return nil }
            let item = state.buffered[state.head]
            state.head += 1
            if state.head > 1024 && state.head * 2 > state.buffered.count {
                state.buffered.removeFirst(state.head)
                state.head = 0
            }
            return item
        }
    }

    /// Waits until something is buffered (or the task is cancelled).
    func waitForItem() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.head < state.buffered.count || Task.isCancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}
