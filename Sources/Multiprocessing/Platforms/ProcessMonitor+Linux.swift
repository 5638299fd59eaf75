#if os(Linux)
import Glibc
import Synchronization
import SystemPackage

/// The parent's one long-lived thread for child processes.
///
/// It exists for two reasons. `PR_SET_PDEATHSIG` fires when the *thread* that created a child exits,
/// not the process; so every child is created here, on a thread that lives as long as the process,
/// and a daemon child dies exactly when its parent does. And every child is reaped here as soon as it
/// exits, through its pidfd, joined or not: no zombie is ever left behind. The thread also reads each
/// child's outcome from its socket while the child runs, so a large result never blocks the child.
///
/// The thread waits in `poll(2)` on an eventfd (new requests), the fork server's control socket, and
/// each running child's pidfd and socket.
internal final class ProcessMonitor: Sendable {
    static let shared = ProcessMonitor()

    enum Request: Sendable {
        /// posix_spawn `executable` with the child's socket as descriptor 3.
        case spawn(ChildRecord, SpawnPlan, StartReply)
        /// Ask the fork server to fork a child with this socket.
        case forkServer(ChildRecord, childSocket: Int32, StartReply)
        /// fork() here, then run `body` in the child (it never returns).
        case fork(ChildRecord, childSocket: Int32, body: @Sendable (Int32) -> Never, StartReply)
    }

    private struct State {
        var running = false
        var wakeFD: Int32 = -1
        var requests: [Request] = []
        var records: [UInt64: ChildRecord] = [:]
        var forkServer: ForkServerLink?
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
                    try system_startDetachedThread(name: "mp-monitor") { ProcessMonitor.shared.loop() }
                } catch {
                    if state.wakeFD >= 0 { system_close(state.wakeFD); state.wakeFD = -1 }
                    throw MultiprocessingError.system("starting the process monitor thread", error)
                }
                state.running = true
            }
            switch request {
            case .spawn(let record, _, _), .forkServer(let record, _, _), .fork(let record, _, _, _):
                state.records[record.id] = record
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
            if let link = state.forkServer { system_close(link.socket) }
            state = State()
        }
    }

    // MARK: the thread

    private func loop() -> Never {
        var pollSet: [pollfd] = []
        var tokens: [(ChildRecord?, isPidfd: Bool)] = []
        while true {
            pollSet.removeAll(keepingCapacity: true)
            tokens.removeAll(keepingCapacity: true)
            state.withLock { state in
                pollSet.append(pollfd(fd: state.wakeFD, events: Int16(POLLIN), revents: 0))
                tokens.append((nil, false))
                if let link = state.forkServer {
                    pollSet.append(pollfd(fd: link.socket, events: Int16(POLLIN), revents: 0))
                    tokens.append((nil, true))
                }
                for record in state.records.values {
                    record.state.withLock { r in
                        if r.ownChild && r.pidfd >= 0 && r.exitStatus == nil {
                            pollSet.append(pollfd(fd: r.pidfd, events: Int16(POLLIN), revents: 0))
                            tokens.append((record, true))
                        }
                        if r.socket >= 0 {
                            pollSet.append(pollfd(fd: r.socket, events: Int16(POLLIN), revents: 0))
                            tokens.append((record, false))
                        }
                    }
                }
            }
            let ready = Glibc.poll(&pollSet, nfds_t(pollSet.count), -1)
            if ready <= 0 { continue }
            for (index, entry) in pollSet.enumerated() where entry.revents != 0 {
                let (record, isPidfd) = tokens[index]
                if let record {
                    if isPidfd { reapIfExited(record) } else { readOutcome(record) }
                } else if isPidfd {
                    forkServerReadable()
                } else {
                    system_eventfdDrain(entry.fd)
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
            do throws(Errno) {
                let pid = try system_spawnChild(plan)
                adopt(record, pid: pid)
                reply.complete(.success(pid))
            } catch {
                forget(record)
                reply.complete(.failure(.system("posix_spawn of \(plan.executableDescription)", error)))
            }
        case .fork(let record, let childSocket, let body, let reply):
            system_flushStdio()
            let pid: Int32
            do throws(Errno) {
                pid = try system_fork()
            } catch {
                forget(record)
                reply.complete(.failure(.system("fork", error)))
                return
            }
            if pid == 0 {
                // The child: this thread is now its only thread.
                body(childSocket)
            }
            adopt(record, pid: pid)
            reply.complete(.success(pid))
        case .forkServer(let record, let childSocket, let reply):
            do {
                let link = try forkServerLink()
                try link.requestChild(recordID: record.id, daemon: record.daemon, socket: childSocket)
                record.state.withLock { $0.ownChild = false }
                state.withLock { $0.forkServer?.pending[record.id] = reply }
            } catch let error as MultiprocessingError {
                forget(record)
                reply.complete(.failure(error))
            } catch {
                forget(record)
                reply.complete(.failure(MultiprocessingError(.childStartFailed, "\(error)")))
            }
        }
    }

    /// Takes a freshly started own child under watch.
    private func adopt(_ record: ChildRecord, pid: Int32) {
        let pidfd = (try? system_pidfdOpen(pid)) ?? -1
        record.state.withLock { r in
            r.pid = pid
            r.pidfd = pidfd
        }
        if pidfd < 0 {
            // pidfd_open can only fail here if the kernel lacks it; wait for the child the old way.
            if let status = try? system_waitpid(pid, block: true) { finish(record, status: ExitStatus(waitStatus: status)) }
        }
    }

    private func forget(_ record: ChildRecord) {
        _ = state.withLock { $0.records.removeValue(forKey: record.id) }
    }

    private func reapIfExited(_ record: ChildRecord) {
        let pid = record.rawPID
        guard let status = try? system_waitpid(pid, block: false) else { return }
        finish(record, status: ExitStatus(waitStatus: status))
    }

    private func finish(_ record: ChildRecord, status: ExitStatus) {
        // Everything the child wrote before it exited is in the socket buffer now.
        readOutcome(record)
        forget(record)
        record.finish(status: status)
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
                    // A child that floods its socket gets no more reading: its report is malformed anyway.
                    system_close(r.socket)
                    r.socket = -1
                    r.received = Array(r.received.prefix(ChildProtocol.headerSize - 1))
                    return
                }
                r.received.append(contentsOf: chunk[0..<n])
            }
        }
    }

    // MARK: the fork server

    private func forkServerLink() throws -> ForkServerLink {
        if let link = state.withLock({ $0.forkServer }) { return link }
        let link = try ForkServerLink.start()
        state.withLock { $0.forkServer = link }
        return link
    }

    private func forkServerReadable() {
        guard let link = state.withLock({ $0.forkServer }) else { return }
        while true {
            let message: ForkServerMessage?
            do {
                message = try link.receive()
            } catch {
                // The server is gone: every child it had not reported becomes a child that died unseen.
                forkServerLost(link, error: error)
                return
            }
            guard let message else { return }
            switch message {
            case .started(let recordID, let pid):
                let reply = state.withLock { $0.forkServer?.pending.removeValue(forKey: recordID) }
                guard let record = state.withLock({ $0.records[recordID] }) else { continue }
                let pidfd = (try? system_pidfdOpen(pid)) ?? -1
                record.state.withLock { r in
                    r.pid = pid
                    r.pidfd = pidfd
                }
                reply?.complete(.success(pid))
            case .failed(let recordID, let errno):
                let reply = state.withLock { $0.forkServer?.pending.removeValue(forKey: recordID) }
                if let record = state.withLock({ $0.records[recordID] }) { forget(record) }
                reply?.complete(.failure(.system("fork in the fork server", Errno(rawValue: errno))))
            case .exited(let recordID, let waitStatus):
                if let record = state.withLock({ $0.records[recordID] }) {
                    finish(record, status: ExitStatus(waitStatus: waitStatus))
                }
            case .fork:
                continue // a request, never sent by the server
            }
        }
    }

    private func forkServerLost(_ link: ForkServerLink, error: any Error) {
        let (pending, orphans) = state.withLock { state -> ([StartReply], [ChildRecord]) in
            let pending = Array(state.forkServer?.pending.values ?? [:].values)
            state.forkServer = nil
            let orphans = state.records.values.filter { record in record.state.withLock { !$0.ownChild } }
            return (pending, orphans)
        }
        system_close(link.socket)
        _ = try? system_waitpid(link.pid, block: false)
        for reply in pending {
            reply.complete(.failure(MultiprocessingError(.childStartFailed, "The fork server exited before it started the child: \(error)")))
        }
        for record in orphans {
            // The server reaped (or would have reaped) these; their status is lost with it.
            finish(record, status: .signaled(.kill))
        }
    }
}

/// A one-time answer from the monitor thread to the thread that asked for a child.
internal final class StartReply: Sendable {
    private let result = Mutex<Result<Int32, MultiprocessingError>?>(nil)
    private let done = OneShot()

    func complete(_ value: Result<Int32, MultiprocessingError>) {
        result.withLock { $0 = value }
        done.set()
    }

    func wait() throws(MultiprocessingError) -> Int32 {
        _ = done.wait(until: .never)
        switch result.withLock({ $0 }) {
        case .success(let pid)?: return pid
        case .failure(let error)?: throw error
        case nil: throw MultiprocessingError(.childStartFailed, "The process monitor gave no answer.")
        }
    }
}
#endif
