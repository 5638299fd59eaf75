import Foundation
import Testing
import TestHarness
import Multiprocessing
import TestSupport

/// A type the helper binary does not contain: a child run in the helper cannot resolve it.
struct OnlyInTheTestRunner: ProcessTask {
    var x: Int
    func run() -> Int { x }
}

@Suite("ChildProcess", .serialized)
struct ChildProcessTests {

    @Test("arguments and results round-trip", arguments: [StartMethod.spawn])
    func roundTrip(method: StartMethod) throws {
        let square = ChildProcess(Square(x: 12), startMethod: method)
        try square.start()
        #expect(try square.value() == 144)
        #expect(square.exitCode == 0)

        let describe = ChildProcess(Describe(words: ["sing", "and", "draw"], options: ["a": 1, "b": 2]), name: "describer")
        try describe.start()
        let report = try describe.value()
        #expect(report.text == "sing and draw")
        #expect(report.total == 3)
        #expect(report.processName == "describer")
        #expect(report.parentPID == CurrentProcess.pid)
        #expect(report.pid == describe.pid)
        #expect(report.isDaemon == false)

        let generic = ChildProcess(Generic(value: ["k": [1, 2]]))
        try generic.start()
        #expect(try generic.value() == [["k": [1, 2]], ["k": [1, 2]]])
    }

    @Test func asyncJoinAndValue() async throws {
        let child = ChildProcess(Square(x: 5))
        try child.start()
        try await child.join(timeout: nil)
        #expect(try await child.value() == 25)
    }

    @Test func errorsCarryTheChildsTypeAndMessage() throws {
        let child = ChildProcess(Fail(reason: "no paint left"))
        try child.start()
        try child.join()
        #expect(child.exitCode == 1)
        do {
            _ = try child.value()
            Issue.record("value() should throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .childFailed)
            #expect(error.remoteTypeName == "TestSupport.TaskFailure")
            #expect(error.message.contains("no paint left"))
        }
    }

    @Test func unresolvableTaskTypeIsAClearError() throws {
        let child = ChildProcess(OnlyInTheTestRunner(x: 1), configuration: inTheHelper())
        try child.start()
        try child.join(timeout: .seconds(20))
        #expect(child.exitCode == 1)
        do {
            _ = try child.value()
            Issue.record("value() should throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .childStartFailed)
            #expect(error.message.contains("OnlyInTheTestRunner"))
        }
    }

    @Test("a crash is reported as the signal, and the parent carries on",
          arguments: [Crash.Kind.fatalError, .indexOutOfRange, .segfault])
    func crashIsReported(kind: Crash.Kind) throws {
        let child = ChildProcess(Crash(kind: kind))
        try child.start()
        try child.join(timeout: .seconds(20))
        guard case .signaled(let signal)? = child.exitStatus else {
            Issue.record("expected a signal, got \(String(describing: child.exitStatus))")
            return
        }
        let expected: Set<Signal> = kind == .segfault ? [.segmentationFault] : [.illegalInstruction, .trap]
        #expect(expected.contains(signal))
        #expect(child.exitCode == -signal.rawValue)
        do {
            _ = try child.value()
            Issue.record("value() should throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .childDied)
            #expect(error.message.contains(signal.name))
        }
    }

    @Test func exitCodeOfAnExitCall() throws {
        let child = ChildProcess(Crash(kind: .exit3))
        try child.start()
        try child.join()
        #expect(child.exitStatus == .exited(3))
        #expect(child.exitCode == 3)
    }

    @Test func terminateAndKillGiveNegativeSignalCodes() throws {
        let a = ChildProcess(SleepBlocking(milliseconds: 30_000))
        let b = ChildProcess(SleepBlocking(milliseconds: 30_000))
        try a.start()
        try b.start()
        #expect(a.isAlive && b.isAlive)
        try a.terminate()
        try b.kill()
        try a.join(timeout: .seconds(10))
        try b.join(timeout: .seconds(10))
        #expect(a.exitCode == -15)
        #expect(b.exitCode == -9)
        #expect(!a.isAlive && !b.isAlive)
        let zombies = zombieChildren(of: CurrentProcess.pid)
        #expect(!zombies.contains { $0 == a.pid || $0 == b.pid })
        // Signalling a child that has ended is not an error, as in Python.
        try a.terminate()
    }

    @Test func joinTimesOut() throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 30_000))
        try child.start()
        #expect(throws: MultiprocessingError.self) { try child.join(timeout: .milliseconds(50)) }
        do {
            try child.join(timeout: .milliseconds(10))
        } catch let error as MultiprocessingError {
            #expect(error.code == .timedOut)
        }
        #expect(child.isAlive)
        try child.kill()
        try child.join()
    }

    @Test func misuseIsRefusedClearly() throws {
        let child = ChildProcess(Square(x: 1))
        do {
            try child.join()
            Issue.record("join before start should throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .misuse)
            #expect(error.message.contains("not been started"))
        }
        try child.start()
        do {
            try child.start()
            Issue.record("a second start should throw")
        } catch let error as MultiprocessingError {
            #expect(error.code == .misuse)
            #expect(error.message.contains("already started"))
        }
        #expect(try child.value() == 1)
    }

    @Test func forkIsRefusedInAMultiThreadedProcess() throws {
        // The test runner runs many threads: a fork here could hang the child.
        let child = ChildProcess<Int>(forking: { 1 })
        do {
            try child.start()
            Issue.record("fork should be refused here")
        } catch let error as MultiprocessingError {
            #expect(error.code == .unsupported)
        }
    }

    @Test func namesDefaultToChildProcessN() throws {
        let a = ChildProcess(Square(x: 1))
        let b = ChildProcess(Square(x: 1), name: "painter")
        #expect(a.name.hasPrefix("ChildProcess-"))
        #expect(b.name == "painter")
        #expect(CurrentProcess.name == "MainProcess")
        #expect(cpuCount() >= 1)
    }

    @Test func activeChildrenListsRunningChildren() throws {
        let child = ChildProcess(SleepBlocking(milliseconds: 30_000), name: "listed")
        try child.start()
        #expect(activeChildren().contains { $0.name == "listed" && $0.pid == child.pid })
        try child.kill()
        try child.join()
        #expect(!activeChildren().contains { $0.name == "listed" })
    }

    @Test func onlyTheIntendedDescriptorsReachAChild() throws {
        // Open a descriptor without close-on-exec: even that must not leak into the child.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mp-leak-\(getpid())").path
        let leaky = open(path, O_RDWR | O_CREAT, 0o600)
        #expect(leaky >= 0)
        defer { close(leaky); unlink(path) }
        let child = ChildProcess(ListDescriptors())
        try child.start()
        let open = try child.value()
        // 0, 1, 2: stdio; one socket at a high number (512 or more): the channel to the parent,
        // moved off 3 before the task runs. Anything else is the child's own runtime (Dispatch's
        // eventfd and epoll), never one of ours.
        let byNumber = Dictionary(open.map { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            return (Int32(parts[0]) ?? -1, parts.count > 1 ? String(parts[1]) : "")
        }, uniquingKeysWith: { a, _ in a })
        // 0–2 are whatever this process has as its standard streams (a test runner may even have
        // them closed, in which case another file takes the number): inherited by design.
        let sockets = byNumber.filter { $0.key > 2 && $0.value.hasPrefix("socket:") }
        #expect(sockets.count == 1 && sockets.keys.allSatisfy { $0 >= 512 }, "\(open)")
        for (fd, target) in byNumber where fd > 2 && !target.hasPrefix("socket:") {
            #expect(target.hasPrefix("anon_inode:"), "descriptor \(fd) → \(target) reached the child: \(open)")
        }
        #expect(!open.contains { $0.hasSuffix(path) })
    }

    @Test func aDescriptorTravelsInTheArguments() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let message = Array("hello through a pipe".utf8)
        #expect(write(fds[1], message, message.count) == message.count)
        close(fds[1])
        let child = ChildProcess(ReadDescriptor(source: SharedDescriptor(.init(rawValue: fds[0]))))
        try child.start()
        #expect(try child.value() == "hello through a pipe")
    }

    @Test func childEnvironmentReachesChildrenButNotThisProcess() throws {
        let name = "MP_TEST_CHILD_ENV_\(getpid())"
        let configuration = ChildProcessConfiguration(environment: [name: "for the children"])
        #expect(getenv(name) == nil)
        let child = ChildProcess(ReadEnvironment(name: name), configuration: configuration)
        try child.start()
        #expect(try child.value() == "for the children")
        let after = ChildProcess(ReadEnvironment(name: name))
        try after.start()
        #expect(try after.value() == nil)
    }

    @Test func aResultBiggerThanTheSocketBufferArrives() throws {
        let count = 8 << 20
        let child = ChildProcess(BigResult(count: count))
        try child.start()
        let bytes = try child.value()
        #expect(bytes.count == count)
        #expect(bytes[12345] == UInt8(truncatingIfNeeded: 12345 &* 31))
    }

    @Test func twoHundredUnjoinedChildrenLeaveNoZombie() throws {
        var children: [ChildProcess<Int>] = []
        for x in 0..<200 {
            let child = ChildProcess(Square(x: x))
            try child.start()
            children.append(child)
        }
        // No join: wait only until every child has ended, as the monitor observes it.
        #expect(eventually(within: .seconds(60)) { children.allSatisfy { !$0.isAlive } })
        // Other suites' children may be caught for a microsecond between exit and reaping; ours are reaped.
        let ours = Set(children.compactMap(\.pid))
        #expect(ours.count == 200)
        #expect(zombieChildren(of: CurrentProcess.pid).allSatisfy { !ours.contains($0) })
        #expect(children.allSatisfy { $0.exitCode == 0 })
    }
}

@Suite("ChildProcess scenarios", .serialized)
struct ChildProcessScenarioTests {
    @Test func forkStartMethod() async throws {
        let result = try await runHelper(["scenario", "fork"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.lines.contains("fork value 42 name forked"))
        #expect(result.lines.contains("fork task 81"))
        #expect(result.lines.contains("fork error childFailed TestSupport.TaskFailure"))
        #expect(result.lines.contains("fork identity who true true"))
        #expect(result.lines.contains("fork self-join misuse"))
    }

    @Test func forkIsRefusedOnceAnotherThreadRuns() async throws {
        let result = try await runHelper(["scenario", "fork-threads"])
        #expect(result.lines.contains("refused unsupported"), "\(result.stdout)\(result.stderr)")
    }

    @Test func forkServerStartMethod() async throws {
        let result = try await runHelper(["scenario", "forkserver"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.lines.contains("forkserver values [1, 4, 9, 16, 25]"))
        #expect(result.lines.contains("forkserver exit 3"))
        #expect(result.lines.contains("forkserver terminated -15"))
    }

    @Test func mainWaitsForNonDaemonChildrenAndStopsDaemons() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("mp-marker-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { unlink(marker) }
        let result = try await runHelper(["scenario", "nondaemon-exit", marker])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        // The helper has exited: its exit waited for the child, which made the marker 300 ms after
        // main returned. Without the wait, the marker would not exist yet.
        #expect(FileManager.default.fileExists(atPath: marker))
        // The daemon child was terminated at exit, not left running for its 60 s.
        let line = result.lines.first { $0.hasPrefix("main done") }
        #expect(line != nil)
        if let line, let pid = Int32(line.split(separator: "=").last ?? "") {
            #expect(!processIsRunning(pid))
        }
    }

    @Test("daemon children die when their parent is SIGKILLed", arguments: ["spawn", "forkserver"])
    func daemonChildrenDieWithAKilledParent(method: String) async throws {
        let helper = try startHelper(["scenario", "daemon-orphan", method])
        // The first line names the children.
        let pids = try await offThePool { helper.firstLinePIDs() }
        #expect(pids.count == 2)
        #expect(pids.allSatisfy(processIsRunning))
        helper.signal(SIGKILL)
        await helper.wait()
        // No orphan remains: the kernel kills each one with its parent.
        #expect(await eventuallyAsync(within: .seconds(60)) { pids.allSatisfy { !processIsRunning($0) } })
    }
}
