#if MPI
import Multiprocessing
import MultiprocessingMPI
import MultiprocessingSystem
import Synchronization
import SystemPackage

// mpcp across MPI ranks (`mpirun -n N mpcp --mpi SRC DST`, issue 17). Rank 0 runs mpcp's front end
// as on one host: the operand checks, the staging and the resume markers, the output; its pool is
// `MPIWorkerPool`, which sends every rank the setup and then runs the distributed walk
// (MPIWalk.swift, MPIWalkDriver.swift) with its Scheduler keeping only the roots and the totals.
// Ranks 1 ... N-1 (`MPICopyRank`) receive the job's options and roots, check that they see the
// same trees, and take part in the walk with the same Performer on their own threads or processes
// (`-j`, `--workers`). Every message is one MPIMessenger byte message on a communicator of its own
// (a duplicate of the world), so nothing else's tags can meet it.

/// The messages of mpcp's MPI protocol, by tag.
internal enum MPICopyTag: Int, CaseIterable {
    /// 0 → rank: ``MPICopySetup``, the first message a serving rank gets.
    case setup = 1
    /// rank → 0: ``MPICopyReady``, the answer to the setup.
    case ready = 2
    /// 0 → rank: an item id (8 bytes, little-endian) and the WorkItem in the wire codec.
    case item = 3
    /// rank → 0: the item's id and its WorkResult.
    case result = 4
    /// Either way, empty: the copy is cancelled (a signal reached the sender).
    case cancel = 5
    /// 0 → rank, empty: no more items; finish what you hold, say bye and exit.
    case stop = 6
    /// rank → 0, empty: stopped; the rank finalizes MPI next.
    case bye = 7
    /// rank → 0: UTF-8 text, a message the rank cannot go on after (a malformed message).
    case fatal = 8
    // The distributed walk (MPIWalkDriver.swift).
    /// rank → rank, empty: a rank whose queue ran dry asks for work.
    case steal = 9
    /// rank → rank: `[WorkItem]`, half the victim's queue (a basic message of the token's count).
    case work = 10
    /// rank → rank, empty: the victim had nothing to give.
    case noWork = 11
    /// rank → rank: `[HardLinkName]`, names of multiply-linked files for their inode's owner (basic).
    case hardLink = 12
    /// rank → rank: a large file's id (8 bytes) and the WorkResult of one of its chunks, for the
    /// rank that owns the file (basic).
    case chunkDone = 13
    /// rank → next rank: the termination token (8 bytes of its count, 1 byte black or white).
    case token = 14
    /// rank → 0: ``RankProgress`` since the last one.
    case progress = 15
    /// 0 → rank, empty: the walk has ended everywhere; answer with `depth`.
    case walkDone = 16
    /// rank → 0: the deepest level of the rank's directories (8 bytes, -1 for none).
    case depth = 17
    /// 0 → rank: apply the metadata of your directories at this level (8 bytes); answer `levelDone`.
    case level = 18
    /// rank → 0, 8 bytes: done with that level.
    case levelDone = 19
    /// rank → 0, empty: after a cancellation, this rank's workers have stopped.
    case drained = 20
    /// 0 → rank, empty: nobody copies any more; remove your unfinished temporaries and send `final`.
    case cleanup = 21
    /// rank → 0: the last ``RankProgress`` and the rank's ``RankStats``.
    case final = 22
}

/// What rank 0 tells every serving rank before the first item.
internal struct MPICopySetup: Codable, Sendable {
    /// The options of the copy as rank 0 parsed them (a rank keeps its own `jobs` and `workers`).
    var options: CopyOptions
    /// The roots every item's paths lie beneath, with the device and inode rank 0 found: a rank
    /// that finds anything else there does not see the same file system.
    var roots: TreeRoots
    /// Rank 0's host, for messages.
    var host: String
    /// Rank 0's boot and pid namespace (``Performer/namespaceTag``), nil if it could not tell.
    var place: UInt64?
    /// The directories rank 0 swept for leftover temporaries of its namespace before the copy: a
    /// serving rank whose namespace is another sweeps them for its own (``LeftoverSweep``).
    var sweeps: [LeftoverSweep.Directory]
}

/// A serving rank's answer to the setup.
internal struct MPICopyReady: Codable, Sendable {
    var workers: Int
    var host: String
    /// Why this rank cannot take part (it does not see the trees as rank 0 does).
    var problem: String?
}

/// The framing of item and result messages: an 8-byte little-endian id, then the wire codec's bytes.
internal enum MPICopyWire {
    static func frame<T: Encodable>(_ id: UInt64, _ value: T) throws -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: id >> UInt64(shift))) }
        try WireEncoder().encode(value, into: &bytes)
        return bytes
    }

    /// The id of a framed message, or nil when it is shorter than an id.
    static func id(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= 8 else { return nil }
        var id: UInt64 = 0
        for index in 0..<8 { id |= UInt64(bytes[index]) << UInt64(8 * index) }
        return id
    }

    static func body<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { raw in try WireDecoder().decode(T.self, from: UnsafeRawBufferPointer(rebasing: raw[8...])) }
    }

    /// Words for a message of an unexpected tag.
    static func describe(_ message: MPIMessage) -> String {
        let name = MPICopyTag(rawValue: message.tag).map { "\($0)" } ?? "unknown"
        return "tag \(message.tag) (\(name)), \(message.bytes.count) bytes, from rank \(message.source)"
    }
}

/// The MPI state of this process, touched only by the thread that initialized MPI (the main thread).
internal enum MPICopyState {
    nonisolated(unsafe) static var messenger: MPIMessenger?
    nonisolated(unsafe) static var rank = 0
    nonisolated(unsafe) static var size = 1
    nonisolated(unsafe) static var host = ""
    /// Rank 0 sent stop to the serving ranks and had their byes.
    nonisolated(unsafe) static var released = false
    /// A signal reached this serving rank (set from the signal thread).
    static let interrupted = Atomic<Bool>(false)

    /// `MPCP_MPI_TRACE` is set: each rank prints its timeline (``mark(_:)``) when it finalizes.
    static let tracing = system_environmentHas("MPCP_MPI_TRACE")
    nonisolated(unsafe) static var marks: [(label: String, at: Int64)] = []

    /// Notes when this rank reached a point of its life (wall clock), for `MPCP_MPI_TRACE`.
    static func mark(_ label: String) {
        if tracing { marks.append((label, system_clockRealtimeNanoseconds())) }
    }

    /// The timeline, one line: each point's wall-clock time in ms (modulo 100 s) and the ms since the one before.
    static func printTimeline() {
        guard tracing, let first = marks.first else { return }
        var text = "mpcp --mpi trace: rank \(rank) timeline (ms):"
        var previous = first.at
        for mark in marks {
            let at = Double(mark.at % 100_000_000_000) / 1e6
            text += " \(mark.label) @\(Int(at.rounded())) (+\(Double((mark.at - previous) / 10_000) / 100));"
            previous = mark.at
        }
        Array((text + "\n").utf8).withUnsafeBytes { b in _ = try? system_writeAll(systemStderr, b) }
    }
}

/// Rank 0's pool: the Scheduler's items go to the serving ranks over MPI.
internal struct MPIWorkerPool: WorkerPool {
    /// The pool a job of one rank (`-n 1`, or no mpirun) runs on instead.
    let local: any WorkerPool
    let performer: Performer
    let options: CopyOptions
    /// What rank 0 swept for leftovers (``MPICopySetup/sweeps``).
    let sweeps: [LeftoverSweep.Directory]

    func run(_ source: any WorkSource) throws(MPCopyError) {
        guard MPICopyState.size > 1, let scheduler = source as? Scheduler, let messenger = MPICopyState.messenger else {
            try local.run(source)
            return
        }
        do {
            try coordinate(scheduler, messenger)
        } catch let error as MPCopyError {
            throw error
        } catch {
            throw MPCopyError(.workers, "--mpi: an MPI call failed on rank 0: \(error)")
        }
    }

    private struct Rank {
        var workers = 1
        var host = "?"
        var inFlight = 0
    }

    private func coordinate(_ scheduler: Scheduler, _ messenger: MPIMessenger) throws {
        let size = MPICopyState.size
        let setup = try WireEncoder().encode(MPICopySetup(options: options, roots: performer.resolver.roots, host: MPICopyState.host,
                                                                  place: performer.namespaceTag, sweeps: sweeps))
        for rank in 1..<size { try messenger.send(setup, to: rank, tag: MPICopyTag.setup.rawValue) }
        MPICopyState.mark("setup sent")

        var ranks = [Rank](repeating: Rank(), count: size)
        var ready = 0
        var problems: [String] = []
        var idle = 0
        while ready < size - 1 {
            guard let message = try messenger.receive() else { MPIWorkerPool.pause(&idle); continue }
            idle = 0
            switch MPICopyTag(rawValue: message.tag) {
            case .ready:
                let answer: MPICopyReady
                do throws(MPIMessageError) { answer = try MPIInbound.ready(message.bytes, from: message.source) } catch {
                    throw MPCopyError(.workers, "--mpi: rank 0 got \(error)")
                }
                guard ranks[message.source].host == "?" else {
                    throw MPCopyError(.workers, "--mpi: rank 0 got a second `ready` from rank \(message.source) (one answer per setup)")
                }
                ready += 1
                ranks[message.source].workers = max(1, answer.workers)
                ranks[message.source].host = answer.host
                if let problem = answer.problem { problems.append("rank \(message.source) on host \(answer.host): \(problem)") }
            case .cancel:
                performer.cancelled.store(true, ordering: .relaxed)
            case .steal:
                // A rank that is set up asks for work before the walk has begun: none yet.
                try messenger.send([], to: message.source, tag: MPICopyTag.noWork.rawValue)
            case .fatal:
                throw MPCopyError(.workers, "--mpi: rank \(message.source): \(String(decoding: message.bytes, as: UTF8.self))")
            default:
                throw MPCopyError(.workers, "--mpi: rank 0 got an unexpected message during the setup: \(MPICopyWire.describe(message))")
            }
        }
        if !problems.isEmpty {
            throw MPCopyError(.usage, "--mpi: every rank must see the same file system at the same paths (a shared file system, and mpirun starting each rank in the same directory):\n  "
                              + problems.joined(separator: "\n  "))
        }

        MPICopyState.mark("all ready")
        // The distributed walk: this rank seeds its queue with the roots; every rank (this one
        // too, on its own workers) takes part, stealing from the others when it runs dry.
        let walk = try RankWalk(rank: 0, size: size, performer: performer)
        for root in scheduler.takeRoots() { walk.add(root) }
        let processes = local as? ProcessPool
        let driver = MPIWalkDriver(messenger: messenger, walk: walk, performer: performer, cancelWorkers: { processes?.cancel() })
        if let processes {
            try driver.startPool(processes)
        } else {
            try driver.startPool(ThreadPool(jobs: options.jobs, performer: performer))
        }
        let stats: [RankStats]
        do {
            stats = try driver.runRoot(scheduler)
        } catch {
            performer.cancelled.store(true, ordering: .relaxed)
            processes?.cancel()
            walk.wakeAll()
            driver.stopPool()
            throw error
        }
        MPICopyState.mark("walk and finals done")
        if system_environmentHas("MPCP_MPI_TRACE") {
            var text = ""
            for (rank, s) in stats.enumerated() {
                text += "mpcp --mpi trace: rank \(rank): scans \(s.scans) batches \(s.batches) files \(s.files) chunks \(s.chunks) steals asked \(s.stealsAsked) got \(s.stealsGot) items got \(s.itemsGot) gave \(s.stealsGiven) items given \(s.itemsGiven)\n"
            }
            Array(text.utf8).withUnsafeBytes { b in _ = try? system_writeAll(systemStderr, b) }
        }
        try MPICopyRank.release(messenger)
    }

    /// Waiting for a message: probe again at once 64 times, then sleep from 20 µs doubling to
    /// 250 µs (a probe costs about a microsecond, so 4,000 probes a second cost an idle rank
    /// little, and an item's result is answered within a quarter of a millisecond).
    static func pause(_ idle: inout Int) {
        idle += 1
        if idle <= 64 { return }
        system_sleep(nanoseconds: sleepNanoseconds(idle))
    }

    static func sleepNanoseconds(_ idle: Int) -> Int64 {
        Int64(min(10_000 << min(idle - 64, 5), 250_000))
    }
}
#endif
