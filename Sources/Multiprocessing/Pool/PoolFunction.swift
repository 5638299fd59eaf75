/// The function a pool maps over its inputs: a value, so that it can be sent to a worker process.
///
/// Python's `pool.map(f, xs)` sends `f` by name; here the function is a `Codable` value whose stored
/// properties are its fixed arguments (Python's `functools.partial`), and ``run(_:)`` is its body.
/// A worker finds the type by its runtime name, as it finds a ``ProcessTask``: declare it at the
/// top level or nested in a type, not `private` nor inside a function.
///
/// ```swift
/// struct Square: PoolFunction {
///     func run(_ x: Int) -> Int { x * x }
/// }
/// let squares = try await pool.map(Square(), over: 0..<10)
/// ```
///
/// For several arguments (Python's `starmap`), make ``Input`` a struct or a tuple-like `Codable` value.
public protocol PoolFunction: Codable, Sendable {
    /// One task's argument.
    associatedtype Input: Codable & Sendable
    /// One task's result.
    associatedtype Output: Codable & Sendable

    /// Computes one result. It may throw: that task alone fails, with the error's type name,
    /// message and, when the error is `Codable`, the error itself (``PoolTaskError/remoteError``).
    func run(_ input: Input) async throws -> Output

    /// Runs a chunk of inputs in a worker. Don't implement it: the default implementation is
    /// inlined into the module that declares the conformance, where it calls ``run(_:)`` with the
    /// concrete types (a worker finds the function only at run time, so without it each call
    /// would go through unspecialized generic code, several times slower for tiny tasks).
    func _runChunk(_ inputs: [Input]) async -> _PoolChunkOutcome<Output>
}

/// What `_runChunk(_:)` returns: the outputs of the tasks that did not throw, and
/// the errors of those that did, by position in the chunk. An implementation detail.
public struct _PoolChunkOutcome<Output> {
    public var outputs: [Output]
    public var failures: [(index: Int, error: any Error)]

    @inlinable
    public init(outputs: [Output], failures: [(index: Int, error: any Error)]) {
        self.outputs = outputs
        self.failures = failures
    }
}

extension _PoolChunkOutcome: Sendable where Output: Sendable {}

extension PoolFunction {
    @inlinable
    public func _runChunk(_ inputs: [Input]) async -> _PoolChunkOutcome<Output> {
        var outputs: [Output] = []
        outputs.reserveCapacity(inputs.count)
        var failures: [(index: Int, error: any Error)] = []
        for index in inputs.indices {
            do {
                outputs.append(try await run(inputs[index]))
            } catch {
                failures.append((index, error))
            }
        }
        return _PoolChunkOutcome(outputs: outputs, failures: failures)
    }

    /// Calls ``run(_:)``, so a pool function can be called as a function in this process too.
    public func callAsFunction(_ input: Input) async throws -> Output { try await run(input) }
}

/// What a pool does with the tasks a dying worker held.
public enum WorkerDeathPolicy: Sendable, Hashable {
    /// Those tasks fail with ``PoolTaskError`` (code ``MultiprocessingError/Code/childDied``),
    /// naming the pid, the exit status and the task indices. The default.
    case fail
    /// Each of those tasks runs again, alone, up to this many more times; it fails as with
    /// ``fail`` when its worker dies on every attempt (a task that kills its worker).
    case retry(Int)
}

/// When a pool replaces a worker with a fresh process (Python's `maxtasksperchild`).
public struct Recycling: Sendable, Hashable {
    /// Replace a worker after it has run this many tasks; nil for never.
    public var afterTasks: Int?
    /// Replace a worker whose resident memory, measured after each chunk, exceeds this many
    /// bytes; nil for never.
    public var aboveResidentBytes: Int?

    /// A recycling rule.
    /// - Parameters:
    ///   - afterTasks: Replace a worker after this many tasks; nil for never.
    ///   - aboveResidentBytes: Replace a worker above this resident memory size; nil for never.
    public init(afterTasks: Int? = nil, aboveResidentBytes: Int? = nil) {
        self.afterTasks = afterTasks
        self.aboveResidentBytes = aboveResidentBytes
    }

    /// Workers live as long as the pool.
    public static let never = Recycling()
    /// Replace each worker after `count` tasks (Python's `maxtasksperchild=count`).
    public static func after(tasks count: Int) -> Recycling { Recycling(afterTasks: count) }
    /// Replace each worker whose resident memory exceeds `bytes`.
    public static func above(residentBytes bytes: Int) -> Recycling { Recycling(aboveResidentBytes: bytes) }
}

/// How a pool cuts a map's inputs into the chunks it sends to workers (Python's `chunksize`).
public enum Chunking: Sendable, Hashable {
    /// Measure the tasks' cost and aim at about a millisecond of work per chunk, with smaller
    /// chunks at the end so that no worker sits idle while another finishes a long chunk. The default.
    case adaptive
    /// Chunks of this many tasks (the last may be smaller).
    case fixed(Int)
}

/// Why one task of a pool failed. Every other task of the same map is unaffected.
public struct PoolTaskError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure, from the module's codes:
    /// - ``MultiprocessingError/Code/childFailed``: the task threw (``remoteTypeName``, ``remoteError``);
    /// - ``MultiprocessingError/Code/childDied``: its worker died (``pid``, ``exitStatus``);
    /// - ``MultiprocessingError/Code/coding``: its result could not be encoded or decoded;
    /// - ``MultiprocessingError/Code/timedOut``: it ran past the pool's task timeout (its worker was killed);
    /// - ``MultiprocessingError/Code/childStartFailed``: no worker could run it (the initializer
    ///   threw, or the function type is unknown to the worker's program);
    /// - ``MultiprocessingError/Code/cancelled``: the pool was terminated before it ran.
    public var code: MultiprocessingError.Code
    /// What happened, naming the worker, the signal or exit code, and the tasks.
    public var message: String
    /// The indices, in the map's input, of the tasks that failed with this error.
    public var indices: [Int]
    /// The worker's process id, when a worker was involved.
    public var pid: Int32?
    /// How the worker ended, for ``MultiprocessingError/Code/childDied`` and ``MultiprocessingError/Code/timedOut``.
    public var exitStatus: ExitStatus?
    /// The Swift type name of the error the task threw.
    public var remoteTypeName: String?
    /// The error the task threw, decoded in this process, when its type is `Codable` and known here.
    public var remoteError: (any Error)?

    public init(code: MultiprocessingError.Code, message: String, indices: [Int] = [], pid: Int32? = nil,
                exitStatus: ExitStatus? = nil, remoteTypeName: String? = nil, remoteError: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.indices = indices
        self.pid = pid
        self.exitStatus = exitStatus
        self.remoteTypeName = remoteTypeName
        self.remoteError = remoteError
    }

    public var description: String {
        var text = message
        if let remoteTypeName { text += " [\(remoteTypeName)]" }
        return text
    }

    /// The same error, for the tasks at `indices` alone.
    func narrowed(to indices: [Int]) -> PoolTaskError {
        var copy = self
        copy.indices = indices
        return copy
    }
}
