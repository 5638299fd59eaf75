public import SystemPackage
import Synchronization

/// How a child process is created: Python's start methods.
public enum StartMethod: Sendable, Hashable, CustomStringConvertible {
    /// Re-execute this program (or the one set with ``ChildProcessConfiguration/setExecutable(_:)``).
    /// Its `main` calls ``bootstrap()`` first, which runs the task named in the handshake and exits.
    /// Safe in any parent, with any number of threads. The default.
    case spawn
    /// Ask a fork server for a child. The server is this program re-executed once, on first use; it
    /// stays single-threaded and forks a child per request, so each start costs a `fork`, not a program
    /// load, and is safe whatever threads the parent runs. Like `.spawn`, it needs ``bootstrap()``
    /// first in `main`. The child is this process's own child, not the server's (the server creates
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

/// Process-wide settings for starting children: Python's `set_start_method` and `set_executable`.
public enum ChildProcessConfiguration {
    private struct Settings {
        var startMethod: StartMethod = .spawn
        var executable: FilePath?
        var childEnvironment: [String: String] = [:]
    }
    private static let settings = Mutex(Settings())

    /// The start method a ``ChildProcess`` uses when none is given. `.spawn` unless changed.
    public static var defaultStartMethod: StartMethod {
        get { settings.withLock { $0.startMethod } }
        set { settings.withLock { $0.startMethod = newValue } }
    }

    /// Makes spawned children (and the fork server) run `executable` instead of this program.
    ///
    /// The other executable must link the same task types and call ``bootstrap()`` first in its
    /// `main`. Tests use it to run children in a small helper binary; pass nil to go back to this
    /// program (`/proc/self/exe`).
    public static func setExecutable(_ executable: FilePath?) {
        settings.withLock { $0.executable = executable }
    }

    /// The executable spawned children run.
    public static var executable: FilePath {
        settings.withLock { $0.executable } ?? system_currentExecutable()
    }

    /// Sets an environment variable for every child started from now on (spawned children and the
    /// fork server), or removes it with nil, without touching this process's own environment.
    ///
    /// Prefer this to `setenv`: changing the environment is not safe while other threads may read
    /// it, as the thread that spawns children does.
    /// - Parameters:
    ///   - name: The variable's name.
    ///   - value: Its value, or nil to stop adding it.
    public static func setChildEnvironment(_ name: String, _ value: String?) {
        settings.withLock { $0.childEnvironment[name] = value }
    }

    /// The entries ("NAME=value") that ``setChildEnvironment(_:_:)`` added.
    internal static var childEnvironmentEntries: [String] {
        settings.withLock { $0.childEnvironment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } }
    }

    internal static var usesOwnExecutable: Bool {
        settings.withLock { $0.executable == nil }
    }
}
