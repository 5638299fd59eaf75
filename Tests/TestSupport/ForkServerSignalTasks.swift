// The fork server under the terminal's signals (Tests/MultiprocessingTests/ForkServerSignalTests.swift):
// a helper program in a process group of its own that handles SIGINT itself, as mpcp and a pool's
// interrupt handling do, and whose fork server must survive a Ctrl-C to the whole group.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing
import Synchronization

/// What SIGINT, SIGHUP, SIGQUIT and SIGTERM do in the child that runs it: `INT default HUP default …`.
public struct ReportSignalDispositions: ProcessTask {
    public init() {}
    public func run() -> String {
        [(SIGINT, "INT"), (SIGHUP, "HUP"), (SIGQUIT, "QUIT"), (SIGTERM, "TERM")].map { signal, name in
            var current = sigaction()
            sigaction(signal, nil, &current)
            let handler = unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
            let what = handler == unsafeBitCast(SIG_DFL, to: Int.self) ? "default" : handler == unsafeBitCast(SIG_IGN, to: Int.self) ? "ignored" : "handled"
            return "\(name) \(what)"
        }.joined(separator: " ")
    }
}

nonisolated(unsafe) private var sigintsSeen: Int32 = 0
private let countSigint: @convention(c) (Int32) -> Void = { _ in sigintsSeen += 1 }

/// Runs the fork server's signal scenario in the helper binary; false for another name.
///
/// `forkserver-signals`: in a process group of its own, with no signal blocked, SIGINT handled by a
/// handler of its own and SIGQUIT ignored (as a user's program may), it starts a child with the
/// fork server and prints `ready GROUP SERVER`. The test then sends SIGINT to the whole group.
/// Once its handler has seen it, it prints `server alive` or `server dead`, then the dispositions a
/// new fork-server child reports (`child INT default HUP default QUIT default TERM default`: not
/// the server's ignored signals, nor the parent's handler or its ignored SIGQUIT; every signal at
/// its default action, as a spawned child starts).
/// Then it sends the server SIGHUP and SIGQUIT (`after HUP QUIT alive`), and SIGTERM (`after TERM
/// dead`), and starts one more child (`restart value 49`: a new server).
public func runForkServerSignalScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    guard name == "forkserver-signals" else { return false }
    func say(_ text: String) {
        print(text)
        fflush(nil)
    }
    setpgid(0, 0)
    var none = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, nil)
    signal(SIGINT, countSigint)
    signal(SIGQUIT, SIG_IGN)
    let first = ChildProcess(Square(x: 3), startMethod: .forkServer)
    try first.start()
    guard try first.value(timeout: .seconds(120)) == 9 else { say("first child failed"); exit(2) }
    let me = getpid()
    var servers: [Int32] = []
    for _ in 0..<12_000 {
        servers = childPIDs(of: me).filter { isRunningProcess($0) }
        if servers.count == 1 { break }
        usleep(10_000)
    }
    guard servers.count == 1 else { say("no single fork server: \(servers)"); exit(2) }
    let server = servers[0]
    say("ready \(me) \(server)")
    for _ in 0..<12_000 where sigintsSeen == 0 { usleep(10_000) }
    guard sigintsSeen > 0 else { say("no SIGINT came"); exit(2) }
    // A server that dies of the SIGINT is gone (a zombie, not yet reaped) within moments; one that
    // ignores it is still running after its parent's own handler has run and ten more checks.
    var alive = true
    for _ in 0..<200 where alive {
        alive = isRunningProcess(server)
        usleep(5_000)
    }
    say("server \(alive ? "alive" : "dead")")
    let second = ChildProcess(ReportSignalDispositions(), startMethod: .forkServer)
    try second.start()
    say("child \(try second.value(timeout: .seconds(120)))")
    kill(server, SIGHUP)
    kill(server, SIGQUIT)
    var stillAlive = true
    for _ in 0..<200 where stillAlive {
        stillAlive = isRunningProcess(server)
        usleep(5_000)
    }
    say("after HUP QUIT \(stillAlive ? "alive" : "dead")")
    kill(server, SIGTERM)
    var gone = false
    for _ in 0..<12_000 where !gone {
        gone = !isRunningProcess(server)
        if !gone { usleep(10_000) }
    }
    say("after TERM \(gone ? "dead" : "alive")")
    let third = ChildProcess(Square(x: 7), startMethod: .forkServer)
    try third.start()
    say("restart value \(try third.value(timeout: .seconds(120)))")
    return true
}
