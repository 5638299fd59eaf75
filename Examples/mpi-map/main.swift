// The MPI demo (issue 16): `mpirun -n 4 mpi-map map 1000000` prints the same checksum as
// `mpi-map local 1000000` (a local ProcessPool). Built with `swift build --traits MPI`; without the
// trait only `local` works. Every rank runs this same program; ranks 1 ... N-1 serve inside
// MPIPool.start and never return here.
import Glibc
import Multiprocessing
#if MPI
import MultiprocessingMPI
#endif

/// The mapped function: a cheap, order-sensitive value per input.
struct Mix: PoolFunction {
    var salt: Int
    func run(_ x: Int) -> Int { (x &* 2_654_435_761 &+ salt) % 1_000_003 }
}

/// Sleeps `milliseconds` per task (the kill tests' long map), then returns its input.
struct Nap: PoolFunction {
    var milliseconds: Int
    func run(_ x: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return x
    }
}

/// A task error with a message, thrown on a remote rank.
struct RemoteFailure: Error, Codable, CustomStringConvertible {
    var value: Int
    var description: String { "input \(value) is not allowed" }
}

/// Throws for inputs that are 3 modulo 7.
struct PickyMix: PoolFunction {
    func run(_ x: Int) throws -> Int {
        if x % 7 == 3 { throw RemoteFailure(value: x) }
        return x
    }
}

/// A submitted task.
struct WhereAmI: ProcessTask {
    var value: Int
    func run() -> Int { value * 2 }
}

/// A submitted task that sleeps first (the callback test's slow second task).
struct SlowTask: ProcessTask {
    var value: Int
    var milliseconds: Int
    func run() async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return value * 2
    }
}

/// A submitted task that throws (on a remote rank: inline there, or in a local worker).
struct PickyTask: ProcessTask {
    var value: Int
    func run() throws -> Int { throw RemoteFailure(value: value) }
}

/// The checksum both pools print: a wrapping sum of index-weighted outputs (so order matters).
func checksum(_ outputs: [Int]) -> Int {
    var sum = 0
    for (index, value) in outputs.enumerated() { sum = sum &+ value &* (index | 1) }
    return sum
}

/// The middle value (0 for none).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

func usage() -> Never {
    print("usage: mpi-map local N | map N [chunk] | unordered N | cancel N | nap N MS | throw N | submit N | submit-throw N | callback | latency N | message BYTES | pingpong N | strings N | crash N | latency-task N | latency-get N | roundtrips N | long-lone MS N | lone MS")
    print("  (submit, submit-throw and latency with -worker: every submitted task in a local worker, inlineSubmit false)")
    exitProgram(64)
}

func exitProgram(_ code: Int32) -> Never {
    Glibc.exit(code)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first else { usage() }
let count = arguments.count > 1 ? Int(arguments[1]) ?? -1 : 1_000_000
guard count >= 0 else { usage() }

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

if mode == "local" || mode == "local-latency" {
    // The same map (or one task at a time) on a local ProcessPool: the reference.
    let clock = ContinuousClock()
    try await ProcessPool.with { pool in
        if mode == "local" {
            let began = clock.now
            let outputs = try await pool.map(Mix(salt: 17), over: 0..<count)
            let elapsed = seconds(clock.now - began)
            print("checksum \(checksum(outputs)) tasks \(count)")
            print("local workers \(pool.workerCount) seconds \(elapsed) tasks/s \(Int(Double(count) / max(elapsed, 1e-9)))")
        } else {
            _ = try await pool.submit(WhereAmI(value: 0)).value
            let began = clock.now
            for value in 0..<count { _ = try await pool.submit(WhereAmI(value: value)).value }
            print("local latency \(count) tasks one at a time: \(seconds(clock.now - began) / Double(max(count, 1)) * 1e6) µs each")
        }
    }
    exitProgram(0)
}

#if MPI
if mode == "message" {
    // One message of `count` bytes from rank 1 to rank 0 through MPIMessenger (parts above Int32.max).
    try MPIEnvironment.initialize(threadLevel: .funneled)
    let world = MPICommunicator.world
    let messenger = try MPIMessenger(communicator: world)
    let rank = try world.rank()
    func pattern(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 31 &+ index >> 20) }
    if rank == 1 {
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count { bytes[index] = pattern(index) }
        try messenger.send(bytes, to: 0, tag: 5)
        bytes = []
        while messenger.pendingSends > 0 { try messenger.progress() }
    } else if rank == 0 {
        var received: MPIMessage?
        while received == nil { received = try messenger.receive() }
        guard let message = received else { exitProgram(1) }
        var good = message.bytes.count == count && message.tag == 5 && message.source == 1
        if good { for index in stride(from: 0, to: count, by: 4093) where message.bytes[index] != pattern(index) { good = false; break } }
        if good, count > 0 { good = message.bytes[count - 1] == pattern(count - 1) }
        print("message \(message.bytes.count) bytes from rank \(message.source) tag \(message.tag): \(good ? "intact" : "CORRUPT")")
        if !good { exitProgram(1) }
    }
    try MPIEnvironment.finalize()
    exitProgram(0)
}
if mode == "pingpong" {
    // The raw cost of one message each way: `count` round trips of 8 bytes between ranks 0 and 1,
    // probing the way MPIPool does (a spin, no blocking receive).
    try MPIEnvironment.initialize(threadLevel: .funneled)
    let world = MPICommunicator.world
    let messenger = try MPIMessenger(communicator: world)
    let rank = try world.rank()
    let payload = [UInt8](repeating: 7, count: 8)
    let clock = ContinuousClock()
    let began = clock.now
    var each: [Double] = []
    each.reserveCapacity(count)
    for _ in 0..<count where rank <= 1 {
        let start = clock.now
        if rank == 0 { try messenger.send(payload, to: 1, tag: 1) }
        var reply: MPIMessage?
        while reply == nil { reply = try messenger.receive() }
        if rank == 1 { try messenger.send(payload, to: 0, tag: 1) }
        each.append(seconds(clock.now - start) * 1e6)
    }
    while messenger.pendingSends > 0 { try messenger.progress() }
    if rank == 0 {
        let microseconds = seconds(clock.now - began) * 1e6 / Double(max(count, 1))
        print("pingpong \(count) round trips of 8 bytes: \(microseconds) µs each, median \(median(each)) µs")
    }
    try MPIEnvironment.finalize()
    exitProgram(0)
}
// `submit-worker`, `latency-worker`, ...: the same mode with every submitted task in a local worker.
let inWorkers = mode.hasSuffix("-worker")
let pool = try MPIPool.start(inlineSubmit: !inWorkers)
let started = ContinuousClock.now
switch inWorkers ? String(mode.dropLast("-worker".count)) : mode {
case "map":
    let chunking: Chunking = arguments.count > 2 ? .fixed(Int(arguments[2]) ?? 1) : .adaptive
    let outputs = try await pool.map(Mix(salt: 17), over: 0..<count, chunking: chunking)
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("checksum \(checksum(outputs)) tasks \(count)")
    print("ranks \(pool.worldSize) workers \(pool.workerCount) seconds \(seconds) tasks/s \(Int(Double(count) / max(seconds, 1e-9)))")
case "unordered":
    // mapUnordered: results as chunks arrive; put back in order for the same checksum.
    var outputs = [Int](repeating: 0, count: count)
    var seen = 0
    for try await (index, result) in try pool.mapUnordered(Mix(salt: 17), over: 0..<count) {
        outputs[index] = try result.get()
        seen += 1
    }
    print("checksum \(checksum(outputs)) tasks \(seen)")
case "cancel":
    // A map queued behind another, cancelled before any of its chunks went out: it ends with
    // CancellationError, the first map completes, and join still returns.
    let first = Task { try await pool.map(Nap(milliseconds: 100), over: 0..<(4 * max(1, pool.worldSize)), chunking: .fixed(1)) }
    try await Task.sleep(for: .milliseconds(50))
    let second = Task { try await pool.map(Nap(milliseconds: 100), over: 0..<count, chunking: .fixed(1)) }
    try await Task.sleep(for: .milliseconds(20))
    second.cancel()
    switch await second.result {
    case .failure(let error): print("second map: \(error is CancellationError ? "cancelled" : "failed: \(error)")")
    case .success: print("second map: ran to the end")
    }
    print("first map: \(try await first.value.count) results")
case "nap":
    let milliseconds = arguments.count > 2 ? Int(arguments[2]) ?? 100 : 100
    print("napping", count, "tasks of", milliseconds, "ms")
    let outputs = try await pool.map(Nap(milliseconds: milliseconds), over: 0..<count, chunking: .fixed(1))
    print("checksum \(checksum(outputs)) tasks \(count)")
case "throw":
    do {
        _ = try await pool.map(PickyMix(), over: 0..<count)
        print("no error")
    } catch let error as PoolTaskError {
        print("error code \(error.code) index \(error.indices) type \(error.remoteTypeName ?? "-")")
        print("message \(error.message)")
        if let remote = error.remoteError as? RemoteFailure { print("decoded RemoteFailure value \(remote.value)") }
    }
case "latency":
    // One task in flight at a time: submit, wait, repeat. The mean, and the median of the tasks'
    // own times (on a loaded machine a few preempted tasks of milliseconds move the mean).
    _ = try await pool.submit(WhereAmI(value: 0)).value
    let clock = ContinuousClock()
    let began = clock.now
    var each: [Double] = []
    each.reserveCapacity(count)
    for value in 0..<count {
        let start = clock.now
        _ = try await pool.submit(WhereAmI(value: value)).value
        each.append(seconds(clock.now - start) * 1e6)
    }
    let microseconds = seconds(clock.now - began) * 1e6 / Double(max(count, 1))
    print("latency \(count) tasks one at a time: \(microseconds) µs each, median \(median(each)) µs")
case "submit":
    var sum = 0
    for value in 0..<count { sum += try await pool.submit(WhereAmI(value: value)).value }
    print("submit sum \(sum)")
case "submit-throw":
    // A submitted task's error reaches rank 0 with its type name, message and value.
    var caught = 0
    for value in 0..<count {
        do {
            _ = try await pool.submit(PickyTask(value: value)).value
        } catch let error as PoolTaskError {
            if caught == 0 {
                print("error code \(error.code) type \(error.remoteTypeName ?? "-")")
                print("message \(error.message)")
            }
            if let remote = error.remoteError as? RemoteFailure, remote.value == value { caught += 1 }
        }
    }
    print("submit errors decoded \(caught) of \(count)")
case "latency-task", "latency-get":
    try await runLatencyOffMain(pool, count: count, blocking: mode == "latency-get")
case "roundtrips":
    try await runRoundTrips(pool, count: count)
case "long-lone":
    try await runLongLone(pool, milliseconds: count, count: arguments.count > 2 ? Int(arguments[2]) ?? 20 : 20)
case "lone":
    try await runLone(pool, milliseconds: count)
case "strings":
    try await runStrings(pool, count: count)
case "crash":
    try await runCrash(pool, count: count)
case "callback":
    // An onDone callback that waits for another handle (get()) and submits: callbacks run on a
    // thread of the pool's own, as a ProcessPool's do, so this completes (it deadlocked when the
    // MPI thread ran callbacks inline: the other result needed that very thread).
    let pool = pool
    let (reports, report) = AsyncStream<String>.makeStream()
    let slow = try pool.submit(SlowTask(value: 2, milliseconds: 300))
    let fast = try pool.submit(WhereAmI(value: 1))
    fast.onDone { first in
        let other = (try? slow.get()) ?? -1
        let submitted = (try? pool.submit(WhereAmI(value: 5)).get()) ?? -1
        report.yield("callback: first \((try? first.get()) ?? -1) other \(other) submitted \(submitted)")
        report.finish()
    }
    for await line in reports { print(line) }
default:
    pool.terminate()
    usage()
}
pool.close()
try await pool.join()
#else
print("mpi-map was built without the MPI trait: only `mpi-map local N` works. Build with `swift build --traits MPI`.")
exitProgram(2)
#endif
