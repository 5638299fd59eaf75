import Foundation
import Testing
import TestHarness
import Multiprocessing
import SystemPackage
@testable import MultiprocessingManager
import ManagerTestSupport
import MultiprocessingSystem

// Regression tests for issue 12's manager items (13–18). Each runs a real server process and
// talks to it over real sockets; hostile peers are raw connections written here.

/// A request frame: the 16-byte header, the operation byte, the object id, then `body`.
func requestFrame(_ op: UInt8, _ object: UInt64, _ body: [UInt8] = []) -> [UInt8] {
    var w = ByteWriterRaw()
    w.bytes = [UInt8](repeating: 0, count: 16) + [op]
    w.varint(object)
    w.bytes += body
    let length = w.bytes.count - 16
    w.bytes.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: length, into: $0) }
    return w.bytes
}

/// The resident memory of process `pid` in bytes (VmRSS of /proc/PID/status).
func residentBytes(of pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kilobytes * 1024
    }
    return 0
}

/// A raw Unix connection to `address` that has done nothing yet, non-blocking for the test's
/// driver loop.
func loris(_ address: ManagerAddress?) throws -> CInt {
    guard case .unix(let path)? = address else { throw MultiprocessingError(.misuse, "expected a Unix manager") }
    let fd = try ManagerPlatform.unixSocket()
    try ManagerPlatform.connectUnix(fd, path: path)
    return fd
}

/// Whether the server has closed raw socket `fd`: reads what is there without waiting, and
/// reports true at the end of the stream (or a reset).
func drainedAndClosed(_ fd: CInt) -> Bool {
    var buffer = [UInt8](repeating: 0, count: 256)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n > 0 { continue }
        if n == 0 { return true }
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
    }
}

extension ManagerTests {
    // MARK: item 13: no client input crashes the server

    @Test func hugeTimeoutWaitsAndTheServerSurvives() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let lock = try manager.lock()
        try lock.acquire()
        // Python's threading.TIMEOUT_MAX, and the largest Duration: both wait (for ever, in effect).
        for timeout in [Duration.seconds(9_223_372_036), Duration.seconds(Int64.max)] {
            let outcome = Mutex_<String>("waiting")
            let waiter = Thread {
                do {
                    try lock.acquire(timeout: timeout)
                    outcome.set("acquired")
                    try lock.release()
                } catch {
                    outcome.set("\(error)")
                }
            }
            waiter.start()
            #expect(eventually(within: .seconds(20)) { (try? lock.reference.waiterCount()) == 1 })
            try lock.release()
            #expect(eventually(within: .seconds(20)) { outcome.get() != "waiting" })
            #expect(outcome.get() == "acquired")
            try lock.acquire(timeout: .seconds(20))
        }
        try lock.release()
        try stillServes(manager, counters)
    }

    @Test func negativeTimeoutIsAClearError() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let lock = try manager.lock()
        func isNegativeTimeoutError(_ error: any Error) -> Bool {
            guard let e = error as? MultiprocessingError else { return false }
            return e.code == .misuse && e.message.contains("negative")
        }
        #expect { try lock.acquire(timeout: .seconds(-1)) } throws: { isNegativeTimeoutError($0) }
        #expect(try lock.isLocked == false)
        let queue = try manager.queue(Int.self)
        try queue.put(1)
        #expect { _ = try queue.get(timeout: .milliseconds(-5)) } throws: { isNegativeTimeoutError($0) }
        #expect(try queue.qsize == 1)
        let event = try manager.event()
        #expect { try event.wait(timeout: .nanoseconds(-1)) } throws: { isNegativeTimeoutError($0) }
        let condition = try manager.condition()
        try condition.acquire()
        #expect { try condition.wait(for: { false }, timeout: .seconds(-3)) } throws: { isNegativeTimeoutError($0) }
        try condition.release()
        // A raw request whose timeout field reads as negative (two's complement) gets the same
        // error as a reply, and the connection stays usable.
        let socket = try authenticatedSocket(manager)
        var body = ByteWriterRaw()
        body.varint(7)                 // the owner's thread
        body.varint(UInt64.max)        // timeout + 1: -2 ns as a two's-complement number
        try socket.write(requestFrame(Op.acquire.rawValue, lock.reference.id, body.bytes))
        var reply = ByteReader(try socket.readFrame())
        #expect(try reply.byte() == ReplyStatus.error.rawValue)
        #expect(try reply.string() == "misuse")
        #expect(try reply.string().contains("negative"))
        try socket.write(requestFrame(Op.ping.rawValue, 0))
        var pong = ByteReader(try socket.readFrame())
        #expect(try pong.byte() == ReplyStatus.ok.rawValue)
        #expect(try lock.isLocked == false)
        try stillServes(manager, counters)
    }

    @Test func semaphoreReleaseThatWouldOverflowIsRefused() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let semaphore = try manager.semaphore(value: 1)
        let socket = try authenticatedSocket(manager)
        var body = ByteWriterRaw()
        body.varint(UInt64(Int.max))
        try socket.write(requestFrame(Op.semRelease.rawValue, semaphore.reference.id, body.bytes))
        var reply = ByteReader(try socket.readFrame())
        #expect(try reply.byte() == ReplyStatus.error.rawValue)
        #expect(try semaphore.value == 1)
        try stillServes(manager, counters)
    }

    @Test func destroyingAnActorDoesNotDeadlockTheServer() throws {
        // Found by the fuzzer: the actor's deinit, run when destroy dropped the last reference
        // inside the server's lock, took that lock again.
        let manager = Manager()
        manager.register(Counter.self)
        try manager.start()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let counter = try manager.create(Counter.self)
        let socket = try authenticatedSocket(manager)
        try socket.write(requestFrame(Op.destroy.rawValue, counter.id.id))
        var reply = ByteReader(try socket.readFrame())
        #expect(try reply.byte() == ReplyStatus.ok.rawValue)
        try stillServes(manager, counters)
    }

    @Test func badFactoryArgumentsAreErrorsThatNameTheArgument() throws {
        // Issue 12 item 9's manager half: these were preconditions, which ended the caller.
        let manager = try started()
        defer { try? manager.shutdown() }
        func names(_ argument: String) -> (any Error) -> Bool {
            { ($0 as? MultiprocessingError)?.code == .misuse && ($0 as? MultiprocessingError)?.message.contains(argument) == true }
        }
        #expect(performing: { _ = try manager.semaphore(value: -1) }, throws: names("value"))
        #expect(performing: { _ = try manager.barrier(parties: 0) }, throws: names("parties"))
        #expect(performing: { _ = try manager.barrier(parties: -1) }, throws: names("parties"))
        let semaphore = try manager.semaphore(value: 0)
        #expect(performing: { try semaphore.release(-1) }, throws: names("count"))
        #expect(try semaphore.value == 0)
    }

    // MARK: item 14: Event set() then clear() wakes every waiter

    @Test func eventSetThenClearWakesEveryWaiterInOtherProcesses() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let event = try manager.event()
        // 5 processes with 10 waiting threads each. Woken waiters take the server's lock one by
        // one to look at the flag; a clear() that gets in between must not send the rest back
        // to sleep.
        for round in 0..<2 {
            let children = (0..<5).map { _ in ChildProcess(WaitEventTask(event: event, waiters: 10, timeout: .seconds(20))) }
            for child in children { try child.start() }
            // Every wait is on the server before set() runs.
            #expect(eventually(within: .seconds(30)) { (try? event.reference.waiterCount()) == 50 })
            if round == 0 {
                // set() and clear() back to back in one write: the server runs clear() a few
                // microseconds after set().
                let socket = try authenticatedSocket(manager)
                try socket.write(requestFrame(Op.evSet.rawValue, event.reference.id) + requestFrame(Op.evClear.rawValue, event.reference.id))
                _ = try socket.readFrame()
                _ = try socket.readFrame()
            } else {
                try event.set()
                try event.clear()
            }
            let woken = try children.map { try $0.value(timeout: .seconds(60)) }
            #expect(woken == [10, 10, 10, 10, 10], "round \(round)")
            #expect(try event.isSet == false)
        }
    }

    // MARK: item 15: a failed connect does not poison an address

    @Test func aFailedConnectWithAWrongKeyDoesNotPoisonTheAddress() throws {
        let manager = Manager(authKey: AuthKey("the right key of the poisoning test"))
        try manager.start()
        defer { try? manager.shutdown() }
        let outer = try manager.dictionary(String.self, ManagedList<Int>.self)
        let inner = try manager.list(Int.self)
        try outer.set("inner", inner)
        #expect { _ = try Manager.connect(address: manager.address!, authKey: AuthKey("a wrong key")) } throws: {
            ($0 as? MultiprocessingError)?.code == .authenticationFailed
        }
        // The nested proxy travels without a key; this process must still use the right one.
        let fetched = try #require(try outer.get("inner"))
        try fetched.append(1)
        #expect(try inner.snapshot() == [1])
        // And a connect with the right key after the failure works too.
        let again = try Manager.connect(address: manager.address!, authKey: manager.authKey)
        #expect(try again.serverStatistics().pid == manager.serverPID)
    }

    // MARK: item 16: update that deletes is a compare-and-swap

    @Test func updateThatDeletesDoesNotLoseAnotherProcessesWrite() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let d = try manager.dictionary(String.self, Int.self)
        // The body decides to delete the value it saw (1); another process stores 2 in between.
        // The delete must fail its compare, and the body run again on 2.
        try d.set("k", 1)
        var seen: [Int?] = []
        let result = try d.update("k") { value in
            seen.append(value)
            if seen.count == 1 {
                let writer = ChildProcess(SetEntryTask(dictionary: d, key: "k", value: 2))
                try writer.start()
                try writer.join(timeout: .seconds(30))
                value = nil
            } else {
                value = value.map { $0 + 10 }
            }
        }
        #expect(seen == [1, 2])
        #expect(result == 12)
        #expect(try d.get("k") == 12)

        // Absent, and the body keeps it absent: another process's insert in between must not be
        // overlooked either.
        var seenAbsent: [Int?] = []
        let kept = try d.update("fresh") { value in
            seenAbsent.append(value)
            if seenAbsent.count == 1 {
                let writer = ChildProcess(SetEntryTask(dictionary: d, key: "fresh", value: 5))
                try writer.start()
                try writer.join(timeout: .seconds(30))
                value = nil
            } else {
                value = value.map { $0 + 1 }
            }
        }
        #expect(seenAbsent == [nil, 5])
        #expect(kept == 6)

        // A plain delete through update still deletes.
        #expect(try d.update("k") { $0 = nil } == nil)
        #expect(try d.get("k") == nil)
    }

    // MARK: item 17: unauthenticated peers cannot lock anyone out

    @Test func handshakeDeadlineIsAbsoluteForSlowLorisPeers() throws {
        let manager = try started(ManagerLimits(handshakeTimeout: .milliseconds(300)))
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        // 50 peers send one byte of the 72-byte answer every 100 ms: each read arrives well within
        // 300 ms of the last, so only an absolute deadline closes them (at 300 ms). They stop after
        // 60 bytes (6 s): a deadline that restarts on every byte would close them only then.
        let peers = try (0..<50).map { _ in try loris(manager.address) }
        defer { for fd in peers { ManagerPlatform.close(fd) } }
        let clock = ContinuousClock()
        let start = clock.now
        var closedAt = [Duration?](repeating: nil, count: peers.count)
        var sent = 0
        while closedAt.contains(where: { $0 == nil }) && clock.now - start < .seconds(8) {
            for (i, fd) in peers.enumerated() where closedAt[i] == nil {
                if drainedAndClosed(fd) {
                    closedAt[i] = clock.now - start
                } else if sent < 60 {
                    _ = [UInt8(sent)].withUnsafeBytes { send(fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                }
            }
            sent += 1
            usleep(100_000)
        }
        let latest = closedAt.map { $0 ?? .seconds(1000) }.max() ?? .zero
        print("slow peers with a 300 ms handshake deadline: the last was closed after \(latest)")
        #expect(latest < .seconds(5), "the last slow peer was closed after \(latest)")
        try stillServes(manager, counters)
    }

    @Test func hundredsOfSlowLorisPeersDoNotLockOutGoodClients() throws {
        // 300 unauthenticated peers against a server that serves 64 connections: they hold
        // handshake slots (a byte every 250 ms), but good clients still connect and work, and a
        // client authenticated before the attack keeps working through it.
        let manager = try started(ManagerLimits(handshakeTimeout: .seconds(4), maximumConnections: 64))
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        try counters.increment("good")
        let peers = try (0..<300).map { _ in try loris(manager.address) }
        defer { for fd in peers { ManagerPlatform.close(fd) } }
        let stop = Mutex_(false)
        let driver = Thread {
            var rounds = 0
            // Bounded: at most 40 rounds of 250 ms.
            while !stop.get() && rounds < 40 {
                for fd in peers {
                    _ = drainedAndClosed(fd)
                    _ = [UInt8(1)].withUnsafeBytes { send(fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                }
                rounds += 1
                usleep(250_000)
            }
        }
        driver.start()
        defer { stop.set(true) }
        // The server has taken every peer in (each got its greeting or was closed).
        #expect(eventually(within: .seconds(20)) {
            peers.allSatisfy { fd in
                var byte: UInt8 = 0
                let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
                return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
            }
        })
        // New clients, through the real client code, in other processes.
        let children = (0..<4).map { _ in ChildProcess(IncrementTask(counters: counters, key: "child", times: 50)) }
        for child in children { try child.start() }
        // New raw connections from this process (trying again, as the real client does, when
        // the server is still finishing handshakes it cut short).
        for _ in 0..<10 {
            var attempt: FrameSocket?
            for _ in 0..<200 where attempt == nil {
                do {
                    attempt = try authenticatedSocket(manager)
                } catch is Handshake.RetryableRefusal {
                    usleep(50_000)
                }
            }
            let socket = try #require(attempt)
            try socket.write(requestFrame(Op.ping.rawValue, 0))
            var reply = ByteReader(try socket.readFrame())
            #expect(try reply.byte() == ReplyStatus.ok.rawValue)
            socket.close()
        }
        // The client that was in before the attack.
        for _ in 0..<100 { try counters.increment("good") }
        for child in children { _ = try child.value(timeout: .seconds(60)) }
        #expect(try counters.get("child") == 200)
        #expect(try counters.get("good") == 101)
    }

    @Test func aClientRefusedAtTheConnectionLimitIsToldWhy() throws {
        let manager = try started(ManagerLimits(maximumConnections: 3))
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        try counters.increment("good")
        var held: [FrameSocket] = []
        defer { for socket in held { socket.close() } }
        var refusal: MultiprocessingError?
        for _ in 0..<10 {
            do {
                held.append(try authenticatedSocket(manager))
            } catch let error as MultiprocessingError {
                refusal = error
                break
            }
        }
        let error = try #require(refusal)
        #expect(error.code.name == "serverBusy")
        #expect(error.message.contains("maximumConnections") && error.message.contains("3"), "\(error.message)")
        // Those already in keep working.
        #expect(try counters.increment("good") == 2)
    }

    @Test func theOldestPendingHandshakeIsCutShortAndToldWhy() throws {
        let manager = try started(ManagerLimits(maximumPendingHandshakes: 1))
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        // A peer that takes the one pending slot and never answers.
        let silent = try rawSocket(manager.address)
        _ = try silent.readExactly(Handshake.serverHelloSize)
        // A client arrives: the silent peer is cut short, told why, and closed; the client is in.
        let good = try authenticatedSocket(manager)
        let answer = try silent.readExactly(Handshake.serverAnswerSize)
        #expect(answer[0] == 3)
        #expect(answer[1] == 1)   // the limit, little-endian
        #expect(serverClosed(silent))
        try good.write(requestFrame(Op.ping.rawValue, 0))
        var reply = ByteReader(try good.readFrame())
        #expect(try reply.byte() == ReplyStatus.ok.rawValue)
        try stillServes(manager, counters)
    }

    @Test func aClientJustAdmittedNoLongerCountsAsAHandshake() throws {
        // The CI failure of session 3: a client whose handshake had just succeeded was still
        // counted as a handshake thread for a moment, so with one pending slot, a silent peer and
        // that lagging thread filled the thread bound and the next client was turned away busy.
        // Round after round: a client gets in, a silent peer takes the slot, and a second client
        // must still get in at once (by cutting the silent peer short), never be refused.
        let manager = try started(ManagerLimits(maximumPendingHandshakes: 1))
        defer { try? manager.shutdown() }
        for round in 0..<1000 {
            let first = try authenticatedSocket(manager)
            let silent = try rawSocket(manager.address)
            _ = try silent.readExactly(Handshake.serverHelloSize)
            let second: FrameSocket
            do {
                second = try authenticatedSocket(manager)
            } catch {
                Issue.record("round \(round): the second client was refused: \(error)")
                return
            }
            // The silent peer is told why; its thread has finished once the server has closed
            // its socket.
            #expect(try silent.readExactly(Handshake.serverAnswerSize)[0] == 3)
            #expect(serverClosed(silent))
            silent.close()
            first.close()
            second.close()
        }
    }

    @Test func aBusyGreetingIsReadAsARefusalThatNamesTheLimit() throws {
        // A server whose handshake threads are all taken answers a new connection with the busy
        // greeting and closes it. Played here by a listener of the test's own.
        let directory = try ManagerPlatform.makeTemporaryDirectory(prefix: "/tmp/mp-busy-")
        let path = directory + "/socket"
        let listener = try ManagerPlatform.unixSocket()
        try ManagerPlatform.listenUnix(listener, path: path, backlog: 4)
        defer {
            ManagerPlatform.close(listener)
            ManagerPlatform.unlink(path)
            ManagerPlatform.removeDirectory(directory)
        }
        let server = Thread {
            guard let fd = try? ManagerPlatform.accept(listener) else { return }
            ManagerPlatform.writeNow(fd, Handshake.busyGreeting(limit: 77))
            ManagerPlatform.close(fd)
        }
        server.start()
        let socket = try rawSocket(.unix(path: path))
        defer { socket.close() }
        #expect {
            try Handshake.connect(socket, key: AuthKey.random(), clientID: 1, address: .unix(path: path))
        } throws: { error in
            guard let refusal = error as? Handshake.RetryableRefusal else { return false }
            return refusal.error.code == .serverBusy && refusal.error.message.contains("maximumPendingHandshakes = 77")
        }
    }

    @Test func aBurstOfClientsAgainstASmallHandshakeLimitAllGetIn() throws {
        // Eight processes connect at once (two connections each) to a server that takes two
        // handshakes at a time: those cut short try again, and every call lands.
        let manager = try started(ManagerLimits(maximumPendingHandshakes: 2))
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self)
        let children = (0..<8).map { _ in ChildProcess(IncrementTask(counters: counters, key: "n", times: 20)) }
        for child in children { try child.start() }
        for child in children { _ = try child.value(timeout: .seconds(60)) }
        #expect(try counters.get("n") == 160)
    }

    // MARK: item 18: memory follows the bytes that arrive

    @Test func stalledHugeFramesDoNotMakeTheServerAllocateThem() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let pid = try #require(manager.serverPID)
        let before = residentBytes(of: pid)
        // 16 authenticated peers each announce a frame just under the 64 MiB limit, send a byte
        // of it, and stall.
        let peers = try (0..<16).map { _ in try authenticatedSocket(manager) }
        defer { for socket in peers { socket.close() } }
        var header = [UInt8](repeating: 0, count: 16)
        header.withUnsafeMutableBytes { ManagerPlatform.writeFrameHeader(length: (64 << 20) - 1, into: $0) }
        for socket in peers { try socket.write(header + [Op.dSet.rawValue]) }
        // Each server thread has read its header and byte, then a second byte: it has been in
        // the read after the header, where a buffer of the announced size would have been made.
        #expect(eventually(within: .seconds(30)) { peers.allSatisfy { ManagerPlatform.unsentBytes($0.descriptor) == 0 } })
        for socket in peers { try socket.write([1]) }
        #expect(eventually(within: .seconds(30)) { peers.allSatisfy { ManagerPlatform.unsentBytes($0.descriptor) == 0 } })
        let after = residentBytes(of: pid)
        print("stalled 64 MiB frames: server VmRSS \(before >> 10) KiB before, \(after >> 10) KiB with 16 peers stalled")
        #expect(after - before < 64 << 20, "the server grew from \(before >> 20) MiB to \(after >> 20) MiB")
        try stillServes(manager, counters)
    }
}
