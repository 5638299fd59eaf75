// Regression tests for issue 12, item 19: a second receiver or sender on one Connection waits for
// its turn with its own timeout and cancellation, not on a mutex held across the first one's poll.
import Glibc
import Synchronization
import Testing
@testable import Multiprocessing

@Suite("IPCConnectionTurns", .serialized)
struct IPCConnectionTurnTests {
    @Test("a second receiver times out on its own timeout while the first one waits for data")
    func secondReceiverTimesOut() throws {
        let (a, b) = try Connection.pipe()
        let first = Mutex<Int?>(nil)
        let firstThread = try IPCTestThread {
            if let value = try? a.receive(Int.self, timeout: .seconds(60)) { first.withLock { $0 = value } }
        }
        // The first receiver holds the turn and sleeps in poll(2).
        try ipcEventually { a.receiveTurn.isTaken && a.operationsInFlight == 1 }
        let started = ContinuousClock.now
        let second = Mutex<MultiprocessingError.Code?>(nil)
        let secondThread = try IPCTestThread {
            do { _ = try a.receive(Int.self, timeout: .milliseconds(50)) } catch let error as MultiprocessingError {
                second.withLock { $0 = error.code }
            } catch {}
        }
        try secondThread.join(timeout: .seconds(20))
        #expect(second.withLock { $0 } == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(20))
        // The first receiver is still there, and gets the next message.
        try b.send(42)
        try firstThread.join()
        #expect(first.withLock { $0 } == 42)
        try b.send(43)
        #expect(try a.receive(Int.self, timeout: .seconds(5)) == 43)
    }

    @Test("a second async receiver honours Task cancellation while the first one waits")
    func secondReceiverCancelled() async throws {
        let (a, b) = try Connection.pipe()
        // The first receiver waits for as long as it takes (until the send below), so the second
        // can only finish by honouring its cancellation, however long the machine keeps it waiting.
        let firstDone = Atomic<Bool>(false)
        let firstThread = try IPCTestThread {
            _ = try? a.receive(Int.self)
            firstDone.store(true, ordering: .sequentiallyConsistent)
        }
        #expect(await eventuallyAsync { a.receiveTurn.isTaken && a.operationsInFlight == 1 })
        let outcome = Mutex<MultiprocessingError.Code?>(nil)
        let finished = Atomic<Bool>(false)
        let task = Task {
            do { _ = try await a.receive(Int.self) } catch let error as MultiprocessingError {
                outcome.withLock { $0 = error.code }
            } catch {}
            finished.store(true, ordering: .sequentiallyConsistent)
        }
        // Waiting for its turn (marked contended), not yet cancelled.
        #expect(await eventuallyAsync { a.receiveTurn.isContended && a.operationsInFlight == 2 })
        task.cancel()
        #expect(await eventuallyAsync { finished.load(ordering: .sequentiallyConsistent) },
                "a cancelled receive kept waiting for the first receiver")
        #expect(outcome.withLock { $0 } == .cancelled)
        let firstStillWaiting = !firstDone.load(ordering: .sequentiallyConsistent)
        #expect(firstStillWaiting, "the first receiver must still be waiting")
        try await b.send(1)
        try firstThread.join()
        try await b.send(2)
        #expect(try await a.receive(Int.self, timeout: .seconds(5)) == 2)
    }

    @Test("a second sender times out on its own timeout while the first waits for room, and the stream stays whole")
    func secondSenderTimesOut() throws {
        let (a, b) = try Connection.pipe()
        let big = [UInt8](repeating: 7, count: 16 << 20)   // far more than a socket buffer holds
        let firstThread = try IPCTestThread { try? a.sendBytes(big, timeout: .seconds(60)) }
        // Bytes arrive once the first sender holds the turn; then it waits for room.
        try ipcEventually { a.sendTurn.isTaken }
        #expect(try b.poll(timeout: .seconds(20)))
        let second = Mutex<MultiprocessingError.Code?>(nil)
        let secondThread = try IPCTestThread {
            do { try a.sendBytes([1], timeout: .milliseconds(50)) } catch let error as MultiprocessingError {
                second.withLock { $0 = error.code }
            } catch {}
        }
        try secondThread.join(timeout: .seconds(20))
        #expect(second.withLock { $0 } == .timedOut)
        #expect(try b.receiveBytes(timeout: .seconds(20)) == big)
        try firstThread.join()
        #expect(try !b.poll(timeout: .zero), "the sender that timed out wrote nothing")
        try a.sendBytes([2])
        #expect(try b.receiveBytes(timeout: .seconds(5)) == [2])
    }

    @Test("close ends a receive that waits for its turn, with .closed")
    func closeEndsTurnWaiter() throws {
        let (a, b) = try Connection.pipe()
        let codes = Mutex<[MultiprocessingError.Code]>([])
        let receive: @Sendable () -> Void = {
            do { _ = try a.receive(Int.self, timeout: .seconds(60)) } catch let error as MultiprocessingError {
                codes.withLock { $0.append(error.code) }
            } catch {}
        }
        let first = try IPCTestThread(receive)
        try ipcEventually { a.receiveTurn.isTaken && a.operationsInFlight == 1 }
        let second = try IPCTestThread(receive)
        try ipcEventually { a.receiveTurn.isContended && a.operationsInFlight == 2 }
        a.close()
        try first.join(timeout: .seconds(20))
        try second.join(timeout: .seconds(20))
        #expect(codes.withLock { $0 } == [.closed, .closed])
        _ = b
    }
}
