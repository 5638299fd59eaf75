#if MPI
import Multiprocessing
import MultiprocessingMPI
import MultiprocessingSystem
import Synchronization
import SystemPackage

/// What ranks 1 ... N-1 do: the setup from rank 0, then the distributed walk until rank 0 says stop.
internal enum MPICopyRank {
    /// The setup, then the walk (MPIWalkDriver.runServing) until stop. Returns the rank's exit status.
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
    static func awaitStop(_ messenger: MPIMessenger) throws {
        var idle = 0
        while true {
            if let message = try messenger.receive() {
                idle = 0
                if message.tag == MPICopyTag.stop.rawValue { break }
                // A thief waits for an answer; there is no work here.
                if message.tag == MPICopyTag.steal.rawValue { try messenger.send([], to: message.source, tag: MPICopyTag.noWork.rawValue) }
                continue
            }
            MPIWorkerPool.pause(&idle)
        }
        try bye(messenger)
    }

    private static func bye(_ messenger: MPIMessenger) throws {
        MPICopyState.mark("stop received")
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
            case .steal:
                // A rank set up before this one asks for work: the walk has not begun.
                try messenger.send([], to: message.source, tag: MPICopyTag.noWork.rawValue)
            default:
                try fatal(messenger, "expected the setup, got \(MPICopyWire.describe(message))")
                try awaitStop(messenger)
                return 1
            }
        }
        MPICopyState.mark("setup received")
        let setup: MPICopySetup
        do throws(MPIMessageError) {
            setup = try MPIInbound.setup(setupMessage?.bytes ?? [], from: setupMessage?.source ?? 0)
        } catch {
            try fatal(messenger, "got \(error)")
            try awaitStop(messenger)
            return 1
        }
        var options = setup.options
        options.jobs = jobs
        options.workers = workers
        let performer = Performer(options: options)
        let problem = check(setup.roots, rank0: setup.host)
        performer.resolver.register(setup.roots)
        // Leftovers of killed runs of this rank's boot and pid namespace, where rank 0 looked for
        // its own: rank 0 cannot judge them (their pids mean nothing there). Done before `ready`,
        // so before this rank takes any work; this run's own temporaries are of live processes.
        if problem == nil, let place = performer.namespaceTag, place != setup.place {
            LeftoverSweep.sweep(setup.sweeps, place: place, performer.resolver)
            MPICopyState.mark("leftovers swept")
        }
        let ready = try WireEncoder().encode(MPICopyReady(workers: jobs, host: MPICopyState.host, problem: problem))
        try messenger.send(ready, to: 0, tag: MPICopyTag.ready.rawValue)
        if problem != nil {
            try awaitStop(messenger)
            return 0
        }

        let walk = try RankWalk(rank: MPICopyState.rank, size: MPICopyState.size, performer: performer)
        let pool: any WorkerPool & Sendable
        var processes: ProcessPool?
        if workers == .threads {
            pool = ThreadPool(jobs: jobs, performer: performer)
        } else {
            let p = ProcessPool(jobs: jobs, options: options, performer: performer)
            processes = p
            pool = p
        }
        let driver = MPIWalkDriver(messenger: messenger, walk: walk, performer: performer, cancelWorkers: { [processes] in processes?.cancel() })
        try driver.startPool(pool)
        let status: Int32
        do {
            status = try driver.runServing()
        } catch let error as MPCopyError {
            // A message this rank cannot use: rank 0 is told, and stops the job.
            performer.cancelled.store(true, ordering: .relaxed)
            processes?.cancel()
            walk.wakeAll()
            driver.stopPool()
            try fatal(messenger, error.message)
            try awaitStop(messenger)
            return 1
        }
        try bye(messenger)
        return status
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
        MPICopyState.mark("release")
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
