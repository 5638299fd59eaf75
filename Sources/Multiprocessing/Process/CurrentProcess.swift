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
        /// Made (or read from the environment) at first use, or received from the parent.
        var authKey: AuthKey?
        /// The process that started this one: its name and pid (nil in a program's first process).
        var parent: (name: String, pid: Int32)?
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

    /// This process's secret key: Python's `current_process().authkey`.
    ///
    /// In a program's first process it is read from ``AuthKey/environmentVariable`` (hexadecimal)
    /// when that is set, else made at first use from 32 random bytes. A child receives its
    /// parent's key (the one set when the child started) with its task, whatever its start method,
    /// and a forked child has a copy of it. Managers, listeners and clients use it unless told
    /// otherwise, so a parent and its children authenticate to each other with no key passed
    /// around. Setting it changes the key of this process and of the children it starts afterwards.
    public static var authKey: AuthKey {
        get {
            identity.withLock { identity in
                if let key = identity.authKey { return key }
                let key: AuthKey
                if let hex = system_getenv(AuthKey.environmentVariable), let bytes = AuthKey.decodeHex(hex), !bytes.isEmpty {
                    key = AuthKey(bytes)
                } else {
                    key = AuthKey.random()
                }
                identity.authKey = key
                return key
            }
        }
        set { identity.withLock { $0.authKey = newValue } }
    }
}

/// What a process is, as Python's `current_process()` and `parent_process()` describe it: its
/// name, its pid, whether it is a daemon, and whether it is alive.
public struct ProcessIdentity: Sendable, Hashable, CustomStringConvertible {
    fileprivate enum Kind: Hashable, Sendable {
        case current
        case parent
    }
    private let kind: Kind

    /// `MainProcess` in a program's first process; in a child, the name its ``ChildProcess`` was given.
    public let name: String
    /// The process id.
    public let pid: Int32
    /// Whether the process is a daemon child, which dies with its parent.
    public let daemon: Bool

    /// Whether the process is still running. The current process always is; the parent is while
    /// this process is still its child (a dead parent's children are adopted by another process,
    /// so `getppid(2)` changes, and a reused pid cannot fool it).
    public var isAlive: Bool {
        switch kind {
        case .current: return true
        case .parent: return system_getppid() == pid
        }
    }

    public var description: String {
        "ProcessIdentity(name: \(name), pid: \(pid)\(daemon ? ", daemon" : ""))"
    }

    fileprivate init(kind: Kind, name: String, pid: Int32, daemon: Bool) {
        self.kind = kind
        self.name = name
        self.pid = pid
        self.daemon = daemon
    }
}

/// The process this code runs in: Python's `multiprocessing.current_process()`.
///
/// - Returns: its name (`MainProcess`, or the child's name), pid and daemon flag. Its key is
///   ``CurrentProcess/authKey``.
public func currentProcess() -> ProcessIdentity {
    let (name, daemon) = CurrentProcess.identity.withLock { ($0.name, $0.daemon) }
    return ProcessIdentity(kind: .current, name: name, pid: system_getpid(), daemon: daemon)
}

/// The process that started this one: Python's `multiprocessing.parent_process()`.
///
/// - Returns: nil in a program's first process (and in a process this library did not start).
///   In a child, the process whose ``ChildProcess`` started it, whatever the start method: under
///   the fork server too, the parent is the process that asked for the child, not the server.
///   A parent is never a daemon (a daemon may not have children).
public func parentProcess() -> ProcessIdentity? {
    guard let parent = CurrentProcess.identity.withLock({ $0.parent }) else { return nil }
    return ProcessIdentity(kind: .parent, name: parent.name, pid: parent.pid, daemon: false)
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
