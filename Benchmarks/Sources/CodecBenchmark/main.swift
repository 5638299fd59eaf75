// Encode + decode time of WireEncoder/WireDecoder against Foundation's JSONEncoder/JSONDecoder and
// binary PropertyListEncoder/PropertyListDecoder, in the same run, on the three shapes messages
// between processes take: a small struct, a 64 KiB byte payload (bare and inside a message struct),
// and an array of 1,000 small structs.
//
//   swift build -c release --package-path Benchmarks
//   Benchmarks/.build/release/CodecBenchmark
import Foundation
import Multiprocessing

struct Small: Codable, Equatable {
    var id: Int
    var count: Int
    var offset: Int
    var name: String
}

/// A queue message: a sequence number and a payload.
struct Message: Codable, Equatable {
    var sequence: Int
    var payload: [UInt8]
}

/// Median nanoseconds of one encode + decode, over `rounds` rounds of `iterations` each.
func measure(rounds: Int = 15, iterations: Int, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    try body() // warm up
    var samples: [Double] = []
    for _ in 0..<rounds {
        let start = clock.now
        for _ in 0..<iterations { try body() }
        let elapsed = clock.now - start
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        samples.append(nanoseconds / Double(iterations))
    }
    samples.sort()
    return samples[samples.count / 2]
}

func format(_ nanoseconds: Double) -> String {
    nanoseconds >= 1e6 ? String(format: "%.2f ms", nanoseconds / 1e6)
        : nanoseconds >= 1e3 ? String(format: "%.2f µs", nanoseconds / 1e3)
        : String(format: "%.0f ns", nanoseconds)
}

func run<T: Codable & Equatable>(_ name: String, _ value: T, iterations: Int, peerIterations: Int? = nil) throws {
    let wireEncoder = WireEncoder()
    let wireDecoder = WireDecoder()
    let jsonEncoder = JSONEncoder()
    let jsonDecoder = JSONDecoder()
    let plistEncoder = PropertyListEncoder()
    plistEncoder.outputFormat = .binary
    let plistDecoder = PropertyListDecoder()

    // Each format must round-trip the value before it is timed.
    let wireBytes = try wireEncoder.encode(value)
    let jsonBytes = try jsonEncoder.encode(value)
    let plistBytes = try plistEncoder.encode(value)
    let wireBack = try wireDecoder.decode(T.self, from: wireBytes)
    let jsonBack = try jsonDecoder.decode(T.self, from: jsonBytes)
    let plistBack = try plistDecoder.decode(T.self, from: plistBytes)
    precondition(wireBack == value && jsonBack == value && plistBack == value, "a format did not round-trip")

    let wire = try measure(iterations: iterations) {
        let bytes = try wireEncoder.encode(value)
        _ = try wireDecoder.decode(T.self, from: bytes)
    }
    let json = try measure(iterations: peerIterations ?? iterations) {
        let data = try jsonEncoder.encode(value)
        _ = try jsonDecoder.decode(T.self, from: data)
    }
    let plist = try measure(iterations: peerIterations ?? iterations) {
        let data = try plistEncoder.encode(value)
        _ = try plistDecoder.decode(T.self, from: data)
    }
    print("| \(name) | \(format(wire)) (\(wireBytes.count) B) | \(format(json)) (\(jsonBytes.count) B) | \(format(plist)) (\(plistBytes.count) B) | \(String(format: "%.1f×", json / wire)) | \(String(format: "%.1f×", plist / wire)) |")
}

let small = Small(id: 42, count: 7, offset: -3, name: "worker-1")
var generator = SystemRandomNumberGenerator()
let payload = (0..<65_536).map { _ in UInt8.random(in: 0...255, using: &generator) }
let many = (0..<1_000).map { Small(id: $0, count: $0 * 3, offset: -$0, name: "item \($0)") }

// `CodecBenchmark --profile small|many` loops only our codec, for a profiler.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--profile" {
    let encoder = WireEncoder()
    let decoder = WireDecoder()
    if CommandLine.arguments[2] == "small" {
        for _ in 0..<500_000 { _ = try decoder.decode(Small.self, from: encoder.encode(small)) }
    } else {
        for _ in 0..<500 { _ = try decoder.decode([Small].self, from: encoder.encode(many)) }
    }
    exit(0)
}

print("encode + decode, median of 15 rounds (smaller is better; ratio = peer time / wire time)")
print("")
print("| value | WireEncoder/Decoder | JSONEncoder/Decoder | PropertyList (binary) | JSON / wire | plist / wire |")
print("|---|---|---|---|---|---|")
try run("small struct (3 Int + String)", small, iterations: 20_000)
try run("64 KiB [UInt8]", payload, iterations: 2_000, peerIterations: 2)
try run("struct { Int, 64 KiB [UInt8] }", Message(sequence: 1, payload: payload), iterations: 2_000, peerIterations: 2)
try run("[Small] × 1,000", many, iterations: 20)
