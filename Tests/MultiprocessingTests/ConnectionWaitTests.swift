import Foundation
import Testing
import TestHarness
@testable import Multiprocessing
import TestSupport

/// Issue 18, "wait": connections and process sentinels, from threads and processes, blocking and async.
@Suite("wait on connections and processes")
struct ConnectionWaitTests {
    @Test func nothingReadyTimesOutWithAnEmptyList() throws {
        // (The other ends stay open: a closed one would make these ready, at the end of the stream.)
        let (a, a2) = try Connection.pipe()
        let (b, b2) = try Connection.pipe()
        #expect(try wait([a, b], timeout: .zero).isEmpty)
        #expect(try wait([a, b], timeout: .milliseconds(30)).isEmpty)
        #expect(try wait([Connection](), timeout: .milliseconds(1)).isEmpty)
        withExtendedLifetime((a2, b2)) {}
    }

    @Test func returnsTheReadyConnectionsInOrder() throws {
        let (a, a2) = try Connection.pipe()
        let (b, b2) = try Connection.pipe()
        let (c, c2) = try Connection.pipe(duplex: false)
        try b2.send(1)
        #expect(try wait([a, b, c], timeout: .seconds(10)) === [b])
        try c2.send(2)
        try a2.send(3)
        #expect(try wait([a, b, c], timeout: .seconds(10)) === [a, b, c])
        // The end of the stream counts as ready: a receive would not wait.
        _ = try a.receive(Int.self)
        a2.close()
        #expect(try wait([a], timeout: .seconds(10)) === [a])
    }

    @Test("a message another thread sends wakes a wait with no timeout")
    func threadFlavour() throws {
        let (a, a2) = try Connection.pipe()
        let (b, b2) = try Connection.pipe()
        let sender = OSThread(name: "sender") {
            try b2.sendBytes([1])
        }
        try sender.start()
        #expect(try wait([a, b]) === [b])
        try sender.join(timeout: .seconds(60))
        _ = a2
    }

    @Test("messages from child processes", arguments: [StartMethod.spawn, .forkServer])
    func processFlavour(method: StartMethod) throws {
        var mine: [Connection] = []
        var children: [ChildProcess<Void>] = []
        for count in [10, 20] {
            let (reader, writer) = try Connection.pipe(duplex: false)
            let child = ChildProcess(SendBytesTask(connection: writer, count: count), startMethod: method)
            try child.start()
            writer.close()
            mine.append(reader)
            children.append(child)
        }
        var received: [Int] = []
        var open = mine
        while !open.isEmpty {
            for ready in try wait(open, timeout: .seconds(60)) {
                do {
                    received.append(try ready.receiveBytes().count)
                } catch let error as MultiprocessingError where error.code == .endOfStream {
                    open.removeAll { $0 === ready }
                }
            }
        }
        #expect(received.sorted() == [10, 20])
        for child in children { try child.join(timeout: .seconds(60)) }
    }

    @Test("process sentinels and processes: only the ended ones are ready", arguments: [StartMethod.spawn, .forkServer])
    func sentinels(method: StartMethod) throws {
        let sleeper = ChildProcess(SleepBlocking(milliseconds: 120_000), startMethod: method)
        let quick = ChildProcess(Square(x: 5), startMethod: method)
        try sleeper.start()
        try quick.start()
        let sleeping = try sleeper.sentinel
        let done = try quick.sentinel
        #expect(try wait([sleeping, done], timeout: .seconds(60)) === [done])
        #expect(quick.tryJoin())
        #expect(try quick.value() == 25)
        // The handles themselves wait too.
        #expect(try wait([sleeper], timeout: .zero).isEmpty)
        try sleeper.kill()
        #expect(try wait([sleeper], timeout: .seconds(60)) === [sleeper])
        #expect(sleeper.tryJoin())
        #expect(try wait([sleeping, done], timeout: .zero) === [sleeping, done])
    }

    @Test func mixedObjects() throws {
        let (a, a2) = try Connection.pipe()
        let child = ChildProcess(Square(x: 2))
        try child.start()
        let objects: [any Waitable] = [a, child]
        let first = try wait(objects, timeout: .seconds(60))
        #expect(first.count == 1 && first[0] === child)
        try a2.send("x")
        let both = try wait(objects, timeout: .seconds(60))
        #expect(both.count == 2 && both[0] === a && both[1] === child)
    }

    @Test func aMessageLeftByATooShortBufferIsReady() throws {
        let (a, a2) = try Connection.pipe()
        try a2.sendBytes(Array(repeating: 1, count: 50))
        var small = [UInt8](repeating: 0, count: 4)
        ipcExpectCode(.bufferTooShort) { try a.receiveBytes(into: &small, timeout: .seconds(10)) }
        // The bytes are out of the socket, in the connection: still ready.
        #expect(try wait([a], timeout: .zero) === [a])
        #expect(try a.poll())
        #expect(try a.receiveBytes().count == 50)
        #expect(try wait([a], timeout: .zero).isEmpty)
    }

    @Test func badObjectsAreClearErrors() throws {
        let (a, _) = try Connection.pipe()
        a.close()
        ipcExpectCode(.closed) { try wait([a], timeout: .zero) }
        let (_, writer) = try Connection.pipe(duplex: false)
        let error = ipcExpectCode(.misuse) { try wait([writer], timeout: .zero) }
        #expect(error?.message.contains("write end") == true)
        ipcExpectCode(.misuse) { try wait([ChildProcess(Square(x: 1))], timeout: .zero) }
        let (b, _) = try Connection.pipe()
        ipcExpectCode(.misuse) { try wait([b], timeout: .seconds(-1)) }
    }

    @Test func closingAConnectionWakesAWaitOnIt() throws {
        let (a, a2) = try Connection.pipe()
        defer { withExtendedLifetime(a2) {} }
        let closer = OSThread(name: "closer") {
            // Closes once the wait holds the connection.
            while a.operationsInFlight == 0 { sched_yield() }
            a.close()
        }
        try closer.start()
        #expect(try wait([a], timeout: .seconds(60)) === [a])
        try closer.join(timeout: .seconds(60))
        ipcExpectCode(.closed) { try a.receive(Int.self) }
    }

    @Test func asyncWait() async throws {
        let (a, a2) = try Connection.pipe()
        defer { withExtendedLifetime(a2) {} }
        let (b, b2) = try Connection.pipe()
        async let ready = wait([a, b] as [Connection], timeout: .seconds(60))
        try await b2.send(9)
        #expect(try await ready === [b])
        let child = ChildProcess(Square(x: 3))
        try child.start()
        let objects: [any Waitable] = [a, child]
        let ended = try await wait(objects, timeout: .seconds(60))
        #expect(ended.count == 1 && ended[0] === child)
    }

    @Test func asyncWaitIsCancelled() async throws {
        let (a, a2) = try Connection.pipe()
        defer { withExtendedLifetime(a2) {} }
        let task = Task { try await wait([a]) }
        // Cancelled while it waits on a helper thread (it holds the connection then).
        while a.operationsInFlight == 0 { await Task.yield() }
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("a cancelled wait must throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .cancelled)
        }
    }
}

/// Identity comparison of lists of objects.
func === <T: AnyObject>(lhs: [T], rhs: [T]) -> Bool {
    lhs.count == rhs.count && zip(lhs, rhs).allSatisfy { $0 === $1 }
}
