import Synchronization
import SystemPackage
import MultiprocessingSystem

/// Optional: installs at once what the first child's start installs anyway.
///
/// A re-executed child (and the fork server) never reaches `main`: the library takes it over before
/// `main` runs (a constructor in its C shim calls the child runtime), runs the task the parent sent,
/// reports the result and exits. So neither `main` nor a test runner runs in a child, and a program
/// or a test needs no call to start children. Calling this first in `main` does no harm, and
/// arranges for the program's exit to wait for its non-daemon children (as Python's does) even
/// before the first child is started, which the first start does otherwise.
///
/// ```swift
/// @main struct App {
///     static func main() throws {
///         Multiprocessing.bootstrap()   // optional
///         // ...the program...
///     }
/// }
/// ```
public func bootstrap() {
    // Where the constructor did not run (a library loaded in an unusual way), a child is still a
    // child here, as it was before the constructor existed.
    ChildRuntime.enterIfChild()
    CurrentProcess.identity.withLock { $0.bootstrapped = true }
    ChildRuntime.installExitHandler()
}

/// Called by the C shim's constructor before `main`, when this process is a re-executed child or the
/// fork server (its variables are set). It then runs it and exits.
@_cdecl("cmp_multiprocessing_enter_child")
internal func multiprocessingEnterChild() {
    ChildRuntime.enterIfChild()
}

/// What runs inside a child, and the parent's exit handler.
internal enum ChildRuntime {
    /// Whether a re-executed copy of this program becomes a child before its `main` runs (the
    /// library is linked into the executable, as SwiftPM links it), or only in ``bootstrap()``.
    static var entersBeforeMain: Bool { system_childEntryBeforeMain() }

    static var isBootstrapped: Bool { CurrentProcess.identity.withLock { $0.bootstrapped } }

    /// When this process is a re-executed child or the fork server, runs it and exits; otherwise
    /// returns at once. The variables are read and removed before anything else runs, so that
    /// grandchildren never see them.
    static func enterIfChild() {
        if let socket = takeEnvironmentDescriptor(ChildEnvironment.forkServer) {
            let parent = takeParentPID()
            system_unsetenv(ChildEnvironment.daemon)
            system_unsetenv(ChildEnvironment.outlivesParent)
            if system_getenv(ChildEnvironment.bindNowAdded) != nil {
                // Bound at load already; the server's children must not inherit it.
                system_unsetenv(ChildEnvironment.bindNowAdded)
                system_unsetenv(ChildEnvironment.bindNow)
            }
            ChildEnvironment.removeBacktraceOff()
            dieWithParent(parent, signal: .kill)
            runForkServer(control: socket, parent: parent)
        }
        if let socket = takeEnvironmentDescriptor(ChildEnvironment.child) {
            let parent = takeParentPID()
            let daemon = system_getenv(ChildEnvironment.daemon) == "1"
            let outlivesParent = system_getenv(ChildEnvironment.outlivesParent) == "1"
            system_unsetenv(ChildEnvironment.daemon)
            system_unsetenv(ChildEnvironment.outlivesParent)
            ChildEnvironment.removeBacktraceOff()
            run(socket: socket, parentPID: parent, daemon: daemon, outlivesParent: outlivesParent)
        }
    }

    private static let exitHandlerInstalled = Atomic<Bool>(false)

    /// Threads of the library that wait and run nothing: in a child made by `fork` or the fork
    /// server, the original thread that waits for the child's fresh main thread
    /// (``system_runOnFreshThread(_:)``). A fork from such a child allows for it.
    private static let parkedThreadCount = Atomic<Int>(0)
    static var parkedThreads: Int { parkedThreadCount.load(ordering: .relaxed) }

    /// At exit, as Python does: terminate daemon children, then wait for every child.
    static func installExitHandler() {
        guard exitHandlerInstalled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        system_atexit { ChildRuntime.waitForChildrenAtExit() }
    }

    static func waitForChildrenAtExit() {
        let live = ProcessMonitor.shared.liveRecords
        for record in live where record.daemon { try? record.signal(.terminate) }
        for record in live { _ = record.finished.wait(until: .never) }
    }

    static func takeEnvironmentDescriptor(_ name: String) -> Int32? {
        guard let text = system_getenv(name) else { return nil }
        system_unsetenv(name)
        guard let fd = Int32(text), fd >= 0 else {
            system_writeStderr("multiprocessing: \(name)=\(text) is not a descriptor number; exiting.\n")
            system__exit(70)
        }
        return fd
    }

    static func takeParentPID() -> Int32 {
        let text = system_getenv(ChildEnvironment.parentPID)
        system_unsetenv(ChildEnvironment.parentPID)
        return text.flatMap { Int32($0) } ?? system_getppid()
    }

    /// Arms `PR_SET_PDEATHSIG`, then checks that the parent did not die before it was armed.
    static func dieWithParent(_ parent: Int32, signal: Signal) {
        _ = try? system_setParentDeathSignal(signal.rawValue)
        if system_getppid() != parent { system__exit(1) }
    }

    /// A daemon dies with its parent (`SIGKILL`); a non-daemon child receives `SIGTERM` when its
    /// parent dies, unless it is to outlive it. The parent's normal exit waits for its non-daemon
    /// children first, so only an abnormal death (a signal, `_exit`) sends that `SIGTERM`.
    static func armParentDeath(_ parent: Int32, daemon: Bool, outlivesParent: Bool) {
        if daemon {
            dieWithParent(parent, signal: .kill)
        } else if !outlivesParent {
            dieWithParent(parent, signal: .terminate)
        }
    }

    // MARK: spawned and fork-server children

    /// Runs the task the parent sends on `socket`, reports the outcome and exits. Never returns.
    /// `parked`: this runs on a fresh thread of a fork-server child, whose original thread waits.
    static func run(socket received: Int32, parentPID: Int32, daemon: Bool, outlivesParent: Bool, parked: Bool = false) -> Never {
        if parked { parkedThreadCount.store(1, ordering: .relaxed) }
        armParentDeath(parentPID, daemon: daemon, outlivesParent: outlivesParent)
        // Out of the task's way (a task that closes 3 and opens a file must not get our report in
        // it), and close-on-exec: our own grandchildren must not inherit the channel to our parent.
        let socket = system_moveDescriptorHigh(received)

        let handshake: ChildHandshake
        let transfer: DescriptorTransfer
        do {
            (handshake, transfer) = try readHandshake(socket)
        } catch {
            report(.setupFailed("The handshake from the parent was unreadable: \(error)"), on: socket)
            system_exit(1)
        }
        CurrentProcess.identity.withLock { identity in
            identity.name = handshake.processName
            identity.daemon = handshake.daemon
            identity.isChild = true
            identity.authKey = AuthKey(handshake.authKey)
            // Under the fork server too: the server cloned this child as its parent's (CLONE_PARENT).
            identity.parent = (handshake.parentName, parentPID)
        }
        installExitHandler()

        guard let type = _typeByName(handshake.taskTypeName) else {
            transfer.closeUnclaimed()
            report(.setupFailed("The child could not find the task type \(handshake.typeDisplayName) by its runtime name. A task type must not be private, fileprivate or declared inside a function, and the child must run a program that contains it (see ChildProcessConfiguration.executable)."), on: socket)
            system_exit(1)
        }
        guard let taskType = type as? any ProcessTask.Type else {
            transfer.closeUnclaimed()
            report(.setupFailed("\(handshake.typeDisplayName) does not conform to ProcessTask in the child's program."), on: socket)
            system_exit(1)
        }
        let task: any ProcessTask
        do {
            var decoder = WireDecoder()
            decoder.userInfo[.descriptorTransfer] = transfer
            task = try decoder.decode(taskType, from: handshake.taskBytes)
        } catch {
            transfer.closeUnclaimed()
            report(.setupFailed("Could not decode the arguments of \(handshake.typeDisplayName): \(error)"), on: socket)
            system_exit(1)
        }
        transfer.closeUnclaimed()

        let outcome = blockOn { await execute(task) }
        report(outcome, on: socket)
        if task is PoolWorkerTask {
            // A pool worker ends as Python's workers do (`os._exit`): what the library's exit
            // handlers would wait for (threads, children) it waits for, its buffers are flushed,
            // and the C exit handlers and library destructors, which would fault in a page of
            // each library for nothing at every recycling, do not run.
            OSThread.joinNonDaemonThreadsIfAnyStarted()
            waitForChildrenAtExit()
            system_flushStdio()
            system__exit(exitCode(outcome))
        }
        system_exit(exitCode(outcome))
    }

    /// In a child made by `fork()`: runs `body` on this, the only thread, and exits without running
    /// the parent's exit handlers or flushing the parent's buffers twice. `closing`: the parent's
    /// descriptors of this child's socket that the fork copied. `environment`: the configuration's
    /// entries ("NAME=value"), set here with `setenv` (safe: no other thread of the child runs yet).
    static func runForked(socket received: Int32, parentPID parent: Int32, name: String, daemon: Bool, outlivesParent: Bool,
                          closing: [Int32], environment: [String],
                          _ body: @escaping @Sendable () async -> ChildOutcome) -> Never {
        parkedThreadCount.store(1, ordering: .relaxed)
        ProcessMonitor.shared.resetAfterFork()
        for fd in closing { system_close(fd) }
        for entry in environment {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            system_setenv(String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }
        // A copy of a parent whose backtracer is installed: put its crash handlers back, unless
        // the user chose SWIFT_BACKTRACE (Syscalls+Crash+Linux.swift).
        system_turnBacktracerOffAfterFork()
        armParentDeath(parent, daemon: daemon, outlivesParent: outlivesParent)
        let socket = system_moveDescriptorHigh(received)
        CurrentProcess.identity.withLock { identity in
            // The copy of the parent's memory holds the parent's own identity and key.
            identity.parent = (identity.name, parent)
            identity.name = name
            identity.daemon = daemon
            identity.isChild = true
        }
        let outcome = blockOn(body)
        report(outcome, on: socket)
        waitForChildrenAtExit()
        system_flushStdio()
        system__exit(exitCode(outcome))
    }

    private static func exitCode(_ outcome: ChildOutcome) -> Int32 {
        if case .success = outcome.sendable { return 0 }
        return 1
    }

    private static func readHandshake(_ socket: Int32) throws -> (ChildHandshake, DescriptorTransfer) {
        var header = [UInt8](repeating: 0, count: ChildProtocol.headerSize)
        // The descriptors ride on the first bytes of the message: receive them with the first read.
        let first = try header.withUnsafeMutableBytes { raw in
            try system_receiveWithDescriptors(socket, raw)
        }
        let transfer = DescriptorTransfer(received: first.descriptors)
        do {
            if first.count == 0 {
                throw MultiprocessingError(.endOfStream, "The parent closed the channel before sending the task.")
            }
            if first.count < header.count {
                let rest = try header.withUnsafeMutableBytes { raw in
                    try system_readExactly(socket, UnsafeMutableRawBufferPointer(rebasing: raw[first.count...]))
                }
                guard first.count + rest == header.count else {
                    throw MultiprocessingError(.endOfStream, "The parent closed the channel in the middle of the handshake.")
                }
            }
            let (kind, length) = try ChildProtocol.parseHeader(header)
            guard kind == .handshake else {
                throw MultiprocessingError(.malformedFrame, "Expected a handshake from the parent, got frame kind \(kind).")
            }
            var body = [UInt8](repeating: 0, count: length)
            let read = try body.withUnsafeMutableBytes { raw in try system_readExactly(socket, raw) }
            guard read == length else {
                throw MultiprocessingError(.endOfStream, "The parent closed the channel in the middle of the handshake.")
            }
            return (try ChildHandshake(decoding: body), transfer)
        } catch {
            transfer.closeUnclaimed()
            throw error
        }
    }

    private static func report(_ outcome: ChildOutcome, on socket: Int32) {
        if case .thrown(let typeName, let message) = outcome {
            system_writeStderr("Process \(CurrentProcess.name) (pid \(system_getpid())): the task threw \(typeName): \(message)\n")
        } else if case .setupFailed(let message) = outcome {
            system_writeStderr("Process \(CurrentProcess.name) (pid \(system_getpid())): \(message)\n")
        }
        let frame = outcome.sendable.frame()
        frame.withUnsafeBytes { buffer in
            _ = try? system_writeAll(socket, buffer)
        }
    }

    // MARK: running the task

    /// Runs async work from this synchronous thread and waits for it; its jobs run on this thread.
    private static func blockOn(_ body: @escaping @Sendable () async -> ChildOutcome) -> ChildOutcome {
        CallerThreadExecutor.runBlocking(body)
    }

    static func execute(_ task: any ProcessTask) async -> ChildOutcome {
        await executeOpened(task)
    }

    private static func executeOpened<T: ProcessTask>(_ task: T) async -> ChildOutcome {
        await execute { try await task.run() }
    }

    static func execute<R>(_ body: @Sendable () async throws -> R) async -> ChildOutcome {
        let value: R
        do {
            value = try await body()
        } catch {
            return .thrown(typeName: String(reflecting: type(of: error)), message: String(describing: error))
        }
        if R.self == Void.self { return .success([]) }
        guard let encodable = value as? any Encodable else {
            return .setupFailed("The task's result type \(R.self) is not Encodable, so it cannot be sent back.")
        }
        do {
            return .success(try WireEncoder().encode(encodable))
        } catch {
            return .setupFailed("Could not encode the task's result of type \(R.self): \(error)")
        }
    }
}
