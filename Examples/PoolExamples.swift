// Not in the seed, but what most people use multiprocessing for: Python's Pool.
//
//     def square(x):
//         return x * x
//
//     if __name__ == '__main__':
//         with multiprocessing.Pool(2) as pool:
//             print(pool.map(square, range(10)))
//             for i, y in pool.imap_unordered(square_with_index, range(5)): print(i, y)
//             print(pool.apply_async(os.getpid).get())
import ArgumentParser
import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

/// `def square(x): return x * x`: the function is a value, found in the workers by its type name.
struct SquareFunction: PoolFunction {
    func run(_ x: Int) -> Int { x * x }
}

/// Python's `starmap(pow, [(2, 5), (3, 2)])`: several arguments travel as one struct.
struct PowerFunction: PoolFunction {
    struct Arguments: Codable, Sendable {
        var base: Int
        var exponent: Int
    }
    func run(_ arguments: Arguments) -> Int {
        (0..<arguments.exponent).reduce(1) { product, _ in product * arguments.base }
    }
}

/// `os.getpid()` in a worker, for `apply_async`.
struct WorkerPID: ProcessTask {
    func run() -> Int32 { getpid() }
}

/// A task that kills its own worker when `x == victim`: what the OOM killer does to Python's pool.
struct KillWorkerOn: PoolFunction {
    var victim: Int
    func run(_ x: Int) -> Int {
        if x == victim { kill(getpid(), SIGKILL) }
        return x
    }
}

struct PoolExample: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool",
        abstract: "not in the seed: Pool.map, starmap, apply_async, and a killed worker")
    @Option(help: "Worker processes.")
    var workers: Int = 2

    func run() throws {
        // with multiprocessing.Pool(2) as pool:
        let pool = try ProcessPool(workers: workers)
        defer { pool.terminate() }

        // print(pool.map(square, range(10)))
        let squares = try pool.map(SquareFunction(), over: 0..<10)
        say("\(squares)")

        // print(pool.starmap(pow, [(2, 5), (3, 2)]))
        let powers = try pool.map(PowerFunction(), over: [.init(base: 2, exponent: 5), .init(base: 3, exponent: 2)])
        say("\(powers)")

        // print(pool.apply_async(os.getpid).get())
        let pid = try pool.submit(WorkerPID()).get()
        say("a worker's pid: \(pool.workerPIDs.contains(pid) ? "one of the pool's" : "unknown")")

        // A worker killed in the middle of a map: Python's Pool hangs for ever; here only the
        // task that worker ran fails, with its pid and signal, and the pool goes on.
        let results = try pool.mapResults(KillWorkerOn(victim: 3), over: 0..<6, chunking: .fixed(1))
        for (index, result) in results.enumerated() {
            switch result {
            case .success(let value): say("task \(index): \(value)")
            case .failure(let error): say("task \(index) failed: its worker was \(error.exitStatus?.description ?? "lost")")
            }
        }
        say("the pool goes on: \(try pool.map(SquareFunction(), over: 0..<3))")

        // pool.close(); pool.join()
        pool.close()
        try pool.join()
        say("pool closed")
    }
}
