// mpi-map's modes for one task in flight on a serving rank's MPI thread (scripts/mpi-tests.sh):
// many submit/get round trips with checked results, a long synchronous task while other submits
// queue behind it, and a long task to kill a serving rank under.
import Glibc
import Multiprocessing
#if MPI
import MultiprocessingMPI
#endif

/// A synchronous task that keeps its thread busy for `milliseconds` (no suspension point, so run
/// inline it holds the serving rank's MPI thread), then returns `value * 2`.
struct SpinTask: ProcessTask {
    var value: Int
    var milliseconds: Int
    func run() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let end = now.tv_sec * 1_000_000_000 + now.tv_nsec + milliseconds * 1_000_000
        var spins = 0
        while true {
            clock_gettime(CLOCK_MONOTONIC, &now)
            if now.tv_sec * 1_000_000_000 + now.tv_nsec >= end { break }
            spins &+= 1
        }
        return value * 2 + (spins < 0 ? 1 : 0)
    }
}

#if MPI
/// `roundtrips N`: N submits one after the other, each awaited (`value`, or `get()` for every
/// other one), each result checked; then N submitted at once and collected.
func runRoundTrips(_ pool: MPIPool, count: Int) async throws {
    var wrong = 0
    for value in 0..<count {
        let handle = try pool.submit(WhereAmI(value: value))
        let result = value % 2 == 0 ? try await handle.value : try blockingGet(handle)
        if result != value * 2 { wrong += 1 }
    }
    let handles = try (0..<count).map { try pool.submit(WhereAmI(value: $0 + count)) }
    for (offset, handle) in handles.enumerated() where try await handle.value != (offset + count) * 2 { wrong += 1 }
    print("roundtrips \(count): \(2 * count) results, wrong \(wrong)")
}

/// `get()`, the blocking wait (a caller that drives rank 0's loop from a thread of its own).
func blockingGet(_ handle: PoolTaskHandle<Int>) throws -> Int { try handle.get() }

/// `long-lone MS N`: a synchronous task of MS ms on a serving rank (alone there, so it runs on the
/// rank's MPI thread), then N short tasks behind it. With one serving rank (`-n 2`) the short
/// ones reach that rank only as it answers (two in flight per rank), so they all finish before
/// the long one only if the rank kept serving while the long task held its MPI thread (the
/// standby took the MPI role over).
func runLongLone(_ pool: MPIPool, milliseconds: Int, count: Int) async throws {
    let clock = ContinuousClock()
    let began = clock.now
    let long = try pool.submit(SpinTask(value: 21, milliseconds: milliseconds))
    var wrong = 0
    for value in 0..<count where try await pool.submit(WhereAmI(value: value)).value != value * 2 { wrong += 1 }
    let shortDone = clock.now - began
    let longFirst = long.isDone
    let longValue = try await long.value
    let longDone = clock.now - began
    print("long-lone: \(count) short tasks, wrong \(wrong), done in \(shortDone), the long task done by then \(longFirst); long task \(longValue == 42 ? "right" : "WRONG") in \(longDone)")
}

/// `lone MS`: one long synchronous task (the kill test kills a serving rank while it runs).
func runLone(_ pool: MPIPool, milliseconds: Int) async throws {
    let handle = try pool.submit(SpinTask(value: 1, milliseconds: milliseconds))
    print("lone task running")
    fflush(nil)
    print("lone task \(try await handle.value)")
}
#endif

#if MPI
/// `latency-task N` and `latency-get N`: one task in flight at a time, as `latency`, but from a
/// nonisolated async function (`value` then runs on the caller's thread: no hop to the main actor
/// and back per task, which `latency`'s top-level loop pays), or with the blocking `get()` from a
/// synchronous function (as `mpi4py.futures`' `submit().result()`). Prints the mean and the
/// median of the tasks' own times.
func runLatencyOffMain(_ pool: MPIPool, count: Int, blocking: Bool) async throws {
    let clock = ContinuousClock()
    _ = try await pool.submit(WhereAmI(value: 0)).value
    var each: [Double] = []
    each.reserveCapacity(count)
    let began = clock.now
    if blocking {
        try blockingLoop(pool, count: count, into: &each)
    } else {
        for value in 0..<count {
            let start = clock.now
            _ = try await pool.submit(WhereAmI(value: value)).value
            each.append(seconds(clock.now - start) * 1e6)
        }
    }
    let microseconds = seconds(clock.now - began) * 1e6 / Double(max(count, 1))
    print("latency \(count) tasks one at a time (\(blocking ? "get()" : "value, off the main actor")): \(microseconds) µs each, median \(median(each)) µs")
}

func blockingLoop(_ pool: MPIPool, count: Int, into each: inout [Double]) throws {
    let clock = ContinuousClock()
    for value in 0..<count {
        let start = clock.now
        _ = try pool.submit(WhereAmI(value: value)).get()
        each.append(seconds(clock.now - start) * 1e6)
    }
}
#endif
