// SyncBenchmark: lock pairs per second (uncontended; 2 threads; 2 processes) for our Lock against
// Synchronization.Mutex, Foundation's NSLock, Python's threading.Lock and multiprocessing.Lock,
// and CPU scaling of a CPU-bound job over 1 and 2 OSThreads against Python threads. One run
// measures everything; each figure is the median of several repeats.
//
//   swift build -c release --package-path Benchmarks
//   Benchmarks/.build/release/SyncBenchmark [--pairs N] [--repeats R]
import Foundation
import Multiprocessing
import Synchronization

Multiprocessing.bootstrap()

/// A counter guarded only by the lock under test.
final class Counter: @unchecked Sendable {
    // No dynamic exclusivity check: the lock under test is what guards it, and the check would
    // cost more than some of the locks measured.
    @exclusivity(unchecked) var value = 0
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func timed(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    return seconds(ContinuousClock.now - start)
}

func median(_ repeats: Int, _ body: () throws -> Double) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<repeats { samples.append(try body()) }
    samples.sort()
    return samples[samples.count / 2]
}

/// Runs `body(n/2)` on two OSThreads at once; returns the wall time.
func onTwoThreads(_ n: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws -> Double {
    let threads = (0..<2).map { _ in OSThread { try body(n / 2) } }
    return try timed {
        for t in threads { try t.start() }
        for t in threads { try t.join() }
        for t in threads { if let error = t.error { throw error } }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for both processes.
func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// The other process of the 2-process measurement: waits at the barrier, then takes and releases
/// the lock `iterations` times around a plain (non-atomic) increment of a counter in shared memory;
/// returns when it started and ended on the monotonic clock.
struct LockHammer: ProcessTask {
    var lock: Lock
    var counter: SharedArray<Int>
    var barrier: Barrier
    var iterations: Int
    func run() throws -> [Int64] {
        // The element's address, valid while `counter` lives; only `lock` guards it from here on.
        let slot = try counter.withLock { $0.baseAddress! }
        try barrier.wait()
        let start = monotonicNanoseconds()
        for _ in 0..<iterations {
            try lock.withLock { slot.pointee &+= 1 }
        }
        return [start, monotonicNanoseconds()]
    }
}

/// Two processes hammer one lock; the time is from the first start to the last end.
func twoProcesses(_ n: Int) throws -> Double {
    let lock = try Lock()
    let counter = try SharedArray<Int>(repeating: 0, count: 1)
    let barrier = try Barrier(parties: 2)
    let task = LockHammer(lock: lock, counter: counter, barrier: barrier, iterations: n / 2)
    let child = ChildProcess(task)
    try child.start()
    let mine = try task.run()
    let theirs = try child.value()
    precondition(counter[0] == 2 * (n / 2), "lost updates between processes")
    return Double(max(mine[1], theirs[1]) - min(mine[0], theirs[0])) / 1e9
}

/// A CPU-bound job with no shared state: a xorshift-multiply walk, which the optimiser cannot
/// shortcut (each step depends non-linearly on the last).
@inline(never)
func cpuJob(_ n: Int) -> UInt64 {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    for _ in 0..<n {
        x ^= x >> 29
        x &*= 0xBF58_476D_1CE4_E5B9
        x ^= x >> 32
    }
    return x
}

/// Process CPU time (user + system) in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// Runs the CPU job split over `count` OSThreads; returns the wall time and the CPU time / wall
/// time (2.0 when two cores worked the whole time).
func cpuThreads(total: Int, count: Int) throws -> (wall: Double, cores: Double) {
    let threads = (0..<count).map { _ in OSThread { cpuJob(total / count) } }
    let cpu0 = cpuSeconds()
    let wall = try timed {
        for t in threads { try t.start() }
        for t in threads { try t.join() }
    }
    return (wall, (cpuSeconds() - cpu0) / wall)
}

// MARK: main

var pairs = 10_000_000
var repeats = 5
var pythonPairs = 2_000_000
var cpuWork = 400_000_000
var pythonCPU = 10_000_000
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    switch flag {
    case "--pairs": pairs = Int(arguments.popFirst() ?? "") ?? pairs
    case "--repeats": repeats = Int(arguments.popFirst() ?? "") ?? repeats
    case "--python-pairs": pythonPairs = Int(arguments.popFirst() ?? "") ?? pythonPairs
    case "--cpu": cpuWork = Int(arguments.popFirst() ?? "") ?? cpuWork
    case "--python-cpu": pythonCPU = Int(arguments.popFirst() ?? "") ?? pythonCPU
    default: print("unknown option \(flag)"); exit(64)
    }
}

print("SyncBenchmark: \(pairs) lock pairs per figure, median of \(repeats); \(ProcessInfo.processInfo.activeProcessorCount) CPUs")

var results: [(String, Double)] = []
@MainActor func report(_ name: String, _ pairsPerSecond: Double) {
    results.append((name, pairsPerSecond))
    let padded = name.padding(toLength: 46, withPad: " ", startingAt: 0)
    print(padded + String(format: "%8.1f M pairs/s  (%6.1f ns/pair)", pairsPerSecond / 1e6, 1e9 / pairsPerSecond))
}

// Uncontended: one thread, nobody else wants the lock. Each loop is in a function with local
// objects, so that no global-variable access is measured.
@inline(never) func lockPairs(_ n: Int) throws -> Double {
    let lock = try Lock(), counter = Counter()
    return try timed { for _ in 0..<n { try lock.acquire(); counter.value &+= 1; try lock.release() } }
}
@inline(never) func lockWithLock(_ n: Int) throws -> Double {
    let lock = try Lock(), counter = Counter()
    return try timed { for _ in 0..<n { try lock.withLock { counter.value &+= 1 } } }
}
@inline(never) func mutexWithLock(_ n: Int) -> Double {
    let mutex = Mutex(0)
    return timed { for _ in 0..<n { mutex.withLock { $0 &+= 1 } } }
}
@inline(never) func nslockPairs(_ n: Int) -> Double {
    let lock = NSLock(), counter = Counter()
    return timed { for _ in 0..<n { lock.lock(); counter.value &+= 1; lock.unlock() } }
}
// Round-robin, so that a burst of load from elsewhere hits every variant alike.
let uncontended: [(String, (Int) throws -> Double)] = [
    ("Lock acquire+release, uncontended", lockPairs),
    ("Lock withLock, uncontended", lockWithLock),
    ("Mutex withLock, uncontended", mutexWithLock),
    ("NSLock lock+unlock, uncontended", nslockPairs),
]
var uncontendedSamples = Array(repeating: [Double](), count: uncontended.count)
for _ in 0..<repeats {
    for (i, variant) in uncontended.enumerated() { uncontendedSamples[i].append(try variant.1(pairs)) }
}
for (i, variant) in uncontended.enumerated() {
    report(variant.0, Double(pairs) / uncontendedSamples[i].sorted()[repeats / 2])
}

// Contended: two threads (two cores) take turns on one lock.
report("Lock, 2 threads", Double(pairs) / (try median(repeats) {
    let lock = try Lock()
    let c = Counter()
    let t = try onTwoThreads(pairs) { n in for _ in 0..<n { try lock.withLock { c.value &+= 1 } } }
    precondition(c.value == pairs / 2 * 2)
    return t
}))
report("Mutex, 2 threads", Double(pairs) / (try median(repeats) {
    let m = Mutex(0)
    let t = try onTwoThreads(pairs) { n in for _ in 0..<n { m.withLock { $0 &+= 1 } } }
    precondition(m.withLock { $0 } == pairs / 2 * 2)
    return t
}))
report("NSLock, 2 threads", Double(pairs) / (try median(repeats) {
    let l = NSLock()
    let c = Counter()
    let t = try onTwoThreads(pairs) { n in for _ in 0..<n { l.lock(); c.value &+= 1; l.unlock() } }
    precondition(c.value == pairs / 2 * 2)
    return t
}))
report("Lock, 2 processes", Double(pairs) / (try median(repeats) { try twoProcesses(pairs) }))

// CPU scaling over OSThreads.
var cpuRuns: [[(wall: Double, cores: Double)]] = [[], []]
for _ in 0..<repeats {
    cpuRuns[0].append(try cpuThreads(total: cpuWork, count: 1))
    cpuRuns[1].append(try cpuThreads(total: cpuWork, count: 2))
}
let cpu1 = cpuRuns[0].sorted { $0.wall < $1.wall }[repeats / 2]
let cpu2 = cpuRuns[1].sorted { $0.wall < $1.wall }[repeats / 2]
print(String(format: "  CPU job (%d steps): 1 OSThread %.3f s (%.2f cores busy), 2 OSThreads %.3f s (%.2f cores busy), speed-up %.2fx",
             cpuWork, cpu1.wall, cpu1.cores, cpu2.wall, cpu2.cores, cpu1.wall / cpu2.wall))

// Python, in the same run.
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("sync_peer.py").path
let python = Foundation.Process()
python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
python.arguments = ["python3", script, "--pairs", "\(pythonPairs)", "--cpu", "\(pythonCPU)", "--repeats", "\(repeats)"]
let output = Foundation.Pipe()
python.standardOutput = output
try python.run()
let data = output.fileHandleForReading.readDataToEndOfFile()
python.waitUntilExit()
guard let peer = try JSONSerialization.jsonObject(with: data) as? [String: Double] else {
    print("python peer failed: \(String(decoding: data, as: UTF8.self))")
    exit(1)
}
for name in ["threading.Lock uncontended", "multiprocessing.Lock uncontended", "threading.Lock 2 threads", "multiprocessing.Lock 2 processes"] {
    report("Python " + name, peer[name] ?? .nan)
}
let py1 = peer["cpu 1 thread seconds"] ?? .nan, py2 = peer["cpu 2 threads seconds"] ?? .nan
let pyCores1 = peer["cpu 1 thread cores"] ?? .nan, pyCores2 = peer["cpu 2 threads cores"] ?? .nan
print(String(format: "  Python CPU job (%d steps): 1 thread %.3f s (%.2f cores busy), 2 threads %.3f s (%.2f cores busy), speed-up %.2fx",
             pythonCPU, py1, pyCores1, py2, pyCores2, py1 / py2))

// Ratios the issue asks about.
let value = Dictionary(results, uniquingKeysWith: { a, _ in a })
func ratio(_ a: String, _ b: String) -> Double { (value[a] ?? .nan) / (value[b] ?? .nan) }
print("Ratios:")
print(String(format: "  Lock uncontended / Python multiprocessing.Lock uncontended: %.1fx", ratio("Lock withLock, uncontended", "Python multiprocessing.Lock uncontended")))
print(String(format: "  Lock 2 processes / Python multiprocessing.Lock 2 processes: %.1fx", ratio("Lock, 2 processes", "Python multiprocessing.Lock 2 processes")))
print(String(format: "  Lock 2 threads / Python threading.Lock 2 threads: %.1fx", ratio("Lock, 2 threads", "Python threading.Lock 2 threads")))
print(String(format: "  Mutex uncontended / Lock uncontended (time per pair, Lock vs Mutex): %.2fx", ratio("Mutex withLock, uncontended", "Lock withLock, uncontended")))
