import Synchronization
import SystemPackage
import MultiprocessingSystem

// SIGINT while a pool call waits, and a map that fails at its first failed task. Design and
// guarantees: docs/pool.md ("Interrupts" and "Errors are values").

/// Turns SIGINT into the end of the pool calls that wait, and only while they wait.
///
/// A library must not take a process's SIGINT for ever. So the C handler (`shim_pool_linux.c`) is
/// installed when the first pool call starts to wait and the previous disposition is put back when
/// the last one returns; a handler the program had installed is called after the pool's (chained);
/// a SIGINT that is ignored stays ignored. The handler only adds to an eventfd. A watcher thread
/// (started on first use, it lives as long as the process) reads it and calls each waiting call's
/// action there, where any code may run: the action stops that call's pool. The watcher prints one
/// line, however many workers there are.
final class PoolInterrupts: Sendable {
    static let shared = PoolInterrupts()

    private struct State {
        var next: UInt64 = 0
        var actions: [UInt64: @Sendable () -> Bool] = [:]
        var fd: Int32 = -1
        var tried = false
    }
    private let state = Mutex(State())

    /// Registers `action` (called on the watcher thread when SIGINT arrives; it returns whether it
    /// took the interrupt) and installs the handler. Returns nil when SIGINT is ignored in this
    /// process or the watcher could not start: the call then waits as it would without SIGINT handling.
    func register(_ action: @escaping @Sendable () -> Bool) -> UInt64? {
        let entry = state.withLock { state -> (UInt64, Int32)? in
            if !state.tried {
                state.tried = true
                state.fd = Self.startWatcher()
            }
            guard state.fd >= 0 else { return nil }
            state.next += 1
            state.actions[state.next] = action
            return (state.next, state.fd)
        }
        guard let (token, fd) = entry else { return nil }
        if system_poolInterruptAcquire(fd) { return token }
        _ = state.withLock { $0.actions.removeValue(forKey: token) }
        return nil
    }

    /// Puts the previous SIGINT disposition back (when this was the last waiting call), then forgets the action.
    func unregister(_ token: UInt64?) {
        guard let token else { return }
        system_poolInterruptRelease()
        _ = state.withLock { $0.actions.removeValue(forKey: token) }
    }

    /// The eventfd the handler writes to, read by a thread of its own; -1 if either cannot be made.
    private static func startWatcher() -> Int32 {
        let fd: Int32
        do throws(Errno) {
            fd = try system_eventfd()
        } catch {
            return -1
        }
        do throws(Errno) {
            _ = try system_startThread(name: "mp-pool-sigint", stackSize: 256 << 10) { PoolInterrupts.shared.watch(fd) }
        } catch {
            system_close(fd)
            return -1
        }
        return fd
    }

    private func watch(_ fd: Int32) {
        var count: UInt64 = 0
        while true {
            let n: Int
            do throws(Errno) {
                n = try withUnsafeMutableBytes(of: &count) { raw throws(Errno) in try system_read(fd, raw) }
            } catch {
                return
            }
            guard n == 8 else { continue }
            let actions = state.withLock { Array($0.actions.values) }
            var taken = 0
            for action in actions where action() { taken += 1 }
            if taken > 0 {
                system_writeStderr("multiprocessing: interrupted (SIGINT): the process pool stops its workers, and the waiting call throws CancellationError.\n")
            } else {
                // No call waits any more (it came as the last one returned), or the pool already stops (a
                // second Ctrl-C): it goes where it would have gone, so a default SIGINT still ends the process.
                _ = system_poolInterruptPassOn()
            }
        }
    }
}

/// What a SIGINT stops: a pool, and the completion that says it has stopped (every worker reaped).
struct PoolInterruptTarget: Sendable {
    /// Stops the pool at once (as `terminate()` does, without waiting).
    let stop: @Sendable () -> Void
    let stopped: PoolCompletion

    /// Runs the blocking `wait`; a SIGINT meanwhile (while `isDone` is false) stops the pool, and
    /// then this waits until every worker is reaped and throws `CancellationError`.
    func during<R>(_ isDone: @escaping @Sendable () -> Bool, _ wait: () -> R) throws -> R {
        let claim = PoolInterruptClaim()
        let token = PoolInterrupts.shared.register { [stop] in
            guard !isDone(), claim.take() else { return false }
            stop()
            return true
        }
        let result = wait()
        PoolInterrupts.shared.unregister(token)
        if claim.isTaken {
            stopped.wait()
            throw CancellationError()
        }
        return result
    }

    /// The async twin of `during(_:_:)`.
    func during<R>(_ isDone: @escaping @Sendable () -> Bool, _ wait: () async -> R) async throws -> R {
        let claim = PoolInterruptClaim()
        let token = PoolInterrupts.shared.register { [stop] in
            guard !isDone(), claim.take() else { return false }
            stop()
            return true
        }
        let result = await wait()
        PoolInterrupts.shared.unregister(token)
        if claim.isTaken {
            // Until every worker is reaped, even if the calling task is cancelled too.
            let stopped = stopped
            await Task.detached { _ = await stopped.wait() }.value
            throw CancellationError()
        }
        return result
    }
}

/// Whether a SIGINT was taken by one waiting call (once).
final class PoolInterruptClaim: Sendable {
    private let flag = Atomic<Bool>(false)
    func take() -> Bool { flag.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged }
    var isTaken: Bool { flag.load(ordering: .acquiring) }
}

extension ProcessPool {
    /// What a SIGINT during one of this pool's calls stops.
    var interruptTarget: PoolInterruptTarget {
        PoolInterruptTarget(stop: { [weak self] in self?.stopForInterrupt() }, stopped: driver.stopped)
    }

    /// Closes the pool and has its driver terminate it (fail what is pending, SIGTERM, SIGKILL after
    /// the grace period, reap), without waiting on the watcher thread.
    private func stopForInterrupt() {
        state.withLock { $0.closed = true }
        if !driver.stopped.isDone { driver.send(.terminate) }
    }
}

/// The sink of a `map`: passes answers to the map's own sink until the first failure, which ends
/// the wait at once (`map` then cancels the rest of its tasks and throws that failure).
final class PoolFailFastSink<Output: Codable & Sendable>: PoolJobSink, @unchecked Sendable {
    // @unchecked: `failure` is written under the driver's lock only, once, before `completion`, and read
    // by the caller only after it; after a failure nothing more reaches `inner`.
    let inner: PoolMapSink<Output>
    let completion = PoolCompletion()
    private(set) var failure: PoolTaskError?
    /// Called once, at the first failure, under the driver's lock: cancels the rest of the map
    /// there and then, not when the caller next runs (its task may wait long for a thread). Set
    /// before the job is sent.
    var onFailure: (@Sendable () -> Void)?

    init(_ inner: PoolMapSink<Output>) {
        self.inner = inner
        if inner.completion.isDone { completion.complete() }
    }

    func deliver(start: Int, count: Int, body: UnsafeRawBufferPointer, pid: Int32) {
        guard failure == nil else { return }
        // An answer lists its failures' length at byte 16 (PoolReply): only then is it decoded here.
        if body.count >= 20, body.loadLE(UInt32.self, at: 16) != 0, let reply = try? PoolReply(body), let first = reply.failures.first {
            failure = PoolReply.error(first, start: start, pid: pid)
            failed()
            return
        }
        inner.deliver(start: start, count: count, body: body, pid: pid)
        if inner.completion.isDone { completion.complete() }
    }

    func fail(start: Int, count: Int, error: PoolTaskError) {
        guard failure == nil else { return }
        failure = error
        failed()
    }

    private func failed() {
        let action = onFailure
        onFailure = nil
        action?()
        completion.complete()
    }
}
