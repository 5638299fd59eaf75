import Synchronization

// A map whose function, inputs and outputs stay bytes: for a caller that only carries them, the MPI
// pool's serving ranks (MultiprocessingMPI). Rank 0 encodes a chunk's inputs in the pool's own
// layout (``PoolValues``); a serving rank hands those bytes to its local workers' rings unchanged
// and sends their encoded answers back, never decoding a value: the function's types are known
// there only at run time, and the typed path (decode, `mapResults`, one `Result` per task,
// re-encode) ran unspecialized, 28% of a map's samples.

/// A map's values in the pool's layout: raw memory for fixed-width numbers (`Int`, `Double` ...),
/// else each value's wire bytes one after another, with each one's end.
package struct PoolEncodedValues: Sendable {
    /// The values, back to back.
    package var bytes: [UInt8]
    /// How many values.
    package var count: Int
    /// The width of each value when they are raw; nil when they are wire-encoded.
    package var stride: Int?
    /// The end of each value in ``bytes`` (wire-encoded values only; empty when raw).
    package var ends: [Int]

    /// Checks that the layout is whole (the ends rise and reach the last byte, or the bytes are
    /// `count` values of `stride`), so a malformed message fails here, not in the pool's driver.
    /// - Throws: `MultiprocessingError` (``MultiprocessingError/Code/malformedFrame``) naming what is wrong.
    package init(bytes: [UInt8], count: Int, stride: Int?, ends: [Int]) throws {
        guard count >= 0 else { throw MultiprocessingError(.malformedFrame, "Encoded pool values: a count of \(count).") }
        if let stride {
            guard stride > 0, ends.isEmpty, bytes.count == count * stride else {
                throw MultiprocessingError(.malformedFrame, "Encoded pool values: \(bytes.count) bytes are not \(count) values of \(stride) bytes.")
            }
        } else {
            guard ends.count == count, (ends.last ?? 0) == bytes.count else {
                throw MultiprocessingError(.malformedFrame, "Encoded pool values: \(ends.count) ends for \(count) values, the last at \(ends.last ?? 0) of \(bytes.count) bytes.")
            }
            var previous = 0
            for end in ends {
                guard end >= previous else { throw MultiprocessingError(.malformedFrame, "Encoded pool values: the ends of the values do not rise (\(end) after \(previous)).") }
                previous = end
            }
        }
        self.bytes = bytes
        self.count = count
        self.stride = stride
        self.ends = ends
    }

    private init(unchecked bytes: [UInt8], count: Int, stride: Int?, ends: [Int]) {
        self.bytes = bytes
        self.count = count
        self.stride = stride
        self.ends = ends
    }

    /// Encodes `values` in this thread.
    /// - Throws: `MultiprocessingError` (``MultiprocessingError/Code/coding``) naming the first
    ///   value that cannot be encoded.
    package static func encode<T: Encodable>(_ values: some Sequence<T>) throws -> PoolEncodedValues {
        var state = PoolInputs.State()
        try PoolInputs.encode(values, into: &state)
        return PoolEncodedValues(unchecked: state.bytes, count: state.count, stride: PoolValues.isRaw(T.self) ? MemoryLayout<T>.stride : nil, ends: state.ends)
    }

    /// The width of `T` when the pool lays it out raw, nil when it is wire-encoded.
    package static func stride<T>(of _: T.Type) -> Int? { PoolValues.isRaw(T.self) ? MemoryLayout<T>.stride : nil }

    /// Decodes `count` values of `T` laid out back to back (outputs as a worker sends them).
    /// - Throws: `MultiprocessingError` (``MultiprocessingError/Code/malformedFrame``) when the
    ///   bytes are not `count` whole values, or the decoder's error.
    package static func decode<T: Decodable>(_ type: T.Type, count: Int, from bytes: UnsafeRawBufferPointer) throws -> [T] {
        try PoolValues.decode(type, count: count, from: bytes)
    }

    /// Where values `range` lie in ``bytes``.
    package func byteRange(_ range: Range<Int>) -> Range<Int> {
        if let stride { return (range.lowerBound * stride)..<(range.upperBound * stride) }
        guard !range.isEmpty else { return 0..<0 }
        return (range.lowerBound == 0 ? 0 : ends[range.lowerBound - 1])..<ends[range.upperBound - 1]
    }
}

/// What a map of encoded values gives back: the outputs of the tasks that did not fail, in order
/// and back to back as the workers encoded them; the failures by index; the workers' time.
package struct PoolEncodedOutcome: Sendable {
    /// The outputs of the tasks not in ``failures``, in the inputs' order.
    package var outputs: [UInt8]
    /// Each failed task's error, by index in the map, lowest first.
    package var failures: [(index: Int, error: PoolTaskError)]
    /// The sum of the workers' running times for the tasks that answered, in nanoseconds.
    package var workerNanoseconds: Int64
}

extension ProcessPool {
    /// Runs the function named `functionName` (a mangled type name, as `_mangledTypeName` gives)
    /// and encoded as `functionBytes` over `inputs`, in the workers, as `mapResults` would; calls
    /// `done` once, with the outcome, when every task has answered or failed. `done` runs on the
    /// pool's driver thread (or this one, when there is nothing to run), under its lock: keep it short.
    ///
    /// Workers that die, retries, recycling and timeouts are the pool's as for any map: a worker
    /// that dies fails its tasks with `childDied`. A function no worker can find or decode fails
    /// every task (``MultiprocessingError/Code/childStartFailed``).
    /// - Parameter nanosecondsPerTask: What a task is expected to cost in a worker (an earlier
    ///   map's figure), so the first chunks are sized from it instead of probing from one task.
    /// - Throws: `MultiprocessingError` (``MultiprocessingError/Code/closed``) when the pool takes no
    ///   new work; ``MultiprocessingError/Code/misuse`` for a fixed chunk size below 1.
    package func mapEncoded(functionName: String, functionBytes: [UInt8], inputs: PoolEncodedValues, chunking: Chunking,
                            nanosecondsPerTask: Double? = nil, done: @escaping @Sendable (PoolEncodedOutcome) -> Void) throws {
        if case .fixed(let size) = chunking, size < 1 { throw MultiprocessingError.misuse("A fixed chunk size must be at least 1; \(size) was given.") }
        let id = try encodedJobID()
        guard inputs.count > 0 else {
            done(PoolEncodedOutcome(outputs: [], failures: [], workerNanoseconds: 0))
            return
        }
        let stored = PoolInputs(stride: inputs.stride, state: .init(bytes: inputs.bytes, ends: inputs.ends, count: inputs.count, complete: true, first: 0))
        let sink = PoolEncodedSink(count: inputs.count, done: done)
        let job = PoolJob(id: id, functionBody: PoolWire.namedBody(functionName, functionBytes), taskBody: nil, inputs: stored, chunking: chunking, sink: sink)
        if let nanosecondsPerTask, nanosecondsPerTask > 0 { job.nanosecondsPerTask = nanosecondsPerTask }
        if !driver.trySendDirectly(job) { driver.send(.job(job)) }
    }

    private func encodedJobID() throws -> UInt32 {
        try state.withLock { state in
            guard !state.closed else { throw MultiprocessingError(.closed, "This ProcessPool is closed (or terminated): it takes no new work.") }
            defer { state.nextJob &+= 1; if state.nextJob == 0 { state.nextJob = 1 } }
            return state.nextJob
        }
    }
}

/// Collects a map's answers as bytes: each worker's outputs as they came, by the chunk's start.
final class PoolEncodedSink: PoolJobSink, @unchecked Sendable {
    // @unchecked: every field but `done` is touched only under the pool driver's lock (deliver, fail).
    private let count: Int
    private let done: @Sendable (PoolEncodedOutcome) -> Void
    private var pieces: [(start: Int, outputs: [UInt8])] = []
    private var failures: [(index: Int, error: PoolTaskError)] = []
    private var answered = 0
    private var workerNanoseconds: Int64 = 0

    init(count: Int, done: @escaping @Sendable (PoolEncodedOutcome) -> Void) {
        self.count = count
        self.done = done
    }

    func deliver(start: Int, count: Int, body: UnsafeRawBufferPointer, pid: Int32) {
        do {
            let reply = try PoolReply(body)
            for failure in reply.failures {
                guard failure.index >= 0, failure.index < count else {
                    throw MultiprocessingError(.malformedFrame, "a failure at index \(failure.index) of a chunk of \(count)")
                }
                failures.append((start + failure.index, PoolReply.error(failure, start: start, pid: pid)))
            }
            if reply.failures.count < count { pieces.append((start, Array(reply.outputs))) }
            workerNanoseconds += max(0, reply.elapsed)
        } catch {
            fail(start: start, count: count, error: PoolTaskError(code: .coding, message: "Could not read the results of tasks \(start)..<\(start + count) from pool worker \(pid): \(error)",
                                                                 indices: Array(start..<(start + count)), pid: pid))
            return
        }
        answered += count
        finishIfDone()
    }

    func fail(start: Int, count: Int, error: PoolTaskError) {
        for index in start..<(start + count) { failures.append((index, error.narrowed(to: [index]))) }
        answered += count
        finishIfDone()
    }

    private func finishIfDone() {
        guard answered == count else { return }
        pieces.sort { $0.start < $1.start }
        var outputs: [UInt8] = []
        outputs.reserveCapacity(pieces.reduce(0) { $0 + $1.outputs.count })
        for piece in pieces { outputs.append(contentsOf: piece.outputs) }
        failures.sort { $0.index < $1.index }
        let outcome = PoolEncodedOutcome(outputs: outputs, failures: failures, workerNanoseconds: workerNanoseconds)
        pieces = []
        failures = []
        done(outcome)
    }
}
