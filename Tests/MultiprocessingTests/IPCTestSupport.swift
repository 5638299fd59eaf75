import Glibc
import Testing
@testable import Multiprocessing

/// Forks a child that runs `body` and `_exit`s with its result. The test process runs threads, so
/// the child may only make raw system calls (no allocation, no locks): everything it needs is
/// prepared before the fork.
func ipcForkChild(_ body: () -> CInt) throws -> pid_t {
    let pid = try system_fork()
    if pid == 0 { system__exit(body()) }
    return pid
}

/// Waits for a forked child and returns its exit status (or 128 + signal).
func ipcWaitChild(_ pid: pid_t) throws -> CInt {
    guard let status = try system_waitpid(pid, block: true) else { return -1 }
    if cmp_wifexited(status) { return cmp_wexitstatus(status) }
    return 128 + cmp_wtermsig(status)
}

/// Runs `body` on a new POSIX thread and returns a handle to join it.
final class IPCTestThread: Sendable {
    private let done = Mutex<Bool>(false)
    private let finished: Connection
    private let signal: Connection

    init(_ body: @escaping @Sendable () -> Void) throws {
        (finished, signal) = try Connection.pipe(duplex: false)
        let signal = self.signal
        try spawnHelperThread(name: "ipc-test") {
            body()
            try? signal.sendBytes([1])
        }
    }

    /// Waits for the thread to finish.
    func join(timeout: Duration = .seconds(30)) throws {
        _ = try finished.receiveBytes(timeout: timeout)
    }
}

import Synchronization
import CMultiprocessing
import MultiprocessingSystem

/// Expects `body` to throw a `MultiprocessingError` with `code`, and returns it.
@discardableResult
func ipcExpectCode<T>(_ code: MultiprocessingError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) -> MultiprocessingError? {
    do {
        _ = try body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as MultiprocessingError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Waits (yielding the CPU) until `condition` holds; fails after 10 s.
func ipcEventually(_ condition: () -> Bool) throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        if ContinuousClock.now > deadline {
            throw MultiprocessingError(.timedOut, "a condition the test waits for never held")
        }
        sched_yield()
    }
}
