public import SystemPackage
import Synchronization
import MultiprocessingSystem

/// How a child process is created: Python's start methods.
public enum StartMethod: Sendable, Hashable, CustomStringConvertible {
    /// Re-execute this program (or the configuration's ``ChildProcessConfiguration/executable-property``).
    /// The library takes the new process over before its `main` runs, runs the task named in the
    /// handshake and exits, so no `main` (nor a test runner) runs in the child. Safe in any parent,
    /// with any number of threads. The default.
    case spawn
    /// Ask a fork server for a child. The server is this program re-executed once, on first use; it
    /// stays single-threaded and forks a child per request, so each start costs a `fork`, not a program
    /// load, and is safe whatever threads the parent runs. Like a `.spawn` child, the server is
    /// taken over before its `main` runs. Each configuration's program and environment has a server
    /// of its own. The child is this process's own child, not the server's (the server creates
    /// it with `clone(CLONE_PARENT)`): it is reaped and signalled here, and it keeps running if the
    /// server dies; the next start then starts a new server.
    case forkServer
    /// `fork()` this process and run the task in the copy: the fastest start, and the only one that
    /// can run a plain closure. Forking a process that runs other threads can hang the child (a lock
    /// held by another thread at the fork stays held forever; Dispatch and Swift concurrency refuse to
    /// work after such a fork), so a fork is refused with ``MultiprocessingError/Code/unsupported`` when
    /// this process runs any thread but the caller and the library's own monitor thread.
    case fork

    public var description: String {
        switch self {
        case .spawn: return "spawn"
        case .forkServer: return "forkserver"
        case .fork: return "fork"
        }
    }
}

/// How children are started: the start method, the program they run and what they find in their
/// environment. A value, passed to each child (`ChildProcess(task, configuration: ...)`),
/// as swift-subprocess passes one per run; a child given none uses ``default``.
///
/// ```swift
/// var configuration = ChildProcessConfiguration()
/// configuration.environment["LOG_LEVEL"] = "debug"
/// let child = ChildProcess(Square(x: 7), configuration: configuration)
/// ```
public struct ChildProcessConfiguration: Sendable, Hashable {
    /// How the child is created. `.spawn` unless set.
    public var startMethod: StartMethod
    /// The program a spawned child (and the fork server) runs; nil for this program
    /// (`/proc/self/exe`), the usual choice. Another program must link the same task types and the
    /// `Multiprocessing` library, which takes over a child before its `main` runs.
    public var executable: FilePath?
    /// Variables added to the child's environment (and the fork server's), replacing inherited ones
    /// of the same name, without touching this process's own environment. Prefer this to `setenv`:
    /// changing the environment is not safe while other threads may read it.
    ///
    /// A `.fork` child, a copy of this process, sets these variables with `setenv` in the child,
    /// before its task runs and before it has a second thread; this process's environment stays
    /// as it was. The `SWIFT_MULTIPROCESSING_` prefix is the library's own and cannot be set.
    public var environment: [String: String]

    /// A configuration; every argument defaults to this process's normal choice, not to ``default``.
    /// - Parameters:
    ///   - startMethod: How the child is created.
    ///   - executable: The program a spawned child runs; nil for this program.
    ///   - environment: Variables added to the child's environment.
    public init(startMethod: StartMethod = .spawn, executable: FilePath? = nil, environment: [String: String] = [:]) {
        self.startMethod = startMethod
        self.executable = executable
        self.environment = environment
    }

    private static let processDefault = Mutex(ChildProcessConfiguration())
    /// Variables that library code passes to every child whatever its configuration (the manager's
    /// default key): the process's own inheritable state, as Python passes its `authkey`.
    private static let inherited = Mutex([String: String]())

    /// What a ``ChildProcess`` given no configuration uses: Python's `set_start_method` and
    /// `set_executable` in one value. The program may change it; the library never does. A child
    /// takes its configuration when it is created, so a change affects the children created after it.
    public static var `default`: ChildProcessConfiguration {
        get { processDefault.withLock { $0 } }
        set { processDefault.withLock { $0 = newValue } }
    }

    /// The start method of ``default``.
    public static var defaultStartMethod: StartMethod {
        get { processDefault.withLock { $0.startMethod } }
        set { processDefault.withLock { $0.startMethod = newValue } }
    }

    /// Sets the ``executable-property`` of ``default``; nil goes back to this program.
    public static func setExecutable(_ executable: FilePath?) {
        processDefault.withLock { $0.executable = executable }
    }

    /// The executable that children of ``default`` run.
    public static var executable: FilePath {
        processDefault.withLock { $0.resolvedExecutable }
    }

    /// Sets (or, with nil, removes) a variable of ``default``'s ``environment``.
    /// - Parameters:
    ///   - name: The variable's name.
    ///   - value: Its value, or nil to stop adding it.
    public static func setChildEnvironment(_ name: String, _ value: String?) {
        processDefault.withLock { $0.environment[name] = value }
    }

    /// For library code: a variable every child started from now on receives, whatever its
    /// configuration (a configuration's own ``environment`` entry of the same name wins).
    package static func setInheritedEnvironment(_ name: String, _ value: String?) {
        inherited.withLock { $0[name] = value }
    }

    /// The program to run: ``executable``, or this one.
    internal var resolvedExecutable: FilePath { executable ?? system_currentExecutable() }

    /// The entries ("NAME=value") a spawned child or fork server gets on top of the inherited
    /// environment, in a stable order (the fork server for a configuration is found by them).
    internal var environmentEntries: [String] {
        let merged = Self.inherited.withLock { $0 }.merging(environment) { _, own in own }
        return merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// Refuses what a child cannot be given: an empty name, `=` in a name, NUL in either half, or a
    /// variable of the library's own.
    internal func validate(for name: String) throws {
        for (key, value) in environment {
            if key.isEmpty || key.contains("=") || key.utf8.contains(0) || value.utf8.contains(0) {
                throw MultiprocessingError.misuse("Cannot start \(name): the environment variable name \"\(key)\" of its configuration is empty or contains '=' or NUL (or its value contains NUL).")
            }
            if key.hasPrefix("SWIFT_MULTIPROCESSING_") {
                throw MultiprocessingError.misuse("Cannot start \(name): \(key) is the library's own variable and cannot be set in a configuration's environment.")
            }
        }
        if let executable, executable.isEmpty {
            throw MultiprocessingError.misuse("Cannot start \(name): its configuration's executable is an empty path. Use nil for this program.")
        }
    }
}
