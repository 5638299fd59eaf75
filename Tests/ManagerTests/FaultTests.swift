import Foundation
import Testing
import TestHarness
import Multiprocessing
@testable import MultiprocessingManager
import ManagerTestSupport

extension ManagerTests {
    @Test func serverKilledMidCallMakesEveryClientFailPromptly() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let queue = try manager.queue(Int.self)
        // This process's connections so far: its presence connection and an idle one.
        let baseline = try manager.serverStatistics().connections
        let child = ChildProcess(BlockedGetTask(queue: queue))
        try child.start()
        // The child's get is in flight once the server holds both of the child's connections
        // (its presence connection and the one its get blocks on).
        #expect(eventually { ((try? manager.serverStatistics().connections) ?? 0) >= baseline + 2 })
        let parentWaiter = Thread { _ = try? queue.get() }
        parentWaiter.start()
        // The waiter takes the idle connection, so the next statistics call opens another.
        #expect(eventually { ((try? manager.serverStatistics().connections) ?? 0) >= baseline + 3 })
        guard let pid = manager.serverPID else {
            Issue.record("no server pid")
            return
        }
        kill(pid, SIGKILL)
        let (outcome, elapsed) = try timed { try child.value(timeout: .seconds(10)) }
        #expect(outcome == "endOfStream")
        // Promptly, not after a timeout: the bounds are wide because this machine is shared and
        // loaded, and still far below the 10 s a hang would take.
        #expect(elapsed < .seconds(5))
        #expect(eventually(within: .seconds(5)) { parentWaiter.isFinished })
        let (error, callTime) = timed { () -> MultiprocessingError? in
            do {
                _ = try queue.qsize
                return nil
            } catch {
                return error as? MultiprocessingError
            }
        }
        #expect(error?.code == .endOfStream)
        #expect(callTime < .seconds(3))
    }

    @Test func clientDyingWhileHoldingALockReleasesItAndTellsTheNextOwner() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let lock = try manager.lock()
        let ready = try manager.queue(Int32.self)
        let holder = ChildProcess(HoldLockTask(lock: lock, ready: ready))
        try holder.start()
        let pid = try ready.get(timeout: .seconds(10))
        #expect(try lock.isLocked)
        #expect(try lock.tryAcquire() == false)
        kill(pid, SIGKILL)
        #expect { try lock.acquire(timeout: .seconds(10)) } throws: { ($0 as? MultiprocessingError)?.code == .ownerDied }
        // The caller holds it now; releasing makes it an ordinary lock again.
        #expect(try lock.isLocked)
        try lock.release()
        try lock.acquire(timeout: .seconds(1))
        try lock.release()
        _ = try? holder.join(timeout: .seconds(5))
    }

    @Test func aSeparateServerProcessIsReachedOverTCPOnLoopback() throws {
        let server = try HelperProcess(["scenario", "serve-tcp", "0", "tcp secret"])
        defer { server.kill(SIGKILL) }
        guard let line = server.readLine(), line.hasPrefix("ready "), let address = ManagerAddress(String(line.dropFirst(6))) else {
            Issue.record("the server did not say ready")
            return
        }
        guard case .tcp(let host, let port) = address else {
            Issue.record("not a TCP address: \(address)")
            return
        }
        #expect(host == "127.0.0.1" && port > 0)
        let manager = try Manager.connect(address: address, authKey: AuthKey("tcp secret"))
        let counters = try manager.dictionary(String.self, Int.self, name: "counters")
        #expect(try counters.increment("x", by: 2) == 2)
        // A second connection finds the same named dictionary.
        let again = try Manager.connect(address: address, authKey: AuthKey("tcp secret"))
        #expect(try again.dictionary(String.self, Int.self, name: "counters").get("x") == 2)
        // A child reaches it too, with the key carried in its task.
        let child = ChildProcess(IncrementTask(counters: counters, key: "x", times: 100))
        try child.start()
        #expect(try child.value(timeout: .seconds(20)) == 102)
        #expect { try Manager.connect(address: address, authKey: AuthKey("wrong")) } throws: {
            ($0 as? MultiprocessingError)?.code == .authenticationFailed
        }
        #expect(try counters.get("x") == 102)
    }

    @Test func theServerDiesWithItsParentEvenOnSIGKILL() throws {
        let parent = try HelperProcess(["scenario", "parent-with-manager"])
        guard let line = parent.readLine(), line.hasPrefix("server "), let server = Int32(line.dropFirst(7)), server > 0 else {
            parent.kill()
            Issue.record("the helper did not report its server")
            return
        }
        #expect(processIsRunning(server))
        parent.kill(SIGKILL)
        #expect(eventually { !processIsRunning(server) })
    }

    @Test func hundredConcurrentClientsLoseNothingAndServerMemoryStaysBounded() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self)
        let start = try manager.barrier(parties: 100)
        func load(operations: Int) {
            let threads = (0..<100).map { t in
                Thread {
                    // All 100 wait at the barrier at once, so each holds a connection of its own
                    // (the pool hands concurrent callers different connections).
                    _ = try? start.wait(timeout: .seconds(60))
                    let own = "t\(t)"
                    for i in 0..<operations {
                        _ = try? counters.increment(i % 2 == 0 ? "shared" : own)
                    }
                }
            }
            for thread in threads { thread.start() }
            #expect(eventually(within: .seconds(120)) { threads.allSatisfy(\.isFinished) })
        }
        // A warm-up opens the 100 connections (a thread and buffers each on the server).
        load(operations: 10)
        let before = try manager.serverStatistics()
        #expect(before.connections >= 100)
        try counters.removeAll()
        load(operations: 1_000)
        #expect(try counters.get("shared") == 50_000)
        for t in 0..<100 { #expect(try counters.get("t\(t)") == 500) }
        let after = try manager.serverStatistics().residentBytes
        // 100,000 more calls must not grow the server: nothing accumulates per call.
        #expect(after < before.residentBytes + 8 << 20, "server grew from \(before.residentBytes) to \(after) bytes")
    }
}
