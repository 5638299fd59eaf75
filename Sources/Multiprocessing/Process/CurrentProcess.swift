import Synchronization
import MultiprocessingSystem

/// Facts about the process this code runs in: Python's `os.getpid()`, `os.getppid()` and
/// `multiprocessing.current_process()`.
public enum CurrentProcess {
    struct Identity {
        var name = "MainProcess"
        var daemon = false
        var isChild = false
        var bootstrapped = false
    }
    static let identity = Mutex(Identity())

    /// This process's id (`getpid(2)`).
    public static var pid: Int32 { system_getpid() }

    /// The parent's process id (`getppid(2)`).
    public static var parentPID: Int32 { system_getppid() }

    /// `MainProcess` in a program's first process; in a child, the name its ``ChildProcess`` was given.
    public static var name: String { identity.withLock { $0.name } }

    /// Whether this process is a daemon child, which dies with its parent.
    public static var isDaemon: Bool { identity.withLock { $0.daemon } }

    /// Whether this process was started by a ``ChildProcess``.
    public static var isChild: Bool { identity.withLock { $0.isChild } }
}

/// The children of this process that are still running: Python's `multiprocessing.active_children()`.
///
/// Children that have ended are not listed. A child whose ``ChildProcess`` handle is gone is still
/// listed (as an untyped handle) until it ends.
public func activeChildren() -> [any ProcessHandle] {
    ProcessMonitor.shared.liveRecords.compactMap { record -> (any ProcessHandle)? in
        let (handle, started) = record.state.withLock { ($0.handle, $0.pid != 0) }
        guard started else { return nil }
        return handle ?? record
    }
}

/// The number of CPUs this process may run on (its affinity mask): Python's `os.cpu_count()`,
/// but honest inside a container or under `taskset`.
public func cpuCount() -> Int { system_cpuCount() }
