// Manager call latency and throughput, with Python's multiprocessing.Manager().dict() measured in
// the same run (manager_peer.py beside this file).
//
//   swift build -c release --package-path Benchmarks
//   Benchmarks/.build/release/ManagerBenchmark [calls] [throughput calls per client]
#if canImport(Glibc)
import Glibc
#endif
import BenchmarkSupport
import Multiprocessing
import MultiprocessingManager

/// One throughput client: waits at the barrier, then sets `calls` times; returns its time span.
struct SetClient: ProcessTask {
    var dictionary: ManagedDictionary<String, Int>
    var barrier: ManagedBarrier
    var calls: Int
    func run() throws -> [UInt64] {
        try barrier.wait()
        let start = now()
        for i in 0..<calls { try dictionary.set("k", i) }
        return [start, now()]
    }
}

Multiprocessing.bootstrap()

let calls = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 20_000 : 20_000
let throughputCalls = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 4_000 : 4_000

func batches(_ calls: Int, _ body: (Int) throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    var i = 0
    while i < calls {
        let start = now()
        for j in i..<(i + 200) { try body(j) }
        samples.append(Double(now() - start) / 200 / 1000)
        i += 200
    }
    return median(samples)
}

func python() -> [String: Double] {
    namedValues(runPython(siblingPath("manager_peer.py"), [String(calls), String(throughputCalls)]))
}

let manager = Manager()
try manager.start()
let d = try manager.dictionary(String.self, Int.self)
for i in 0..<1000 { try d.set("k", i) }
let setUs = try batches(calls) { try d.set("k", $0) }
let getUs = try batches(calls) { _ in _ = try d.get("k") }
let incrementUs = try batches(calls) { _ in _ = try d.increment("n") }

var throughput: [Int: Double] = [:]
for n in [1, 4, 16] {
    let barrier = try manager.barrier(parties: n + 1)
    let children = (0..<n).map { _ in ChildProcess(SetClient(dictionary: d, barrier: barrier, calls: throughputCalls)) }
    for child in children { try child.start() }
    try barrier.wait()
    let spans = try children.map { try $0.value() }
    let start = spans.map { $0[0] }.min() ?? 0
    let end = spans.map { $0[1] }.max() ?? 0
    throughput[n] = Double(n * throughputCalls) / (Double(end - start) / 1e9)
}

guard let address = manager.address else { fatalError("no address") }
var connectSamples: [Double] = []
for _ in 0..<200 {
    let start = now()
    let client = try Manager.connect(address: address, authKey: manager.authKey)
    connectSamples.append(Double(now() - start) / 1000)
    try client.shutdown()  // a connected manager only closes its own connections
}
let connectUs = median(connectSamples)
try manager.shutdown()

let py = python()
func f(_ x: Double?) -> String {
    guard let x else { return "n/a" }
    return x >= 100 ? String(Int(x.rounded())) : String(Double(Int(x * 10)) / 10)
}
func ratio(_ ours: Double, _ theirs: Double?, higherIsBetter: Bool = false) -> String {
    guard let theirs, theirs > 0 else { return "n/a" }
    let r = higherIsBetter ? ours / theirs : theirs / ours
    return String(Double(Int(r * 10)) / 10) + "×"
}
print("manager calls: \(calls) latency calls (batches of 200, median), \(throughputCalls) calls per throughput client")
print("| what | swift-multiprocessing | Python Manager | ours faster by |")
print("| --- | --- | --- | --- |")
print("| dict set, µs per call | \(f(setUs)) | \(f(py["set_us"])) | \(ratio(setUs, py["set_us"])) |")
print("| dict get, µs per call | \(f(getUs)) | \(f(py["get_us"])) | \(ratio(getUs, py["get_us"])) |")
print("| dict increment (atomic), µs per call | \(f(incrementUs)) | n/a (`d[k] += 1` is not atomic) | |")
for n in [1, 4, 16] {
    let ours = throughput[n] ?? 0
    print("| set throughput, \(n) client process\(n == 1 ? "" : "es"), calls/s | \(f(ours)) | \(f(py["throughput_\(n)"])) | \(ratio(ours, py["throughput_\(n)"], higherIsBetter: true)) |")
}
print("| connect + authenticate, µs | \(f(connectUs)) | \(f(py["connect_us"])) | \(ratio(connectUs, py["connect_us"])) |")
