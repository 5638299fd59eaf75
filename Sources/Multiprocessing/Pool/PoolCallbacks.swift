import Synchronization
import SystemPackage
import MultiprocessingSystem

/// Where a pool's `onDone` callbacks run: threads of their own, never the thread that completed
/// the task (the process pool's driver, under its `step` lock, or a caller reading its own answer;
/// a thread pool's worker). So a callback may do anything a caller may: `get()` or `value` of
/// any handle, `submit`, `close`, `join`, `terminate`, even block.
///
/// Callbacks run one at a time, in the order their tasks completed, on a lead thread. A second
/// thread stands by while one runs and there is more queued: when the running callback has taken
/// longer than `takeOverAfter`, the standby becomes the lead and runs the rest, so one callback
/// that blocks (on another handle, or forever) holds up nobody else's. The thread it was on leaves
/// when that callback returns. Idle threads end after 10 s.
///
/// `join()` waits until every callback queued has run (as Python's `join` waits for its result
/// handler), except the one calling it.
package final class PoolCallbacks: @unchecked Sendable {
    // @unchecked: every `var` is touched only with `monitor` held.
    private let monitor = ThreadMonitor()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    /// Callbacks queued or running.
    private var pending = 0
    /// Threads waiting for work (or standing by), and threads being started.
    private var available = 0
    /// A lead is inside a callback since `leadSince`; `leadTurn` names the lead's turn.
    private var leadBusy = false
    private var leadSince: Int64 = 0
    private var leadTurn: UInt64 = 0
    /// The threads inside a callback (by tid), for `join()` from a callback.
    private var inCallback: [Int32: Int] = [:]
    private var drainWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter: UInt64 = 0
    private let takeOverAfter: Int64
    private let idleNanoseconds: Int64 = 10_000_000_000

    package init(takeOverAfterNanoseconds: Int64 = 100_000_000) {
        takeOverAfter = takeOverAfterNanoseconds
    }

    /// Queues `callbacks`, to run with `result` in order.
    func run<Output>(_ callbacks: [@Sendable (Result<Output, PoolTaskError>) -> Void], with result: Result<Output, PoolTaskError>)
        where Output: Sendable {
        guard !callbacks.isEmpty else { return }
        let start = monitor.withLock { () -> Bool in
            for callback in callbacks { queue.append({ callback(result) }) }
            pending += callbacks.count
            monitor.broadcast()
            guard available == 0 else { return false }
            available += 1
            return true
        }
        if start { startThread() }
    }

    private func startThread() {
        do throws(Errno) {
            _ = try system_startThread(name: "mp-pool-callbacks") { [self] in serve() }
        } catch {
            // No thread: run the queue here rather than never (the completing thread, as before).
            monitor.withLock { available -= 1 }
            while let next = takeWithoutThread() {
                next()
                finishedWithoutThread()
            }
        }
    }

    private func takeWithoutThread() -> (@Sendable () -> Void)? {
        monitor.withLock { () -> (@Sendable () -> Void)? in
            guard head < queue.count else { return nil }
            return take()
        }
    }

    /// The next callback (the monitor held).
    private func take() -> @Sendable () -> Void {
        let next = queue[head]
        head += 1
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        }
        return next
    }

    private func finishedWithoutThread() {
        monitor.withLock {
            pending -= 1
            if pending == 0 {
                for waiter in drainWaiters.values { waiter.resume() }
                drainWaiters = [:]
            }
            monitor.broadcast()
        }
    }

    private func serve() {
        let me = system_gettid()
        monitor.lock()
        // `available` counted this thread while it started.
        var idleSince = system_clockMonotonicNanoseconds()
        while true {
            let now = system_clockMonotonicNanoseconds()
            if head == queue.count {
                if now - idleSince >= idleNanoseconds { break }
                monitor.wait(nanoseconds: idleNanoseconds - (now - idleSince))
                continue
            }
            if leadBusy {
                let running = now - leadSince
                if running < takeOverAfter {
                    monitor.wait(nanoseconds: takeOverAfter - running)
                    continue
                }
                // The lead has been in one callback too long: this thread takes the rest.
            }
            let next = take()
            leadTurn &+= 1
            let turn = leadTurn
            leadBusy = true
            leadSince = now
            available -= 1
            inCallback[me, default: 0] += 1
            // Someone must stand by while this callback runs, in case it blocks.
            let standby = available == 0 && head < queue.count
            if standby { available += 1 }
            monitor.unlock()
            if standby { startThread() }
            next()
            monitor.lock()
            inCallback[me, default: 1] -= 1
            if inCallback[me] == 0 { inCallback[me] = nil }
            pending -= 1
            let stillLead = turn == leadTurn
            if stillLead { leadBusy = false }
            if pending == 0 {
                for waiter in drainWaiters.values { waiter.resume() }
                drainWaiters = [:]
            }
            monitor.broadcast()
            // Replaced while its callback ran: another thread leads now.
            guard stillLead else {
                monitor.unlock()
                return
            }
            available += 1
            idleSince = system_clockMonotonicNanoseconds()
        }
        available -= 1
        monitor.unlock()
    }

    /// Callbacks the calling thread is inside (0 or 1: a callback calling `join()`).
    private func ownCount() -> Int {
        inCallback[system_gettid()] ?? 0
    }

    /// Waits until every queued callback has run (but the caller's own, when a callback calls it).
    package func drain() {
        monitor.withLock {
            let own = ownCount()
            while pending > own { monitor.wait() }
        }
    }

    /// The async twin of ``drain()``: waits without a thread; returns early when the task is cancelled.
    package func drain() async {
        let key = monitor.withLock { () -> UInt64? in
            guard pending > 0 else { return nil }
            nextWaiter &+= 1
            return nextWaiter
        }
        guard let key else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = monitor.withLock { () -> Bool in
                    if pending == 0 || Task.isCancelled { return true }
                    drainWaiters[key] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = monitor.withLock { drainWaiters.removeValue(forKey: key) }
            waiter?.resume()
        }
    }
}
