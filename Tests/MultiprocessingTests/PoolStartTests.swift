// How the pool starts and recycles its workers (issue 15's start targets): each recycled
// worker's successor starts with it, a pool worker ends with _exit as Python's do, a large
// initializer still reaches every worker, and the fork server's LD_BIND_NOW stays its own.
import Foundation
import Glibc
@testable import Multiprocessing
import TestHarness
import TestSupport
import Testing

@Suite("ProcessPool worker start", .serialized)
struct PoolStartTests {
    /// With recycling after N tasks, every worker's successor is started as soon as the worker is:
    /// it has the worker's whole life to get ready. (Before, it was started only once the
    /// worker had been sent its last tasks, so a pool that ran nothing had no successor.)
    @Test func aRecyclingWorkersSuccessorStartsWithIt() throws {
        let pool = try ProcessPool(workers: 2, recycling: .after(tasks: 10))
        defer { pool.terminate() }
        #expect(eventually(within: .seconds(60)) { pool.sparePIDs.count == 2 })
        let spares = Set(pool.sparePIDs)
        #expect(spares.isDisjoint(with: Set(pool.workerPIDs)))
        // The successors take over: after 20 tasks (10 per worker at most), the workers are new.
        let first = Set(pool.workerPIDs)
        let ran = Set(try pool.map(PoolWhoAmI(), over: 0..<40, chunking: .fixed(1)))
        #expect(ran.count >= 4)
        #expect(!ran.isSubset(of: first))
        #expect(try pool.map(PoolSquare(), over: 0..<100, chunking: .fixed(1)) == (0..<100).map { $0 * $0 })
    }

    /// A pool worker ends as Python's workers do (`os._exit`): an exit handler its initializer
    /// registered does not run. (Before, workers ended with `exit`, which ran it.)
    @Test func aPoolWorkerEndsWithoutRunningExitHandlers() throws {
        let path = NSTemporaryDirectory() + "mp-pool-atexit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        let pool = try ProcessPool(workers: 2, initializer: RegisterExitMarker(path: path))
        let pids = pool.workerPIDs
        #expect(try pool.map(PoolSquare(), over: 0..<10) == (0..<10).map { $0 * $0 })
        pool.close()
        try pool.join()
        #expect(pids.allSatisfy { kill($0, 0) != 0 })
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(zombieChildren(of: getpid()).filter { pids.contains($0) }.isEmpty)
        // A plain child still runs its exit handlers.
        let child = ChildProcess(RegisterExitMarker(path: path))
        try child.start()
        try child.join()
        #expect(FileManager.default.fileExists(atPath: path))
    }

    /// An initializer too large to be written into the worker's socket before the worker runs
    /// (the handshake is then written once it runs, by a thread of its own) still reaches every
    /// worker, first ones and recycled ones alike.
    @Test func aLargeInitializerReachesEveryWorkerAndRecycledOnes() throws {
        let pool = try ProcessPool(workers: 2, initializer: LargeInitializer(size: 1 << 20), recycling: .after(tasks: 5))
        defer { pool.terminate() }
        let ran = Set(try pool.map(PoolWhoAmI(), over: 0..<30, chunking: .fixed(1)))
        #expect(ran.count >= 6)
    }

    /// The fork server binds its symbols at load (LD_BIND_NOW), but its children do not inherit
    /// that, nor the library's marker; a configuration that sets LD_BIND_NOW itself keeps it.
    @Test func theForkServersBindNowIsNotInherited() throws {
        try #require(getenv("LD_BIND_NOW") == nil)
        for name in ["LD_BIND_NOW", "SWIFT_MULTIPROCESSING_BIND_NOW"] {
            let child = ChildProcess(ReadEnvironment(name: name), startMethod: .forkServer)
            try child.start()
            #expect(try child.value() == nil)
        }
        let configured = ChildProcess(ReadEnvironment(name: "LD_BIND_NOW"), startMethod: .forkServer,
                                      configuration: ChildProcessConfiguration(environment: ["LD_BIND_NOW": "1"]))
        try configured.start()
        #expect(try configured.value() == "1")
    }
}
