import CMultiprocessing
import Synchronization

/// A private futex word that a cancellation sets to 1 and wakes.
///
/// Every blocking wait in Sync/ and Threads/ waits with `futex_waitv` on two words at once: the
/// primitive's word, and the cancellation word of whoever waits (the waiting ``OSThread``, or the
/// Swift task behind an async twin). Cancelling sets this word and wakes it, so the waiter returns at
/// once, with no polling and no lost wake-up: a cancel that lands before the wait starts makes the
/// kernel refuse to sleep, because the word no longer holds 0.
internal final class CancellationWord: @unchecked Sendable {
    internal let word: UnsafeMutablePointer<UInt32>

    internal init() {
        word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        word.initialize(to: 0)
    }

    deinit { word.deallocate() }

    internal var isCancelled: Bool { cmp_atomic_load32(word) != 0 }

    internal func cancel() {
        cmp_atomic_store32(word, 1)
        system_futexWake(word, count: Int32.max, shared: false)
    }

    /// A word nobody cancels, for waits that must not be interrupted (exit handlers, start-up).
    internal static let never = CancellationWord()
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

/// Runs a blocking wait on a dedicated thread, so that an async twin never blocks Swift's
/// cooperative pool, and turns Task cancellation into a cancellation of that wait.
/// With `cancellable: false` the wait ignores Task cancellation (a condition re-taking its lock).
internal func waitOffPool<R: Sendable>(_ operation: StaticString, cancellable: Bool = true,
                                       _ body: @escaping @Sendable (CancellationWord) throws -> R) async throws -> R {
    let cancellation = cancellable ? CancellationWord() : CancellationWord.never
    if cancellable && Task.isCancelled {
        throw MultiprocessingError(.cancelled, "\(operation) was cancelled: the waiting task was cancelled.")
    }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, any Error>) in
            do {
                try spawnHelperThread(name: "mp-wait") {
                    continuation.resume(with: Result { try body(cancellation) })
                }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    } onCancel: {
        if cancellable { cancellation.cancel() }
    }
}

/// The closure a helper thread runs, boxed to cross pthread_create.
private final class HelperThreadBody {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}

/// Starts a detached pthread (not an ``OSThread``: it is not listed, joined at exit, or named in
/// `enumerate()`) that runs `body`.
internal func spawnHelperThread(name: String, _ body: @escaping @Sendable () -> Void) throws(MultiprocessingError) {
    let box = Unmanaged.passRetained(HelperThreadBody(name: name, body: body))
    let entry: ThreadEntry = { argument in
        guard let argument else { return nil }
        let box = Unmanaged<HelperThreadBody>.fromOpaque(argument).takeRetainedValue()
        system_setThreadName(box.name)
        box.body()
        return nil
    }
    do {
        _ = try system_threadCreateDetached(stackSize: 256 * 1024, entry, box.toOpaque())
    } catch {
        box.release()
        throw MultiprocessingError.system("starting a helper thread (pthread_create)", error)
    }
}
