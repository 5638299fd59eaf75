#if MPI
import Multiprocessing
import MultiprocessingMPI
import MultiprocessingSystem
import Synchronization
import SystemPackage

/// The MPI thread of one rank in the distributed walk: it feeds the rank's ``RankWalk`` with work
/// from peers, sends what the walk has for others, and finds the end.
///
/// - **Stealing** (libcircle's scheme): a rank with nothing queued asks a random peer (`steal`);
///   the peer answers with half its queue (`work`) or `noWork`, and the thief asks again after a
///   pause that doubles up to a millisecond.
/// - **Termination** (Dijkstra–Safra, EWD 998): each rank counts the basic messages (`work`,
///   `hardLink`, `chunkDone`: those that can give a rank work) it sent less those it received,
///   and turns black when it receives one. A token goes round the ring 0 → 1 → … → N−1 → 0; a
///   rank passes it on only when passive (nothing queued, nothing performed, nothing to send),
///   adding its count and its colour, and turns white. Back at rank 0, the walk is over when rank
///   0 is passive and white, the token white, and the counts sum to zero: no rank is working and
///   no message that could make one work is in flight. Otherwise rank 0 starts another round.
/// - **After the walk**, rank 0 calls the levels of directories from the deepest: every rank
///   applies the metadata of its directories of that level and answers; the next level starts
///   when all have. Then every rank sends its last totals (`final`).
/// - **A cancellation** (a signal on any rank) is told to every rank; each stops its workers and
///   says `drained`; when all have, rank 0 has every rank remove its unfinished temporaries (no
///   chunk is being written into them any more) and send its totals.
internal final class MPIWalkDriver {
    private let messenger: MPIMessenger
    private let walk: RankWalk
    private let rank: Int
    private let size: Int
    private let performer: Performer
    private let cancelWorkers: @Sendable () -> Void

    private var counter: Int64 = 0
    private var black = false
    private var token: (count: Int64, black: Bool)?
    private var roundOut = false
    private var walking = true
    private var stealOutstanding = false
    private var gotWork = false
    private var stealBackoff: Int64 = 0
    private var nextStealAt: Int64 = 0
    private var cancelSent = false
    private var lastProgress: Int64 = 0
    /// Checks every message before it is used (MPIMessageCheck.swift).
    private let inbound: MPIInbound
    /// What rank 0 has been told so far, bounded so that its totals cannot overflow.
    private var totals = MPIInbound.Totals()
    private final class PoolState: Sendable {
        let ended = Atomic<Bool>(false)
        let failure = Mutex<MPCopyError?>(nil)
    }
    private let poolState = PoolState()
    private var poolThread: OSThread?

    init(messenger: MPIMessenger, walk: RankWalk, performer: Performer, cancelWorkers: @escaping @Sendable () -> Void) {
        self.messenger = messenger
        self.walk = walk
        self.rank = walk.rank
        self.size = walk.size
        self.performer = performer
        self.cancelWorkers = cancelWorkers
        inbound = MPIInbound(rank: walk.rank, size: walk.size, roots: performer.resolver.roots, chunkSize: performer.options.chunkSize)
    }

    /// Starts the rank's local pool on a thread of its own; it runs until the walk stops it.
    func startPool(_ pool: any WorkerPool & Sendable) throws {
        let walk = self.walk
        let state = poolState
        poolThread = try startThread("mpcp-rank-pool", daemon: false) {
            do throws(MPCopyError) { try pool.run(walk) } catch { state.failure.withLock { $0 = error } }
            state.ended.store(true, ordering: .releasing)
            try? walk.wake.release()
        }
    }

    /// Stops the local pool and waits for it.
    func stopPool() {
        walk.stop()
        try? poolThread?.join()
        poolThread = nil
    }

    // MARK: sending

    private func sendBasic(_ bytes: [UInt8], to: Int, _ tag: MPICopyTag) throws {
        counter += 1
        try messenger.send(bytes, to: to, tag: tag.rawValue)
    }

    private func received() {
        counter -= 1
        black = true
    }

    private func flushOutbox() throws -> Bool {
        let out = walk.takeOutbox()
        for message in out { try sendBasic(message.bytes, to: message.to, message.tag) }
        return !out.isEmpty
    }

    private func cancelLocally() {
        performer.cancelled.store(true, ordering: .relaxed)
        cancelWorkers()
        walk.wakeAll()
    }

    /// Tells every other rank once that the copy is cancelled.
    private func broadcastCancel() throws {
        guard !cancelSent else { return }
        cancelSent = true
        for other in 0..<size where other != rank { try messenger.send([], to: other, tag: MPICopyTag.cancel.rawValue) }
    }

    private static func int64(_ value: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> Int64(8 * $0)) }
    }

    /// What a step of the loop did, for the wait.
    private struct Step { var busy = false }

    /// A message's tag, checked against its sender and size (MPIInbound.tag).
    private func tag(of message: MPIMessage) throws(MPCopyError) -> MPICopyTag {
        try checked { () throws(MPIMessageError) in try inbound.tag(message.tag, from: message.source, byteCount: message.bytes.count) }
    }

    /// The value a check decodes, or the job's error naming the message and its problem.
    private func checked<T>(_ body: () throws(MPIMessageError) -> T) throws(MPCopyError) -> T {
        do throws(MPIMessageError) { return try body() } catch {
            throw MPCopyError(.workers, rank == 0 ? "--mpi: rank 0 got \(error)" : "got \(error)")
        }
    }

    /// A message that is well formed but comes when the protocol has no place for it.
    private func outOfTurn(_ message: MPIMessage, _ problem: String) -> MPCopyError {
        let error = MPIMessageError(tag: message.tag, source: message.source, byteCount: message.bytes.count, problem: problem)
        return MPCopyError(.workers, rank == 0 ? "--mpi: rank 0 got \(error)" : "got \(error)")
    }

    /// The parts of a message every rank handles alike; false for a tag the caller handles.
    private func handleCommon(_ message: MPIMessage, _ tag: MPICopyTag, _ step: inout Step) throws -> Bool {
        switch tag {
        case .steal:
            let items = walking && !performer.isCancelled ? walk.split() : []
            if items.isEmpty {
                try messenger.send([], to: message.source, tag: MPICopyTag.noWork.rawValue)
            } else {
                try sendBasic(try WireEncoder().encode(items), to: message.source, .work)
            }
        case .work:
            received()
            stealOutstanding = false
            stealBackoff = 0
            let items = try checked { () throws(MPIMessageError) in try inbound.work(message.bytes, from: message.source) }
            if !performer.isCancelled { walk.take(items) }
            if !gotWork { gotWork = true; MPICopyState.mark("first work") }
        case .noWork:
            stealOutstanding = false
            stealBackoff = min(max(stealBackoff * 2, 20_000), 1_000_000)
            nextStealAt = system_clockMonotonicNanoseconds() + stealBackoff
        case .hardLink:
            received()
            let names = try checked { () throws(MPIMessageError) in try inbound.hardLinks(message.bytes, from: message.source) }
            if !performer.isCancelled { walk.accept(names) }
        case .chunkDone:
            received()
            let done = try checked { () throws(MPIMessageError) in try inbound.chunkDone(message.bytes, from: message.source) }
            // After a cancellation, a result may come after the file's temporary was removed.
            if !walk.acceptChunk(large: done.large, done.result) && !performer.isCancelled {
                throw outOfTurn(message, "the large file \(done.large) is none this rank has chunks of out (every chunk's result came back already, or none was sent)")
            }
        case .token:
            let held = try checked { () throws(MPIMessageError) in try inbound.token(message.bytes, from: message.source) }
            guard token == nil else { throw outOfTurn(message, "a second token while this rank holds one (there is one token)") }
            if rank == 0 && !roundOut { throw outOfTurn(message, "a token while rank 0 has none out") }
            token = held
        case .cancel:
            cancelLocally()
        default:
            return false
        }
        step.busy = true
        return true
    }

    /// Steals when nothing is queued here, and passes the token on when passive.
    private func walkStep(_ step: inout Step) throws {
        guard walking, !performer.isCancelled else { return }
        if size > 1, !stealOutstanding, walk.isHungry {
            let now = system_clockMonotonicNanoseconds()
            if now >= nextStealAt {
                var victim = Int(system_randomUInt64() % UInt64(size - 1))
                if victim >= rank { victim += 1 }
                try messenger.send([], to: victim, tag: MPICopyTag.steal.rawValue)
                walk.countSteal()
                stealOutstanding = true
                step.busy = true
            }
        }
        guard walk.isPassive else { return }
        let next = (rank + 1) % size
        if rank == 0 {
            if let held = token {
                token = nil
                roundOut = false
                if !black && !held.black && held.count + counter == 0 {
                    walking = false
                    return
                }
            }
            if !roundOut {
                black = false
                roundOut = true
                try messenger.send(MPIWalkDriver.int64(0) + [0], to: next, tag: MPICopyTag.token.rawValue)
                step.busy = true
            }
        } else if let held = token {
            token = nil
            try messenger.send(MPIWalkDriver.int64(held.count + counter) + [held.black || black ? 1 : 0], to: next, tag: MPICopyTag.token.rawValue)
            black = false
            step.busy = true
        }
    }

    private func pause(_ step: Step, _ idle: inout Int) {
        if step.busy { idle = 0; return }
        idle += 1
        if idle > 64 {
            _ = try? walk.wake.acquire(timeout: .nanoseconds(MPIWorkerPool.sleepNanoseconds(idle)))
            while walk.wake.tryAcquire() {}
        }
    }

    private func progressDue() -> Bool {
        let now = system_clockMonotonicNanoseconds()
        guard now - lastProgress >= 100_000_000 else { return false }
        lastProgress = now
        return true
    }

    // MARK: rank 0

    /// Rank 0: runs the walk to its end (or its cancellation) and merges every rank's totals into
    /// `scheduler`. Returns each rank's stats.
    func runRoot(_ scheduler: Scheduler) throws -> [RankStats] {
        var stats = [RankStats](repeating: RankStats(), count: size)
        func record(_ progress: RankProgress, local: Bool) {
            scheduler.record(progress.result)
            scheduler.addProgress(filesDone: progress.filesDone, filesFound: progress.filesFound, bytesFound: progress.bytesFound)
            if !local { performer.bytesDone.add(progress.bytesDone, ordering: .relaxed) }
        }
        enum Phase { case walk, depths, level(Int), drain, finals }
        var phase = Phase.walk
        var answered = Set<Int>()
        // Kept apart from `answered`, in any phase: a rank that cancels says `drained` right
        // after `cancel`, and both can arrive in one pass of the loop below, before this rank
        // has moved to the drain phase (counted as an answer then, it was dropped, and rank 0
        // waited for it for ever).
        var drained = Set<Int>()
        var deepest = -1
        var levelQueued = false
        var idle = 0
        while true {
            var step = Step()
            if let error = poolState.failure.withLock({ $0 }) { throw error }
            if performer.isCancelled {
                cancelLocally()
                try broadcastCancel()
                switch phase {
                case .walk, .depths, .level:
                    phase = .drain
                    answered = []
                default: break
                }
            }
            if try flushOutbox() { step.busy = true }
            while let message = try messenger.receive() {
                let tag = try tag(of: message)
                if try handleCommon(message, tag, &step) { continue }
                step.busy = true
                let source = message.source
                switch tag {
                case .progress:
                    let progress = try checked { () throws(MPIMessageError) in
                        let progress = try inbound.progress(message.bytes, from: source)
                        try totals.add(progress, tag: tag, from: source, byteCount: message.bytes.count)
                        return progress
                    }
                    record(progress, local: false)
                case .depth:
                    let depth = try checked { () throws(MPIMessageError) in try inbound.depth(message.bytes, from: source) }
                    if case .depths = phase {
                        guard answered.insert(source).inserted else { throw outOfTurn(message, "a second depth from this rank") }
                        deepest = max(deepest, depth)
                    } else if !performer.isCancelled {
                        throw outOfTurn(message, "a depth before the walk has ended")
                    }
                case .levelDone:
                    let level = try checked { () throws(MPIMessageError) in try inbound.levelDone(message.bytes, from: source) }
                    if case .level(let depth) = phase {
                        guard level == depth else { throw outOfTurn(message, "the end of level \(level) while level \(depth) is being applied") }
                        guard answered.insert(source).inserted else { throw outOfTurn(message, "a second end of level \(level) from this rank") }
                    } else if !performer.isCancelled {
                        throw outOfTurn(message, "the end of level \(level) while no level is being applied")
                    }
                case .drained:
                    guard performer.isCancelled else { throw outOfTurn(message, "`drained` while the copy is not cancelled") }
                    drained.insert(source)
                case .final:
                    guard case .finals = phase else { throw outOfTurn(message, "a rank's last totals before rank 0 asked for them") }
                    let final = try checked { () throws(MPIMessageError) in
                        let final = try inbound.final(message.bytes, from: source)
                        try totals.add(final.progress, tag: tag, from: source, byteCount: message.bytes.count)
                        return final
                    }
                    guard answered.insert(source).inserted else { throw outOfTurn(message, "a second `final` from this rank") }
                    record(final.progress, local: false)
                    stats[source] = final.stats
                case .fatal:
                    throw MPCopyError(.workers, "--mpi: rank \(source): \(String(decoding: message.bytes.prefix(65_536), as: UTF8.self))")
                default:
                    throw outOfTurn(message, "rank 0 has no use for this message during the walk")
                }
            }
            if progressDue() { record(walk.takeProgress(), local: true) }
            switch phase {
            case .walk:
                try walkStep(&step)
                if !walking {
                    MPICopyState.mark("walk ended")
                    scheduler.externalWalkFinished()
                    for other in 1..<size { try messenger.send([], to: other, tag: MPICopyTag.walkDone.rawValue) }
                    deepest = walk.deepestLevel
                    answered = []
                    phase = .depths
                    step.busy = true
                }
            case .depths:
                if answered.count == size - 1 {
                    answered = []
                    if deepest >= 0 {
                        phase = .level(deepest)
                        levelQueued = false
                    } else {
                        phase = .finals
                        for other in 1..<size { try messenger.send([], to: other, tag: MPICopyTag.cleanup.rawValue) }
                    }
                    step.busy = true
                }
            case .level(let depth):
                if !levelQueued {
                    levelQueued = true
                    for other in 1..<size { try messenger.send(MPIWalkDriver.int64(Int64(depth)), to: other, tag: MPICopyTag.level.rawValue) }
                    walk.queueLevel(depth)
                    step.busy = true
                }
                if answered.count == size - 1 && walk.isPassive {
                    answered = []
                    levelQueued = false
                    if depth > 0 {
                        phase = .level(depth - 1)
                    } else {
                        phase = .finals
                        for other in 1..<size { try messenger.send([], to: other, tag: MPICopyTag.cleanup.rawValue) }
                    }
                    step.busy = true
                }
            case .drain:
                if drained.count == size - 1 && poolState.ended.load(ordering: .acquiring) {
                    walk.removeLeftoverTemporaries()
                    answered = []
                    phase = .finals
                    for other in 1..<size { try messenger.send([], to: other, tag: MPICopyTag.cleanup.rawValue) }
                    step.busy = true
                }
            case .finals:
                if answered.count == size - 1 {
                    stopPool()
                    record(walk.takeProgress(), local: true)
                    stats[0] = walk.stats
                    return stats
                }
            }
            pause(step, &idle)
        }
    }

    // MARK: ranks 1 … N-1

    /// A serving rank: takes part in the walk until rank 0 says stop. Returns the exit status.
    func runServing() throws -> Int32 {
        var drainedSent = false
        var finalSent = false
        var pendingLevel: Int?
        var idle = 0
        while true {
            var step = Step()
            if let error = poolState.failure.withLock({ $0 }) {
                try messenger.send(Array("\(error)".utf8), to: 0, tag: MPICopyTag.fatal.rawValue)
                cancelLocally()
                stopPool()
                try MPICopyRank.awaitStop(messenger)
                return 1
            }
            if MPICopyState.interrupted.load(ordering: .relaxed) && !performer.isCancelled { cancelLocally() }
            if performer.isCancelled {
                try broadcastCancel()
                if !drainedSent && poolState.ended.load(ordering: .acquiring) {
                    drainedSent = true
                    try messenger.send([], to: 0, tag: MPICopyTag.drained.rawValue)
                    step.busy = true
                }
            }
            if try flushOutbox() { step.busy = true }
            var stopping = false
            while let message = try messenger.receive() {
                let tag = try tag(of: message)
                if try handleCommon(message, tag, &step) { continue }
                step.busy = true
                switch tag {
                case .walkDone:
                    MPICopyState.mark("walkDone")
                    walking = false
                    try messenger.send(MPIWalkDriver.int64(Int64(walk.deepestLevel)), to: 0, tag: MPICopyTag.depth.rawValue)
                case .level:
                    let depth = try checked { () throws(MPIMessageError) in try inbound.level(message.bytes, from: message.source) }
                    walk.queueLevel(depth)
                    pendingLevel = depth
                case .cleanup:
                    if performer.isCancelled { walk.removeLeftoverTemporaries() }
                    if !finalSent {
                        finalSent = true
                        let final = RankFinal(progress: walk.takeProgress(), stats: walk.stats)
                        try messenger.send(try WireEncoder().encode(final), to: 0, tag: MPICopyTag.final.rawValue)
                    }
                case .stop:
                    stopping = true
                default:
                    throw outOfTurn(message, "a serving rank has no use for this message during the walk")
                }
                if stopping { break }
            }
            if stopping { break }
            if let depth = pendingLevel, walk.isPassive {
                pendingLevel = nil
                try messenger.send(MPIWalkDriver.int64(Int64(depth)), to: 0, tag: MPICopyTag.levelDone.rawValue)
                step.busy = true
            }
            try walkStep(&step)
            if !finalSent && progressDue() {
                // Only once there is something to say: before the walk begins (rank 0 may still
                // be setting up the others) there is not.
                let progress = walk.takeProgress()
                if !progress.isEmpty { try messenger.send(try WireEncoder().encode(progress), to: 0, tag: MPICopyTag.progress.rawValue) }
            }
            pause(step, &idle)
        }
        // Stopped before the end (rank 0 failed): stop copying as after a signal.
        if !finalSent { cancelLocally() }
        stopPool()
        return 0
    }
}

/// A rank's last message to rank 0.
internal struct RankFinal: Codable, Sendable {
    var progress: RankProgress
    var stats: RankStats
}
#endif
