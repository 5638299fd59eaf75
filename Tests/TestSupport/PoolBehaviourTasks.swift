// Functions, tasks and helper-binary scenarios for the pool's behaviour suites
// (Tests/MultiprocessingTests/PoolBehaviourTests.swift): SIGINT in a real parent, a map that fails
// early, uneven tasks against the lower bound.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing
import Synchronization

/// Sleeps `milliseconds` (the input) and returns how long it really took, in nanoseconds, as
/// measured in the worker: the test's lower bound is computed from what the tasks really took, so
/// that a late wake-up on a loaded machine is not counted against the pool.
public struct PoolTimedSleep: PoolFunction {
    public init() {}
    public func run(_ milliseconds: Int) -> Int64 {
        let start = monotonicNanoseconds()
        var left = Int64(milliseconds) * 1_000_000
        while left > 0 {
            usleep(UInt32(max(1, left / 1000)))
            left = Int64(milliseconds) * 1_000_000 - (monotonicNanoseconds() - start)
        }
        return monotonicNanoseconds() - start
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// Fails task `failing` at once; every other task sleeps `milliseconds`, then returns its input.
public struct PoolFailOneSleepOthers: PoolFunction {
    public var failing: Int
    public var milliseconds: Int
    public init(failing: Int, milliseconds: Int) {
        self.failing = failing
        self.milliseconds = milliseconds
    }
    public func run(_ x: Int) throws -> Int {
        if x == failing { throw PoolOddError(value: x) }
        usleep(UInt32(milliseconds * 1000))
        return x
    }
}

/// Writes a marker file `<directory>/<pid>` when it starts (so a test knows every worker runs a
/// task), then sleeps `milliseconds`.
public struct PoolMarkThenSleep: PoolFunction {
    public var directory: String
    public var milliseconds: Int
    public init(directory: String, milliseconds: Int) {
        self.directory = directory
        self.milliseconds = milliseconds
    }
    public func run(_ x: Int) -> Int {
        let fd = open("\(directory)/\(getpid())", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 { close(fd) }
        usleep(UInt32(milliseconds * 1000))
        return x
    }
}

/// A submitted task like ``PoolMarkThenSleep``.
public struct PoolMarkThenSleepTask: ProcessTask {
    public var directory: String
    public var milliseconds: Int
    public init(directory: String, milliseconds: Int) {
        self.directory = directory
        self.milliseconds = milliseconds
    }
    public func run() -> Int { PoolMarkThenSleep(directory: directory, milliseconds: milliseconds).run(0) }
}

private func say(_ text: String) {
    print(text)
    fflush(nil)
}

/// Counts SIGINTs that reach the program's own handler (the pool's handler chains to it).
nonisolated(unsafe) private var ownHandlerCalls: sig_atomic_t = 0

/// What SIGINT does in this process now: "default", "ignored", "own" (the scenario's handler),
/// or "other".
public func sigintDisposition() -> String {
    var current = sigaction()
    sigaction(SIGINT, nil, &current)
    if current.sa_flags & SA_SIGINFO != 0 { return "other" }
    let handler = unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
    if handler == unsafeBitCast(SIG_DFL, to: Int.self) { return "default" }
    if handler == unsafeBitCast(SIG_IGN, to: Int.self) { return "ignored" }
    if handler == unsafeBitCast(ownSigintHandler, to: Int.self) { return "own" }
    return "other"
}

private let ownSigintHandler: @convention(c) (Int32) -> Void = { _ in ownHandlerCalls += 1 }

/// Runs one of the pool's scenarios in the helper binary; false for an unknown name.
///
/// `pool-sigint MODE MARKERS STDERR`: the parent of a pool of 4 workers, in a process group of its
/// own (so that the test can send SIGINT to the group, as a terminal's Ctrl-C does), with its
/// stderr (and so its workers') in the file STDERR. It prints `pids SELF WORKER…`, then `waiting`
/// once the call below waits (SIGINT's disposition changed), while it waits in a
/// pool call whose tasks last 120 s and write a marker in MARKERS when they start; MODE picks the
/// call: `map` (blocking), `map-async`, `results` (blocking mapResults), `submit` (blocking get),
/// `value` (async value), `unordered` (async mapUnordered), `chain` (a blocking map, with a SIGINT
/// handler of the program's own installed first). After the call it prints what it threw, the
/// workers still alive, its zombie children and the SIGINT disposition.
public func runPoolBehaviourScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    guard name == "pool-sigint" else { return false }
    let arguments = Array(rest)
    guard arguments.count == 3 else { say("usage: pool-sigint MODE MARKERS STDERR"); exit(64) }
    let (mode, markers, errors) = (arguments[0], arguments[1], arguments[2])
    setpgid(0, 0)
    // As a program started from a shell: no signal blocked. (A test runner's threads block most
    // signals, and a spawned child inherits that mask.)
    var none = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, nil)
    let errorFile = open(errors, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
    if errorFile >= 0 { dup2(errorFile, 2); close(errorFile) }
    ownHandlerCalls = 0
    if mode == "chain" { signal(SIGINT, ownSigintHandler) }
    let before = sigintDisposition()
    let pool = try ProcessPool(workers: 4)
    let workers = pool.workerPIDs
    say("pids \(getpid()) \(workers.map(String.init).joined(separator: " "))")
    let function = PoolMarkThenSleep(directory: markers, milliseconds: 120_000)
    let task = PoolMarkThenSleepTask(directory: markers, milliseconds: 120_000)
    let outcome = OutcomeBox()
    func record(_ body: () throws -> Void) {
        do {
            try body()
            outcome.set("returned")
        } catch is CancellationError {
            outcome.set("threw CancellationError")
        } catch {
            outcome.set("threw \(error)")
        }
    }
    func recordAsync(_ body: @escaping @Sendable () async throws -> Void) throws {
        let done = try Semaphore(0)
        Task {
            do {
                try await body()
                outcome.set("returned")
            } catch is CancellationError {
                outcome.set("threw CancellationError")
            } catch {
                outcome.set("threw \(error)")
            }
            try? done.release()
        }
        try done.acquire()
    }
    // Says "waiting" once the call waits, that is once the pool's SIGINT handler is in place: a
    // SIGINT before that does what it does without the pool (it would kill this program).
    let watcher = OSThread(name: "scenario-watch", daemon: true) {
        while sigintDisposition() == before { usleep(1000) }
        say("waiting")
    }
    try watcher.start()
    switch mode {
    case "map", "chain":
        record { _ = try pool.map(function, over: 0..<8, chunking: .fixed(1)) }
    case "results":
        record { _ = try pool.mapResults(function, over: 0..<8, chunking: .fixed(1)) }
    case "map-async":
        try recordAsync { _ = try await pool.map(function, over: 0..<8, chunking: .fixed(1)) }
    case "submit":
        let handles = try (0..<4).map { _ in try pool.submit(task) }
        record { _ = try handles[0].get() }
    case "value":
        let handles = try (0..<4).map { _ in try pool.submit(task) }
        try recordAsync { _ = try await handles[0].value }
    case "unordered":
        try recordAsync {
            for try await (_, result) in try pool.mapUnordered(function, over: (0...).lazy, window: 8) { _ = try result.get() }
        }
    default:
        say("unknown mode \(mode)")
        exit(64)
    }
    say(outcome.get())
    say("workers-left [\(workers.filter { isRunningProcess($0) }.map(String.init).joined(separator: " "))]")
    let zombies = childPIDs(of: getpid()).filter { procStatFields($0)?.first == "Z" }
    say("zombies [\(zombies.map(String.init).joined(separator: " "))]")
    say("disposition before \(before) after \(sigintDisposition())")
    if mode == "chain" { say("own handler calls \(ownHandlerCalls)") }
    // The pool is terminated: later calls are refused.
    do {
        _ = try pool.map(PoolSquare(), over: [1])
        say("after: map ran")
    } catch let error as MultiprocessingError {
        say("after: \(error.code)")
    }
    return true
}

/// What the scenario's pool call ended with.
private final class OutcomeBox: Sendable {
    private let value = Mutex<String>("nothing")
    func set(_ text: String) { value.withLock { $0 = text } }
    func get() -> String { value.withLock { $0 } }
}

/// Writes a marker `<directory>/<value>` for each input it runs; its input may refuse to be encoded.
public struct PoolMarkFragile: PoolFunction {
    public var directory: String
    public init(directory: String) { self.directory = directory }
    public func run(_ x: PoolFragile) -> Int {
        let fd = open("\(directory)/\(x.value)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 { close(fd) }
        return x.value
    }
}

/// Leaks `megabytes` of touched memory per task, and returns the input and the worker's pid.
public struct PoolLeakAndTell: PoolFunction {
    public var megabytes: Int
    public init(megabytes: Int) { self.megabytes = megabytes }
    public func run(_ x: Int) -> PoolSleepThenTell.Answer {
        let size = megabytes << 20
        if let memory = malloc(size) { memset(memory, 1, size) } // never freed: the leak
        return PoolSleepThenTell.Answer(input: x, pid: getpid())
    }
}

/// Writes a marker `<directory>/<input>` as it starts; fails task `failing` at once, and every
/// other task sleeps `milliseconds`, then returns its input.
public struct PoolFailOneMarkOthers: PoolFunction {
    public var directory: String
    public var failing: Int
    public var milliseconds: Int
    public init(directory: String, failing: Int, milliseconds: Int) {
        self.directory = directory
        self.failing = failing
        self.milliseconds = milliseconds
    }
    public func run(_ x: Int) throws -> Int {
        let fd = open("\(directory)/\(x)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 { close(fd) }
        return try PoolFailOneSleepOthers(failing: failing, milliseconds: milliseconds).run(x)
    }
}

// MARK: the memory of mapUnordered over an endless input, in a process of its own

/// A field of `/proc/self/status` in bytes (`RssAnon`, `VmRSS`: given there in kB); 0 if absent.
private func statusBytes(_ field: String) -> Int {
    let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return 0 }
    return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
}

private final class MemoryReport: Sendable {
    private let value = Mutex<String>("nothing")
    func set(_ text: String) { value.withLock { $0 = text } }
    func get() -> String { value.withLock { $0 } }
}

/// `pool-unordered-memory COUNT`: 100 000 items of warm-up, then COUNT more, through
/// `mapUnordered` over the endless input `0...` with a window of 64, and prints
/// `taken N anon +BYTES resident +BYTES` (the growth of `RssAnon` and `VmRSS` over the COUNT items).
/// A process of its own, so that no other test's allocations are counted: the test process runs
/// many suites at once, and their memory moved its figures by more than the 10 MB measured.
public func runPoolMemoryScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    guard name == "pool-unordered-memory" else { return false }
    guard let count = rest.first.flatMap({ Int($0) }), count > 0 else {
        say("usage: pool-unordered-memory COUNT")
        exit(64)
    }
    let report = MemoryReport()
    let done = try Semaphore(0)
    Task {
        do {
            let pool = try ProcessPool(workers: 2)
            defer { pool.terminate() }
            var taken = 0
            var anon = 0
            var resident = 0
            for try await (index, result) in try pool.mapUnordered(PoolSquare(), over: (0...).lazy, window: 64) {
                guard (try? result.get()) == index &* index else {
                    report.set("wrong task \(index): \(result)")
                    try? done.release()
                    return
                }
                taken += 1
                if taken == 100_000 {
                    anon = statusBytes("RssAnon")
                    resident = statusBytes("VmRSS")
                }
                if taken == 100_000 + count { break }
            }
            report.set("taken \(taken - 100_000) anon +\(statusBytes("RssAnon") - anon) resident +\(statusBytes("VmRSS") - resident)")
        } catch {
            report.set("threw \(error)")
        }
        try? done.release()
    }
    try done.acquire()
    say(report.get())
    return true
}
