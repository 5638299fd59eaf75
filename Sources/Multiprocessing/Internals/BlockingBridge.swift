import Synchronization
import SystemPackage
import MultiprocessingSystem

// The one bridge from async code to blocking waits. Every async twin whose wait cannot finish at
// once (a contended lock, an empty queue, a connection with nothing to read, a manager call) runs
// the blocking half here, so Swift's cooperative pool never blocks in the kernel. An uncontended
// call never gets here: each twin tries first on the caller's thread.
//
// The threads. Helper threads are started on demand, reused (an idle helper takes the next wait;
// the most recently idle one first, so the others can time out), and end after `idleTimeout`
// without work. At most `limit` of them exist (64 by default: the bound Dispatch puts on its own
// worker threads; with 256 KiB stacks that is 16 MiB of address space at most).
//
// At the bound a wait is never queued behind other waits: a queued wait can deadlock, when the
// waits that hold every helper can only be satisfied by the one queued (64 tasks wait for an event
// that a 65th sets after it gets a lock). Instead:
// - A *restartable* wait (its body has no effect until it succeeds, so it can be given up and
//   begun again at any point: a lock looking free, an event, a semaphore, a queue's put and get, a
//   thread's or queue's join) waits on its own task, in slices that never block the thread: it
//   looks once (its futex waits throw `wouldBlock` instead of sleeping), sleeps with `Task.sleep`
//   (1 ms, doubling to 10 ms), and tries again for a helper first. It depends on no other wait
//   to make progress; it is only slower (a wake-up is seen up to 10 ms late).
// - Any other wait (a condition's sleep, which holds a ticket; a barrier's, which counts an
//   arrival; a connection's or a manager call, which hold a half-read frame or a request the server
//   is serving) gets a thread of its own beyond the bound that ends with it, as every wait did
//   before the bridge existed. When even that thread cannot be created (a thread limit, no
//   memory), the call throws `.systemCall` naming the operation and the errno: nothing crashes and
//   nothing waits for ever.
// The same holds when a helper cannot be created below the bound (pthread_create failed): a
// restartable wait waits in slices; the others try an extra thread, then throw.
//
// Interrupting. Each wait on a helper has a ``WaitInterrupt``: the task's cancellation handler
// triggers it, and it fires the wait's ``WakeSource`` (the futex word of a futex wait, the eventfd
// a connection polls beside its socket, the socket a manager call reads). Triggering and attaching
// take one lock, so a source is never fired after it was detached (the socket may be closed and its
// number reused by then).

/// What ends one blocking wait early, when its ``WaitInterrupt`` triggers.
package enum WakeSource: Sendable {
    /// A private futex word that `futex_waitv` watches beside the primitive's own word: it is set
    /// to 1 and woken (``CancellationWord``).
    case futex(CancellationWord)
    /// An eventfd that the wait polls beside its descriptor: it becomes readable.
    case eventfd(CInt)
    /// A socket that the wait reads: it is shut down, so the read ends (the server sees the
    /// client leave and gives nothing to a caller that gave up).
    case socket(CInt)

    fileprivate func fire() {
        switch self {
        case .futex(let word): word.cancel()
        case .eventfd(let fd): system_eventfdSignal(fd)
        case .socket(let fd): system_shutdown(fd)
        }
    }
}

/// Lets another thread end one blocking wait: an async twin's cancellation handler, or a
/// connection's `close()`. A wait attaches the ``WakeSource`` it sleeps on; ``trigger()`` fires it
/// (at once if the wait attaches after the trigger), and the waiter sees ``isTriggered``.
package final class WaitInterrupt: Sendable {
    private struct State {
        var triggered = false
        var source: WakeSource?
        /// An eventfd this interrupt owns (``eventDescriptor()``), fired beside `source`.
        var eventFD: CInt = -1
    }
    private let state = Mutex(State())

    package init() {}

    deinit {
        state.withLock { if $0.eventFD >= 0 { system_close($0.eventFD) } }
    }

    package var isTriggered: Bool { state.withLock { $0.triggered } }

    /// Attaches what ``trigger()`` fires (nil detaches). Fires it now if the interrupt already
    /// triggered. After a detach returns, the old source is never fired again.
    package func setSource(_ source: WakeSource?) {
        state.withLock { state in
            state.source = source
            if state.triggered { source?.fire() }
        }
    }

    /// An eventfd owned by this interrupt that becomes readable when it triggers (created on
    /// first use), for a wait that polls descriptors.
    internal func eventDescriptor() throws(Errno) -> CInt {
        let result: Result<CInt, Errno> = state.withLock { state in
            if state.eventFD < 0 {
                do throws(Errno) {
                    state.eventFD = try system_eventfd(initial: state.triggered ? 1 : 0)
                } catch {
                    return .failure(error)
                }
            }
            return .success(state.eventFD)
        }
        return try result.get()
    }

    /// Ends the wait: fires its source (once; later triggers do nothing).
    package func trigger() {
        state.withLock { state in
            if state.triggered { return }
            state.triggered = true
            if state.eventFD >= 0 { system_eventfdSignal(state.eventFD) }
            state.source?.fire()
        }
    }
}

/// The pool of helper threads that run async twins' blocking waits (see the top of this file).
package final class BlockingBridge: Sendable {
    /// The bridge every async twin uses.
    package static let shared = BlockingBridge(limit: 64, idleTimeout: .seconds(10))

    /// What the bridge holds now (tests and diagnostics).
    package struct Statistics: Sendable, Equatable {
        /// Helper threads alive (busy or idle), at most ``limit``.
        package var threads: Int
        /// Helpers running a wait.
        package var busy: Int
        /// Threads beyond the bound running a wait that cannot wait in slices.
        package var extra: Int
        /// Helpers started since the process began (reuse keeps it low).
        package var started: Int
        /// Extra threads started since the process began.
        package var extraStarted: Int
        /// Times a helper (or an extra thread) could not be created.
        package var startFailures: Int
        /// Looks that restartable waits took on their own task, for want of a helper.
        package var slices: Int
        /// The bound and the idle timeout.
        package var limit: Int
        package var idleTimeout: Duration
    }

    /// One helper thread. `job` is guarded by the bridge's state lock; `word` is a private futex
    /// word (1: a job was handed over) the idle helper sleeps on.
    private final class Helper: @unchecked Sendable {
        let word: UnsafeMutablePointer<UInt32>
        var job: (@Sendable () -> Void)?
        init(job: (@Sendable () -> Void)?) {
            word = .allocate(capacity: 1)
            word.initialize(to: 0)
            self.job = job
        }
        deinit { word.deallocate() }
    }

    private struct State {
        var limit: Int
        var idleTimeout: Duration
        var threads = 0
        var busy = 0
        var extra = 0
        var started = 0
        var extraStarted = 0
        var startFailures = 0
        var slices = 0
        /// Idle helpers, the most recently idle last (taken first).
        var idle: [Helper] = []
    }
    /// The state under a plain pthread mutex, not `Mutex`: a helper going idle and a task handing
    /// the next wait over take it at the same moment, and `Mutex` on Linux (a priority-inheritance
    /// futex) would put one of them to sleep in the kernel each time (see `PlainMutex`).
    private final class Guarded: @unchecked Sendable {
        // @unchecked: `value` is only touched under `mutex`.
        private let mutex = ManagerPlatform.PlainMutex()
        private var value: State
        init(_ value: State) { self.value = value }
        func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
            mutex.lock()
            defer { mutex.unlock() }
            return try body(&value)
        }
    }
    private let state: Guarded

    /// The longest pause of a restartable wait between two looks when it has no helper.
    private static let longestSlicePause = Duration.milliseconds(10)
    private static let helperStackSize = 256 * 1024

    package init(limit: Int, idleTimeout: Duration) {
        state = Guarded(State(limit: max(0, limit), idleTimeout: idleTimeout))
    }

    package var statistics: Statistics {
        state.withLock {
            Statistics(threads: $0.threads, busy: $0.busy, extra: $0.extra, started: $0.started,
                       extraStarted: $0.extraStarted, startFailures: $0.startFailures, slices: $0.slices, limit: $0.limit, idleTimeout: $0.idleTimeout)
        }
    }

    /// Changes the bound and the idle timeout (tests; a program that needs more concurrent
    /// blocking waits). Helpers above a lowered bound end when they are next idle too long.
    package func configure(limit: Int? = nil, idleTimeout: Duration? = nil) {
        state.withLock { state in
            if let limit { state.limit = max(0, limit) }
            if let idleTimeout { state.idleTimeout = idleTimeout }
        }
    }

    // MARK: the two ways in

    /// Runs a futex wait off the pool. `body` gets the word that cancels it.
    ///
    /// - Parameters:
    ///   - operation: names the call in errors.
    ///   - cancellable: whether the task's cancellation ends the wait.
    ///   - restartable: whether `body` can be given up and begun again at any point (it changes
    ///     nothing until it succeeds): then, with no helper to be had, it waits in slices on the
    ///     caller's task (its futex waits throw `wouldBlock` instead of sleeping).
    ///   - body: the blocking wait.
    package func wait<R: Sendable>(_ operation: StaticString, cancellable: Bool, restartable: Bool,
                                   _ body: @escaping @Sendable (CancellationWord) throws -> R) async throws -> R {
        var pause = Duration.milliseconds(1)
        while true {
            let word = CancellationWord()
            let interrupt = WaitInterrupt()
            interrupt.setSource(.futex(word))
            if let result = try await onHelper(interrupt, cancellable: cancellable, extraThread: !restartable,
                                                 "\(operation)", { try body(word) }) {
                return result
            }
            // No helper: one look on this task, which never sleeps in the kernel.
            do {
                return try body(CancellationWord.slice)
            } catch let error as MultiprocessingError where error.code == .wouldBlock {}
            state.withLock { $0.slices += 1 }
            if cancellable {
                do { try await Task.sleep(for: pause) } catch {
                    throw MultiprocessingError(.cancelled, "\(operation) was cancelled: the waiting task was cancelled.")
                }
            } else {
                // A cancelled task's Task.sleep returns at once; this sleep ignores cancellation.
                let length = pause
                await Task.detached { try? await Task.sleep(for: length) }.value
            }
            pause = min(pause * 2, BlockingBridge.longestSlicePause)
        }
    }

    /// Runs any other blocking call off the pool (a connection's, a manager call): on a helper, or
    /// on a thread of its own when every helper is busy. `body` gets the interrupt that the task's
    /// cancellation triggers.
    package func call<R: Sendable>(_ operation: String,
                                   _ body: @escaping @Sendable (WaitInterrupt) throws -> R) async throws -> R {
        let interrupt = WaitInterrupt()
        guard let result = try await onHelper(interrupt, cancellable: true, extraThread: true, operation, { try body(interrupt) }) else {
            // onHelper returns nil only without extraThread.
            throw MultiprocessingError(.systemCall, "\(operation): no thread could run the call.")
        }
        return result
    }

    // MARK: threads

    /// Runs `body` on a helper; nil when there is none to be had and `extraThread` is false.
    private func onHelper<R: Sendable>(_ interrupt: WaitInterrupt, cancellable: Bool, extraThread: Bool,
                                       _ operation: String, _ body: @escaping @Sendable () throws -> R) async throws -> R? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R?, any Error>) in
                let job: @Sendable () -> Void = { continuation.resume(with: Result { try body() }) }
                if let failure = place(job) {
                    guard extraThread else {
                        continuation.resume(returning: nil)
                        return
                    }
                    do throws(Errno) {
                        try startExtra(job)
                    } catch {
                        let reason = failure.map { "no helper thread could be started (\($0))" }
                            ?? "all \(statistics.limit) helper threads are busy"
                        continuation.resume(throwing: MultiprocessingError.system(
                            "\(operation) needs a thread to wait on (it cannot wait in slices on its task), but \(reason), and starting a thread of its own (pthread_create)", error))
                    }
                }
            }
        } onCancel: {
            if cancellable { interrupt.trigger() }
        }
    }

    /// Hands `job` to an idle helper or a new one. Returns nil when placed; otherwise `.some(nil)`
    /// at the bound, or `.some(errno)` when pthread_create failed.
    private func place(_ job: @escaping @Sendable () -> Void) -> Errno?? {
        enum Placement { case handed(Helper), start, atBound }
        let placement = state.withLock { state -> Placement in
            // A lowered bound holds at once: helpers above it get no more work and time out.
            if state.threads <= state.limit, let helper = state.idle.popLast() {
                helper.job = job
                // Under the lock, as the helper's reset to 0 is: a late store could leave an
                // idle helper's word at 1, and its futex wait would then never sleep.
                system_atomicStore(helper.word, 1)
                state.busy += 1
                return .handed(helper)
            }
            guard state.threads < state.limit else { return .atBound }
            state.threads += 1
            state.busy += 1
            state.started += 1
            return .start
        }
        switch placement {
        case .handed(let helper):
            system_futexWake(helper.word, count: 1, shared: false)
            return nil
        case .start:
            let helper = Helper(job: job)
            do throws(Errno) {
                try system_startThread(name: "mp-wait", stackSize: BlockingBridge.helperStackSize) { [self] in
                    self.serve(helper)
                }
                return nil
            } catch {
                state.withLock { state in
                    state.threads -= 1
                    state.busy -= 1
                    state.started -= 1
                    state.startFailures += 1
                }
                return .some(error)
            }
        case .atBound:
            return .some(nil)
        }
    }

    /// A thread beyond the bound for one wait that cannot wait in slices; it ends with the wait.
    private func startExtra(_ job: @escaping @Sendable () -> Void) throws(Errno) {
        state.withLock {
            $0.extra += 1
            $0.extraStarted += 1
        }
        do throws(Errno) {
            try system_startThread(name: "mp-wait-extra", stackSize: BlockingBridge.helperStackSize) { [self] in
                job()
                state.withLock { $0.extra -= 1 }
            }
        } catch {
            state.withLock { state in
                state.extra -= 1
                state.extraStarted -= 1
                state.startFailures += 1
            }
            throw error
        }
    }

    /// A helper's life: run the job, wait idle for the next, end after the idle timeout.
    private func serve(_ helper: Helper) {
        while true {
            let job = state.withLock { _ -> (@Sendable () -> Void)? in
                defer { helper.job = nil }
                return helper.job
            }
            job?()
            let idleTimeout = state.withLock { state -> Duration in
                state.busy -= 1
                system_atomicStore(helper.word, 0)
                state.idle.append(helper)
                return state.idleTimeout
            }
            let giveUp = (try? Deadline(timeout: idleTimeout, "the blocking bridge's idle timeout")) ?? .now
            while true {
                if let end = giveUp.nanoseconds {
                    let left = end &- system_clockMonotonicNanoseconds()
                    if left > 0 {
                        _ = try? system_futexWait(helper.word, expected: 0, timeoutNanoseconds: left, shared: false)
                    }
                } else {
                    _ = try? system_futexWait(helper.word, expected: 0, timeoutNanoseconds: nil, shared: false)
                }
                let next = state.withLock { state -> Bool? in
                    if helper.job != nil { return true }
                    guard giveUp.hasPassed else { return nil }
                    if let index = state.idle.firstIndex(where: { $0 === helper }) { state.idle.remove(at: index) }
                    state.threads -= 1
                    return false
                }
                guard let next else { continue }
                if next { break }
                return
            }
        }
    }
}
