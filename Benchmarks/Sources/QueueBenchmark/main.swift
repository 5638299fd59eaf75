// QueueBenchmark: pipes and queues, process to process, against Python's multiprocessing and a raw pipe.
//
//   swift build -c release --product QueueBenchmark && .build/release/QueueBenchmark [repeats]
//   .build/release/QueueBenchmark 8 queue-only       only our queue, each run printed
//   .build/release/QueueBenchmark 8 large [maxsize]  only 64 KiB items through our queue
//
// Every figure is the median of `repeats` runs (default 5), all measured in this one run:
//   - messages/s from a producer process to the consumer (this process) through our Queue, Python's
//     multiprocessing.Queue, and a raw pipe (the producer write()s each message, the consumer
//     read()s exactly that many bytes), for 8 B and 64 KiB payloads; the queues both unbounded
//     (the default) and with maxsize 128. The clock starts when the consumer has the first message,
//     so process start-up is not counted.
//   - round-trip latency over a duplex connection to an echoing child: our Connection
//     (sendBytes/receiveBytes, and send/receive of an Int) against Python's Pipe()
//     (send_bytes/recv_bytes, and send/recv of an int); the median of per-message round trips.
import Foundation
import Glibc
import BenchmarkSupport
import Multiprocessing

Multiprocessing.bootstrap()

// MARK: child tasks

struct Producer: ProcessTask {
    var queue: Queue<[UInt8]>
    var count: Int
    var size: Int
    func run() throws {
        let item = [UInt8](repeating: 1, count: size)
        for _ in 0..<count { try queue.put(item) }
    }
}

struct EchoBytes: ProcessTask {
    var connection: Connection
    func run() throws {
        while true {
            do {
                try connection.sendBytes(try connection.receiveBytes())
            } catch let error as MultiprocessingError where error.code == .endOfStream {
                return
            }
        }
    }
}

struct EchoInt: ProcessTask {
    var connection: Connection
    func run() throws {
        while true {
            do {
                try connection.send(try connection.receive(Int.self))
            } catch let error as MultiprocessingError where error.code == .endOfStream {
                return
            }
        }
    }
}

// MARK: measurements

/// A producer child writes `count` messages of `size` bytes into a pipe; this process reads each.
/// Forks, so it runs before anything in this process starts a thread.
func rawPipeRate(size: Int, count: Int) -> Double {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { fatalError("pipe") }
    let pid = fork()
    if pid == 0 {
        close(fds[0])
        let message = [UInt8](repeating: 1, count: size)
        message.withUnsafeBytes { buffer in
            for _ in 0..<count {
                var off = 0
                while off < size {
                    let n = write(fds[1], buffer.baseAddress! + off, size - off)
                    if n <= 0 { _exit(1) }
                    off += n
                }
            }
        }
        _exit(0)
    }
    close(fds[1])
    var buffer = [UInt8](repeating: 0, count: size)
    var start: UInt64 = 0
    buffer.withUnsafeMutableBytes { raw in
        for i in 0..<count {
            var off = 0
            while off < size {
                let n = read(fds[0], raw.baseAddress! + off, size - off)
                if n <= 0 { fatalError("short raw pipe read") }
                off += n
            }
            if i == 0 { start = now() }
        }
    }
    let elapsed = Double(now() - start) / 1e9
    close(fds[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return Double(count - 1) / elapsed
}

func ourQueueRate(size: Int, count: Int, maxsize: Int = 0) throws -> Double {
    let queue = try Queue<[UInt8]>(maxsize: maxsize)
    let child = ChildProcess(Producer(queue: queue, count: count, size: size))
    try child.start()
    _ = try queue.get()
    let start = now()
    for _ in 1..<count { _ = try queue.get() }
    let elapsed = Double(now() - start) / 1e9
    try child.join()
    return Double(count - 1) / elapsed
}

func ourRoundTrip(size: Int, iterations: Int, objects: Bool) throws -> Double {
    let (mine, theirs) = try Connection.pipe()
    let child = objects ? ChildProcess(EchoInt(connection: theirs)) : ChildProcess(EchoBytes(connection: theirs))
    try child.start()
    theirs.close()
    let message = [UInt8](repeating: 1, count: size)
    var samples: [Double] = []
    samples.reserveCapacity(iterations)
    for i in 0..<(iterations + 1000) {
        let t0 = now()
        if objects {
            try mine.send(i)
            _ = try mine.receive(Int.self)
        } else {
            try mine.sendBytes(message)
            _ = try mine.receiveBytes()
        }
        if i >= 1000 { samples.append(Double(now() - t0)) }
    }
    mine.close()
    try child.join()
    return median(samples)
}

func python(_ arguments: [String]) throws -> Double {
    let output = runPython(siblingPath("peer.py"), arguments)
    guard let value = Double(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        fatalError("python3 peer.py \(arguments) failed")
    }
    return value
}

// MARK: the run

let repeats = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 5 : 5
let small = 8
let large = 64 << 10

// `QueueBenchmark N queue-only`: only our queue, every run printed (for looking at variance).
if CommandLine.arguments.count > 2 && CommandLine.arguments[2] == "queue-only" {
    for _ in 0..<repeats {
        let s = try ourQueueRate(size: small, count: 300_000)
        let l = try ourQueueRate(size: large, count: 20_000)
        let lb = try ourQueueRate(size: large, count: 20_000, maxsize: 128)
        print(String(format: "8 B: %.2f M/s   64 KiB: %.1f k/s (%.2f GB/s)   64 KiB maxsize 128: %.1f k/s (%.2f GB/s)",
                     s / 1e6, l / 1e3, l * Double(large) / 1e9, lb / 1e3, lb * Double(large) / 1e9))
    }
    exit(0)
}

// `QueueBenchmark N large [maxsize]`: only 64 KiB items through our queue (unbounded unless
// maxsize is given), every run printed: the case to run under perf or strace.
if CommandLine.arguments.count > 2 && CommandLine.arguments[2] == "large" {
    let maxsize = CommandLine.arguments.count > 3 ? Int(CommandLine.arguments[3]) ?? 0 : 0
    for _ in 0..<repeats {
        let l = try ourQueueRate(size: large, count: 20_000, maxsize: maxsize)
        print(String(format: "64 KiB, maxsize %d: %.1f k/s (%.2f GB/s)", maxsize, l / 1e3, l * Double(large) / 1e9))
    }
    exit(0)
}

// Raw pipes first: they fork, which must happen before any ChildProcess starts a monitor thread.
var rawSmall: [Double] = [], rawLarge: [Double] = []
for _ in 0..<repeats {
    rawSmall.append(rawPipeRate(size: small, count: 300_000))
    rawLarge.append(rawPipeRate(size: large, count: 20_000))
}

var oursSmall: [Double] = [], oursLarge: [Double] = [], pySmall: [Double] = [], pyLarge: [Double] = []
var oursSmallBounded: [Double] = [], oursLargeBounded: [Double] = [], pySmallBounded: [Double] = [], pyLargeBounded: [Double] = []
var oursRTT: [Double] = [], oursRTTObject: [Double] = [], pyRTT: [Double] = [], pyRTTObject: [Double] = []
for _ in 0..<repeats {
    oursSmall.append(try ourQueueRate(size: small, count: 300_000))
    pySmall.append(try python(["queue", "\(small)", "60000"]))
    oursLarge.append(try ourQueueRate(size: large, count: 20_000))
    pyLarge.append(try python(["queue", "\(large)", "8000"]))
    oursSmallBounded.append(try ourQueueRate(size: small, count: 300_000, maxsize: 128))
    pySmallBounded.append(try python(["queue", "\(small)", "60000", "128"]))
    oursLargeBounded.append(try ourQueueRate(size: large, count: 20_000, maxsize: 128))
    pyLargeBounded.append(try python(["queue", "\(large)", "8000", "128"]))
    oursRTT.append(try ourRoundTrip(size: small, iterations: 20_000, objects: false))
    pyRTT.append(try python(["rtt", "\(small)", "20000"]))
    oursRTTObject.append(try ourRoundTrip(size: small, iterations: 20_000, objects: true))
    pyRTTObject.append(try python(["rtt-object", "20000"]))
}

func rate(_ x: Double) -> String { x >= 1e6 ? String(format: "%.2f M/s", x / 1e6) : String(format: "%.0f k/s", x / 1e3) }
func bandwidth(_ x: Double, _ size: Int) -> String { String(format: "%.2f GB/s", x * Double(size) / 1e9) }
func micro(_ ns: Double) -> String { String(format: "%.1f µs", ns / 1e3) }

let (os, ol, ps, pl, rs, rl) = (median(oursSmall), median(oursLarge), median(pySmall), median(pyLarge), median(rawSmall), median(rawLarge))
let (osb, olb, psb, plb) = (median(oursSmallBounded), median(oursLargeBounded), median(pySmallBounded), median(pyLargeBounded))
let (ort, ortObject, prt, prtObject) = (median(oursRTT), median(oursRTTObject), median(pyRTT), median(pyRTTObject))

print("## Pipes and queues (median of \(repeats) runs)")
print("")
print("| Process to process | Queue (ours) | Python mp.Queue | Raw pipe | ours / Python | ours / raw pipe |")
print("|---|---|---|---|---|---|")
print("| 8 B messages | \(rate(os)) | \(rate(ps)) | \(rate(rs)) | \(String(format: "%.1f×", os / ps)) | \(String(format: "%.0f%%", 100 * os / rs)) |")
print("| 64 KiB messages | \(rate(ol)) (\(bandwidth(ol, large))) | \(rate(pl)) (\(bandwidth(pl, large))) | \(rate(rl)) (\(bandwidth(rl, large))) | \(String(format: "%.1f×", ol / pl)) | \(String(format: "%.0f%%", 100 * ol / rl)) |")
print("| 8 B, maxsize 128 | \(rate(osb)) | \(rate(psb)) | \(rate(rs)) | \(String(format: "%.1f×", osb / psb)) | \(String(format: "%.0f%%", 100 * osb / rs)) |")
print("| 64 KiB, maxsize 128 | \(rate(olb)) (\(bandwidth(olb, large))) | \(rate(plb)) (\(bandwidth(plb, large))) | \(rate(rl)) (\(bandwidth(rl, large))) | \(String(format: "%.1f×", olb / plb)) | \(String(format: "%.0f%%", 100 * olb / rl)) |")
print("")
print("| Round trip, 8 B, median | Connection (ours) | Python Pipe() | Python / ours |")
print("|---|---|---|---|")
print("| bytes (sendBytes / send_bytes) | \(micro(ort)) | \(micro(prt)) | \(String(format: "%.1f×", prt / ort)) |")
print("| an Int (send / send, pickled) | \(micro(ortObject)) | \(micro(prtObject)) | \(String(format: "%.1f×", prtObject / ortObject)) |")
print("")
print("Targets (default, unbounded queues): 8 B ≥ 5× Python: \(os / ps >= 5 ? "met" : "NOT met"); 64 KiB ≥ 50% of raw pipe: \(ol / rl >= 0.5 ? "met" : "NOT met").")
print("With maxsize 128: 8 B ≥ 5× Python: \(osb / psb >= 5 ? "met" : "NOT met"); 64 KiB ≥ 50% of raw pipe: \(olb / rl >= 0.5 ? "met" : "NOT met").")
