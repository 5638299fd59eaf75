#if os(Linux)
import SystemPackage
import MultiprocessingSystem

/// Messages on the fork server's control socket (SOCK_SEQPACKET: one message per send, kept whole).
/// Each is 16 bytes: a 4-byte kind, a 4-byte value and the 8-byte id of the parent's child record.
///
/// The server reports no exits: its children are the parent's own (it makes them with
/// `clone(CLONE_PARENT)`), so the parent reaps them, signals them through their pidfds, and they
/// live on if the server dies.
///
/// Each child reports its own pid (`started`), first thing after the clone and on its copy of the
/// control socket, and only then closes that copy. A server killed right after a clone therefore
/// loses nothing: the child it made still tells the parent who it is. And the end of the control
/// socket, which the parent sees only once the server and every child holding a copy have closed
/// it, comes after every child's report: the starts still unanswered then made no child.
internal enum ForkServerMessage: Equatable {
    /// Parent → server: make a child for this record; the child's socket travels with the message.
    case fork(recordID: UInt64, daemon: Bool, outlivesParent: Bool)
    /// Child → parent (on the control socket): the child of this record is running with this pid.
    case started(recordID: UInt64, pid: Int32)
    /// Server → parent: the clone failed with this errno.
    case failed(recordID: UInt64, errno: Int32)
    /// Parent → server: look up this pool function's type (its mangled name) once, so that the
    /// children made after it inherit the runtime's caches instead of each filling them (see
    /// ``rehearsePoolFunction(_:)``). The only message longer than 16 bytes: the header's value is
    /// the name's length, and the name follows it.
    case rehearse(typeName: [UInt8])
    /// Server → parent: a rehearsal was done; `found` tells whether the name named a pool function.
    case rehearsed(found: Bool)

    /// The size of every message but `rehearse`, and of `rehearse`'s header.
    static let size = 16
    /// The longest type name a rehearsal carries (a mangled name is seldom a tenth of this).
    static let maximumTypeName = 1024
    /// The largest message on the control socket: a rehearsal of the longest name.
    static let maximumSize = size + maximumTypeName

    /// Whether `name` can be sent in a rehearsal: 1 to ``maximumTypeName`` bytes of printable ASCII
    /// (a mangled name as `_mangledTypeName` gives it). Control bytes are refused: in a mangled name
    /// they are symbolic references, relative pointers the runtime would follow.
    static func isRehearsable(_ name: some Collection<UInt8>) -> Bool {
        !name.isEmpty && name.count <= maximumTypeName && name.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    var bytes: [UInt8] {
        let (kind, value, id): (UInt32, Int32, UInt64)
        switch self {
        case .fork(let r, let daemon, let outlives): (kind, value, id) = (1, (daemon ? 1 : 0) | (outlives ? 2 : 0), r)
        case .started(let r, let pid): (kind, value, id) = (2, pid, r)
        case .failed(let r, let errno): (kind, value, id) = (3, errno, r)
        case .rehearse(let name): (kind, value, id) = (4, Int32(clamping: name.count), 0)
        case .rehearsed(let found): (kind, value, id) = (5, found ? 1 : 0, 0)
        }
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        withUnsafeBytes(of: kind.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: id.littleEndian) { out.append(contentsOf: $0) }
        if case .rehearse(let name) = self { out.append(contentsOf: name) }
        return out
    }

    /// Parses one message; nil for anything that is not one: a short or long message, an unknown
    /// kind, a rehearsal whose length field and size disagree or whose name is not rehearsable.
    init?(_ bytes: some Collection<UInt8>) {
        let b = Array(bytes)
        guard b.count >= Self.size, b.count <= Self.maximumSize else { return nil }
        func int(_ range: Range<Int>) -> UInt64 {
            var v: UInt64 = 0
            for (shift, i) in range.enumerated() { v |= UInt64(b[i]) << (8 * UInt64(shift)) }
            return v
        }
        let kind = UInt32(int(0..<4))
        let value = Int32(bitPattern: UInt32(int(4..<8)))
        let id = int(8..<16)
        if kind == 4 {
            let name = b[Self.size...]
            guard Int(value) == name.count, id == 0, Self.isRehearsable(name) else { return nil }
            self = .rehearse(typeName: Array(name))
            return
        }
        guard b.count == Self.size else { return nil }
        switch kind {
        case 1: self = .fork(recordID: id, daemon: value & 1 != 0, outlivesParent: value & 2 != 0)
        case 2: self = .started(recordID: id, pid: value)
        case 3: self = .failed(recordID: id, errno: value)
        case 5 where id == 0 && (value == 0 || value == 1): self = .rehearsed(found: value == 1)
        default: return nil
        }
    }
}

/// What a fork server is started with, and so what finds the one for a configuration: children of
/// configurations that differ in program or environment get servers of their own.
internal struct ForkServerKey: Sendable, Hashable {
    var executable: FilePath
    /// The configuration's environment entries ("NAME=value"), sorted.
    var environment: [String]
}

/// The parent's side of the fork server.
internal struct ForkServerLink: Sendable {
    let key: ForkServerKey
    let socket: Int32
    let pid: Int32
    /// For killing the server once it is lost, without a pid that could have been reused. -1 if none.
    let pidfd: Int32

    /// Spawns the fork server: the configuration's executable (this one, usually), re-executed, which
    /// the library turns into a single-threaded server before its `main` or any thread runs. Called
    /// on the monitor thread.
    static func start(_ key: ForkServerKey) throws -> ForkServerLink {
        do throws(Errno) {
            let (mine, theirs) = try system_socketpairSeqpacket()
            defer { system_close(theirs) }
            // The backtracer off in the server, so in every child it makes (ForkServer's children
            // are its copies): a crash is seen at once (Syscalls+Crash+Linux.swift).
            var environment = key.environment + ChildEnvironment.backtraceOff(besides: key.environment) + [
                "\(ChildEnvironment.forkServer)=\(ChildEnvironment.socketNumber)",
                "\(ChildEnvironment.parentPID)=\(system_getpid())",
                "\(ChildEnvironment.daemon)=1",
            ]
            // Every symbol bound once, in the server, instead of lazily in each child (where each
            // binding writes a page of the child's own): unless the program or the configuration
            // chose LD_BIND_NOW themselves, the server removes it again at once.
            if system_getenv(ChildEnvironment.bindNow) == nil && !key.environment.contains(where: { $0.hasPrefix("\(ChildEnvironment.bindNow)=") }) {
                environment += ["\(ChildEnvironment.bindNow)=1", "\(ChildEnvironment.bindNowAdded)=1"]
            }
            let plan = SpawnPlan(
                executable: key.executable,
                arguments: CommandLine.arguments,
                environment: environment,
                childSocket: theirs)
            let pid: Int32
            do throws(Errno) {
                pid = try system_spawnChild(plan)
            } catch {
                system_close(mine)
                throw error
            }
            do throws(Errno) {
                try system_setNonBlocking(mine, true)
            } catch {
                system_close(mine) // the server sees the end of its control socket and exits
                _ = try? system_waitpid(pid, block: true)
                throw error
            }
            let pidfd = (try? system_pidfdOpen(pid)) ?? -1
            return ForkServerLink(key: key, socket: mine, pid: pid, pidfd: pidfd)
        } catch {
            throw MultiprocessingError(.childStartFailed, "Could not start the fork server: \(error)", errno: error)
        }
    }

    func requestChild(recordID: UInt64, daemon: Bool, outlivesParent: Bool, socket childSocket: Int32) throws {
        let bytes = ForkServerMessage.fork(recordID: recordID, daemon: daemon, outlivesParent: outlivesParent).bytes
        do {
            _ = try bytes.withUnsafeBytes { (buffer) throws(Errno) -> Int in
                try system_sendWithDescriptors(socket, buffer, [childSocket])
            }
        } catch {
            throw MultiprocessingError(.childStartFailed, "The fork server did not take the request: \(error)", errno: error as? Errno)
        }
    }

    /// Asks the server to look up a pool function's type before its next children (see
    /// ``ForkServerMessage/rehearse(typeName:)``). Throws for a name that cannot be sent, naming
    /// why, and when the socket does not take the message.
    func rehearse(typeName: String) throws {
        let name = Array(typeName.utf8)
        guard ForkServerMessage.isRehearsable(name) else {
            throw MultiprocessingError.misuse("Cannot rehearse the type name \"\(typeName)\" in the fork server: a rehearsal takes a mangled type name of 1 to \(ForkServerMessage.maximumTypeName) bytes of printable ASCII without spaces; this one has \(name.count) bytes\(name.count <= ForkServerMessage.maximumTypeName && !name.isEmpty ? ", some outside that range" : "").")
        }
        let bytes = ForkServerMessage.rehearse(typeName: name).bytes
        do {
            _ = try bytes.withUnsafeBytes { (buffer) throws(Errno) -> Int in
                try system_sendWithDescriptors(socket, buffer, [])
            }
        } catch {
            throw MultiprocessingError(.childStartFailed, "The fork server did not take the rehearsal: \(error)", errno: error as? Errno)
        }
    }

    enum Received {
        case message(ForkServerMessage)
        /// Nothing is waiting.
        case nothing
        /// The end of the control socket: the server and every child it made have closed it.
        case end
    }

    /// The next message, if one is waiting. Throws when the socket breaks or carries garbage.
    func receive() throws -> Received {
        var buffer = [UInt8](repeating: 0, count: ForkServerMessage.size)
        let n: Int
        do {
            n = try buffer.withUnsafeMutableBytes { (raw) throws(Errno) -> Int in try system_read(socket, raw) }
        } catch let error as Errno {
            if error == .wouldBlock { return .nothing }
            if error == .connectionReset { return .end }
            throw MultiprocessingError.system("reading from the fork server", error)
        }
        guard n > 0 else { return .end }
        guard let message = ForkServerMessage(buffer.prefix(n)) else {
            throw MultiprocessingError(.malformedFrame, "The fork server sent a message that is not one.")
        }
        return .message(message)
    }
}

/// Does once, in the server, what every child it makes would otherwise do for itself first: the
/// Swift runtime's look-ups and caches (a task type found by its name, its conformance to
/// `ProcessTask`, the generic metadata of the handshake's and a pool worker's decoding) live in
/// memory the children inherit, so each child finds them made instead of making them again in
/// pages of its own. Only the library's own types and code: no user code runs in the server, no
/// thread starts, and nothing here can fail the server.
func warmUpForkServer(control: Int32) {
    if let name = _mangledTypeName(PoolWorkerTask.self), let type = _typeByName(name) {
        _ = type as? any ProcessTask.Type
    }
    let handshake = ChildHandshake(taskTypeName: "", typeDisplayName: "", processName: "", daemon: true, taskBytes: [],
                                   authKey: [], parentName: "").encoded()
    _ = try? ChildHandshake(decoding: handshake)
    // A pool worker's task, encoded and decoded as a child decodes it (its descriptor a duplicate
    // of the control socket, closed again).
    guard let fd = try? system_dupCloseOnExec(control) else { return }
    guard let memory = try? system_dupCloseOnExec(control) else {
        system_close(fd)
        return
    }
    let sending = DescriptorTransfer()
    var encoder = WireEncoder()
    encoder.userInfo[.descriptorTransfer] = sending
    if let bytes = try? encoder.encode(PoolWorkerTask(channel: SharedDescriptor(FileDescriptor(rawValue: fd)),
                                                      memory: SharedDescriptor(FileDescriptor(rawValue: memory)),
                                                      initializer: nil, measureMemory: false)) {
        let receiving = DescriptorTransfer(received: [fd, memory])
        var decoder = WireDecoder()
        decoder.userInfo[.descriptorTransfer] = receiving
        if let task = try? decoder.decode(PoolWorkerTask.self, from: bytes) {
            system_close(task.channel.fileDescriptor.rawValue)
            system_close(task.memory.fileDescriptor.rawValue)
        }
        receiving.closeUnclaimed()
    } else {
        system_close(fd)
        system_close(memory)
    }
    _ = ChildOutcome.success([]).frame()
}

/// A rehearsal, in the server: the pool function's type found by its mangled name and checked
/// for its conformance to `PoolFunction`, and the generic metadata a worker builds for it, as
/// each new worker would otherwise do for itself on its first chunk. Runtime look-ups only: no
/// user code runs (nothing is decoded or called) and no thread starts. An unknown name, or one
/// that is not a pool function, does nothing (the worker reports it, as without a rehearsal).
/// Returns whether the name named a pool function.
func rehearsePoolFunction(_ name: [UInt8]) -> Bool {
    guard ForkServerMessage.isRehearsable(name),
          let type = _typeByName(String(decoding: name, as: UTF8.self)),
          let function = type as? any PoolFunction.Type else { return false }
    rehearse(function)
    return true
}

private func rehearse<F: PoolFunction>(_: F.Type) {
    _ = PoolValues.isRaw(F.Input.self)
    _ = PoolValues.isRaw(F.Output.self)
    _ = PoolFunctionRunner<F>.self as any PoolChunkRunner.Type
}

/// The fork server's own loop. It runs in a re-executed copy of the program, from the library's
/// constructor before `main` (or from `bootstrap()`), before any thread exists; every clone here is therefore safe. It makes one child per request
/// with `clone(CLONE_PARENT)`, so that the child is the parent's (`parent`), not the server's: the
/// parent reaps it and signals it, its `PR_SET_PDEATHSIG` is tied to the parent, and it does not
/// care whether the server lives. The server exits when the parent closes the control socket, and
/// dies with the parent (`PR_SET_PDEATHSIG`). It ignores the terminal's SIGINT, SIGQUIT and SIGHUP
/// (sent to the whole foreground group: the parent's to handle) and each child puts them back.
internal func runForkServer(control: Int32, parent: Int32) -> Never {
    system_ignoreTerminalSignals()
    func send(_ message: ForkServerMessage) {
        let bytes = message.bytes
        _ = try? bytes.withUnsafeBytes { (buffer) throws(Errno) -> Int in try system_sendWithDescriptors(control, buffer, []) }
    }

    warmUpForkServer(control: control)
    while true {
        if ((try? system_poll(control, events: systemPollIn, timeoutMilliseconds: -1)) ?? 0) == 0 { continue }

        // One byte more than the largest message: a longer one arrives cut to this and is refused.
        var buffer = [UInt8](repeating: 0, count: ForkServerMessage.maximumSize + 1)
        let received = try? buffer.withUnsafeMutableBytes { raw in
            try system_receiveWithDescriptors(control, raw, maxDescriptors: 4)
        }
        guard let received, received.count > 0 else {
            // The parent closed the control socket (it is exiting) or it broke: stop serving.
            system__exit(0)
        }
        let message = ForkServerMessage(buffer.prefix(received.count))
        if case .rehearse(let name)? = message, received.descriptors.isEmpty {
            send(.rehearsed(found: rehearsePoolFunction(name)))
            continue
        }
        // Anything else that is not a request with its one socket is dropped, and the server
        // serves on: the parent, which alone sends here, validates what it sends.
        guard case .fork(let recordID, let daemon, let outlivesParent)? = message,
              received.descriptors.count == 1 else {
            for fd in received.descriptors { system_close(fd) }
            continue
        }
        let socket = received.descriptors[0]
        let pid: Int32
        do throws(Errno) {
            pid = try system_cloneSibling()
        } catch {
            system_close(socket)
            send(.failed(recordID: recordID, errno: error.rawValue))
            continue
        }
        if pid == 0 {
            system_defaultTerminalSignals()
            // The child reports itself, before anything else and before it lets go of the control
            // socket: the server may be killed at any moment from now on (see ForkServerMessage).
            send(.started(recordID: recordID, pid: system_getpid()))
            system_close(control)
            // Up before a second thread exists (see the `.fork` case in ProcessMonitor.handle).
            let moved = system_moveDescriptorHigh(socket)
            system_runOnFreshThread {
                ChildRuntime.run(socket: moved, parentPID: parent, daemon: daemon, outlivesParent: outlivesParent, parked: true)
            }
        }
        system_close(socket)
    }
}
#endif
