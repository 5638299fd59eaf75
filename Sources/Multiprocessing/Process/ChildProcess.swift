import Synchronization
import SystemPackage
import MultiprocessingSystem

/// A started or startable child process, whatever its task's result type.
///
/// ``ChildProcess`` conforms; ``activeChildren()`` returns values of this type.
public protocol ProcessHandle: AnyObject, Sendable {
    /// The process's name: `ChildProcess-N` unless one was given.
    var name: String { get }
    /// Whether the child dies with its parent (and is terminated when the parent's `main` returns).
    var daemon: Bool { get }
    /// The child's process id, once started.
    var pid: Int32? { get }
    /// Whether the child has been started and has not yet ended.
    var isAlive: Bool { get }
    /// How the child ended, or nil while it runs or before it starts.
    var exitStatus: ExitStatus? { get }
    /// Waits for the child to end.
    /// - Parameter timeout: How long to wait; nil waits for as long as it takes.
    /// - Throws: ``MultiprocessingError/Code/timedOut`` when the child still runs after `timeout`;
    ///   ``MultiprocessingError/Code/misuse`` before ``ChildProcess/start()`` or from a process that
    ///   did not start this child; ``MultiprocessingError/Code/systemCall`` with `ECHILD` when the
    ///   child ended but its exit status was lost (SIGCHLD set to SIG_IGN, or other code reaped it).
    func join(timeout: Duration?) throws
    /// Waits for the child to end without blocking a thread; honours task cancellation.
    /// - Parameter timeout: How long to wait; nil waits for as long as it takes.
    /// - Throws: ``MultiprocessingError/Code/timedOut`` when the child still runs after `timeout`;
    ///   ``MultiprocessingError/Code/cancelled`` (always this, never a bare `CancellationError`)
    ///   when the waiting task is cancelled first; ``MultiprocessingError/Code/misuse`` as the
    ///   blocking twin; ``MultiprocessingError/Code/systemCall`` (`ECHILD`) as the blocking twin.
    func join(timeout: Duration?) async throws
    /// Sends `SIGTERM`. Follow it with `join(timeout:)`; the child is reaped in any case.
    func terminate() throws
    /// Sends `SIGKILL`.
    func kill() throws
    /// Sends `SIGINT` (Python 3.14's `interrupt()`).
    func interrupt() throws
    /// Sends any signal. A child that has already ended is not signalled (its pid may be reused).
    func signal(_ signal: Signal) throws
    /// Whether the child has ended (and been reaped): Python's `join(0)` followed by a look at
    /// `exitcode`, without a `do`/`catch`. False before the child starts.
    var hasEnded: Bool { get }
}

extension ProcessHandle {
    /// Python's `exitcode`: nil while running, then the exit code, or minus the signal number.
    public var exitCode: Int32? { exitStatus?.code }
}

/// Runs a ``ProcessTask`` in a child process: Python's `multiprocessing.Process`.
///
/// ```swift
/// let child = ChildProcess(Square(x: 7), name: "square")
/// try child.start()
/// let value = try child.value()   // 49, computed in another process
/// ```
///
/// A child that is never joined is still reaped as soon as it ends, so it never lingers as a zombie.
/// A daemon child dies with its parent (`SIGKILL`), even when the parent is killed with `SIGKILL`. A
/// non-daemon child receives `SIGTERM` when its parent dies without exiting normally (a signal,
/// `_exit`), so that a killed job leaves nothing behind; a normal exit waits for it instead. Pass
/// `outlivesParent: true` for a child that must keep running after its parent is killed.
public final class ChildProcess<Output: Sendable>: ProcessHandle {
    public let name: String
    public let daemon: Bool
    /// Whether this non-daemon child keeps running when its parent dies abnormally. False by
    /// default: the child then receives `SIGTERM` when its parent dies without exiting normally.
    public let outlivesParent: Bool
    /// How the child is (or will be) started: its start method, program and extra environment.
    public let configuration: ChildProcessConfiguration
    /// How the child is (or will be) created: the ``configuration``'s start method.
    public var startMethod: StartMethod { configuration.startMethod }

    private enum Payload: Sendable {
        /// Encodes the task for a spawned or fork-server child.
        case task(typeName: String, displayName: String, encode: @Sendable (DescriptorTransfer) throws -> [UInt8],
                  forked: @Sendable () async -> ChildOutcome)
        /// A closure for `.fork` only.
        case closure(@Sendable () async -> ChildOutcome)
    }

    private enum Phase {
        case created
        case started(ChildRecord)
        /// After ``close()``: what is still worth reading.
        case closed(pid: Int32?, exitStatus: ExitStatus?)
    }

    private let payload: Payload
    private let decodeOutput: @Sendable ([UInt8]) throws -> Output
    private let phase = Mutex(Phase.created)
    private let creatorPID = system_getpid()

    private static var nextNumber: Int {
        ChildProcessCounter.value.withLock { value in
            value += 1
            return value
        }
    }

    private init(payload: Payload, name: String?, daemon: Bool, outlivesParent: Bool, startMethod: StartMethod?,
                 configuration: ChildProcessConfiguration?, decodeOutput: @escaping @Sendable ([UInt8]) throws -> Output) {
        self.payload = payload
        self.name = name ?? "ChildProcess-\(Self.nextNumber)"
        self.daemon = daemon
        self.outlivesParent = outlivesParent
        var configuration = configuration ?? ChildProcessConfiguration.default
        if let startMethod { configuration.startMethod = startMethod }
        self.configuration = configuration
        self.decodeOutput = decodeOutput
    }

    private static func taskPayload<T: ProcessTask>(_ task: T) -> Payload {
        .task(typeName: _mangledTypeName(T.self) ?? "",
              displayName: String(reflecting: T.self),
              encode: { transfer in
                  var encoder = WireEncoder()
                  encoder.userInfo[.descriptorTransfer] = transfer
                  return try encoder.encode(task)
              },
              forked: { await ChildRuntime.execute(task) })
    }

    // MARK: state

    public var pid: Int32? {
        phase.withLock { phase in
            switch phase {
            case .created: return nil
            case .started(let record): return record.pid
            case .closed(let pid, _): return pid
            }
        }
    }

    public var isAlive: Bool { record?.isAlive ?? false }

    public var exitStatus: ExitStatus? {
        phase.withLock { phase in
            switch phase {
            case .created: return nil
            case .started(let record): return record.exitStatus
            case .closed(_, let status): return status
            }
        }
    }

    public var hasEnded: Bool { record?.hasEnded ?? isClosed }

    /// Whether ``close()`` was called.
    public var isClosed: Bool {
        phase.withLock { phase in
            if case .closed = phase { return true }
            return false
        }
    }

    private var record: ChildRecord? {
        phase.withLock { phase in
            if case .started(let record) = phase { return record }
            return nil
        }
    }

    // MARK: lifecycle

    /// Starts the child. A process can be started only once.
    ///
    /// - Throws: ``MultiprocessingError/Code/misuse`` on a second start, when this program would
    ///   re-execute itself but loads the library as a shared library and has not called
    ///   ``bootstrap()``, when this process is a daemon child (a daemon may not have children, as in Python), for a daemon child that is
    ///   also to outlive its parent, or for a configuration whose environment or executable is unusable; ``MultiprocessingError/Code/coding`` when the
    ///   task's arguments cannot be encoded; ``MultiprocessingError/Code/unsupported`` for `.fork` in a
    ///   process that runs other threads; ``MultiprocessingError/Code/childStartFailed`` when the
    ///   system refuses to create the process.
    public func start() throws {
        try start(onStarted: nil)
    }

    /// Starts the child without waiting for it to run: `onStarted` is called once it runs (with
    /// its pid) or its start failed, on the process monitor's thread (keep it short) or, when the
    /// answer is there at once, on this one. What fails before a process is asked for (encoding,
    /// the configuration) throws here, as ``start()`` does. The pool starts its workers so, without
    /// a thread per start.
    internal func startInBackground(_ onStarted: @escaping @Sendable (Result<Int32, MultiprocessingError>) -> Void) throws {
        try start(onStarted: onStarted)
    }

    private func start(onStarted: (@Sendable (Result<Int32, MultiprocessingError>) -> Void)?) throws {
        let record = try phase.withLock { phase throws -> ChildRecord in
            if case .closed = phase {
                throw MultiprocessingError(.closed, "\(name) was closed: a closed ChildProcess cannot be started. Create a new one.")
            }
            guard case .created = phase else {
                throw MultiprocessingError.misuse("\(name) was already started: a process can be started only once. Create a new ChildProcess to run the task again.")
            }
            let record = ChildRecord(id: ProcessMonitor.shared.makeRecordID(), name: name, daemon: daemon, outlivesParent: outlivesParent)
            record.state.withLock { $0.handle = self }
            phase = .started(record)
            return record
        }
        var whenStarted: (@Sendable (Result<Int32, MultiprocessingError>) -> Void)?
        if let onStarted {
            whenStarted = { [weak self] (result: Result<Int32, MultiprocessingError>) -> Void in
                // A start that failed leaves the handle as a failed start() does.
                if case .failure = result { self?.resetAfterFailedStart() }
                onStarted(result)
            }
        }
        do {
            try launch(record, onStarted: whenStarted)
        } catch {
            // Leave the handle startable again only if nothing ran; a failed start is final otherwise.
            phase.withLock { $0 = .created }
            throw error
        }
    }

    private func resetAfterFailedStart() {
        phase.withLock { $0 = .created }
    }

    /// A handshake up to this size is written before the child is asked for: it waits in the new
    /// socket's buffer (far larger), so the child reads it as soon as it runs, without waiting for
    /// this thread to learn that it started. A larger one could fill the buffer before any child
    /// reads it, so it goes once the child runs.
    private var earlyHandshakeLimit: Int { 32 * 1024 }

    private func launch(_ record: ChildRecord, onStarted: (@Sendable (Result<Int32, MultiprocessingError>) -> Void)?) throws {
        if CurrentProcess.isDaemon {
            throw MultiprocessingError.misuse("Cannot start \(name) from \(CurrentProcess.name): a daemon process may not have children (as in Python), because it is killed with its parent and its children would be orphaned. Start the child from a non-daemon process, or make this process a non-daemon child.")
        }
        if daemon && outlivesParent {
            throw MultiprocessingError.misuse("\(name) cannot be both a daemon (which dies with its parent) and outlivesParent (which survives it). Choose one.")
        }
        try configuration.validate(for: name)
        // Made now if it is to be made at all: a forked child must copy it, not make its own.
        let authKey = CurrentProcess.authKey
        ChildRuntime.installExitHandler()
        // Encode before any process exists, so that bad arguments fail here, in the caller.
        let transfer = DescriptorTransfer()
        var handshake: [UInt8] = []
        if case .task(let typeName, let displayName, let encode, _) = payload, startMethod != .fork {
            guard !typeName.isEmpty else {
                throw MultiprocessingError(.childStartFailed, "The task type \(displayName) has no runtime name a child could look up.")
            }
            let taskBytes: [UInt8]
            do {
                taskBytes = try encode(transfer)
            } catch {
                throw MultiprocessingError(.coding, "Could not encode the arguments of \(displayName) for \(name): \(error)")
            }
            handshake = ChildProtocol.frame(.handshake, ChildHandshake(
                taskTypeName: typeName, typeDisplayName: displayName,
                processName: name, daemon: daemon, taskBytes: taskBytes,
                authKey: authKey.bytes, parentName: CurrentProcess.name).encoded())
        }

        if startMethod != .fork && configuration.executable == nil && !ChildRuntime.entersBeforeMain && !ChildRuntime.isBootstrapped {
            // Only where the library is a shared library: its constructor cannot enter a child.
            throw MultiprocessingError.misuse("Starting \(name) would re-execute this program, which loads the Multiprocessing library as a shared library and whose main has not called bootstrap(). Call `Multiprocessing.bootstrap()` first thing in main; otherwise the child would run your whole program again.")
        }

        let (parentEnd, childEnd): (Int32, Int32)
        do throws(Errno) {
            (parentEnd, childEnd) = try system_socketpair()
        } catch {
            throw MultiprocessingError.system("creating the socket to \(name)", error)
        }
        // The monitor owns the parent's end from now on (it reads the outcome, then closes it).
        record.state.withLock { $0.socket = parentEnd }
        // The handshake goes through a descriptor of our own, so that the monitor closing its end
        // early (a child that dies at once) can never make us write into a reused descriptor number.
        let writer = try? system_dupCloseOnExec(parentEnd)
        var sentEarly = false
        if !handshake.isEmpty, handshake.count <= earlyHandshakeLimit, let writer {
            do {
                try sendHandshake(handshake, descriptors: transfer.descriptors, on: writer)
                sentEarly = true
            } catch {
                system_close(writer)
                system_close(childEnd)
                record.closeSocket()
                throw MultiprocessingError(.childStartFailed, "Could not write the handshake of \(name) into its new socket: \(error)")
            }
        }
        // Written once the child runs (when not written already), then the writer is closed.
        let lateHandshake = sentEarly ? [] : handshake
        let sendLate: @Sendable (_ started: Bool) -> Void = { [lateHandshake, descriptors = transfer.descriptors] started in
            guard let writer else { return }
            if started && !lateHandshake.isEmpty {
                // A child that died before reading gives EPIPE here: not a start failure. Its exit
                // status tells the story, as it would in Python.
                try? Self.sendHandshake(lateHandshake, descriptors: descriptors, on: writer)
            }
            system_close(writer)
        }

        // From here on the monitor owns `childEnd` too: it closes it once the child has it.
        let reply = StartReply()
        switch startMethod {
        case .spawn:
            let plan = SpawnPlan(
                executable: configuration.resolvedExecutable,
                arguments: CommandLine.arguments,
                environment: configuration.environmentEntries + ChildEnvironment.backtraceOff(besides: configuration.environmentEntries) + [
                    "\(ChildEnvironment.child)=\(ChildEnvironment.socketNumber)",
                    "\(ChildEnvironment.parentPID)=\(system_getpid())",
                    "\(ChildEnvironment.daemon)=\(daemon ? 1 : 0)",
                    "\(ChildEnvironment.outlivesParent)=\(outlivesParent ? 1 : 0)",
                ],
                childSocket: childEnd)
            try submit(.spawn(record, plan, reply), record, childEnd: childEnd, writer: writer)
        case .forkServer:
            let server = ForkServerKey(executable: configuration.resolvedExecutable, environment: configuration.environmentEntries)
            try submit(.forkServer(record, server, childSocket: childEnd, reply), record, childEnd: childEnd, writer: writer)
        case .fork:
            let threads = system_threadCount()
            let allowed = (ProcessMonitor.shared.isRunning ? 2 : 1) + ChildRuntime.parkedThreads
            if threads > allowed {
                record.closeSocket()
                system_close(childEnd)
                if let writer { system_close(writer) }
                throw MultiprocessingError(.unsupported, "Refusing to fork \(name): this process runs \(threads) threads, and a forked child of a multi-threaded process can hang on a lock another thread held. Use the .spawn or .forkServer start method.")
            }
            // The child closes this thread's duplicate of the parent's end (the monitor's own copy
            // goes in resetAfterFork), as a spawned child has nothing of its parent's, and sets its
            // configuration's environment before its task runs.
            let body = forkBody(name: name, daemon: daemon, outlivesParent: outlivesParent,
                                closing: writer.map { [$0] } ?? [], environment: configuration.environmentEntries)
            try submit(.fork(record, childSocket: childEnd, body: body, reply), record, childEnd: childEnd, writer: writer)
        }
        if let onStarted {
            reply.whenComplete { result in
                if case .success = result, !lateHandshake.isEmpty {
                    // A large handshake is written by a thread of its own, not by the monitor's.
                    do throws(Errno) {
                        try system_startThread(name: "mp-handshake") { sendLate(true); onStarted(result) }
                        return
                    } catch {}
                }
                if case .success = result { sendLate(true) } else { sendLate(false) }
                onStarted(result)
            }
            return
        }
        do {
            _ = try reply.wait()
        } catch {
            sendLate(false)
            throw error
        }
        sendLate(true)
    }

    /// Hands the request to the monitor; if it cannot take it, the parent's end of the socket and
    /// the child's are closed here (once the monitor has them, the monitor closes them).
    private func submit(_ request: ProcessMonitor.Request, _ record: ChildRecord, childEnd: Int32, writer: Int32?) throws {
        do {
            try ProcessMonitor.shared.submit(request)
        } catch {
            record.closeSocket()
            system_close(childEnd)
            if let writer { system_close(writer) }
            throw error
        }
    }

    private func sendHandshake(_ bytes: [UInt8], descriptors: [Int32], on socket: Int32) throws {
        try Self.sendHandshake(bytes, descriptors: descriptors, on: socket)
    }

    private static func sendHandshake(_ bytes: [UInt8], descriptors: [Int32], on socket: Int32) throws {
        try bytes.withUnsafeBytes { buffer in
            let sent = try system_sendWithDescriptors(socket, buffer, descriptors)
            try system_writeAll(socket, UnsafeRawBufferPointer(rebasing: buffer[sent...]))
        }
    }

    private func forkBody(name: String, daemon: Bool, outlivesParent: Bool, closing: [Int32], environment: [String]) -> @Sendable (Int32) -> Never {
        let run: @Sendable () async -> ChildOutcome
        switch payload {
        case .task(_, _, _, let forked): run = forked
        case .closure(let closure): run = closure
        }
        let parent = system_getpid()
        return { socket in
            ChildRuntime.runForked(socket: socket, parentPID: parent, name: name, daemon: daemon, outlivesParent: outlivesParent,
                                   closing: closing, environment: environment, run)
        }
    }

    private func startedRecord(_ what: String) throws -> ChildRecord {
        if isClosed {
            throw MultiprocessingError(.closed, "Cannot \(what) \(name): it was closed (ChildProcess.close()).")
        }
        guard let record else {
            throw MultiprocessingError.misuse("Cannot \(what) \(name): it has not been started. Call start() first.")
        }
        guard system_getpid() == creatorPID else {
            throw MultiprocessingError.misuse("Cannot \(what) \(name) from process \(system_getpid()): only the process that started a child can \(what) it.")
        }
        return record
    }

    public func join(timeout: Duration? = nil) throws {
        try startedRecord("join").join(timeout: timeout)
    }

    public func join(timeout: Duration? = nil) async throws {
        try await startedRecord("join").join(timeout: timeout)
    }

    public func terminate() throws {
        try startedRecord("terminate").signal(.terminate)
    }

    public func kill() throws {
        try startedRecord("kill").signal(.kill)
    }

    /// Sends `SIGINT`, as Python 3.14's `Process.interrupt()`: a child that does not handle it
    /// ends as if interrupted from the keyboard (its exit status is ``ExitStatus/signaled(_:)``
    /// with ``Signal/interrupt``).
    ///
    /// - Throws: ``MultiprocessingError/Code/misuse`` before ``start()`` or from a process that did
    ///   not start this child; ``MultiprocessingError/Code/closed`` after ``close()``.
    public func interrupt() throws {
        try startedRecord("interrupt").signal(.interrupt)
    }

    /// Sends `signal` to the child (through its pidfd, so never to another process that reused
    /// its pid). A child that has already ended is not signalled, and that is no error.
    ///
    /// - Parameter signal: any signal, such as ``Signal/user1``.
    /// - Throws: as ``interrupt()``; ``MultiprocessingError/Code/systemCall`` when the system
    ///   refuses the signal (`EINVAL` for a number that is no signal).
    public func signal(_ signal: Signal) throws {
        try startedRecord("signal").signal(signal)
    }

    /// Waits at most `timeout` for the child to end and says whether it did: Python's
    /// `join(timeout)` followed by a look at `exitcode`, without a `do`/`catch`.
    ///
    /// - Parameter timeout: how long to wait; `.zero` (the default) only looks.
    /// - Returns: whether the child has ended; false before ``start()``, after ``close()`` true
    ///   (a child can only be closed once it has ended), and false when called from a process that
    ///   did not start it.
    public func tryJoin(timeout: Duration = .zero) -> Bool {
        if isClosed { return true }
        guard let record = try? startedRecord("join") else { return false }
        guard timeout > .zero else { return record.hasEnded }
        do {
            try record.wait(timeout: timeout)
            return true
        } catch {
            return record.hasEnded
        }
    }

    /// Waits at most `timeout` for the child without blocking a thread, and says whether it ended;
    /// see `tryJoin(timeout:)`. A cancelled task returns whether it had ended by then.
    ///
    /// - Parameter timeout: how long to wait; `.zero` (the default) only looks.
    /// - Returns: whether the child has ended.
    public func tryJoin(timeout: Duration = .zero) async -> Bool {
        if isClosed { return true }
        guard let record = try? startedRecord("join") else { return false }
        guard timeout > .zero else { return record.hasEnded }
        do {
            try await record.wait(timeout: timeout)
            return true
        } catch {
            return record.hasEnded
        }
    }

    /// Something `wait(_:timeout:)` (and `poll(2)`) can wait on, ready once the child has ended
    /// and `join` would return at once: Python's `Process.sentinel`.
    ///
    /// Each call returns a new ``ProcessSentinel`` with a descriptor of its own (an eventfd the
    /// process monitor signals after it reaped the child), valid until the sentinel is released,
    /// even after ``close()``.
    ///
    /// - Throws: ``MultiprocessingError/Code/misuse`` before ``start()`` or from a process that did
    ///   not start this child; ``MultiprocessingError/Code/closed`` after ``close()``;
    ///   ``MultiprocessingError/Code/systemCall`` when no descriptor is left.
    public var sentinel: ProcessSentinel {
        get throws {
            let record = try startedRecord("get the sentinel of")
            return ProcessSentinel(descriptor: try record.sentinelDescriptor(), name: name)
        }
    }

    /// Releases what this handle holds (the record of the child, its result): Python's
    /// `Process.close()`. Afterwards ``start()``, `join`, `value`, the signals and ``sentinel``
    /// throw ``MultiprocessingError/Code/closed``; ``pid`` and ``exitStatus`` stay readable.
    /// Closing twice does nothing.
    ///
    /// - Throws: ``MultiprocessingError/Code/misuse`` while the child runs (as Python's
    ///   `ValueError`): join or terminate it first.
    public func close() throws {
        try phase.withLock { phase throws in
            switch phase {
            case .created:
                phase = .closed(pid: nil, exitStatus: nil)
            case .started(let record):
                guard record.hasEnded else {
                    throw MultiprocessingError.misuse("Cannot close \(name) (pid \(record.rawPID)): it is still running. Join it (or terminate it and join it) first.")
                }
                phase = .closed(pid: record.pid, exitStatus: record.exitStatus)
            case .closed:
                return
            }
        }
    }

    /// Waits for the child and returns what its task returned.
    ///
    /// - Parameter timeout: How long to wait; nil waits for as long as it takes.
    /// - Returns: The task's result, decoded in this process.
    /// - Throws: ``MultiprocessingError/Code/childFailed`` when the task threw (``MultiprocessingError/remoteTypeName``
    ///   names the child's error type, and the message is its description);
    ///   ``MultiprocessingError/Code/childDied`` when the child ended without a result (a crash, a
    ///   signal, an `exit` call); ``MultiprocessingError/Code/childStartFailed`` when the child could
    ///   not run the task at all (for example, it could not find the task type);
    ///   ``MultiprocessingError/Code/timedOut`` after `timeout`.
    public func value(timeout: Duration? = nil) throws -> Output {
        let record = try startedRecord("get the value of")
        try record.wait(timeout: timeout)
        return try result(of: record)
    }

    /// Waits for the child without blocking a thread and returns what its task returned.
    /// - Throws: As ``value(timeout:)``, and ``MultiprocessingError/Code/cancelled`` when the waiting task is cancelled.
    public func value(timeout: Duration? = nil) async throws -> Output {
        let record = try startedRecord("get the value of")
        try await record.wait(timeout: timeout)
        return try result(of: record)
    }

    private func result(of record: ChildRecord) throws -> Output {
        let (outcome, status, lost) = record.state.withLock { ($0.outcome, $0.exitStatus, $0.lost) }
        switch outcome {
        case .success(.success(let bytes))?:
            do {
                return try decodeOutput(bytes)
            } catch {
                throw MultiprocessingError(.coding, "Could not decode the result of \(name): \(error)")
            }
        case .success(.thrown(let typeName, let message))?:
            throw MultiprocessingError(.childFailed, "The task in \(name) threw: \(message)", remoteTypeName: typeName)
        case .success(.setupFailed(let message))?:
            throw MultiprocessingError(.childStartFailed, "\(name) could not run its task: \(message)")
        case .success(.resultTooLarge(let size))?:
            throw MultiprocessingError(.coding, "The result of \(name)'s task is \(size) bytes, over the \(ChildProtocol.maximumBody)-byte (1 GiB) limit of a child's result, so the child did not send it. Send bulk data through a Queue, a Connection, a file or shared memory instead.")
        case .failure(let error)?:
            throw error
        case nil:
            if let lost { throw lost }
            let how: String
            switch status {
            case .signaled?: how = "was \(status?.description ?? "")"   // "it was killed by SIGILL"
            case .exited?: how = status?.description ?? ""
            case nil: how = "vanished"
            }
            var message = "\(name) ended without a result: it \(how)."
            if case .signaled(let signal)? = status, [Signal.illegalInstruction, .trap, .segmentationFault, .bus, .abort].contains(signal) {
                message += " That signal means it crashed (a Swift trap such as fatalError, a failed precondition or an index out of range raises \(Signal.illegalInstruction))."
            } else if case .exited? = status {
                message += " If its program does not link the Multiprocessing library (see ChildProcessConfiguration.executable), it never ran the task."
            }
            throw MultiprocessingError(.childDied, message)
        }
    }
}

extension ChildProcess where Output: Decodable {
    /// A child that will run `task` and send back its result.
    /// - Parameters:
    ///   - task: The work and its arguments (Python's `target`, `args` and `kwargs`).
    ///   - name: The process name; `ChildProcess-N` by default.
    ///   - daemon: Whether the child dies with its parent.
    ///   - outlivesParent: Whether a non-daemon child keeps running when its parent dies
    ///     abnormally; by default it receives `SIGTERM` then. A normal exit of the parent still waits for it.
    ///   - startMethod: How the child is created, over the configuration's start method.
    ///   - configuration: How the child is started; ``ChildProcessConfiguration/default`` (as it is now) by default.
    public convenience init<T: ProcessTask>(_ task: T, name: String? = nil, daemon: Bool = false, outlivesParent: Bool = false, startMethod: StartMethod? = nil,
                                            configuration: ChildProcessConfiguration? = nil) where T.Output == Output {
        self.init(payload: Self.taskPayload(task), name: name, daemon: daemon, outlivesParent: outlivesParent, startMethod: startMethod, configuration: configuration,
                  decodeOutput: { bytes in try WireDecoder().decode(Output.self, from: bytes) })
    }

    /// A child that runs `body` in a forked copy of this process (start method `.fork`).
    ///
    /// The closure sees a copy of this process's memory at the time of ``start()``; what it returns
    /// is encoded and sent back. See ``StartMethod/fork`` for when forking is refused.
    public convenience init(name: String? = nil, daemon: Bool = false, outlivesParent: Bool = false, forking body: @escaping @Sendable () async throws -> Output) where Output: Encodable {
        self.init(payload: .closure({ await ChildRuntime.execute(body) }), name: name, daemon: daemon, outlivesParent: outlivesParent, startMethod: .fork, configuration: nil,
                  decodeOutput: { bytes in try WireDecoder().decode(Output.self, from: bytes) })
    }
}

extension ChildProcess where Output == Void {
    /// A child that will run `task`, whose ``ProcessTask/run()`` returns nothing.
    /// - Parameters:
    ///   - task: The work and its arguments (Python's `target`, `args` and `kwargs`).
    ///   - name: The process name; `ChildProcess-N` by default.
    ///   - daemon: Whether the child dies with its parent.
    ///   - outlivesParent: Whether a non-daemon child keeps running when its parent dies
    ///     abnormally; by default it receives `SIGTERM` then. A normal exit of the parent still waits for it.
    ///   - startMethod: How the child is created, over the configuration's start method.
    ///   - configuration: How the child is started; ``ChildProcessConfiguration/default`` (as it is now) by default.
    public convenience init<T: ProcessTask>(_ task: T, name: String? = nil, daemon: Bool = false, outlivesParent: Bool = false, startMethod: StartMethod? = nil,
                                            configuration: ChildProcessConfiguration? = nil) where T.Output == Void {
        self.init(payload: Self.taskPayload(task), name: name, daemon: daemon, outlivesParent: outlivesParent, startMethod: startMethod, configuration: configuration,
                  decodeOutput: { _ in () })
    }

    /// A child that runs `body` in a forked copy of this process (start method `.fork`).
    public convenience init(name: String? = nil, daemon: Bool = false, outlivesParent: Bool = false, forking body: @escaping @Sendable () async throws -> Void) {
        self.init(payload: .closure({ await ChildRuntime.execute(body) }), name: name, daemon: daemon, outlivesParent: outlivesParent, startMethod: .fork, configuration: nil,
                  decodeOutput: { _ in () })
    }
}

private enum ChildProcessCounter {
    static let value = Mutex(0)
}

extension ChildRecord: ProcessHandle {
    var pid: Int32? { let p = rawPID; return p == 0 ? nil : p }

    var isAlive: Bool { state.withLock { $0.pid != 0 && !$0.ended } }

    var exitStatus: ExitStatus? { state.withLock { $0.exitStatus } }

    func join(timeout: Duration?) throws {
        try wait(timeout: timeout)
        if let lost = state.withLock({ $0.lost }) { throw lost }
    }

    func join(timeout: Duration?) async throws {
        try await wait(timeout: timeout)
        if let lost = state.withLock({ $0.lost }) { throw lost }
    }

    /// Waits for the end of the child, whether or not its exit status is known.
    func wait(timeout: Duration?) throws {
        guard finished.wait(until: try Deadline(timeout: timeout, "ChildProcess.join")) else {
            throw MultiprocessingError(.timedOut, "\(name) (pid \(rawPID)) was still running after \(timeout ?? .zero).")
        }
    }

    /// Waits without blocking a thread. Throws `.timedOut` after `timeout`, and `.cancelled` (never a
    /// bare `CancellationError`) when the waiting task is cancelled first.
    func wait(timeout: Duration?) async throws {
        // The Deadline refuses a negative timeout and turns one past the clock's end into no timeout.
        if let left = try Deadline(timeout: timeout, "ChildProcess.join").remaining {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.waitAsync() }
                group.addTask { try? await Task.sleep(for: left) }
                // Whichever ends first (the child, the timeout, or cancellation, which ends both).
                await group.next()
                group.cancelAll()
            }
        } else {
            await waitAsync()
        }
        if state.withLock({ $0.ended }) { return }
        if Task.isCancelled {
            throw MultiprocessingError(.cancelled, "Stopped waiting for \(name): the waiting task was cancelled.")
        }
        throw MultiprocessingError(.timedOut, "\(name) (pid \(rawPID)) was still running after \(timeout ?? .zero).")
    }

    func terminate() throws { try signal(.terminate) }

    func kill() throws { try signal(.kill) }

    func interrupt() throws { try signal(.interrupt) }

    var hasEnded: Bool { state.withLock { $0.ended } }

    func signal(_ signal: Signal) throws {
        try state.withLock { state throws in
            guard state.exitStatus == nil else { return } // already ended: nothing to signal, as in Python
            do throws(Errno) {
                if state.pidfd >= 0 {
                    try system_pidfdSendSignal(state.pidfd, signal.rawValue)
                } else if state.pid > 0 {
                    try system_kill(state.pid, signal.rawValue)
                }
            } catch {
                if error == .noSuchProcess { return } // it ended a moment ago
                throw MultiprocessingError.system("sending \(signal) to \(name)", error)
            }
        }
    }
}
