import Foundation
import Testing
import TestHarness
import Multiprocessing
import TestSupport

/// Runs `body` and checks that it throws a `MultiprocessingError` of `code` whose message holds `text`.
func expectFailure(_ code: MultiprocessingError.Code, _ text: String = "", _ what: String = "",
                   sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("\(what) should have thrown \(code)", sourceLocation: sourceLocation)
    } catch let error as MultiprocessingError {
        #expect(error.code == code, "\(what): \(error)", sourceLocation: sourceLocation)
        #expect(text.isEmpty || error.message.contains(text), "\(what): \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(what): not a MultiprocessingError: \(error)", sourceLocation: sourceLocation)
    }
}

/// Issue 18, "Processes": close, sentinel, interrupt and any signal, current and parent process,
/// the key in the core library, and join as a poll.
@Suite("Process identity and control", .serialized)
struct ProcessIdentityTests {
    static let methods: [StartMethod] = [.spawn, .forkServer]

    @Test("interrupt() ends a child with SIGINT", arguments: methods)
    func interruptSendsSIGINT(method: StartMethod) throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 120_000), startMethod: method)
        try child.start()
        try child.interrupt()
        try child.join(timeout: .seconds(60))
        #expect(child.exitStatus == .signaled(.interrupt))
        #expect(child.exitCode == -2)
    }

    @Test("signal(_:) sends any signal; an ended child is not signalled", arguments: methods)
    func signalSendsAnySignal(method: StartMethod) throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 120_000), startMethod: method)
        try child.start()
        try child.signal(.user1)
        try child.join(timeout: .seconds(60))
        #expect(child.exitStatus == .signaled(.user1))
        try child.signal(.terminate)   // ended: nothing to signal, no error
        #expect(child.exitStatus == .signaled(.user1))
    }

    @Test func signalsBeforeStartAreMisuse() {
        let child = ChildProcess(Square(x: 1))
        expectFailure(.misuse, "not been started") { try child.interrupt() }
        expectFailure(.misuse, "not been started") { try child.signal(.user1) }
    }

    @Test("tryJoin is a poll that needs no do/catch", arguments: methods)
    func tryJoinPolls(method: StartMethod) throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 120_000), startMethod: method)
        #expect(child.tryJoin() == false)          // not started
        #expect(child.hasEnded == false)
        try child.start()
        #expect(child.tryJoin() == false)          // running: looks and returns at once
        #expect(child.tryJoin(timeout: .milliseconds(20)) == false)
        try child.kill()
        #expect(child.tryJoin(timeout: .seconds(60)) == true)
        #expect(child.hasEnded)
        #expect(child.tryJoin() == true)
        #expect(child.exitStatus == .signaled(.kill))
    }

    @Test func tryJoinAsync() async throws {
        let child = ChildProcess(Square(x: 3))
        try child.start()
        #expect(await child.tryJoin(timeout: .seconds(60)) == true)
        #expect(try await child.value() == 9)
    }

    @Test("close() releases the handle; use after close is a clear error", arguments: methods)
    func closeReleases(method: StartMethod) throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 120_000), startMethod: method)
        try child.start()
        let pid = child.pid
        expectFailure(.misuse, "still running") { try child.close() }
        try child.terminate()
        try child.join(timeout: .seconds(60))
        try child.close()
        try child.close()   // twice: nothing
        #expect(child.isClosed)
        #expect(child.pid == pid)
        #expect(child.exitStatus == .signaled(.terminate))
        #expect(child.hasEnded)
        #expect(child.isAlive == false)
        for (what, call) in [("join", { try child.join(timeout: .zero) }),
                             ("start", { try child.start() }),
                             ("terminate", { try child.terminate() }),
                             ("interrupt", { try child.interrupt() }),
                             ("sentinel", { _ = try child.sentinel })] as [(String, () throws -> Void)] {
            expectFailure(.closed, "closed", what, call)
        }
    }

    @Test func asyncJoinAfterCloseIsAClearError() async throws {
        let child = ChildProcess(Square(x: 2))
        try child.start()
        try await child.join(timeout: .seconds(60))
        try child.close()
        do {
            try await child.join(timeout: .zero)
            Issue.record("async join after close must throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .closed)
        }
    }

    @Test func closeBeforeStartForbidsTheStart() throws {
        let child = ChildProcess(Square(x: 2))
        try child.close()
        expectFailure(.closed, "closed") { try child.start() }
    }

    @Test("the sentinel becomes ready when the child ends, and outlives close()", arguments: methods)
    func sentinelReadiness(method: StartMethod) throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 120_000), startMethod: method)
        try child.start()
        let sentinel = try child.sentinel
        #expect(sentinel.isReady == false)
        try child.kill()
        #expect(eventually(within: .seconds(60)) { sentinel.isReady })
        // Ready means join returns at once.
        #expect(child.tryJoin())
        let late = try child.sentinel
        #expect(late.isReady)
        #expect(late.fileDescriptor != sentinel.fileDescriptor)
        try child.close()
        #expect(sentinel.isReady)
        #expect(late.isReady)
    }

    @Test func mainProcessIdentity() {
        let me = currentProcess()
        #expect(me.name == "MainProcess")
        #expect(me.pid == getpid())
        #expect(me.daemon == false)
        #expect(me.isAlive)
        #expect(parentProcess() == nil)
    }

    @Test("a child knows its parent and inherits its key", arguments: methods)
    func childIdentity(method: StartMethod) throws {
        let daemon = ChildProcess(ReportIdentity(), name: "reporter", daemon: true, startMethod: method)
        try daemon.start()
        let reports = try daemon.value(timeout: .seconds(120))
        #expect(reports.count == 1)
        let report = try #require(reports.first)
        #expect(report.name == "reporter")
        #expect(report.pid == daemon.pid)
        #expect(report.daemon)
        #expect(report.alive)
        // Under the fork server too: the parent is this process, not the server.
        #expect(report.parentName == "MainProcess")
        #expect(report.parentPID == getpid())
        #expect(report.parentAlive == true)
        #expect(report.authKeyHex == CurrentProcess.authKey.hex)
    }

    @Test("a grandchild's parent is the child, with the child's key", arguments: ["spawn", "forkserver"])
    func grandchildIdentity(method: String) throws {
        let child = ChildProcess(ReportIdentity(grandchild: true, method: method), name: "middle",
                                 startMethod: method == "forkserver" ? .forkServer : .spawn)
        try child.start()
        let reports = try child.value(timeout: .seconds(120))
        #expect(reports.count == 2)
        #expect(reports[1].name == "grandchild")
        #expect(reports[1].parentName == "middle")
        #expect(reports[1].parentPID == child.pid)
        #expect(reports[1].parentAlive == true)
        #expect(reports[1].authKeyHex == CurrentProcess.authKey.hex)
    }

    @Test func aForkedChildKnowsItsParent() async throws {
        let result = try await runHelper(["scenario", "identity-fork"])
        let all = "\(result.stdout)\(result.stderr)"
        #expect(result.status == 0, "\(all)")
        let main = try #require(result.lines.first { $0.hasPrefix("main ") }, "\(all)")
        let fields = main.split(separator: " ")
        #expect(fields.count == 7, "\(all)")
        let pid = fields.count > 2 ? String(fields[2]) : ""
        let key = fields.last.map(String.init) ?? ""
        #expect(main.hasPrefix("main MainProcess \(pid) parent none"), "\(all)")
        #expect(result.lines.contains("child name forked daemon false alive true parent MainProcess \(pid) alive true key \(key)"), "\(all)")
    }

    @Test func aChangedKeyIsWhatLaterChildrenInherit() throws {
        let saved = CurrentProcess.authKey
        defer { CurrentProcess.authKey = saved }
        let key = AuthKey("a changed key")
        CurrentProcess.authKey = key
        let child = ChildProcess(ReportIdentity())
        try child.start()
        #expect(try child.value(timeout: .seconds(120)).first?.authKeyHex == key.hex)
    }
}
