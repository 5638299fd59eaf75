#if os(Linux)
import Synchronization
import SystemPackage
import MultiprocessingSystem

/// The parent's one long-lived thread for child processes.
///
/// It exists for two reasons. `PR_SET_PDEATHSIG` fires when the *thread* that created a child exits,
/// not the process; so every child is created here, on a thread that lives as long as the process,
/// and a daemon child dies exactly when its parent does. And every child is reaped here as soon as it
/// exits, through its pidfd, joined or not: no zombie is ever left behind. The thread also reads each
/// child's outcome from its socket while the child runs, so a large result never blocks the child.
///
/// The thread waits in `poll(2)` on an eventfd (new requests), the fork server's control socket, and
/// each running child's pidfd and socket. Children of the fork server are this process's own
/// children too (the server makes them with `clone(CLONE_PARENT)`), watched and reaped the same way.
internal final class ProcessMonitor: Sendable {
    static let shared = ProcessMonitor()

    enum Request: Sendable {
        /// posix_spawn `executable` with the child's socket as descriptor 3 (the child moves it higher).
        case spawn(ChildRecord, SpawnPlan, StartReply)
        /// Ask the fork server of this program and environment to fork a child with this socket.
        case forkServer(ChildRecord, ForkServerKey, childSocket: Int32, StartReply)
        /// fork() here, then run `body` in the child (it never returns).
        case fork(ChildRecord, childSocket: Int32, body: @Sendable (Int32) -> Never, StartReply)
        /// Tell the fork server of this program and environment a pool function's type name, to
        /// look up before its next children (best effort: nothing answers the caller).
        case rehearse(ForkServerKey, typeName: String)
    }

    private struct State {
        var running = false
        var wakeFD: Int32 = -1
        var requests: [Request] = []
        var records: [UInt64: ChildRecord] = [:]
        /// One fork server per program and environment, started on first use.
        var forkServers: [ForkServerKey: ForkServerLink] = [:]
        /// Servers that died or were killed, whose control sockets are read until their end: a
        /// child made just before the server's death still reports its pid there.
        var retiredServers: [ForkServerLink] = []
        /// The fork-server starts not yet answered, by record id, with the pid of the server asked.
        var pendingStarts: [UInt64: (server: Int32, reply: StartReply)] = [:]
        var nextRecordID: UInt64 = 1
    }

    private let state = Mutex(State())

    private init() {}

    /// Whether the monitor thread exists (it counts as a thread when deciding whether a fork is safe).
    var isRunning: Bool { state.withLock { $0.running } }

    /// A fresh id for a child record.
    func makeRecordID() -> UInt64 {
        state.withLock { state in
            defer { state.nextRecordID += 1 }
            return state.nextRecordID
        }
    }

    /// Records not yet finished (running or starting), for `activeChildren()` and the exit handler.
    var liveRecords: [ChildRecord] {
        state.withLock { Array($0.records.values) }.sorted { $0.id < $1.id }
    }

    /// Hands a request to the monitor thread, starting the thread on first use.
    func submit(_ request: Request) throws {
        let wakeFD: Int32 = try state.withLock { state throws -> Int32 in
            if !state.running {
                do throws(Errno) {
                    state.wakeFD = try system_eventfd(nonBlocking: true)
                    try system_startThread(name: "mp-monitor") { ProcessMonitor.shared.loop() }
                } catch {
                    if state.wakeFD >= 0 { system_close(state.wakeFD); state.wakeFD = -1 }
                    throw MultiprocessingError.system("starting the process monitor thread", error)
                }
                state.running = true
            }
            switch request {
            case .spawn(let record, _, _), .forkServer(let record, _, _, _), .fork(let record, _, _, _):
                state.records[record.id] = record
            case .rehearse:
                break
            }
            state.requests.append(request)
            return state.wakeFD
        }
        system_eventfdSignal(wakeFD)
    }

    /// In a child made by `fork()`: forget the parent's children and threads. The monitor thread does
    /// not exist in the child, and the parent's children are not the child's.
    func resetAfterFork() {
        state.withLock { state in
            if state.wakeFD >= 0 { system_close(state.wakeFD) }
            for record in state.records.values {
                record.state.withLock { r in
                    if r.pidfd >= 0 { system_close(r.pidfd); r.pidfd = -1 }
                    if r.socket >= 0 { system_close(r.socket); r.socket = -1 }
                }
            }
            for link in state.forkServers.values {
                system_close(link.socket)
                if link.pidfd >= 0 { system_close(link.pidfd) }
            }
            for link in state.retiredServers { system_close(link.socket) }
            state = State()
        }
    }

    // MARK: the thread

    /// What a descriptor in the monitor's poll set belongs to.
    private enum Source {
        case requests
        case forkServer(ForkServerLink)
        case pidfd(ChildRecord)
        case outcome(ChildRecord)
    }

    private func loop() -> Never {
        var pollSet: [CInt] = []
        var sources: [Source] = []
        while true {
            pollSet.removeAll(keepingCapacity: true)
            sources.removeAll(keepingCapacity: true)
            state.withLock { state in
                pollSet.append(state.wakeFD)
                sources.append(.requests)
                for link in Array(state.forkServers.values) + state.retiredServers {
                    pollSet.append(link.socket)
                    sources.append(.forkServer(link))
                }
                for record in state.records.values {
                    record.state.withLock { r in
                        if r.pidfd >= 0 && !r.ended {
                            pollSet.append(r.pidfd)
                            sources.append(.pidfd(record))
                        }
                        if r.socket >= 0 {
                            pollSet.append(r.socket)
                            sources.append(.outcome(record))
                        }
                    }
                }
            }
            let events = [Int16](repeating: systemPollIn, count: pollSet.count)
            guard let ready = try? system_pollMany(pollSet, events: events, timeoutMilliseconds: -1) else { continue }
            for (index, revents) in ready.enumerated() where revents != 0 {
                switch sources[index] {
                case .pidfd(let record): reap(record, block: false)
                case .outcome(let record): readOutcome(record)
                case .forkServer(let link): forkServerReadable(link)
                case .requests:
                    system_eventfdDrain(pollSet[index])
                    let requests = state.withLock { state in
                        defer { state.requests = [] }
                        return state.requests
                    }
                    for request in requests { handle(request) }
                }
            }
        }
    }

    private func handle(_ request: Request) {
        switch request {
        case .spawn(let record, let plan, let reply):
            // The child's end of its socket is the monitor's from the request on: closed once the
            // child has its copy (or could not be made), and before the caller hears back, so that
            // a start that returns (or throws) has no descriptor of it left open behind it.
            let outcome: Result<Int32, MultiprocessingError>
            do throws(Errno) {
                let pid = try system_spawnChild(plan)
                adopt(record, pid: pid)
                outcome = .success(pid)
            } catch {
                abandon(record)
                outcome = .failure(.system("posix_spawn of \(plan.executableDescription)", error))
            }
            system_close(plan.childSocket)
            reply.complete(outcome)
        case .fork(let record, let childSocket, let body, let reply):
            system_flushStdio()
            let pid: Int32
            do throws(Errno) {
                pid = try system_fork()
            } catch {
                system_close(childSocket)
                abandon(record)
                reply.complete(.failure(.system("fork", error)))
                return
            }
            if pid == 0 {
                // The child: a copy of this thread, whose thread-local state is this thread's. The
                // socket moves up before a second thread exists: growing the descriptor table of a
                // process whose table is shared by threads waits for an RCU grace period (7 ms here).
                let socket = system_moveDescriptorHigh(childSocket)
                system_runOnFreshThread { body(socket) }
            }
            system_close(childSocket)
            adopt(record, pid: pid)
            reply.complete(.success(pid))
        case .rehearse(let key, let typeName):
            // Sent ahead of the requests that follow it on the same socket, so the children they
            // make are forked after the look-up. A server that is gone or broken is found by the
            // next start, as without a rehearsal.
            if let link = try? forkServerLink(key) { try? link.rehearse(typeName: typeName) }
        case .forkServer(let record, let key, let childSocket, let reply):
            // Sent to the server with the request (it arrives there as a copy of its own), or the
            // start failed: either way this end is done with, and closed before a failure is told.
            var failure: MultiprocessingError?
            do {
                var link = try forkServerLink(key)
                do {
                    try link.requestChild(recordID: record.id, daemon: record.daemon, outlivesParent: record.outlivesParent, socket: childSocket)
                } catch let error as MultiprocessingError where error.underlyingErrno == .brokenPipe || error.underlyingErrno == .connectionReset {
                    // The server died a moment ago and its closed socket is not yet seen: reap it
                    // and ask a new one.
                    retire(link)
                    link = try forkServerLink(key)
                    try link.requestChild(recordID: record.id, daemon: record.daemon, outlivesParent: record.outlivesParent, socket: childSocket)
                }
                let server = link.pid
                state.withLock { $0.pendingStarts[record.id] = (server, reply) }
            } catch let error as MultiprocessingError {
                abandon(record)
                failure = error
            } catch {
                abandon(record)
                failure = MultiprocessingError(.childStartFailed, "\(error)")
            }
            system_close(childSocket)
            if let failure { reply.complete(.failure(failure)) }
        }
    }

    /// Takes a freshly started child under watch: through its pidfd, or, when no pidfd can be had,
    /// on a thread of its own that waits for it.
    private func adopt(_ record: ChildRecord, pid: Int32) {
        record.state.withLock { $0.pid = pid }
        do throws(Errno) {
            let pidfd = try system_pidfdOpen(pid)
            record.state.withLock { $0.pidfd = pidfd }
        } catch {
            do throws(Errno) {
                try system_startThread(name: "mp-waitpid") { ProcessMonitor.shared.reap(record, block: true) }
            } catch {
                // Neither a pidfd nor a thread: look once now (it may have ended), else say so.
                reap(record, block: false)
                if !record.finished.isSet {
                    finish(record, status: nil, lost: MultiprocessingError.system("watching \(record.name) (pid \(pid)), which could get neither a pidfd nor a thread to wait for it", error))
                }
            }
        }
    }

    /// A child that was never started: close the parent's end of its socket and forget it.
    private func abandon(_ record: ChildRecord) {
        record.closeSocket()
        forget(record)
    }

    private func forget(_ record: ChildRecord) {
        _ = state.withLock { $0.records.removeValue(forKey: record.id) }
    }

    /// Collects the exit status of a child whose pidfd became readable (or, with `block`, waits for it).
    fileprivate func reap(_ record: ChildRecord, block: Bool) {
        let pid = record.rawPID
        do throws(Errno) {
            guard let status = try system_waitpid(pid, block: block) else { return }
            finish(record, status: ExitStatus(waitStatus: status))
        } catch {
            // ECHILD: the kernel reaped the child itself (SIGCHLD is SIG_IGN) or other code did, and
            // its status is gone. Waiting again would spin: end the record with the reason instead.
            var reason = "waitpid failed with \(error)."
            if error == .noChildProcess {
                reason = "waitpid found no such child (ECHILD): the exit status is lost. This happens when SIGCHLD is set to SIG_IGN (the kernel then reaps children itself and discards how they ended) or when other code reaped the child. Leave SIGCHLD at its default disposition (a handler is fine) to join children."
            }
            finish(record, status: nil, lost: MultiprocessingError(
                .systemCall, "\(record.name) (pid \(pid)) ended, but \(reason)", errno: error))
        }
    }

    private func finish(_ record: ChildRecord, status: ExitStatus?, lost: MultiprocessingError? = nil) {
        // Everything the child wrote before it exited is in the socket buffer now.
        readOutcome(record)
        forget(record)
        record.finish(status: status, lost: lost)
    }

    /// Reads what the child has written so far, without blocking.
    private func readOutcome(_ record: ChildRecord) {
        record.state.withLock { r in
            guard r.socket >= 0 else { return }
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n: Int
                do {
                    n = try chunk.withUnsafeMutableBytes { (buffer) throws(Errno) -> Int in try system_receiveNonBlocking(r.socket, buffer) }
                } catch {
                    if (error as? Errno) == .wouldBlock { return }
                    n = 0 // a reset connection ends the report like an end of stream
                }
                if n == 0 {
                    system_close(r.socket)
                    r.socket = -1
                    return
                }
                if r.received.count + n > ChildProtocol.headerSize + ChildProtocol.maximumBody {
                    // A child that floods its socket gets no more reading; the header, kept, says how
                    // much it announced.
                    system_close(r.socket)
                    r.socket = -1
                    r.received.append(contentsOf: chunk[0..<min(n, max(0, ChildProtocol.headerSize - r.received.count))])
                    r.overflowed = true
                    return
                }
                r.received.append(contentsOf: chunk[0..<n])
            }
        }
    }

    // MARK: the fork server

    /// The pid of the running fork server for `key`, if one runs (for tests).
    func forkServerPID(_ key: ForkServerKey) -> Int32? {
        state.withLock { $0.forkServers[key]?.pid }
    }

    private func forkServerLink(_ key: ForkServerKey) throws -> ForkServerLink {
        if let link = state.withLock({ $0.forkServers[key] }) { return link }
        let link = try ForkServerLink.start(key)
        state.withLock { $0.forkServers[key] = link }
        return link
    }

    /// Reads what arrived on a fork server's control socket: the reports of children (from the
    /// children themselves), failed clones, or the socket's end.
    private func forkServerReadable(_ link: ForkServerLink) {
        while true {
            let received: ForkServerLink.Received
            do {
                received = try link.receive()
            } catch {
                // A broken server: stop it, and read on until the end of its socket.
                retire(link)
                return
            }
            switch received {
            case .nothing:
                return
            case .end:
                forkServerEnded(link)
                return
            case .message(.started(let recordID, let pid)):
                let reply = state.withLock { $0.pendingStarts.removeValue(forKey: recordID)?.reply }
                guard let record = state.withLock({ $0.records[recordID] }) else { continue }
                adopt(record, pid: pid)
                reply?.complete(.success(pid))
            case .message(.failed(let recordID, let errno)):
                let reply = state.withLock { $0.pendingStarts.removeValue(forKey: recordID)?.reply }
                if let record = state.withLock({ $0.records[recordID] }) { abandon(record) }
                reply?.complete(.failure(.system("clone in the fork server", Errno(rawValue: errno))))
            case .message(.fork), .message(.rehearse):
                continue // a request, never sent to the parent
            case .message(.rehearsed):
                continue // the server's answer to a rehearsal: nothing waits for it
            }
        }
    }

    /// The server died or broke: the next `.forkServer` start starts a new one. It is killed (if it
    /// still runs) and reaped, so that it leaves no zombie. Its children are ours and live on;
    /// its control socket stays open until its end, for the reports of children made just before.
    private func retire(_ link: ForkServerLink) {
        // Once per server: a link already retired was killed and reaped then.
        let current = state.withLock { state -> Bool in
            guard let current = state.forkServers[link.key], current.pid == link.pid else { return false }
            state.forkServers[link.key] = nil
            state.retiredServers.append(link)
            return true
        }
        guard current else { return }
        // Through the pidfd: with SIGCHLD ignored the server may be reaped already and its pid reused.
        if link.pidfd >= 0 {
            _ = try? system_pidfdSendSignal(link.pidfd, Signal.kill.rawValue)
            system_close(link.pidfd)
        }
        _ = try? system_waitpid(link.pid, block: true)
    }

    /// The end of a server's control socket. Every child the server made has reported by now
    /// (each reports before it closes its copy), so the starts still unanswered made no child:
    /// they fail.
    private func forkServerEnded(_ link: ForkServerLink) {
        retire(link)
        let pending = state.withLock { state -> [(UInt64, StartReply)] in
            state.retiredServers.removeAll { $0.socket == link.socket && $0.pid == link.pid }
            let mine = state.pendingStarts.filter { $0.value.server == link.pid }
            for id in mine.keys { state.pendingStarts[id] = nil }
            return mine.map { ($0.key, $0.value.reply) }
        }
        system_close(link.socket)
        for (recordID, reply) in pending {
            if let record = state.withLock({ $0.records[recordID] }) { abandon(record) }
            reply.complete(.failure(MultiprocessingError(.childStartFailed, "The fork server exited before it started the child.")))
        }
    }
}

/// A one-time answer from the monitor thread to the thread that asked for a child: waited for,
/// or handed to a callback (``whenComplete(_:)``).
internal final class StartReply: Sendable {
    private struct State {
        var result: Result<Int32, MultiprocessingError>?
        var callback: (@Sendable (Result<Int32, MultiprocessingError>) -> Void)?
    }
    private let state = Mutex(State())
    private let done = OneShot()

    func complete(_ value: Result<Int32, MultiprocessingError>) {
        let callback = state.withLock { state -> (@Sendable (Result<Int32, MultiprocessingError>) -> Void)? in
            state.result = value
            defer { state.callback = nil }
            return state.callback
        }
        done.set()
        callback?(value)
    }

    /// Calls `callback` with the answer once it is there (at once, on this thread, if it is).
    func whenComplete(_ callback: @escaping @Sendable (Result<Int32, MultiprocessingError>) -> Void) {
        let ready = state.withLock { state -> Result<Int32, MultiprocessingError>? in
            if let result = state.result { return result }
            state.callback = callback
            return nil
        }
        if let ready { callback(ready) }
    }

    func wait() throws(MultiprocessingError) -> Int32 {
        _ = done.wait(until: .never)
        switch state.withLock({ $0.result }) {
        case .success(let pid)?: return pid
        case .failure(let error)?: throw error
        case nil: throw MultiprocessingError(.childStartFailed, "The process monitor gave no answer.")
        }
    }
}
#endif
