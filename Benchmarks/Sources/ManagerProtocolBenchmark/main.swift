// What a manager request costs in CPU, and what it would cost through WireEncoder.
//
//   swift build -c release --package-path Benchmarks --product ManagerProtocolBenchmark
//   Benchmarks/.build/release/ManagerProtocolBenchmark [calls]
//
// 1. CPU time per call: `calls` dictionary sets then `calls` gets from this process, against a
//    manager's server, run twice (with calls/10 and with calls), so that start-up cancels out:
//    (CPU of the long run − CPU of the short run) / (2 × 0.9 × calls), for this process (the
//    client: building requests, decoding replies, the socket calls and the reply polling) and for
//    the server (its child, measured after it exited). CPU time, not wall time, so that a loaded
//    machine's waiting does not count.
// 2. The encode + decode cost of a `set` request and its reply as synthesized Codable enums
//    through WireEncoder/WireDecoder, as the typed protocol would pay if its frames used them,
//    beside the same request written as bytes by hand (as Protocol/Layout.swift does).
#if canImport(Glibc)
import Glibc
#endif
import Multiprocessing
import MultiprocessingManager

Multiprocessing.bootstrap()

struct CallCost: ProcessTask {
    var calls: Int
    func run() throws -> [Double] {
        let manager = Manager()
        try manager.start()
        let d = try manager.dictionary(String.self, Int.self)
        for i in 0..<calls { try d.set("k", i) }
        var sink = 0
        for _ in 0..<calls { sink &+= try d.get("k") ?? 0 }
        try manager.shutdown()
        return [cpuMicroseconds(RUSAGE_SELF.rawValue), cpuMicroseconds(RUSAGE_CHILDREN.rawValue), Double(sink & 1)]
    }
}

func measure(_ calls: Int) throws -> [Double] {
    let child = ChildProcess(CallCost(calls: calls))
    try child.start()
    return try child.value()
}

func cpuMicroseconds(_ who: Int32) -> Double {
    var usage = rusage()
    getrusage(who, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}

func monotonic() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

let calls = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 20_000 : 20_000

// 1. Each run in a fresh child, so that RUSAGE_CHILDREN holds that run's server only.
var client: [Double] = []
var server: [Double] = []
for _ in 0..<5 {
    let short = try measure(calls / 10)
    let long = try measure(calls)
    let n = Double(2 * (calls - calls / 10))
    client.append((long[0] - short[0]) / n)
    server.append((long[1] - short[1]) / n)
}
func format2(_ x: Double) -> String { String(Double(Int(x * 100)) / 100) }
print("CPU per call (median of 5): client \(format2(median(client))) µs, server \(format2(median(server))) µs")

// 2. The codec cost of typed messages through WireEncoder.
enum DictionaryRequest: Codable { case get(key: [UInt8]); case set(key: [UInt8], value: [UInt8]) }
enum Request: Codable { case ping; case dictionary(object: UInt64, DictionaryRequest) }
enum DictionaryReply: Codable { case get(value: [UInt8]?); case set }

func nanoseconds(_ rounds: Int, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<5 {
        let start = monotonic()
        for _ in 0..<rounds { try body() }
        best = min(best, Double(monotonic() - start) / Double(rounds))
    }
    return best
}

let key = try WireEncoder().encode("k")
let value = try WireEncoder().encode(42)
let request = Request.dictionary(object: 5, .set(key: key, value: value))
let requestBytes = try WireEncoder().encode(request)
let replyBytes = try WireEncoder().encode(DictionaryReply.set)
var sink = 0
let encodeRequest = try nanoseconds(100_000) { sink &+= try WireEncoder().encode(request).count }
let decodeRequest = try nanoseconds(100_000) {
    if case .dictionary(let object, _) = try WireDecoder().decode(Request.self, from: requestBytes) { sink &+= Int(object) }
}
let encodeReply = try nanoseconds(100_000) { sink &+= try WireEncoder().encode(DictionaryReply.set).count }
let decodeReply = try nanoseconds(100_000) {
    if case .set = try WireDecoder().decode(DictionaryReply.self, from: replyBytes) { sink &+= 1 }
}
var handBytes = 0
let byHand = nanoseconds(100_000) {
    var bytes = [UInt8](repeating: 0, count: 16)
    bytes.reserveCapacity(64)
    bytes.append(11)
    bytes.append(5)
    bytes.append(UInt8(key.count))
    bytes.append(contentsOf: key)
    bytes.append(UInt8(value.count))
    bytes.append(contentsOf: value)
    handBytes = bytes.count - 16
    sink &+= bytes.count
}
print("WireEncoder, synthesized enums: set request \(requestBytes.count) B, encode \(Int(encodeRequest)) ns, decode \(Int(decodeRequest)) ns; reply encode \(Int(encodeReply)) ns, decode \(Int(decodeReply)) ns")
print("by hand: set request \(handBytes) B, encode \(Int(byHand)) ns (sink \(sink & 1))")
