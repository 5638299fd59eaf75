// Functions and tasks for the ProcessPool suites (Tests/MultiprocessingTests/PoolTests.swift).
import Glibc
public import Multiprocessing

/// x → x * x, the trivial task.
public struct PoolSquare: PoolFunction {
    public init() {}
    public func run(_ x: Int) -> Int { x * x }
}

/// Sleeps `milliseconds`, then returns the input and the worker's pid.
public struct PoolSleepThenTell: PoolFunction {
    public var milliseconds: Int
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    public struct Answer: Codable, Sendable, Hashable {
        public var input: Int
        public var pid: Int32
    }
    public func run(_ x: Int) -> Answer {
        if milliseconds > 0 { usleep(UInt32(milliseconds * 1000)) }
        return Answer(input: x, pid: getpid())
    }
}

/// A Codable error, to come back whole.
public struct PoolOddError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public var value: Int
    public init(value: Int) { self.value = value }
    public var description: String { "\(value) is odd" }
}

/// Throws `PoolOddError` for odd inputs.
public struct PoolEvenOnly: PoolFunction {
    public init() {}
    public func run(_ x: Int) throws -> Int {
        if x % 2 != 0 { throw PoolOddError(value: x) }
        return x / 2
    }
}

/// A result whose encoding throws when `poisoned` is set.
public struct PoolFragile: Codable, Sendable, Equatable {
    public var value: Int
    public var poisoned: Bool
    public init(value: Int, poisoned: Bool) {
        self.value = value
        self.poisoned = poisoned
    }
    struct Refused: Error, CustomStringConvertible { var description: String { "this result refuses to be encoded" } }
    public func encode(to encoder: any Encoder) throws {
        if poisoned { throw Refused() }
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Int.self)
        poisoned = false
    }
}

/// Returns a result that cannot be encoded for multiples of `every`.
public struct PoolSometimesUnencodable: PoolFunction {
    public var every: Int
    public init(every: Int) { self.every = every }
    public func run(_ x: Int) -> PoolFragile { PoolFragile(value: x, poisoned: x % every == 0) }
}

/// An initializer that throws.
public struct PoolFailingInitializer: ProcessTask {
    public init() {}
    public func run() throws { throw PoolOddError(value: 7) }
}

/// An initializer that sets a process-wide value the function reads back.
public struct PoolSetGreeting: ProcessTask {
    public var greeting: String
    public init(greeting: String) { self.greeting = greeting }
    public func run() { PoolGreeting.value = greeting }
}

public enum PoolGreeting {
    nonisolated(unsafe) public static var value = "unset"
}

/// Returns the greeting the initializer set in this worker.
public struct PoolReadGreeting: PoolFunction {
    public init() {}
    public func run(_ x: Int) -> String { "\(PoolGreeting.value) \(x)" }
}

/// A task for submit: returns the worker's pid plus `add`.
public struct PoolPidTask: ProcessTask {
    public var add: Int32
    public init(add: Int32) { self.add = add }
    public func run() -> Int32 { getpid() + add }
}

/// Traps in the worker for one input (a task that kills its worker), otherwise returns the input.
public struct PoolCrashOn: PoolFunction {
    public var poison: Int
    public init(poison: Int) { self.poison = poison }
    public func run(_ x: Int) -> Int {
        if x == poison { kill(getpid(), SIGKILL) }
        return x
    }
}

/// Leaks `megabytes` of touched memory per task, and returns the input.
public struct PoolLeak: PoolFunction {
    public var megabytes: Int
    public init(megabytes: Int) { self.megabytes = megabytes }
    public func run(_ x: Int) -> Int {
        let size = megabytes << 20
        if let memory = malloc(size) { memset(memory, 1, size) } // never freed: the leak
        return x
    }
}

/// Sleeps for a long time on one input only.
public struct PoolSleepThenTellSlowOn: PoolFunction {
    public var slow: Int
    public var milliseconds: Int
    public init(slow: Int, milliseconds: Int) {
        self.slow = slow
        self.milliseconds = milliseconds
    }
    public func run(_ x: Int) -> Int {
        if x == slow { usleep(UInt32(milliseconds * 1000)) }
        return x
    }
}

/// A submitted task that sleeps.
public struct PoolSleepTask: ProcessTask {
    public var milliseconds: Int
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    public func run() { usleep(UInt32(milliseconds * 1000)) }
}

/// A parent of a pool: starts one, writes its worker pids to `path` (one line, space-separated),
/// then maps long tasks until it is killed.
public struct PoolParentScenario: ProcessTask {
    public var path: String
    public init(path: String) { self.path = path }
    public func run() throws {
        let pool = try ProcessPool(workers: 2)
        let line = pool.workerPIDs.map(String.init).joined(separator: " ") + "\n"
        let fd = open(path + ".tmp", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
        rename(path + ".tmp", path)
        _ = try pool.map(PoolSleepThenTell(milliseconds: 60_000), over: 0..<4, chunking: .fixed(1))
    }
}

/// A string's length in bytes.
public struct PoolLength: PoolFunction {
    public init() {}
    public func run(_ text: String) -> Int { text.utf8.count }
}
