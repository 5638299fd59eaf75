// AsyncWaitBenchmark: the async twins' waits (issue 14, item 2, the blocking bridge).
//   - uncontended: async calls that finish on the caller's thread and never reach the bridge
//     (Lock.withLock, Event.wait on a set event, Semaphore.acquire with a permit, Queue.get with
//     an item ready), per second;
//   - contended round trip: an async task releases a semaphore that an OSThread waits for and
//     awaits the thread's answer on a second one, so each round has one async wait that must
//     sleep (a helper thread of the bridge; before the bridge, a new pthread per wait);
//   - bursts: N tasks await one unset Event at once, then it is set; the time from the set to
//     the last task's return, and the threads the process had at the peak.
// Usage: AsyncWaitBenchmark [repeats [uncontended]]   (default 5; every figure is the median)
#if canImport(Glibc)
import Glibc
#endif
import BenchmarkSupport
import Multiprocessing
import Synchronization

let repeats = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 5 : 5
/// `AsyncWaitBenchmark 1 uncontended`: only the uncontended calls, 100 000 each (to count
/// instructions with callgrind, which stays stable on a loaded machine).
let onlyUncontended = CommandLine.arguments.count > 2 && CommandLine.arguments[2] == "uncontended"

func threadCount() -> Int {
    guard let directory = opendir("/proc/self/task") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
    }
    return count
}

func perSecond(_ count: Int, _ start: UInt64) -> Double { Double(count) / (Double(now() - start) / 1e9) }

func uncontendedLock(_ n: Int) async throws -> Double {
    let lock = try Lock()
    let start = now()
    for _ in 0..<n { try await lock.withLock {} }
    return perSecond(n, start)
}

func uncontendedEvent(_ n: Int) async throws -> Double {
    let event = try Event()
    event.set()
    let start = now()
    for _ in 0..<n { try await event.wait() }
    return perSecond(n, start)
}

func uncontendedSemaphore(_ n: Int) async throws -> Double {
    let semaphore = try Semaphore(1)
    let start = now()
    for _ in 0..<n {
        try await semaphore.acquire()
        try semaphore.release()
    }
    return perSecond(n, start)
}

func uncontendedQueue(_ n: Int) async throws -> Double {
    let queue = try Queue<Int>()
    let start = now()
    for i in 0..<n {
        try await queue.put(i)
        _ = try await queue.get()
    }
    return perSecond(n, start)
}

/// Rounds per second of: release `ping` (an OSThread takes it and releases `pong`), await `pong`.
func contendedRoundTrips(_ n: Int) async throws -> Double {
    let ping = try Semaphore(0), pong = try Semaphore(0)
    let partner = OSThread(name: "partner") {
        for _ in 0..<n {
            try ping.acquire()
            try pong.release()
        }
    }
    try partner.start()
    let start = now()
    for _ in 0..<n {
        try ping.release()
        try await pong.acquire()
    }
    let rate = perSecond(n, start)
    try await partner.join()
    return rate
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// N tasks await one Event; returns (ms from the set to the last return, peak threads).
/// The set comes 50 ms after the last task began its wait, time enough for all to be asleep.
func burst(_ tasks: Int, baseline: Int) async throws -> (Double, Int) {
    let event = try Event()
    let started = Counter()
    var peak = 0
    var woken = 0.0
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<tasks {
            group.addTask {
                started.value.add(1, ordering: .relaxed)
                try await event.wait(timeout: .seconds(60))
            }
        }
        while started.value.load(ordering: .relaxed) < tasks { try await Task.sleep(for: .microseconds(100)) }
        try await Task.sleep(for: .milliseconds(50))
        peak = threadCount()
        let set = now()
        event.set()
        try await group.waitForAll()
        woken = Double(now() - set) / 1e6
    }
    return (woken, peak - baseline)
}

func report(_ name: String, _ value: Double, _ unit: String) {
    print("\(name): \(value.formatted3) \(unit)")
}

extension Double {
    var formatted3: String {
        if self >= 1e6 { return "\((self / 1e4).rounded() / 100) M" }
        if self >= 1e3 { return "\((self / 10).rounded() / 100) k" }
        return "\((self * 100).rounded() / 100)"
    }
}

let uncontended: [(String, (Int) async throws -> Double)] = [
    ("Lock.withLock async, uncontended", uncontendedLock),
    ("Event.wait async, event set", uncontendedEvent),
    ("Semaphore.acquire async + release, permit free", uncontendedSemaphore),
    ("Queue put + get async, room free and item ready", uncontendedQueue),
]
let threadsAtStart = threadCount()
for (name, body) in uncontended {
    var samples: [Double] = []
    for _ in 0..<repeats { samples.append(try await body(onlyUncontended ? 100_000 : 1_000_000)) }
    report(name, median(samples), "calls/s")
}
print("threads after the uncontended calls: \(threadCount()) (at start: \(threadsAtStart))")
if onlyUncontended { exit(0) }

var rounds: [Double] = []
for _ in 0..<repeats { rounds.append(try await contendedRoundTrips(20_000)) }
report("contended round trip (one async wait that sleeps per round)", median(rounds), "rounds/s")

for tasks in [50, 200] {
    var woken: [Double] = [], peaks: [Double] = []
    for _ in 0..<repeats {
        let (w, p) = try await burst(tasks, baseline: threadsAtStart)
        woken.append(w)
        peaks.append(Double(p))
    }
    print("burst of \(tasks) waits on one Event: all returned \(median(woken).formatted3) ms after the set (median), \(Int(peaks.max() ?? 0)) threads above the start at most")
}
