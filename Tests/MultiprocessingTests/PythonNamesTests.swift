// Every Python name that docs/python-to-swift.md (and docs/zh) maps to this library, written as the
// guide writes it: if a mapped name is renamed or its signature changes, this file stops compiling.
// The tests also run each mapping once (a new user's first program), with real children where the
// Python name is about processes.
import Multiprocessing
import Synchronization
import Testing

/// `def square(x): return x * x` for `Pool.map`.
struct PythonNamesSquare: PoolFunction {
    func run(_ x: Int) -> Int { x * x }
}

/// `pow(base, exponent)`, for `starmap`: several arguments are one `Codable` input.
struct PythonNamesPower: PoolFunction {
    struct Arguments: Codable, Sendable { var base: Int; var exponent: Int }
    func run(_ a: Arguments) -> Int { (0..<a.exponent).reduce(1) { p, _ in p * a.base } }
}

/// `os.getpid` for `apply_async(os.getpid).get()`.
struct PythonNamesWorkerPID: ProcessTask {
    func run() -> Int32 { CurrentProcess.pid }
}

/// `Process(target=f, args=(q, v, a))`: the shared objects travel inside the task.
struct PythonNamesChild: ProcessTask {
    var queue: Queue<String>
    var simple: SimpleQueue<Int>
    var joinable: JoinableQueue<Int>
    var counter: SharedValue<Int32>
    var squares: SharedArray<Int32>
    var lock: Lock
    var event: Event
    var connection: Connection

    func run() throws -> String {
        try queue.put("from \(CurrentProcess.name)")
        try simple.put(7)
        let job = try joinable.get(timeout: .seconds(60))
        try joinable.taskDone()
        try lock.withLock { counter.value += Int32(job) }
        try squares.store([4, 9, 16], at: 2..<5)
        event.set()
        try connection.send("pong")
        return currentProcess().name
    }
}

@Suite struct PythonNamesTests {
    /// multiprocessing.Process, current_process, active_children, cpu_count, Queue, SimpleQueue,
    /// JoinableQueue, Pipe, Value, Array, Lock, Event, exitcode.
    @Test func processesAndTheirSharedObjects() throws {
        #expect(cpuCount() >= 1)                                       // multiprocessing.cpu_count()
        #expect(currentProcess().name == "MainProcess")                // current_process().name
        #expect(parentProcess() == nil)                                // parent_process()
        let queue = try Queue<String>()                                // multiprocessing.Queue()
        let simple = try SimpleQueue<Int>()                            // SimpleQueue()
        let joinable = try JoinableQueue<Int>()                        // JoinableQueue()
        let counter = try SharedValue<Int32>(0)                        // Value('i', 0)
        let squares = try SharedArray<Int32>(repeating: 0, count: 10)  // Array('i', 10)
        let lock = try Lock()                                          // Lock()
        let event = try Event()                                        // Event()
        let (mine, theirs) = try Connection.pipe(duplex: true)         // Pipe()
        try joinable.put(5)

        let child = ChildProcess(PythonNamesChild(queue: queue, simple: simple, joinable: joinable, counter: counter,
                                                  squares: squares, lock: lock, event: event, connection: theirs),
                                 name: "names-child", daemon: false)   // Process(target=, name=, daemon=)
        try child.start()                                              // p.start()
        #expect(activeChildren().contains { $0.pid == child.pid } || child.hasEnded)   // active_children()
        #expect(try child.value(timeout: .seconds(60)) == "names-child")
        try child.join(timeout: .seconds(60))                          // p.join(timeout)
        #expect(child.exitCode == 0)                                   // p.exitcode
        #expect(child.isAlive == false)                                // p.is_alive()
        try joinable.join(timeout: .seconds(60))                       // q.join()
        #expect(try queue.get(timeout: .seconds(60)) == "from names-child")
        #expect(try simple.get(timeout: .seconds(60)) == 7)
        #expect(counter.value == 5)                                    // v.value
        #expect(try squares.load(2..<5) == [4, 9, 16])                 // a[2:5]
        #expect(event.isSet)                                           // e.is_set()
        #expect(try mine.receive(String.self, timeout: .seconds(60)) == "pong")   // conn.recv()
        try #require(throws: MultiprocessingError.self) { try queue.get(timeout: .zero) }  // queue.Empty
    }

    /// threading: Thread, current_thread, main_thread, active_count, enumerate, Lock, RLock,
    /// Semaphore, BoundedSemaphore, Condition, Event, Barrier, Timer, local.
    @Test func threadingNames() throws {
        let rlock = try RLock()                                        // threading.RLock()
        let semaphore = try Multiprocessing.Semaphore(2)               // threading.Semaphore(2)
        let bounded = try BoundedSemaphore(2)                          // threading.BoundedSemaphore(2)
        let condition = try Condition()                                // threading.Condition()
        let barrier = try Barrier(parties: 2)                          // threading.Barrier(2)
        let local = try ThreadLocal(default: 0)                        // threading.local()
        let ready = Atomic<Bool>(false)

        let worker = OSThread(name: "worker", daemon: false) {          // Thread(target=, name=, daemon=)
            local.value = 42                                           // local.x = 42 (this thread's)
            try rlock.withLock { try rlock.withLock {} }               // with rlock: with rlock:
            try semaphore.withPermit {}                                // with semaphore:
            try bounded.acquire(timeout: .seconds(60))
            try bounded.release()
            try condition.withLock {
                ready.store(true, ordering: .sequentiallyConsistent)
                try condition.notifyAll()                              // cond.notify_all()
            }
            _ = try barrier.wait(timeout: .seconds(60))                // barrier.wait()
            return OSThread.current.name                               // threading.current_thread().name
        }
        try worker.start()
        try condition.withLock {
            try condition.wait(for: { ready.load(ordering: .sequentiallyConsistent) }, timeout: .seconds(60))  // cond.wait_for()
        }
        _ = try barrier.wait(timeout: .seconds(60))
        try worker.join(timeout: .seconds(60))                         // t.join(timeout)
        #expect(try worker.result(as: String.self) == "worker")
        #expect(local.value == 0)                                      // the main thread's own value
        #expect(OSThread.main.name == "MainThread")                    // threading.main_thread()
        #expect(OSThread.activeCount >= 1)                             // threading.active_count()
        #expect(OSThread.enumerate().isEmpty == false)                 // threading.enumerate()
        #expect(throws: MultiprocessingError.self) { try bounded.release() }   // ValueError: released too many times

        let fired = try Event()
        let timer = OSTimer(after: .milliseconds(10)) { fired.set() }  // threading.Timer(0.01, f)
        try timer.start()                                              // timer.start()
        try timer.join(timeout: .seconds(60))
        #expect(timer.didFire && fired.isSet)
        let never = OSTimer(after: .seconds(600)) { fired.clear() }
        try never.start()
        never.cancel()                                                 // timer.cancel()
        try never.join(timeout: .seconds(60))
        #expect(never.didFire == false && fired.isSet)
    }

    /// Pool.map, starmap, imap_unordered, apply_async, apply, close/join, ThreadPool, and
    /// concurrent.futures' as_completed.
    @Test func poolNames() async throws {
        try await ProcessPool.with(workers: 2) { pool in                // with Pool(2) as pool:
            #expect(try await pool.map(PythonNamesSquare(), over: 0..<10) == (0..<10).map { $0 * $0 })
            #expect(try await pool.map(PythonNamesSquare(), over: 0..<10, chunking: .fixed(3)).count == 10)  // chunksize=3
            #expect(try await pool.map(PythonNamesPower(), over: [.init(base: 2, exponent: 5), .init(base: 3, exponent: 2)]) == [32, 9])
            var seen: [Int] = []
            for try await (_, result) in try pool.mapUnordered(PythonNamesSquare(), over: (0..<5).lazy) {   // imap_unordered
                seen.append(try result.get())
            }
            #expect(seen.sorted() == [0, 1, 4, 9, 16])
            let handle = try pool.submit(PythonNamesWorkerPID())        // apply_async(os.getpid)
            #expect(try await handle.value != CurrentProcess.pid)       // .get()
        }
        try await ThreadPool.with(workers: 2) { pool in                 // ThreadPool(2), ThreadPoolExecutor(2)
            let squares = try await pool.map(PythonNamesSquare(), over: [3])
            #expect(squares == [9])
        }
    }

    /// get_context('forkserver') / set_start_method: a configuration value per child.
    @Test func startMethodNames() throws {
        let context = ChildProcessConfiguration(startMethod: .forkServer)  // mp.get_context('forkserver')
        let child = ChildProcess(PythonNamesWorkerPID(), configuration: context)   // ctx.Process(...)
        try child.start()
        #expect(try child.value(timeout: .seconds(60)) > 0)
        _ = ChildProcessConfiguration.defaultStartMethod               // get_start_method()
    }
}
