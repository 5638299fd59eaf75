// PoolBenchmark: ProcessPool beside Python's multiprocessing.Pool and ProcessPoolExecutor, measured
// in the same run, 2 workers, trivial Int -> Int tasks.
//
//   swift build -c release --package-path Benchmarks --product PoolBenchmark
//   Benchmarks/.build/release/PoolBenchmark [tasks] [repeats]     (defaults 100000 and 5)
//
// Every figure is the median of `repeats` runs:
//   - map of `tasks` tasks, chunk size 1, and default (adaptive) chunking, in tasks/s;
//   - one task in flight, submit → value, in µs (the median of 2000 round trips per run);
//   - recycling every 25 tasks against no recycling (tasks/10 tasks, chunk size 1 for both, as
//     Python's maxtasksperchild measures it), beside its floor: the slowdown a pool would show
//     whose only cost per recycled worker were a bare fork + _exit + waitpid (PoolFloor, C, run
//     one per 25 tasks in a fresh single-threaded copy of this program);
//   - a pool of 8 workers, from creation to its first result (the fork server already running).
// Python's figures come from pool_peer.py beside this file, run by this program after its own.
import BenchmarkSupport
import Multiprocessing
import PoolFloor
#if canImport(Glibc)
import Glibc
#endif

struct Square: PoolFunction {
    func run(_ x: Int) -> Int { x * x }
}

struct SquareTask: ProcessTask {
    var x: Int
    func run() -> Int { x * x }
}

let arguments = CommandLine.arguments
let tasks = arguments.count > 1 ? Int(arguments[1]) ?? 100_000 : 100_000
let repeats = arguments.count > 2 ? Int(arguments[2]) ?? 5 : 5
let inputs = Array(0..<tasks)

if arguments.count > 4 && arguments[3] == "floor" {
    // In a fresh copy of this program, before any pool, thread or fork server exists:
    // PoolBenchmark 0 1 floor <forks>
    var cpu: Int64 = 0
    let wall = pool_fork_floor(Int32(arguments[4]) ?? 400, &cpu)
    print("floor_wall_ns \(wall)")
    print("floor_cpu_ns \(cpu)")
    exit(wall < 0 ? 1 : 0)
}

/// The floor under recycling every 25 tasks of `taskCount`: microseconds of wall time and of CPU per
/// bare fork + _exit + waitpid (the median of `repeats` runs of taskCount / 25 forks each).
func forkFloor(taskCount: Int) -> (wallMicroseconds: Double, cpuMicroseconds: Double)? {
    let forks = max(1, taskCount / 25)
    var walls: [Double] = []
    var cpus: [Double] = []
    for _ in 0..<max(1, repeats) {
        let values = namedValues(runProgram("/proc/self/exe", ["0", "1", "floor", "\(forks)"]))
        guard let wall = values["floor_wall_ns"], wall > 0, let cpu = values["floor_cpu_ns"] else { return nil }
        walls.append(wall / Double(forks) / 1e3)
        cpus.append(cpu / Double(forks) / 1e3)
    }
    return (median(walls), median(cpus))
}

/// The slowdown of a pool at `norecycle` tasks/s whose only cost per 25 tasks were one fork of
/// `floorMicroseconds`, one after another (the fork server makes them one at a time).
func floorSlowdown(norecycle: Double, floorMicroseconds: Double) -> Double {
    let perTask = 1 / norecycle
    return (perTask + floorMicroseconds / 1e6 / 25) / perTask
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = now()
    try body()
    return Double(now() - start) / 1e9
}

func measure(_ body: () throws -> Double) rethrows -> Double {
    var values: [Double] = []
    for _ in 0..<repeats { values.append(try body()) }
    return median(values)
}

var ours: [String: Double] = [:]
if arguments.count > 3 && arguments[3] == "latency" {
    // Only the one-in-flight round trip, 200 times, for tracing: PoolBenchmark 0 1 latency
    do {
        let pool = try ProcessPool(workers: 2)
        if tasks > 0 { _ = try pool.map(Square(), over: inputs, chunking: .fixed(1)) }
        if arguments.count > 4 { usleep(UInt32(arguments[4]) ?? 0) }
        for i in 0..<200 { _ = try pool.submit(SquareTask(x: i)).get() }
        let t = try seconds { for i in 0..<200 { _ = try pool.submit(SquareTask(x: i)).get() } }
        print("latency_us \(t / 200 * 1e6)")
        pool.terminate()
    } catch {
        print("PoolBenchmark failed: \(error)")
    }
    exit(0)
}
if arguments.count > 3 && arguments[3] == "lat2" {
    // DIAG: per-round-trip distribution after optional maps: PoolBenchmark N R lat2 [auto]
    do {
        let pool = try ProcessPool(workers: 2)
        _ = try pool.map(Square(), over: 0..<1000)
        for _ in 0..<repeats { if tasks > 0 { _ = try pool.map(Square(), over: inputs, chunking: .fixed(1)) } }
        if arguments.count > 4 { for _ in 0..<repeats { _ = try pool.map(Square(), over: inputs) } }
        for round in 0..<3 {
            var each: [Double] = []
            for i in 0..<2000 {
                let t0 = now()
                _ = try pool.submit(SquareTask(x: i)).get()
                each.append(Double(now() - t0) / 1e3)
            }
            let mean = each.reduce(0, +) / Double(each.count)
            each.sort()
            print("round \(round) mean \(mean) median \(each[1000]) p10 \(each[200]) p90 \(each[1800]) p99 \(each[1980]) max \(each[1999])")
        }
        pool.terminate()
    } catch {
        print("PoolBenchmark failed: \(error)")
    }
    exit(0)
}
if arguments.count > 3 && arguments[3] == "pool8" {
    // Only a pool of 8, creation to first result, `repeats` times: PoolBenchmark 0 9 pool8
    do {
        var values: [Double] = []
        for _ in 0..<repeats {
            let start = now()
            let p = try ProcessPool(workers: 8)
            _ = try p.submit(SquareTask(x: 3)).get()
            values.append(Double(now() - start) / 1e3)
            p.terminate()
        }
        print("pool8_first_result_us median \(median(values)) all \(values.map { Int($0) })")
    } catch {
        print("PoolBenchmark failed: \(error)")
    }
    exit(0)
}
if arguments.count > 3 && arguments[3] == "chunk1" {
    // Only map at chunk size 1 (and adaptive), for profiling: PoolBenchmark 100000 5 chunk1
    do {
        let pool = try ProcessPool(workers: 2)
        _ = try pool.map(Square(), over: 0..<1000)
        let one = try measure { Double(tasks) / (try seconds { _ = try pool.map(Square(), over: inputs, chunking: .fixed(1)) }) }
        let auto = try measure { Double(tasks) / (try seconds { _ = try pool.map(Square(), over: inputs) }) }
        print("chunk1_tps \(one) auto_tps \(auto)")
        pool.terminate()
    } catch {
        print("PoolBenchmark failed: \(error)")
    }
    exit(0)
}
if arguments.count > 3 && arguments[3] == "cpu" {
    // CPU time (user + system) of the whole run, this process and its reaped children, for
    // recycling every 25 tasks against none: PoolBenchmark 10000 1 cpu
    func cpu(_ who: __rusage_who) -> Double {
        var usage = rusage()
        getrusage(who.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
    do {
        for (name, recycling) in [("never", Recycling.never), ("after25", Recycling.after(tasks: 25)), ("never", Recycling.never), ("after25", Recycling.after(tasks: 25))] {
            let p = try ProcessPool(workers: 2, recycling: recycling)
            _ = try p.map(Square(), over: 0..<10, chunking: .fixed(1))
            let (s0, c0, t0) = (cpu(RUSAGE_SELF), cpu(RUSAGE_CHILDREN), now())
            _ = try p.map(Square(), over: 0..<tasks, chunking: .fixed(1))
            let wall = Double(now() - t0) / 1e9
            p.terminate()
            let (s1, c1) = (cpu(RUSAGE_SELF), cpu(RUSAGE_CHILDREN))
            print("\(name) wall_s \(wall) parent_cpu_s \(s1 - s0) children_cpu_s \(c1 - c0) per_task_us \((s1 - s0 + c1 - c0) / Double(tasks) * 1e6)")
        }
        if let floor = forkFloor(taskCount: tasks) {
            print("floor fork+_exit+waitpid wall_us \(floor.wallMicroseconds) cpu_us \(floor.cpuMicroseconds) (per recycled worker)")
        }
    } catch {
        print("PoolBenchmark failed: \(error)")
    }
    exit(0)
}
if arguments.count > 3 && arguments[3] == "recycle" {
    // Only recycling every 25 tasks against none, chunk size 1: PoolBenchmark 10000 5 recycle
    do {
        for (name, recycling) in [("recycle25_tps", Recycling.after(tasks: 25)), ("norecycle_tps", Recycling.never)] {
            ours[name] = try measure {
                let p = try ProcessPool(workers: 2, recycling: recycling)
                defer { p.terminate() }
                _ = try p.map(Square(), over: 0..<10, chunking: .fixed(1))
                return Double(tasks) / (try seconds { _ = try p.map(Square(), over: 0..<tasks, chunking: .fixed(1)) })
            }
        }
        let slowdown = (ours["norecycle_tps"] ?? 0) / (ours["recycle25_tps"] ?? 1)
        print("recycle25_tps \(ours["recycle25_tps"] ?? 0) norecycle_tps \(ours["norecycle_tps"] ?? 0) slowdown \(slowdown)")
        if let floor = forkFloor(taskCount: tasks), let norecycle = ours["norecycle_tps"] {
            let floorOnly = floorSlowdown(norecycle: norecycle, floorMicroseconds: floor.wallMicroseconds)
            print("floor_fork_us \(floor.wallMicroseconds) floor_cpu_us \(floor.cpuMicroseconds) floor_slowdown \(floorOnly) slowdown_over_floor \(slowdown / floorOnly) (target slowdown <= 2)")
        }
    } catch {
        print("PoolBenchmark failed: \(error)")
    }
    exit(0)
}
do {
    let pool = try ProcessPool(workers: 2)
    _ = try pool.map(Square(), over: 0..<1000)
    ours["chunk1_tps"] = try measure { Double(tasks) / (try seconds { _ = try pool.map(Square(), over: inputs, chunking: .fixed(1)) }) }
    ours["auto_tps"] = try measure { Double(tasks) / (try seconds { _ = try pool.map(Square(), over: inputs) }) }
    ours["latency_us"] = try measure {
        let k = 2000
        let t = try seconds { for i in 0..<k { _ = try pool.submit(SquareTask(x: i)).get() } }
        return t / Double(k) * 1e6
    }
    pool.terminate()

    let m = tasks / 10
    for (name, recycling) in [("recycle25_tps", Recycling.after(tasks: 25)), ("norecycle_tps", Recycling.never)] {
        ours[name] = try measure {
            let p = try ProcessPool(workers: 2, recycling: recycling)
            defer { p.terminate() }
            _ = try p.map(Square(), over: 0..<10, chunking: .fixed(1))
            return Double(m) / (try seconds { _ = try p.map(Square(), over: 0..<m, chunking: .fixed(1)) })
        }
    }
    if let floor = forkFloor(taskCount: m), let norecycle = ours["norecycle_tps"] {
        ours["floor_fork_us"] = floor.wallMicroseconds
        ours["floor_slowdown"] = floorSlowdown(norecycle: norecycle, floorMicroseconds: floor.wallMicroseconds)
    }
    ours["pool8_first_result_us"] = try measure {
        let t = try seconds {
            let p = try ProcessPool(workers: 8)
            _ = try p.submit(SquareTask(x: 3)).get()
            p.terminate()
        }
        return t * 1e6
    }
    // Creation to first result without the teardown, for the target (terminate waits for 8 exits).
    ours["pool8_first_result_only_us"] = try measure {
        let start = now()
        let p = try ProcessPool(workers: 8)
        _ = try p.submit(SquareTask(x: 3)).get()
        let t = Double(now() - start) / 1e3
        p.terminate()
        return t
    }
} catch {
    print("PoolBenchmark failed: \(error)")
    exit(1)
}

let python = namedValues(runPython(siblingPath("pool_peer.py"), ["\(tasks)", "\(repeats)"]))

func show(_ label: String, _ value: Double?, unit: String) {
    guard let value else { print("\(label.padding(48)) (not measured)"); return }
    print("\(label.padding(48)) \(format(value)) \(unit)")
}
func format(_ value: Double) -> String {
    if value >= 100 { return String(Int(value.rounded())) }
    return String(Double(Int(value * 10)) / 10)
}
func ratio(_ a: Double?, _ b: Double?) -> String {
    guard let a, let b, b > 0 else { return "n/a" }
    return format(a / b) + "x"
}
extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

print("PoolBenchmark: \(tasks) trivial Int -> Int tasks, 2 workers, median of \(repeats)")
show("ProcessPool map, chunk size 1", ours["chunk1_tps"], unit: "tasks/s")
show("mp.Pool map, chunksize=1", python["mp_pool_chunk1_tps"], unit: "tasks/s")
show("ProcessPoolExecutor map, chunksize=1", python["ppe_chunk1_tps"], unit: "tasks/s")
print("  ratio to mp.Pool: \(ratio(ours["chunk1_tps"], python["mp_pool_chunk1_tps"])) (target >= 10x)")
show("ProcessPool map, adaptive chunking", ours["auto_tps"], unit: "tasks/s")
show("mp.Pool map, default chunksize", python["mp_pool_auto_tps"], unit: "tasks/s")
print("  ratio to mp.Pool: \(ratio(ours["auto_tps"], python["mp_pool_auto_tps"])) (target >= 5x)")
show("ProcessPool submit -> value, one in flight", ours["latency_us"], unit: "us")
show("mp.Pool apply_async().get()", python["mp_pool_latency_us"], unit: "us")
show("ProcessPoolExecutor submit().result()", python["ppe_latency_us"], unit: "us")
print("  mp.Pool / ours: \(ratio(python["mp_pool_latency_us"], ours["latency_us"])) (target <= 30 us and >= 10x)")
show("ProcessPool, recycling every 25 tasks", ours["recycle25_tps"], unit: "tasks/s")
show("ProcessPool, no recycling (chunk size 1)", ours["norecycle_tps"], unit: "tasks/s")
print("  slowdown: \(ratio(ours["norecycle_tps"], ours["recycle25_tps"])) (target <= 2x)")
show("  floor: bare fork + _exit + waitpid, per 25 tasks", ours["floor_fork_us"], unit: "us")
print("  a pool whose recycling cost only that: \(ours["floor_slowdown"].map { format($0) + "x" } ?? "n/a") slower; ours is \(ratio(ours["norecycle_tps"].flatMap { n in ours["recycle25_tps"].map { n / $0 } }, ours["floor_slowdown"])) the floor's")
show("mp.Pool, maxtasksperchild=25", python["mp_pool_recycle25_tps"], unit: "tasks/s")
show("mp.Pool, no maxtasksperchild (chunksize 1)", python["mp_pool_norecycle_tps"], unit: "tasks/s")
print("  slowdown: \(ratio(python["mp_pool_norecycle_tps"], python["mp_pool_recycle25_tps"]))")
show("ProcessPool(8) creation -> first result", ours["pool8_first_result_only_us"], unit: "us")
show("ProcessPool(8) creation -> first result -> terminate", ours["pool8_first_result_us"], unit: "us")
show("mp.Pool(8) creation -> first result -> close", python["mp_pool8_first_result_us"], unit: "us")
print("  (target <= 10 ms)")
