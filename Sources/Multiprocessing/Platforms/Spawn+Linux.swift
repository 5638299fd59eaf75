#if os(Linux)
import Glibc
import CMultiprocessing
import SystemPackage

/// Environment variables that tell a re-executed binary what it is. `bootstrap()` reads and removes
/// them before anything else runs, so grandchildren never see them.
internal enum ChildEnvironment {
    /// The descriptor number of the handshake socket: "this process is a child; run its task".
    static let child = "SWIFT_MULTIPROCESSING_CHILD"
    /// The descriptor number of the control socket: "this process is the fork server".
    static let forkServer = "SWIFT_MULTIPROCESSING_FORKSERVER"
    /// The parent's pid, to check after `PR_SET_PDEATHSIG` that the parent is still the parent.
    static let parentPID = "SWIFT_MULTIPROCESSING_PARENT"
    /// "1" when the child must die with its parent.
    static let daemon = "SWIFT_MULTIPROCESSING_DAEMON"
    /// The descriptor every child finds its socket at.
    static let socketNumber: Int32 = 3

    static let all = [child, forkServer, parentPID, daemon]
}

/// Everything posix_spawn needs to start a re-executed child.
internal struct SpawnPlan: Sendable {
    var executable: FilePath
    var arguments: [String]
    /// Extra environment entries ("NAME=value"), added to the parent's environment (replacing an
    /// inherited entry of the same name).
    var environment: [String]
    /// The socket that becomes descriptor 3 in the child. Every other descriptor above 2 is closed.
    var childSocket: Int32

    var executableDescription: String { executable.description }
}

/// Spawns `plan.executable`. Descriptors 0–2 are inherited, the child socket becomes 3, and every
/// other descriptor is closed in the child whatever its close-on-exec flag: only what we pass arrives.
internal func system_spawnChild(_ plan: SpawnPlan) throws(Errno) -> Int32 {
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

/// The executable a spawned child runs: this process's own binary, unless `setExecutable` chose another.
internal func system_currentExecutable() -> FilePath { FilePath("/proc/self/exe") }

// MARK: threads

private final class ThreadStart {
    let name: String
    let body: () -> Never
    init(name: String, body: @escaping () -> Never) {
        self.name = name
        self.body = body
    }
}

/// Starts a detached pthread that runs `body` forever (the monitor, the exit reaper).
internal func system_startDetachedThread(name: String, _ body: @escaping @Sendable () -> Never) throws(Errno) {
    let context = Unmanaged.passRetained(ThreadStart(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    let r = pthread_create(&thread, nil, { raw in
        guard let raw else { return nil }
        let start = Unmanaged<ThreadStart>.fromOpaque(raw).takeRetainedValue()
        system_setThreadName(start.name)
        start.body()
    }, context)
    if r != 0 {
        Unmanaged<ThreadStart>.fromOpaque(context).release()
        throw Errno(rawValue: r)
    }
    pthread_detach(thread)
}

// MARK: eventfd

internal func system_eventfdSignal(_ fd: Int32) {
    var one: UInt64 = 1
    _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
}

internal func system_eventfdDrain(_ fd: Int32) {
    var value: UInt64 = 0
    _ = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
}

/// `recv(MSG_DONTWAIT)`: a read that never blocks, without making the descriptor non-blocking for
/// another thread that writes to it.
internal func system_receiveNonBlocking(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    try valueOrErrno { Glibc.recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
}

internal func system_flushStdio() { fflush(nil) }

internal func system_getenv(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

internal func system_unsetenv(_ name: String) { unsetenv(name) }

internal func system_writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buffer in
        _ = try? system_writeAll(2, UnsafeRawBufferPointer(buffer))
    }
}

internal func system_atexit(_ handler: @convention(c) () -> Void) { atexit(handler) }

internal func system_socketpairSeqpacket() throws(Errno) -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    _ = try valueOrErrno { Glibc.socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
    return (fds[0], fds[1])
}
#endif
