import Synchronization
import MultiprocessingSystem

/// A real operating-system thread: Python's `threading.Thread`.
///
/// Each `OSThread` is a pthread of its own (not a Swift `Task`), so CPU-bound work on several
/// threads runs on several cores at once: Swift has no global interpreter lock. The name avoids
/// Foundation's `Thread`.
///
/// ```swift
/// let worker = OSThread(name: "worker") { try crunch() }
/// try worker.start()
/// try worker.join()
/// ```
///
/// **Exit.** As in Python, the process does not exit while a non-daemon thread runs: an `atexit`
/// handler joins them, so returning from `main` or calling `exit()` waits. Daemon threads die with
/// the process.
///
/// **Stopping a thread.** Swift cannot inject an exception into another thread as the seed does with
/// `PyThreadState_SetAsyncExc`. Cancellation is cooperative: ``cancel()`` sets ``isCancelled``, makes
/// ``checkCancellation()`` throw in that thread, and wakes every blocking wait of this module
/// (locks, semaphores, events, conditions, barriers, joins) that the thread is in, which throws
/// ``MultiprocessingError/Code/cancelled``. For a hard stop, run the work in a child process and
/// call `ChildProcess.terminate()`: a process can be killed safely, a thread cannot.
public final class OSThread: Sendable {
    /// The thread's name, as shown by `ps -L` / `top -H` (the first 15 bytes) and in ``enumerate()``.
    public let name: String
    /// Whether the thread dies with the process instead of keeping it alive at exit.
    public let daemon: Bool

    private let target: (@Sendable () throws -> any Sendable)?
    internal let cancellation = CancellationWord()
    /// Set to 1 when the target has returned; joins wait on it.
    private let finished = CancellationWord()
    /// Set to 1 once the thread runs and knows its TID; `start()` waits on it.
    private let running = CancellationWord()

    private struct State {
        var started = false
        var ident: UInt = 0
        var nativeID: Int32 = 0
        var result: Result<any Sendable, any Error>?
    }
    private let state: Mutex<State>
    private let isDummy: Bool

    /// Creates a thread that will run `target` once started.
    /// - Parameters:
    ///   - name: A name for the thread; by default `Thread-N`, as in Python.
    ///   - daemon: Whether the thread dies with the process; by default the creating thread's setting
    ///     (the main thread is not a daemon).
    ///   - target: The work. Its value or thrown error is available after `join(timeout:)` through
    ///     ``result(as:)``.
    public init<T: Sendable>(name: String? = nil, daemon: Bool? = nil, target: @escaping @Sendable () throws -> T) {
        let number = OSThread.counter.add(1, ordering: .relaxed).newValue
        self.name = name ?? "Thread-\(number)"
        self.daemon = daemon ?? OSThread.current.daemon
        self.target = { try target() }
        self.state = Mutex(State())
        self.isDummy = false
    }

    /// The `OSThread` object of a thread this module did not start (the main thread, or another).
    private init(existingNamed name: String, daemon: Bool, ident: UInt, nativeID: Int32) {
        self.name = name
        self.daemon = daemon
        self.target = nil
        self.state = Mutex(State(started: true, ident: ident, nativeID: nativeID, result: nil))
        self.isDummy = true
        running.cancel()
    }

    // MARK: starting and joining

    /// Starts the thread. Returns once it runs, so ``ident`` and ``nativeID`` are known.
    /// - Throws: `.misuse` when the thread was started before; `.systemCall` when no thread can be
    ///   created.
    public func start() throws {
        try state.withLock { state throws(MultiprocessingError) in
            if state.started || isDummy {
                throw .misuse("OSThread.start: the thread \"\(name)\" was already started; a thread can be started only once.")
            }
            state.started = true
        }
        OSThread.registry.withLock { $0[ObjectIdentifier(self)] = self }
        if !daemon { OSThread.installExitHandler() }
        do {
            // The thread names itself in run().
            let thread = try system_startThread(name: nil) { [self] in self.run() }
            state.withLock { $0.ident = UInt(thread) }
        } catch {
            OSThread.registry.withLock { $0[ObjectIdentifier(self)] = nil }
            state.withLock { $0.result = .failure(MultiprocessingError.system("pthread_create", error)) }
            finished.cancel()
            throw MultiprocessingError.system("OSThread.start: pthread_create", error)
        }
        // Wait until the thread is running, as Python's start() does.
        while !running.isCancelled {
            _ = try? system_futexWaitCancellable(running.word, expected: 0, shared: false,
                                                 cancelWord: CancellationWord.never.word, deadline: nil)
        }
    }

    /// Runs in the new thread.
    private func run() {
        OSThread.setCurrent(self)
        system_setThreadName(name)
        let tid = system_gettid()
        state.withLock {
            $0.nativeID = tid
            $0.ident = UInt(system_pthreadSelf())
        }
        running.cancel()
        let outcome: Result<any Sendable, any Error>
        if let target {
            do { outcome = .success(try target()) } catch { outcome = .failure(error) }
        } else {
            outcome = .success(())
        }
        state.withLock { $0.result = outcome }
        OSThread.registry.withLock { $0[ObjectIdentifier(self)] = nil }
        finished.cancel()
        OSThread.setCurrent(nil)
    }

    /// Waits until the thread's target has returned or thrown.
    ///
    /// Like Python's `join`, this does not rethrow the target's error: ask ``result(as:)``.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: `.timedOut`; `.cancelled` when the *joining* thread is cancelled; `.misuse` when the
    ///   thread was never started or joins itself, or when `timeout` is negative.
    public func join(timeout: Duration? = nil) throws {
        try checkJoinable()
        try waitFinished(.current(timeout: timeout, "OSThread.join"))
    }

    /// Waits until the thread has finished without blocking Swift's cooperative pool; the async twin
    /// of ``join(timeout:)``.
    /// - Throws: `.timedOut`, `.cancelled` when the task is cancelled, or `.misuse`.
    public func join(timeout: Duration? = nil) async throws {
        try checkJoinable()
        let deadline = try Deadline(timeout: timeout, "OSThread.join")
        if finished.isCancelled { return }
        try await waitOffPool("OSThread.join", restartable: true) { cancellation in
            try self.waitFinished(WaitContext(deadline: deadline, timeout: timeout, cancellation: cancellation, operation: "OSThread.join"))
        }
    }

    private func checkJoinable() throws(MultiprocessingError) {
        if isDummy {
            throw .misuse("OSThread.join: \"\(name)\" was not started by this module, so it cannot be joined.")
        }
        if !state.withLock({ $0.started }) {
            throw .misuse("OSThread.join: the thread \"\(name)\" was never started.")
        }
        if OSThread.current === self {
            throw .misuse("OSThread.join: a thread cannot join itself; that would deadlock.")
        }
    }

    internal func waitFinished(_ context: WaitContext) throws(MultiprocessingError) {
        let word = SharedWord(finished.word)
        while word.load() == 0 {
            try context.wait(on: word, expected: 0, shared: false)
        }
    }

    /// The target's value, after the thread has finished.
    /// - Parameter type: The type the target returned.
    /// - Returns: The value.
    /// - Throws: The error the target threw; `.misuse` when the thread has not finished (call
    ///   `join(timeout:)` first) or returned another type.
    public func result<T>(as type: T.Type = T.self) throws -> T {
        guard let result = state.withLock({ $0.result }) else {
            throw MultiprocessingError.misuse("OSThread.result: the thread \"\(name)\" has not finished; join it first.")
        }
        let value = try result.get()
        guard let typed = value as? T else {
            throw MultiprocessingError.misuse("OSThread.result: the thread \"\(name)\" returned a \(Swift.type(of: value)), not a \(T.self).")
        }
        return typed
    }

    /// The error the target threw, once it has finished; nil if it returned normally or still runs.
    public var error: (any Error)? {
        if case .failure(let error)? = state.withLock({ $0.result }) { return error }
        return nil
    }

    // MARK: state

    /// Whether the thread has started and its target has not yet returned: Python's `is_alive()`.
    public var isAlive: Bool {
        state.withLock { $0.started } && !finished.isCancelled
    }

    /// The pthread identifier (`pthread_self()` as a number), as Python's `ident`; 0 before start.
    public var ident: UInt { state.withLock { $0.ident } }

    /// The kernel's thread id (`gettid()`), as Python's `native_id`; 0 before start.
    public var nativeID: Int32 { state.withLock { $0.nativeID } }

    // MARK: cancellation

    /// Asks the thread to stop: sets ``isCancelled`` and wakes any blocking wait of this module that
    /// the thread is in, which then throws ``MultiprocessingError/Code/cancelled``.
    ///
    /// Cancellation is cooperative: code that never waits or checks runs on. For a hard stop, run the
    /// work in a child process and use `ChildProcess.terminate()`.
    public func cancel() {
        cancellation.cancel()
    }

    /// Whether ``cancel()`` was called.
    public var isCancelled: Bool { cancellation.isCancelled }

    /// Throws `.cancelled` when the calling thread was cancelled: a cancellation point for loops.
    /// - Throws: ``MultiprocessingError`` with code `.cancelled`.
    public static func checkCancellation() throws {
        if currentCancellation.isCancelled {
            throw MultiprocessingError(.cancelled, "The thread \"\(current.name)\" was cancelled.")
        }
    }

    // MARK: the module-level functions of Python's threading

    private static let counter = Atomic<Int>(0)
    private static let registry = Mutex<[ObjectIdentifier: OSThread]>([:])

    /// The main thread: Python's `threading.main_thread()`.
    public static let main = OSThread(existingNamed: "MainThread", daemon: false,
                                      ident: UInt(system_mainThread()), nativeID: system_getpid())

    /// The thread-specific slot holding the current `OSThread` (retained).
    private static let currentKey: SystemThreadKey? = try? system_keyCreate(destructor: { pointer in
        guard let pointer else { return }
        Unmanaged<OSThread>.fromOpaque(pointer).release()
    })

    private static func setCurrent(_ thread: OSThread?) {
        guard let currentKey else { return }
        if let old = system_getSpecific(currentKey) {
            Unmanaged<OSThread>.fromOpaque(old).release()
        }
        system_setSpecific(currentKey, thread.map { Unmanaged.passRetained($0).toOpaque() })
    }

    /// The calling thread's `OSThread`: Python's `threading.current_thread()`.
    ///
    /// A thread this module did not start (other than the main thread) gets a daemon "dummy" object,
    /// as in Python, which is not listed by ``enumerate()``.
    public static var current: OSThread {
        if let currentKey, let pointer = system_getSpecific(currentKey) {
            return Unmanaged<OSThread>.fromOpaque(pointer).takeUnretainedValue()
        }
        let tid = system_gettid()
        let thread: OSThread
        if tid == system_getpid() {
            thread = main
        } else {
            thread = OSThread(existingNamed: "Dummy-\(counter.add(1, ordering: .relaxed).newValue)", daemon: true,
                              ident: UInt(system_pthreadSelf()), nativeID: tid)
        }
        setCurrent(thread)
        return thread
    }

    /// The cancellation word of the calling thread.
    internal static var currentCancellation: CancellationWord { current.cancellation }

    /// The number of live threads: Python's `threading.active_count()`.
    public static var activeCount: Int { enumerate().count }

    /// The live threads: the main thread and every started ``OSThread`` that has not finished
    /// (Python's `threading.enumerate()`; threads this module did not start are not listed).
    public static func enumerate() -> [OSThread] {
        [main] + registry.withLock { Array($0.values) }.sorted { $0.nativeID < $1.nativeID }
    }

    // MARK: exit

    private static let exitHandlerInstalled = Atomic<Bool>(false)

    private static func installExitHandler() {
        guard exitHandlerInstalled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        // Registered after bootstrap()'s handler, so it runs first: threads are joined before
        // child processes are waited for, as in Python.
        system_atexit { OSThread.joinNonDaemonThreads() }
    }

    /// What the exit handler does, for a process that ends with `_exit` (a pool worker): nothing
    /// when no thread was ever started here.
    static func joinNonDaemonThreadsIfAnyStarted() {
        if exitHandlerInstalled.load(ordering: .relaxed) { joinNonDaemonThreads() }
    }

    /// Runs at exit: waits for every non-daemon thread, as Python's interpreter does at shutdown.
    private static func joinNonDaemonThreads() {
        let me = current
        while true {
            let waiting = registry.withLock { $0.values.filter { !$0.daemon && $0 !== me } }
            if waiting.isEmpty { return }
            for thread in waiting {
                try? thread.waitFinished(.uncancellable("OSThread exit"))
            }
        }
    }
}
