import CMultiprocessing
import Synchronization
import MultiprocessingSystem

/// A private futex word that a cancellation sets to 1 and wakes.
///
/// Every blocking wait in Sync/ and Threads/ waits with `futex_waitv` on two words at once: the
/// primitive's word, and the cancellation word of whoever waits (the waiting ``OSThread``, or the
/// Swift task behind an async twin). Cancelling sets this word and wakes it, so the waiter returns at
/// once, with no polling and no lost wake-up: a cancel that lands before the wait starts makes the
/// kernel refuse to sleep, because the word no longer holds 0.
package final class CancellationWord: @unchecked Sendable {
    internal let word: UnsafeMutablePointer<UInt32>
    /// A word for a look that must not sleep: ``WaitContext/wait(on:expected:shared:)`` throws
    /// `wouldBlock` instead (a restartable wait on the blocking bridge with no helper thread).
    internal let neverSleeps: Bool

    internal init() {
        word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        word.initialize(to: 0)
        neverSleeps = false
    }

    private init(neverSleeps: Bool) {
        word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        word.initialize(to: 0)
        self.neverSleeps = neverSleeps
    }

    deinit { word.deallocate() }

    internal var isCancelled: Bool { cmp_atomic_load32(word) != 0 }

    internal func cancel() {
        cmp_atomic_store32(word, 1)
        system_futexWake(word, count: Int32.max, shared: false)
    }

    /// A word nobody cancels, for waits that must not be interrupted (exit handlers, start-up).
    internal static let never = CancellationWord()

    /// The word of one look of a restartable wait that waits in slices (see ``BlockingBridge``).
    internal static let slice = CancellationWord(neverSleeps: true)
}

internal extension MultiprocessingError.Code {
    /// A wait on ``CancellationWord/slice`` would have slept. Never leaves the module: the
    /// blocking bridge catches it.
    static let wouldBlock = MultiprocessingError.Code("wouldBlock")
}

/// How long one blocking call may wait, and what cancels it.
internal struct WaitContext: Sendable {
    internal let deadline: Deadline
    internal let timeout: Duration?
    internal let cancellation: CancellationWord
    /// Names the call in error messages, e.g. "Lock.acquire".
    internal let operation: StaticString

    /// - Throws: `.misuse` when `timeout` is negative (see ``Deadline``).
    internal init(timeout: Duration?, cancellation: CancellationWord, operation: StaticString) throws(MultiprocessingError) {
        self.deadline = try Deadline(timeout: timeout, operation)
        self.timeout = timeout
        self.cancellation = cancellation
        self.operation = operation
    }

    /// A context that shares a deadline computed earlier (an async twin that waits several times).
    internal init(deadline: Deadline, timeout: Duration?, cancellation: CancellationWord, operation: StaticString) {
        self.deadline = deadline
        self.timeout = timeout
        self.cancellation = cancellation
        self.operation = operation
    }

    /// A wait on the calling thread, cancelled by ``OSThread/cancel()`` of the current thread.
    /// - Throws: `.misuse` when `timeout` is negative.
    internal static func current(timeout: Duration?, _ operation: StaticString) throws(MultiprocessingError) -> WaitContext {
        try WaitContext(timeout: timeout, cancellation: OSThread.currentCancellation, operation: operation)
    }

    /// A wait nobody can cancel.
    internal static func uncancellable(_ operation: StaticString) -> WaitContext {
        WaitContext(deadline: .never, timeout: nil, cancellation: .never, operation: operation)
    }

    internal func timedOutError() -> MultiprocessingError {
        let limit = timeout.map { " after \($0)" } ?? ""
        return MultiprocessingError(.timedOut, "\(operation) timed out\(limit).")
    }

    internal func cancelledError() -> MultiprocessingError {
        MultiprocessingError(.cancelled, "\(operation) was cancelled: the waiting thread or task was cancelled.")
    }

    /// Throws when the wait is cancelled or past its deadline.
    @inline(__always)
    internal func check() throws(MultiprocessingError) {
        if cancellation.isCancelled { throw cancelledError() }
        if deadline.hasPassed { throw timedOutError() }
    }

    /// Sleeps while `word` holds `expected`. Returns when woken, when the value differs, or spuriously:
    /// the caller looks at its state again. Throws `.cancelled` or `.timedOut`.
    internal func wait(on word: SharedWord, expected: UInt32, shared: Bool = true) throws(MultiprocessingError) {
        try check()
        if cancellation.neverSleeps {
            throw MultiprocessingError(.wouldBlock, "\(operation) would wait (a look without sleeping).")
        }
        let result: FutexWaitResult
        do {
            result = try system_futexWaitCancellable(word.pointer, expected: expected, shared: shared,
                                                     cancelWord: cancellation.word, deadline: deadline.nanoseconds)
        } catch {
            throw MultiprocessingError.system("\(operation): futex_waitv", error)
        }
        if result == .timedOut { throw timedOutError() }
        if cancellation.isCancelled { throw cancelledError() }
    }
}

/// Runs a blocking wait off Swift's cooperative pool, on the blocking bridge's helper threads
/// (``BlockingBridge``), and turns Task cancellation into a cancellation of that wait.
/// With `cancellable: false` the wait ignores Task cancellation (a condition re-taking its lock).
/// With `restartable: true` (a body that changes nothing until it succeeds, so it can be given up
/// and begun again at any point) the wait, when no helper can be had, waits in slices on the
/// caller's task instead of on a thread of its own.
// Out of line, so that the async twins' frames, whose fast path never gets here, stay small.
@inline(never)
internal func waitOffPool<R: Sendable>(_ operation: StaticString, cancellable: Bool = true, restartable: Bool = false,
                                       _ body: @escaping @Sendable (CancellationWord) throws -> R) async throws -> R {
    if cancellable && Task.isCancelled {
        throw MultiprocessingError(.cancelled, "\(operation) was cancelled: the waiting task was cancelled.")
    }
    return try await BlockingBridge.shared.wait(operation, cancellable: cancellable, restartable: restartable, body)
}

/// Starts a detached helper pthread (not an ``OSThread``: it is not listed, joined at exit, or
/// named in `enumerate()`) that runs `body`, with a 256 KiB stack, through the package's one thread
/// starter, ``system_startThread(name:stackSize:_:)``.
internal func spawnHelperThread(name: String, _ body: @escaping @Sendable () -> Void) throws(MultiprocessingError) {
    do {
        try system_startThread(name: name, stackSize: 256 * 1024, body)
    } catch {
        throw MultiprocessingError.system("starting a helper thread (pthread_create)", error)
    }
}
