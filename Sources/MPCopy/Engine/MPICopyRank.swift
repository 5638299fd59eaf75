#if MPI
import Multiprocessing
import MultiprocessingMPI
import MultiprocessingSystem
import Synchronization
import SystemPackage

/// A serving rank's items: what rank 0 sent and no local worker has taken yet, and the results
/// waiting to go back. The rank's local pool (threads or processes, as on one host) takes items
/// with ``next()``; the MPI thread sends the results.
internal final class RankQueue: WorkSource, @unchecked Sendable {
    // Guarded by `monitor`.
    private let monitor = ThreadMonitor()
    private var items: [(id: UInt64, item: WorkItem)] = []
    private var head = 0
    /// The id of the item each worker thread holds, by thread id: the thread that took an item
    /// completes it (the pools' rule, see `WorkSource`).
    private var held: [Int32: UInt64] = [:]
    private var stopped = false
    private var outbox: [(id: UInt64, result: WorkResult)] = []
    /// Released when a result is ready, so that the MPI thread stops sleeping.
    let wake: Semaphore

    init() throws {
        wake = try Semaphore(0)
    }

    func add(_ id: UInt64, _ item: WorkItem) {
        monitor.withLock {
            items.append((id, item))
            monitor.signal()
        }
    }

    /// No more items: the workers end once they finish what they hold.
    func stop() {
        monitor.withLock {
            stopped = true
            monitor.broadcast()
        }
    }

    func takeResults() -> [(id: UInt64, result: WorkResult)] {
        monitor.withLock {
            defer { outbox = [] }
            return outbox
        }
    }

    func next() -> WorkItem? {
        let thread = system_gettid()
        monitor.lock()
        defer { monitor.unlock() }
        while true {
            if head < items.count {
                let (id, item) = items[head]
                head += 1
                if head > 1024 && head * 2 > items.count {
                    items.removeFirst(head)
                    head = 0
                }
                held[thread] = id
                return item
            }
            if stopped { return nil }
            monitor.wait()
        }
    }

    func complete(_ item: WorkItem, _ result: WorkResult) {
        let thread = system_gettid()
        monitor.withLock {
            guard let id = held.removeValue(forKey: thread) else { return }
            outbox.append((id, result))
        }
        try? wake.release()
    }

    func giveBack(_ item: WorkItem) {
        let thread = system_gettid()
        monitor.withLock {
            guard let id = held.removeValue(forKey: thread) else { return }
            items.append((id, item))
            monitor.signal()
        }
    }
}

/// What ranks 1 ... N-1 do: serve rank 0 until it says stop.
internal enum MPICopyRank {
    /// Serves rank 0: the setup, then items until stop. Returns the rank's exit status.
    static func serve(jobs: Int, workers: WorkerKind) -> Int32 {
        guard let messenger = MPICopyState.messenger else { return 1 }
        do {
            return try serve(messenger, jobs: jobs, workers: workers)
        } catch {
            let text = Array("mpcp --mpi: rank \(MPICopyState.rank) on host \(MPICopyState.host): an MPI call failed: \(error)\n".utf8)
            text.withUnsafeBytes { b in _ = try? system_writeAll(systemStderr, b) }
            return 1
        }
    }

    private static func fatal(_ messenger: MPIMessenger, _ text: String) throws {
        try messenger.send(Array(text.utf8), to: 0, tag: MPICopyTag.fatal.rawValue)
    }

    /// Waits for rank 0's stop, answering nothing else (after a fatal message or a failed setup).
    private static func awaitStop(_ messenger: MPIMessenger) throws {
        var idle = 0
        while true {
            if let message = try messenger.receive() {
                idle = 0
                if message.tag == MPICopyTag.stop.rawValue { break }
                continue
            }
            MPIWorkerPool.pause(&idle)
        }
        try bye(messenger)
    }

    private static func bye(_ messenger: MPIMessenger) throws {
        try messenger.send([], to: 0, tag: MPICopyTag.bye.rawValue)
        var idle = 0
        while messenger.pendingSends > 0 {
            try messenger.progress()
            MPIWorkerPool.pause(&idle)
        }
    }

    private static func serve(_ messenger: MPIMessenger, jobs: Int, workers: WorkerKind) throws -> Int32 {
        // The setup first (or stop: rank 0 failed before it had a copy to share).
        var idle = 0
        var setupMessage: MPIMessage?
        while setupMessage == nil {
            guard let message = try messenger.receive() else { MPIWorkerPool.pause(&idle); continue }
            idle = 0
            switch MPICopyTag(rawValue: message.tag) {
            case .setup: setupMessage = message
            case .stop: try bye(messenger); return 0
            default:
                try fatal(messenger, "expected the setup, got \(MPICopyWire.describe(message))")
                try awaitStop(messenger)
                return 1
            }
        }
        let setup: MPICopySetup
        do {
            setup = try WireDecoder().decode(MPICopySetup.self, from: setupMessage?.bytes ?? [])
        } catch {
            try fatal(messenger, "the setup from rank 0 cannot be decoded (is every rank running the same mpcp?): \(error)")
            try awaitStop(messenger)
            return 1
        }
        var options = setup.options
        options.jobs = jobs
        options.workers = workers
        let performer = Performer(options: options)
        let problem = check(setup.roots, rank0: setup.host)
        performer.resolver.register(setup.roots)
        let ready = try WireEncoder().encode(MPICopyReady(workers: jobs, host: MPICopyState.host, problem: problem))
        try messenger.send(ready, to: 0, tag: MPICopyTag.ready.rawValue)
        if problem != nil {
            try awaitStop(messenger)
            return 0
        }

        let queue = try RankQueue()
        let pool: any WorkerPool & Sendable
        var processes: ProcessPool?
        if workers == .threads {
            pool = ThreadPool(jobs: jobs, performer: performer)
        } else {
            let p = ProcessPool(jobs: jobs, options: options, performer: performer)
            processes = p
            pool = p
        }
        let failure = Mutex<MPCopyError?>(nil)
        let poolThread = try startThread("mpcp-rank-pool", daemon: false) { [pool] in
            do throws(MPCopyError) { try pool.run(queue) } catch { failure.withLock { $0 = error } }
            try? queue.wake.release()
        }
        var cancelSent = false
        var stopping = false
        idle = 0
        while !stopping {
            var busy = false
            if let error = failure.withLock({ $0 }) {
                try fatal(messenger, "\(error)")
                queue.stop()
                try? poolThread.join()
                try awaitStop(messenger)
                return 1
            }
            if MPICopyState.interrupted.load(ordering: .relaxed) && !cancelSent {
                performer.cancelled.store(true, ordering: .relaxed)
                processes?.cancel()
                try messenger.send([], to: 0, tag: MPICopyTag.cancel.rawValue)
                cancelSent = true
            }
            for (id, result) in queue.takeResults() {
                busy = true
                let bytes: [UInt8]
                do { bytes = try MPICopyWire.frame(id, result) } catch {
                    bytes = (try? MPICopyWire.frame(id, WorkResult(failures: [CopyFailure(path: FilePath(), operation: "send a result", detail: "\(error)")]))) ?? []
                }
                try messenger.send(bytes, to: 0, tag: MPICopyTag.result.rawValue)
            }
            while let message = try messenger.receive() {
                busy = true
                switch MPICopyTag(rawValue: message.tag) {
                case .item:
                    guard let id = MPICopyWire.id(message.bytes) else {
                        try fatal(messenger, "an item message of \(message.bytes.count) bytes has no item id")
                        queue.stop()
                        try? poolThread.join()
                        try awaitStop(messenger)
                        return 1
                    }
                    let item: WorkItem
                    do { item = try MPICopyWire.body(WorkItem.self, message.bytes) } catch {
                        try fatal(messenger, "work item \(id) from rank 0 cannot be decoded (is every rank running the same mpcp?): \(error)")
                        queue.stop()
                        try? poolThread.join()
                        try awaitStop(messenger)
                        return 1
                    }
                    queue.add(id, item)
                case .cancel:
                    performer.cancelled.store(true, ordering: .relaxed)
                    processes?.cancel()
                case .stop:
                    stopping = true
                default:
                    try fatal(messenger, "unexpected message: \(MPICopyWire.describe(message))")
                    queue.stop()
                    try? poolThread.join()
                    try awaitStop(messenger)
                    return 1
                }
                if stopping { break }
            }
            if busy { idle = 0 } else if !stopping {
                idle += 1
                if idle > 64 {
                    _ = try? queue.wake.acquire(timeout: .nanoseconds(MPIWorkerPool.sleepNanoseconds(idle)))
                    while queue.wake.tryAcquire() {}
                }
            }
        }
        queue.stop()
        try? poolThread.join()
        try bye(messenger)
        return 0
    }

    /// Whether this rank sees every root as rank 0 did: the same device and inode at the same path.
    private static func check(_ roots: TreeRoots, rank0 host: String) -> String? {
        var problems: [String] = []
        for (side, list) in [("source", roots.sources), ("destination", roots.destinations)] {
            for root in list {
                let shown = shellQuoted(root.path.isEmpty ? FilePath(".") : root.path, always: true)
                do throws(Errno) {
                    let here = try Resolver.root(root.path, followsSymlink: root.followsSymlink)
                    if here.device != root.device || here.inode != root.inode {
                        problems.append("the \(side) directory \(shown) is another directory here (device \(here.device >> 32):\(here.device & 0xFFFF_FFFF) inode \(here.inode)) than on rank 0's host \(host) (device \(root.device >> 32):\(root.device & 0xFFFF_FFFF) inode \(root.inode))")
                    }
                } catch {
                    problems.append("cannot open the \(side) directory \(shown): \(error)")
                }
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// Rank 0: tells every serving rank to stop and waits for their byes. Once per job.
    static func release(_ messenger: MPIMessenger) throws {
        guard !MPICopyState.released else { return }
        MPICopyState.released = true
        for rank in 1..<MPICopyState.size { try messenger.send([], to: rank, tag: MPICopyTag.stop.rawValue) }
        var byes = Set<Int>()
        var idle = 0
        while byes.count < MPICopyState.size - 1 {
            guard let message = try messenger.receive() else {
                try messenger.progress()
                MPIWorkerPool.pause(&idle)
                continue
            }
            idle = 0
            // Results after a failure, cancels, fatal messages: nothing is waiting for them now.
            if message.tag == MPICopyTag.bye.rawValue { byes.insert(message.source) }
        }
        while messenger.pendingSends > 0 {
            try messenger.progress()
            MPIWorkerPool.pause(&idle)
        }
    }
}
#endif
