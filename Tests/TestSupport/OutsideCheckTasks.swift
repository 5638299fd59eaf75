// Task types and helper-binary scenarios for the outside checks after issue 12 (see
// Tests/MultiprocessingTests/OutsideCheckTests.swift): process-wide states a test runner must not
// take on itself (SIGCHLD ignored, descriptors 0-2 closed) and process trees a test kills.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing

private func startMethod(_ name: String?) -> StartMethod {
    switch name {
    case "fork": return .fork
    case "forkserver": return .forkServer
    default: return .spawn
    }
}

/// Starts a grandchild (by `method`) that sleeps, puts its pid on `pids`, then joins it.
public struct StartSleepingGrandchild: ProcessTask {
    public var pids: Queue<Int32>
    public var method: String
    public var daemon: Bool
    public var outlivesParent: Bool
    public init(pids: Queue<Int32>, method: String, daemon: Bool, outlivesParent: Bool) {
        self.pids = pids
        self.method = method
        self.daemon = daemon
        self.outlivesParent = outlivesParent
    }
    public func run() throws {
        let grandchild = ChildProcess(SleepBlocking(milliseconds: 60_000), daemon: daemon, outlivesParent: outlivesParent,
                                      startMethod: startMethod(method))
        try grandchild.start()
        try pids.put(grandchild.pid ?? -1)
        try grandchild.join()
    }
}

/// Writes `text` and a newline to `fd`, whole.
private func writeLine(_ fd: CInt, _ text: String) {
    var bytes = Array((text + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n <= 0 { return }
        done += n
    }
}

/// Runs one of this file's scenarios in the helper binary. Returns false for an unknown name.
public func runOutsideCheckScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    switch name {
    case "outside-sigchld":
        // With SIGCHLD ignored, by METHOD: join ends (with a result or a clear error), never spins.
        signal(SIGCHLD, SIG_IGN)
        let child = ChildProcess(Square(x: 5), startMethod: startMethod(rest.first))
        let clock = ContinuousClock()
        let began = clock.now
        do {
            try child.start()
            do {
                try child.join(timeout: .seconds(30))
                print("join returned")
            } catch let error as MultiprocessingError {
                print("join error \(error.code)")
            }
            print("value \((try? child.value(timeout: .seconds(30))).map { "\($0)" } ?? "error")")
        } catch {
            print("start error \(error)")
        }
        print("seconds \((clock.now - began).components.seconds)")

    case "outside-closed-stdio":
        // Descriptors 0, 1 and 2 closed in the parent, then a child by METHOD: it must run and
        // return its value. The report goes to descriptor 9 (dup'ed from 1 before closing).
        let report: CInt = 9
        guard dup2(1, report) == report else { return true }
        close(0); close(1); close(2)
        for method in [startMethod(rest.first)] {
            let child = ChildProcess(Square(x: 7), startMethod: method)
            do {
                try child.start()
                writeLine(report, "value \(try child.value(timeout: .seconds(60)))")
            } catch {
                writeLine(report, "error \(error)")
            }
        }
        // What the library put on 0-2 (a socket or a pipe here would be one a child could
        // mistake for its standard streams).
        for fd: CInt in 0...2 {
            var st = stat()
            writeLine(report, "fd \(fd) \(fstat(fd, &st) == 0 ? "open" : "closed")")
        }

    case "outside-tree":
        // CHILD-METHOD GRANDCHILD-METHOD daemon|plain|outlives: a non-daemon child that starts a
        // sleeping grandchild; prints both pids and waits to be killed (or, with "exit", exits
        // at once without joining).
        // Foundation's Process passes on the test runner's thread's signal mask, which blocks
        // SIGTERM: unblock everything, as a shell would start this parent.
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        let pids = try Queue<Int32>()
        let task = StartSleepingGrandchild(pids: pids, method: rest.dropFirst().first ?? "spawn",
                                           daemon: rest.dropFirst(2).first == "daemon",
                                           outlivesParent: rest.dropFirst(2).first == "outlives")
        let child = ChildProcess(task, startMethod: startMethod(rest.first))
        try child.start()
        let grandchild = try pids.get(timeout: .seconds(60))
        print("tree \(child.pid ?? -1) \(grandchild)")
        fflush(nil)
        while true { pause() }

    case "outside-forkserver-killed-while-starting":
        // The fork server is SIGKILLed while another thread starts fork-server children one after
        // another: each start gives a value or a clear error, none hangs, the dead server is
        // reaped, and a later start works again. ROUNDS times.
        let rounds = Int(rest.first ?? "") ?? 10
        var values = 0, errors = 0, hangs = 0, zombies = 0, restarts = 0
        var firstError = ""
        for _ in 0..<rounds {
            let sleeper = ChildProcess(SleepBlocking(milliseconds: 60_000), startMethod: .forkServer)
            try sleeper.start()
            let me = getpid()
            let servers = childPIDs(of: me).filter { $0 != sleeper.pid }
            guard servers.count == 1 else { print("servers \(servers)"); return true }
            let started = SharedCounter()
            let outcomes = try Queue<String>()
            let starter = OSThread {
                for i in 0..<20 {
                    let child = ChildProcess(Square(x: i), startMethod: .forkServer)
                    do {
                        try child.start()
                        started.increment()
                        let value = try child.value(timeout: .seconds(60))
                        try outcomes.put(value == i * i ? "value" : "wrong \(value)")
                    } catch let error as MultiprocessingError where error.code == .timedOut {
                        try? child.kill()
                        try outcomes.put("hang")
                    } catch {
                        started.increment()
                        try outcomes.put("error \(error)")
                    }
                }
            }
            try starter.start()
            _ = pollUntil(seconds: 30) { started.value >= 3 }
            kill(servers[0], SIGKILL)
            try starter.join(timeout: .seconds(600))
            for _ in 0..<20 {
                let outcome = try outcomes.get(timeout: .seconds(10))
                if outcome == "value" { values += 1 } else if outcome == "hang" { hangs += 1 } else {
                    errors += 1
                    if firstError.isEmpty { firstError = outcome }
                }
            }
            if !pollUntil(seconds: 20, { procStatFields(servers[0]) == nil }) { zombies += 1 }
            let next = ChildProcess(Square(x: 9), startMethod: .forkServer)
            if (try? next.start()) != nil, (try? next.value(timeout: .seconds(60))) == 81 { restarts += 1 }
            try? sleeper.kill()
            try? sleeper.join(timeout: .seconds(30))
        }
        print("rounds \(rounds) values \(values) errors \(errors) hangs \(hangs) zombies \(zombies) restarts \(restarts)")
        if !firstError.isEmpty { print("first error \(firstError)") }

    default:
        return false
    }
    fflush(nil)
    return true
}

/// Waits on `event` `rounds` times, putting the round on `done` after each wake.
public struct EventStormWaiter: ProcessTask {
    public var event: Event
    public var done: Queue<Int>
    public var rounds: Int
    public init(event: Event, done: Queue<Int>, rounds: Int) {
        self.event = event
        self.done = done
        self.rounds = rounds
    }
    public func run() throws {
        for round in 0..<rounds {
            try event.wait(timeout: .seconds(60))
            try done.put(round)
            // A waiter that woke before the parent's clear() would see the flag still raised and
            // return at once: let this round's clear() happen first (the parent clears at once).
            while event.isSet { usleep(100) }
        }
    }
}

/// A counter that threads share.
final class SharedCounter: @unchecked Sendable {
    private let lock = try? Lock()
    private var count = 0
    func increment() { _ = try? lock?.withLock { count += 1 } }
    var value: Int { (try? lock?.withLock { count }) ?? 0 }
}
