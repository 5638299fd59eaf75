// Tasks and the helper-binary scenario for the pool's `onDone` callbacks
// (Tests/MultiprocessingTests/PoolCallbackTests.swift): a callback that calls back into the pool
// (get of a pending handle, submit, close and join, terminate) or blocks, in a process of its own,
// so that a deadlock ends in a line and an exit status, not in a hung test binary.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing
import Synchronization

/// Reads one byte from the FIFO at `fifo`, then returns `value`: a task that stays pending until
/// the scenario opens its gate. (A pool task cannot carry an `Event`: only a child's handshake
/// passes descriptors.) -1 when the FIFO cannot be opened.
public struct PoolWaitForGate: ProcessTask {
    public var fifo: String
    public var value: Int
    public init(fifo: String, value: Int) {
        self.fifo = fifo
        self.value = value
    }
    public func run() -> Int {
        // The scenario holds the FIFO open for reading and writing, so this open does not wait.
        let fd = open(fifo, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return -1 }
        defer { close(fd) }
        var byte: UInt8 = 0
        return read(fd, &byte, 1) == 1 ? value : -1
    }
}

/// A FIFO that ``PoolWaitForGate`` tasks wait on; `open()` lets one through.
private final class FifoGate: Sendable {
    let path: String
    private let fd: Int32
    init(_ label: String) {
        path = "/tmp/mp-pool-callbacks-\(getpid())-\(label)"
        unlink(path)
        mkfifo(path, 0o600)
        fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
    }
    func open() {
        var byte: UInt8 = 1
        _ = write(fd, &byte, 1)
    }
    deinit {
        close(fd)
        unlink(path)
    }
}

/// One callback's outcome, set once, waited for with a bound.
private final class CallbackOutcome: Sendable {
    private let text = Mutex<String?>(nil)
    private let done: Multiprocessing.Semaphore
    init() throws { done = try Multiprocessing.Semaphore(0) }
    func set(_ value: String) {
        let first = text.withLock { text -> Bool in
            guard text == nil else { return false }
            text = value
            return true
        }
        if first { try? done.release() }
    }
    /// The outcome, or nil when none came within `seconds`.
    func wait(seconds: Int) -> String? {
        guard (try? done.acquire(timeout: .seconds(seconds))) != nil else { return nil }
        return text.withLock { $0 }
    }
}

private func describe<T>(_ body: () throws -> T) -> String {
    do {
        return "value \(try body())"
    } catch {
        return "threw \(error)"
    }
}

/// Runs the callback scenario in the helper binary; false for another name.
///
/// `pool-callbacks MODE`: one pool (a process pool of 2 workers, or a thread pool of 1 thread for
/// the `thread-` modes) whose task's `onDone` callback calls back into the pool. Prints
/// `ok MODE DETAIL` when the callback (and what the scenario checks after it) finished within
/// 120 s; otherwise prints `stuck MODE` and exits 3 at once, without touching the pool again.
/// MODE: `get-other` (the callback gets a handle that is still pending), `get-same`, `submit`
/// (submits a task and gets it), `join` (close and join), `terminate`, `block` (a callback that
/// blocks until the end: another handle's get, a map and a second callback still work),
/// `thread-get-other` (a thread pool of one thread, the callback gets a pending handle).
public func runPoolCallbackScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    guard name == "pool-callbacks" else { return false }
    guard let mode = rest.first else {
        print("usage: pool-callbacks MODE")
        exit(64)
    }
    let bound = 120
    func stuck(_ what: String) -> Never {
        print("stuck \(mode) \(what)")
        fflush(nil)
        _exit(3)
    }
    let outcome = try CallbackOutcome()
    let entered = try CallbackOutcome()
    let gate = FifoGate(mode)
    switch mode {
    case "get-other", "thread-get-other":
        let processPool = mode == "get-other" ? try ProcessPool(workers: 2) : nil
        let threadPool = processPool == nil ? try ThreadPool(workers: 1) : nil
        let pool: any WorkerPool = processPool ?? threadPool!
        // `first` waits on a gate of its own until its callback is in place: a handle already done
        // runs a new callback at once on the caller's thread (as Python's add_done_callback does),
        // and this thread would then wait in the callback for a gate only it can open.
        let started = FifoGate("\(mode)-first")
        let first = try pool.submit(PoolWaitForGate(fifo: started.path, value: 3))
        let pending = try pool.submit(PoolWaitForGate(fifo: gate.path, value: 7))
        first.onDone { _ in
            entered.set("entered")
            outcome.set(describe { try pending.get() })
        }
        started.open()
        guard entered.wait(seconds: bound) != nil else { stuck("the callback never ran") }
        gate.open()
        guard let text = outcome.wait(seconds: bound) else { stuck("the callback's get never returned") }
        pool.close()
        try processPool?.join()
        try threadPool?.join()
        print("ok \(mode) \(text)")
    case "get-same":
        let pool = try ProcessPool(workers: 2)
        let handle = try pool.submit(Square(x: 4))
        handle.onDone { _ in outcome.set(describe { try handle.get() }) }
        guard let text = outcome.wait(seconds: bound) else { stuck("the callback's get never returned") }
        pool.close()
        try pool.join()
        print("ok \(mode) \(text)")
    case "submit":
        let pool = try ProcessPool(workers: 2)
        let handle = try pool.submit(Square(x: 5))
        handle.onDone { _ in outcome.set(describe { try pool.submit(Square(x: 6)).get() }) }
        guard let text = outcome.wait(seconds: bound) else { stuck("the submitted task's get never returned") }
        pool.close()
        try pool.join()
        print("ok \(mode) \(text)")
    case "join":
        let pool = try ProcessPool(workers: 2)
        let other = try pool.submit(PoolWaitForGate(fifo: gate.path, value: 8))
        let second = try CallbackOutcome()
        other.onDone { result in second.set(describe { try result.get() }) }
        let handle = try pool.submit(Square(x: 7))
        handle.onDone { _ in
            gate.open()
            pool.close()
            outcome.set(describe { try pool.join() })
        }
        guard let text = outcome.wait(seconds: bound) else { stuck("the callback's join never returned") }
        // join from a callback waited for the other task's callback too.
        guard let after = second.wait(seconds: 0) else { stuck("join returned before the other callback ran") }
        print("ok \(mode) \(text) other \(after) workers \(pool.workerPIDs.count)")
    case "terminate":
        let pool = try ProcessPool(workers: 2)
        let pending = try pool.submit(PoolWaitForGate(fifo: gate.path, value: 9))
        let handle = try pool.submit(Square(x: 8))
        handle.onDone { _ in
            pool.terminate()
            outcome.set("terminated")
        }
        guard let text = outcome.wait(seconds: bound) else { stuck("the callback's terminate never returned") }
        let left: String
        do {
            left = "value \(try pending.get())"
        } catch let error as PoolTaskError {
            left = "\(error.code)"
        }
        print("ok \(mode) \(text) pending \(left) workers \(pool.workerPIDs.count)")
    case "block":
        let pool = try ProcessPool(workers: 2)
        let release = try Event()
        // Held on a gate until the callback is in place, so that it runs on the callback thread,
        // never on this one (see get-other).
        let started = FifoGate("\(mode)-first")
        let handle = try pool.submit(PoolWaitForGate(fifo: started.path, value: 2))
        handle.onDone { _ in
            entered.set("entered")
            try? release.wait(timeout: .seconds(600))
        }
        started.open()
        guard entered.wait(seconds: bound) != nil else { stuck("the blocking callback never ran") }
        // The pool's other users go on while that callback blocks.
        let got = try CallbackOutcome()
        let other = try pool.submit(Square(x: 10))
        Thread_detach { got.set(describe { try other.get() }) }
        guard let value = got.wait(seconds: bound) else { stuck("get while a callback blocks") }
        let mapped = try CallbackOutcome()
        Thread_detach { mapped.set(describe { try pool.map(PoolSquare(), over: 0..<20).reduce(0, +) }) }
        guard let sum = mapped.wait(seconds: bound) else { stuck("map while a callback blocks") }
        let third = try pool.submit(Square(x: 11))
        third.onDone { result in outcome.set(describe { try result.get() }) }
        guard let next = outcome.wait(seconds: bound) else { stuck("a later callback while one blocks") }
        release.set()
        pool.close()
        try pool.join()
        print("ok \(mode) get \(value) map \(sum) callback \(next)")
    default:
        print("unknown mode \(mode)")
        exit(64)
    }
    fflush(nil)
    return true
}

/// Runs `body` on a detached thread of its own.
private func Thread_detach(_ body: @escaping @Sendable () -> Void) {
    let thread = OSThread(name: "scenario-call", daemon: true, target: body)
    try? thread.start()
}
