#if os(Linux)
public import Glibc
public import CMultiprocessing
public import SystemPackage

/// Environment variables that tell a re-executed binary what it is. The child runtime reads and
/// removes them before `main` runs (the C shim's constructor checks for the first two by these
/// names), so grandchildren never see them.
@usableFromInline package enum ChildEnvironment {
    /// The descriptor number of the handshake socket: "this process is a child; run its task".
    @usableFromInline package static let child = "SWIFT_MULTIPROCESSING_CHILD"
    /// The descriptor number of the control socket: "this process is the fork server".
    @usableFromInline package static let forkServer = "SWIFT_MULTIPROCESSING_FORKSERVER"
    /// The parent's pid, to check after `PR_SET_PDEATHSIG` that the parent is still the parent.
    @usableFromInline package static let parentPID = "SWIFT_MULTIPROCESSING_PARENT"
    /// "1" when the child must die with its parent.
    @usableFromInline package static let daemon = "SWIFT_MULTIPROCESSING_DAEMON"
    /// "1" when a non-daemon child must keep running if its parent dies (no `SIGTERM`).
    @usableFromInline package static let outlivesParent = "SWIFT_MULTIPROCESSING_OUTLIVES_PARENT"
    /// The descriptor a spawned child finds its socket at. The child runtime moves it to a high
    /// number before any user code runs, so that 3 is free for the task.
    @usableFromInline package static let socketNumber: Int32 = 3
    /// "1" when the library set `LD_BIND_NOW` for the fork server (it was not in the environment
    /// before): the server removes both at once, so its children and their spawned children do
    /// not bind eagerly. The server binds every symbol at its start, so that no child it makes
    /// resolves a symbol lazily again (each child would, in a page of its own).
    @usableFromInline package static let bindNowAdded = "SWIFT_MULTIPROCESSING_BIND_NOW"
    /// The dynamic loader's variable: resolve every symbol at load time.
    @usableFromInline package static let bindNow = "LD_BIND_NOW"

    @usableFromInline package static let all = [child, forkServer, parentPID, daemon, outlivesParent, bindNowAdded, backtraceOffAdded]
}

/// Everything posix_spawn needs to start a re-executed child.
package struct SpawnPlan: Sendable {
    package var executable: FilePath
    package var arguments: [String]
    /// Extra environment entries ("NAME=value"), added to the parent's environment (replacing an
    /// inherited entry of the same name).
    package var environment: [String]
    /// The socket that becomes descriptor 3 in the child. Every other descriptor above 2 is closed.
    package var childSocket: Int32

    package init(executable: FilePath, arguments: [String], environment: [String], childSocket: Int32) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.childSocket = childSocket
    }

    package var executableDescription: String { executable.description }
}

/// Spawns `plan.executable`. Descriptors 0–2 are inherited, the child socket becomes 3, and every
/// other descriptor is closed in the child whatever its close-on-exec flag: only what we pass arrives.
package func system_spawnChild(_ plan: SpawnPlan) throws(Errno) -> Int32 {
    // Move the socket above 3 first so that dup2 onto 3 always copies (and clears close-on-exec).
    let source = try system_dupCloseOnExec(plan.childSocket, minimum: 10)
    defer { system_close(source) }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var r = posix_spawn_file_actions_adddup2(&actions, source, ChildEnvironment.socketNumber)
    if r != 0 { throw Errno(rawValue: r) }
    r = cmp_spawn_file_actions_addclosefrom(&actions, ChildEnvironment.socketNumber + 1)
    if r != 0 { throw Errno(rawValue: r) }

    // The parent's environment, less our own variables and whatever the plan sets anew.
    let replaced = Set(ChildEnvironment.all + plan.environment.map { String($0.prefix { $0 != "=" }) })
    var environment: [String] = []
    var entry = cmp_environ()
    while let pointer = entry?.pointee {
        let text = String(cString: pointer)
        if !replaced.contains(String(text.prefix { $0 != "=" })) { environment.append(text) }
        entry = entry?.advanced(by: 1)
    }
    environment += plan.environment

    let argv = plan.arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup($0) } + [nil]
    defer {
        for p in argv { free(p) }
        for p in envp { free(p) }
    }
    var pid: pid_t = 0
    let result = plan.executable.withPlatformString { path in
        argv.withUnsafeBufferPointer { a in
            envp.withUnsafeBufferPointer { e in
                cmp_spawn(&pid, path, &actions, a.baseAddress, e.baseAddress)
            }
        }
    }
    if result != 0 { throw Errno(rawValue: -result) }
    return pid
}

/// The executable a spawned child runs when its configuration names none: this process's own binary.
@inlinable package func system_currentExecutable() -> FilePath { FilePath("/proc/self/exe") }

/// Whether the C shim's constructor enters a re-executed child before `main` (the shim is linked
/// into the main executable).
@inlinable package func system_childEntryBeforeMain() -> Bool { cmp_child_entry_before_main() }

// MARK: threads

/// `clone(CLONE_PARENT | SIGCHLD)`: the fork server's way to make a child that belongs to the
/// program that asked for it. Returns 0 in the child. The child must go straight to
/// ``system_runOnFreshThread(_:)``.
@inlinable package func system_cloneSibling() throws(Errno) -> Int32 {
    try negatedErrno(retryOnInterrupt: false) { cmp_clone_sibling() }
}

private final class FreshThreadBody {
    let body: () -> Never
    init(_ body: @escaping () -> Never) { self.body = body }
}

/// In a child made by `fork` or `clone`: runs `body` on a new thread and never returns.
///
/// The child's only thread is a copy of the thread that forked, thread-local state included, and
/// that state names the forking thread: Swift's `Mutex` caches its thread id there, so a `Mutex`
/// taken on this thread records an owner that does not exist in the child (the "Unknown error
/// occurred while attempting to acquire a Mutex" trap of a forked child whose task starts
/// children). After a raw `clone`, glibc's cached thread id is stale too, and robust mutexes use
/// it. A new thread starts with thread-local state of its own. This thread runs no Swift code that
/// could take a lock: it starts the thread and waits; `body` ends the process.
package func system_runOnFreshThread(_ body: @escaping () -> Never) -> Never {
    let context = Unmanaged.passRetained(FreshThreadBody(body)).toOpaque()
    let r = cmp_run_on_fresh_thread({ raw in
        guard let raw else { return nil }
        Unmanaged<FreshThreadBody>.fromOpaque(raw).takeRetainedValue().body()
    }, context)
    if r < 0 {
        system_writeStderr("multiprocessing: a new child could not start its main thread (errno \(-r)); exiting.\n")
    }
    system__exit(70)
}

/// Moves a child's channel to its parent out of the task's way: to a high descriptor number,
/// close-on-exec, freeing the low number it arrived at. Keeps `fd` if it cannot be moved. Call it
/// while the process has one thread: growing a descriptor table that threads share waits for an
/// RCU grace period (about 7 ms measured here).
@inlinable package func system_moveDescriptorHigh(_ fd: Int32) -> Int32 {
    let moved = cmp_move_descriptor_high(fd)
    return moved >= 0 ? moved : fd
}

private final class ThreadStart {
    let name: String?
    let body: () -> Void
    init(name: String?, body: @escaping () -> Void) {
        self.name = name
        self.body = body
    }
}

/// Starts a detached pthread that runs `body` and ends: the one thread starter of the package
/// (``OSThread``, the monitor and its waitpid threads, the blocking bridge's helpers, the manager's
/// connection threads and MPCopy's threads, through ``OSThread``, all start here).
///
/// - Parameters:
///   - name: the thread's name as `top` and `/proc/self/task/*/comm` show it (15 bytes kept), set by
///     the thread itself before `body` runs; nil leaves the name to `body` (``OSThread``).
///   - stackSize: the stack's size in bytes; 0 takes the default (8 MiB here, from `ulimit -s`).
///   - body: what the thread runs.
/// - Returns: the new thread.
/// - Throws: the `Errno` of `pthread_create(3)` (`EAGAIN` when a thread limit or memory stops it).
///   `body` is released unrun then.
@discardableResult
package func system_startThread(name: String?, stackSize: Int = 0,
                                 _ body: @escaping @Sendable () -> Void) throws(Errno) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadStart(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    let r = cmp_thread_create(&thread, stackSize, { raw in
        guard let raw else { return nil }
        let start = Unmanaged<ThreadStart>.fromOpaque(raw).takeRetainedValue()
        if let name = start.name { system_setThreadName(name) }
        start.body()
        return nil
    }, context)
    if r != 0 {
        Unmanaged<ThreadStart>.fromOpaque(context).release()
        throw Errno(rawValue: r)
    }
    _ = pthread_detach(thread)
    return thread
}

// MARK: eventfd

@inlinable package func system_eventfdSignal(_ fd: Int32) {
    var one: UInt64 = 1
    _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
}

@inlinable package func system_eventfdDrain(_ fd: Int32) {
    var value: UInt64 = 0
    _ = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
}

/// `recv(MSG_DONTWAIT)`: a read that never blocks, without making the descriptor non-blocking for
/// another thread that writes to it.
@inlinable package func system_receiveNonBlocking(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    try valueOrErrno { Glibc.recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
}

@inlinable package func system_flushStdio() { fflush(nil) }

@inlinable package func system_getenv(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

@inlinable package func system_unsetenv(_ name: String) { unsetenv(name) }

/// `setenv(3)`, replacing a value already set. Only while no other thread may read the environment.
@inlinable package func system_setenv(_ name: String, _ value: String) { setenv(name, value, 1) }

@inlinable package func system_writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buffer in
        _ = try? system_writeAll(2, UnsafeRawBufferPointer(buffer))
    }
}

@inlinable package func system_atexit(_ handler: @convention(c) () -> Void) { atexit(handler) }

@inlinable package func system_socketpairSeqpacket() throws(Errno) -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    _ = try valueOrErrno { Glibc.socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
    return (fds[0], fds[1])
}
#endif
