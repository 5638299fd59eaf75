// Start→join latency of a trivial task, for each start method, with the peers measured in the same
// run: posix_spawn of /bin/true (the floor), and Python's multiprocessing under fork, spawn and
// forkserver. No Foundation here: a spawned child loads whatever this binary links.
//
//   swift build -c release --package-path Benchmarks
//   Benchmarks/.build/release/StartBenchmark [rounds]
#if canImport(Glibc)
import Glibc
#endif
import BenchmarkSupport
import Multiprocessing

struct Noop: ProcessTask {
    func run() {}
}

Multiprocessing.bootstrap()

let rounds = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 100 : 100

/// Milliseconds per start→join, median of `rounds`, after a few warm-up rounds.
func measure(_ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<5 { try body() }
    var samples: [Double] = []
    for _ in 0..<rounds {
        let start = now()
        try body()
        samples.append(Double(now() - start) / 1e6)
    }
    return median(samples)
}

func posixSpawnTrue() {
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
    defer { free(argv[0]) }
    guard posix_spawn(&pid, "/bin/true", nil, nil, argv, environ) == 0 else { return }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
}

/// Runs the Python peer (Benchmarks/peers/process_start.py) and returns its "method ms" lines.
func python(rounds: Int) -> [String: Double] {
    namedValues(runPython(siblingPath("../../peers/process_start.py"), [String(rounds)]))
}

// fork first: it is only allowed while this process runs no thread but the monitor.
let fork = try measure { let c = ChildProcess(Noop(), startMethod: .fork); try c.start(); try c.join() }
let floor = measure { posixSpawnTrue() }
let spawn = try measure { let c = ChildProcess(Noop(), startMethod: .spawn); try c.start(); try c.join() }
let forkServer = try measure { let c = ChildProcess(Noop(), startMethod: .forkServer); try c.start(); try c.join() }
let py = python(rounds: rounds)

func row(_ name: String, _ ms: Double, _ note: String) {
    let text = String(Int((ms * 1000).rounded())) // microseconds
    print("| \(name) | \(text) µs | \(note) |")
}
func ratio(_ a: Double, _ b: Double?) -> String {
    guard let b, b > 0 else { return "n/a" }
    return String(Int((a / b * 100).rounded())) + "%"
}

print("start→join of a trivial task, median of \(rounds) rounds (Python spawn: \(max(10, rounds / 4)))")
print("| what | median | note |")
print("| --- | --- | --- |")
row("posix_spawn /bin/true + waitpid (floor)", floor, "")
row("ChildProcess .spawn", spawn, "\(ratio(spawn, py["spawn"])) of Python spawn (target ≤ 20%)")
row("ChildProcess .forkServer", forkServer, "\(ratio(forkServer, floor)) of the floor (target ≤ 200%)")
row("ChildProcess .fork", fork, "\(ratio(fork, floor)) of the floor (target ≤ 200%)")
for method in ["fork", "forkserver", "spawn"] {
    if let ms = py[method] { row("Python \(method)", ms, "") }
}
