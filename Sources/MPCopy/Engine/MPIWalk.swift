#if MPI
import Multiprocessing
import MultiprocessingSystem
import SystemPackage

// The distributed walk of mpcp --mpi (issue 17): every rank keeps a queue of its own, and
// `RankWalk` is that queue and the bookkeeping of what the rank owns. Its local workers (threads
// or processes, as on one host) take items from it and complete them here: a scan's
// subdirectories become scans in the same queue, its files batches (or a large file's chunks),
// so a rank that scans a subtree goes on with it without asking anyone. A rank whose queue runs
// dry asks a peer (`MPIWalkDriver`), which gives it half of its queue: scans, batches, chunks.
//
// What must be decided in one place is decided by the rank that owns it:
// - a large file by the rank that found it: its chunks may run on any rank; whoever ran one sends
//   the owner its result, and the owner renames the temporary once every chunk came back;
// - a multiply-linked inode by rank hash(dev, ino) mod N: every name of it found by any rank's scan
//   goes there; the first name is copied there, the others linked to it once it is in place;
// - a directory's metadata by the rank that scanned it, after the walk has ended everywhere,
//   level by level from the deepest, with a barrier between levels (rank 0 calls the levels).

/// A name of a multiply-linked file, sent to the rank that owns its inode.
internal struct HardLinkName: Codable, Sendable {
    var sourceDirectory: FilePath
    var destinationDirectory: FilePath
    var entry: FileEntry
    var inheritsGroup: Bool
    var staged: Bool
    /// Set when `-u` found this name up to date: the destination's inode number there.
    var upToDateInode: UInt64?
}

/// What a rank reports to rank 0 as it goes: totals since its last report.
internal struct RankProgress: Codable, Sendable {
    var result = WorkResult()
    var filesDone = 0
    var filesFound = 0
    var bytesFound: Int64 = 0
    var bytesDone: Int64 = 0

    /// Nothing to report.
    var isEmpty: Bool {
        filesDone == 0 && filesFound == 0 && bytesFound == 0 && bytesDone == 0 && result.files == 0 && result.bytes == 0
            && result.directories == 0 && result.symlinks == 0 && result.hardLinks == 0 && result.skipped == 0
            && result.excluded == 0 && result.failures.isEmpty && result.copied.isEmpty
    }
}

/// What each rank did, for `MPCP_MPI_TRACE` (the tests read it: the walk is spread over ranks).
internal struct RankStats: Codable, Sendable {
    var scans = 0
    var batches = 0
    var chunks = 0
    var files = 0
    var stealsAsked = 0
    var stealsGot = 0
    var itemsGot = 0
    var stealsGiven = 0
    var itemsGiven = 0
}

/// One rank's share of a distributed walk: its queue, its large files and inodes, its
/// directories' metadata by depth, and what it has to tell others. Thread-safe.
internal final class RankWalk: WorkSource, @unchecked Sendable {
    let rank: Int
    let size: Int
    let performer: Performer
    private var options: CopyOptions { performer.options }
    /// Released when a worker completes an item, so that the MPI thread stops sleeping.
    let wake: Semaphore

    // Guarded by `monitor`.
    private let monitor = ThreadMonitor()
    /// Only this rank performs these: hard links, the first copies of multiply-linked inodes,
    /// large files' renames, directories' metadata.
    private var local: [WorkItem] = []
    /// Scans: taken last-in first-out here (depth first), given away from the front (the oldest,
    /// nearest the root, which have the most under them).
    private var scans: [WorkItem] = []
    /// Batches and chunks, taken in order here, given away from the back.
    private var bulk: [WorkItem] = []
    private var bulkHead = 0
    private var inFlight = 0
    private var workInFlight = WorkInFlight()
    private var stopped = false
    private var nextDirectory = 0

    private struct Large {
        var remaining: Int
        var failed: Bool
        var finish: LargeFinishItem
        var temporary: FilePath
    }
    private var larges: [Int: Large] = [:]
    private var nextLarge = 0
    private var temporarySequence: UInt64 = 0

    private struct InodeKey: Hashable { var dev: UInt64; var ino: UInt64 }
    private struct Inode {
        var leader: FilePath
        var done: Bool
        var waiters: [LinkItem]
        var destinationInode: UInt64? = nil
    }
    private var inodes: [InodeKey: Inode] = [:]
    private var leaders: [FilePath: InodeKey] = [:]

    private var finishes: [Int: [WorkItem]] = [:]
    /// Messages for other ranks, sent by the MPI thread: names of multiply-linked files for their
    /// inode's owner, chunk results for their file's owner. Both carry work (counted by the token).
    private var outbox: [(to: Int, tag: MPICopyTag, bytes: [UInt8])] = []
    private var progress = RankProgress()
    private(set) var stats = RankStats()

    init(rank: Int, size: Int, performer: Performer) throws {
        self.rank = rank
        self.size = size
        self.performer = performer
        wake = try Semaphore(0)
    }

    // MARK: seeding (rank 0)

    func add(_ root: Scheduler.KeptRoot) {
        monitor.withLock {
            switch root {
            case .directory(let source, let destination, let staged, let createDestination):
                scans.append(.scan(ScanItem(node: 0, source: source, destination: destination, relative: FilePath(),
                                            createDestination: createDestination, staged: staged)))
            case .file(let sourceDirectory, let destinationDirectory, let entry):
                // setGID stays true (unknown): the owner is always set for an operand file.
                distribute([entry], source: sourceDirectory, destination: destinationDirectory, setGID: true, staged: false)
            }
            monitor.broadcast()
        }
    }

    // MARK: the local workers

    func next() -> WorkItem? {
        monitor.lock()
        defer { monitor.unlock() }
        while true {
            if performer.isCancelled { return nil }
            if let item = local.popLast() ?? scans.popLast() {
                // Counted on every take: an item given back comes here and must count again.
                workInFlight.add(item)
                inFlight += 1
                return item
            }
            if bulkHead < bulk.count {
                workInFlight.preferWorkThatDoesNotCollide(in: &bulk, head: bulkHead)
                let item = bulk[bulkHead]
                bulkHead += 1
                if bulkHead > 4096 && bulkHead * 2 > bulk.count {
                    bulk.removeFirst(bulkHead)
                    bulkHead = 0
                }
                workInFlight.add(item)
                inFlight += 1
                return item
            }
            if stopped { return nil }
            monitor.wait()
        }
    }

    func giveBack(_ item: WorkItem) {
        monitor.withLock {
            inFlight -= 1
            workInFlight.remove(item)
            local.append(item)
            monitor.signal()
        }
        try? wake.release()
    }

    func complete(_ item: WorkItem, _ result: WorkResult) {
        monitor.withLock {
            inFlight -= 1
            workInFlight.remove(item)
            let before = queued
            switch item {
            case .scan(let scan):
                stats.scans += 1
                merge(result)
                completeScan(scan, result)
            case .files(let batch):
                stats.batches += 1
                stats.files += batch.entries.count
                merge(result)
                progress.filesDone += batch.entries.count
                if !leaders.isEmpty {
                    for (index, entry) in batch.entries.enumerated() where entry.stat.nlink > 1 {
                        let done = index < result.entryDone.count && result.entryDone[index]
                        settleLeader(batch.destinationDirectory.appending(entry.targetName), done: done)
                    }
                }
            case .chunk(let chunk):
                stats.chunks += 1
                // The bytes count here, where they were copied; the failures where the file is owned.
                var counted = result
                counted.failures = []
                counted.cancelled = false
                merge(counted)
                let owner = chunk.large & 0xFFFF
                if owner == rank {
                    chunkDone(chunk.large, result)
                } else {
                    var report = WorkResult()
                    report.failures = result.failures
                    report.cancelled = result.cancelled
                    if let bytes = try? MPICopyWire.frame(UInt64(chunk.large), report) {
                        outbox.append((owner, .chunkDone, bytes))
                    }
                }
            case .finishLarge(let finish):
                merge(result)
                progress.filesDone += 1
                if let large = larges.removeValue(forKey: finish.large), result.entryDone.first != true {
                    try? performer.resolver.unlink(large.temporary, .destination)
                }
                settleLeader(finish.destinationDirectory.appending(finish.entry.targetName), done: result.entryDone.first == true)
            case .link:
                merge(result)
                progress.filesDone += 1
            case .finishDirectory:
                merge(result)
            }
            let after = queued
            if after > before + 1 { monitor.broadcast() } else if after > before { monitor.signal() }
        }
        try? wake.release()
    }

    // MARK: the MPI thread

    /// Items queued that no worker has taken.
    private var queued: Int { local.count + scans.count + bulk.count - bulkHead }

    /// Nothing queued, nothing being performed, nothing to send: passive, for the token.
    var isPassive: Bool { monitor.withLock { queued == 0 && inFlight == 0 && outbox.isEmpty } }

    /// Nothing queued that another rank could take or that a worker will take soon: time to steal.
    var isHungry: Bool { monitor.withLock { queued == 0 } }

    /// Half of what is queued and may run anywhere, for a rank that asked (at least one item when
    /// there is one).
    func split() -> [WorkItem] {
        monitor.withLock {
            var given: [WorkItem] = []
            let available = scans.count + bulk.count - bulkHead
            guard available > 0 else { return given }
            let scanShare = (scans.count + 1) / 2
            given += scans.prefix(scanShare)
            scans.removeFirst(scanShare)
            let bulkCount = bulk.count - bulkHead
            let bulkShare = scanShare > 0 ? bulkCount / 2 : (bulkCount + 1) / 2
            if bulkShare > 0 {
                given += bulk.suffix(bulkShare)
                bulk.removeLast(bulkShare)
            }
            stats.stealsGiven += 1
            stats.itemsGiven += given.count
            return given
        }
    }

    /// Items another rank gave this one.
    func take(_ items: [WorkItem]) {
        monitor.withLock {
            stats.stealsGot += 1
            stats.itemsGot += items.count
            for item in items {
                switch item {
                case .scan: scans.append(item)
                case .files, .chunk: bulk.append(item)
                default: local.append(item) // not given away; kept for safety
                }
            }
            monitor.broadcast()
        }
    }

    func countSteal() { monitor.withLock { stats.stealsAsked += 1 } }

    /// A name of a multiply-linked file whose inode this rank owns.
    func accept(_ names: [HardLinkName]) {
        monitor.withLock {
            for name in names { acceptLinked(name) }
            monitor.broadcast()
        }
    }

    /// The result of a chunk of a large file this rank owns, copied on another rank. False when
    /// this rank has no record of the file (a result that no chunk of it sent, or one that comes
    /// after a cancellation removed the file's temporary).
    @discardableResult
    func acceptChunk(large: Int, _ result: WorkResult) -> Bool {
        monitor.withLock {
            guard larges[large] != nil else { return false }
            chunkDone(large, result)
            monitor.broadcast()
            return true
        }
    }

    func takeOutbox() -> [(to: Int, tag: MPICopyTag, bytes: [UInt8])] {
        monitor.withLock {
            defer { outbox = [] }
            return outbox
        }
    }

    /// The totals since the last call, with this rank's bytes copied so far.
    func takeProgress() -> RankProgress {
        monitor.withLock {
            var taken = progress
            progress = RankProgress()
            let bytes = performer.bytesDone.load(ordering: .relaxed)
            taken.bytesDone = bytes - reportedBytes
            reportedBytes = bytes
            return taken
        }
    }
    private var reportedBytes: Int64 = 0

    /// The deepest level of this rank's directories, or -1 when it has none.
    var deepestLevel: Int { monitor.withLock { finishes.keys.max() ?? -1 } }

    /// Queues the metadata of this rank's directories at `depth`.
    func queueLevel(_ depth: Int) {
        monitor.withLock {
            if let items = finishes.removeValue(forKey: depth) { local += items }
            monitor.broadcast()
        }
    }

    /// No more items: the workers end once they finish what they hold.
    func stop() {
        monitor.withLock {
            stopped = true
            monitor.broadcast()
        }
    }

    /// Wakes workers waiting in ``next()`` (after a cancellation: they return nil).
    func wakeAll() { monitor.withLock { monitor.broadcast() } }

    /// Removes the temporaries of this rank's large files that were not finished (after a
    /// cancellation, once no rank copies any more).
    func removeLeftoverTemporaries() {
        monitor.withLock {
            for large in larges.values { try? performer.resolver.unlink(large.temporary, .destination) }
            larges.removeAll()
        }
    }

    // MARK: internals (lock held)

    private func merge(_ result: WorkResult) {
        var r = result
        r.entryDone = []
        r.subdirectories = []
        r.foundFiles = []
        r.upToDateLinks = []
        r.upToDateInodes = []
        r.directoryStat = nil
        r.directoryAttributes = []
        progress.result.files += r.files
        progress.result.bytes += r.bytes
        progress.result.directories += r.directories
        progress.result.symlinks += r.symlinks
        progress.result.hardLinks += r.hardLinks
        progress.result.skipped += r.skipped
        progress.result.excluded += r.excluded
        progress.result.failures += r.failures
        progress.result.copied += r.copied
    }

    private func completeScan(_ scan: ScanItem, _ result: WorkResult) {
        if result.scanned, let stat = result.directoryStat, !options.dryRun {
            let depth = scan.relative.components.count
            finishes[depth, default: []].append(.finishDirectory(DirectoryFinishItem(node: 0, source: scan.source, destination: scan.destination,
                                                                                     stat: stat, attributes: result.directoryAttributes)))
        }
        for name in result.subdirectories {
            scans.append(.scan(ScanItem(node: 0, source: scan.source.appending(name), destination: scan.destination.appending(name),
                                        relative: scan.relative.appending(name), createDestination: false, staged: scan.staged)))
        }
        distribute(result.foundFiles, source: scan.source, destination: scan.destination, setGID: result.destinationSetGID, staged: scan.staged)
        if !options.dryRun && options.preserve.contains(.links) {
            for (entry, inode) in zip(result.upToDateLinks, result.upToDateInodes) {
                route(HardLinkName(sourceDirectory: scan.source, destinationDirectory: scan.destination, entry: entry,
                                   inheritsGroup: result.destinationSetGID, staged: scan.staged, upToDateInode: inode))
            }
        }
    }

    /// The rank that owns an inode: every name of it goes there.
    private func owner(_ stat: SourceStat) -> Int { RankWalk.owner(dev: stat.dev, ino: stat.ino, size: size) }

    /// The rank of `size` that owns the inode `(dev, ino)`.
    static func owner(dev: UInt64, ino: UInt64, size: Int) -> Int {
        var x = dev &* 0x9E37_79B9_7F4A_7C15 ^ ino
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        return Int(x % UInt64(size))
    }

    private func route(_ name: HardLinkName) {
        let to = owner(name.entry.stat)
        if to == rank {
            acceptLinked(name)
        } else if let bytes = try? WireEncoder().encode([name]) {
            outbox.append((to, .hardLink, bytes))
        }
    }

    /// Turns found files into work: names of multiply-linked inodes go to their owner, large
    /// files become chunks, the rest batches.
    private func distribute(_ files: [FileEntry], source: FilePath, destination: FilePath, setGID: Bool, staged: Bool) {
        let directory = nextDirectory
        nextDirectory += 1
        var batch: [FileEntry] = []
        var batchBytes: Int64 = 0
        func flush() {
            if batch.isEmpty { return }
            bulk.append(.files(FileBatch(node: directory, sourceDirectory: source, destinationDirectory: destination, entries: batch,
                                         inheritsGroup: setGID, staged: staged)))
            batch = []
            batchBytes = 0
        }
        for entry in files {
            if options.preserve.contains(.links) && entry.stat.nlink > 1 && !options.dryRun {
                route(HardLinkName(sourceDirectory: source, destinationDirectory: destination, entry: entry,
                                   inheritsGroup: setGID, staged: staged, upToDateInode: nil))
                continue
            }
            progress.filesFound += 1
            progress.bytesFound += entry.stat.size
            if isLarge(entry) {
                addLarge(entry, source: source, destination: destination)
                continue
            }
            batch.append(entry)
            batchBytes += entry.stat.size
            if batch.count >= options.batchFiles || batchBytes >= options.batchBytes { flush() }
        }
        flush()
    }

    private func isLarge(_ entry: FileEntry) -> Bool {
        entry.stat.size >= options.chunkSize && (size > 1 || options.jobs > 1) && !options.dryRun
    }

    /// A name of an inode this rank owns: the first is copied (here), the others linked to it.
    private func acceptLinked(_ name: HardLinkName) {
        let key = InodeKey(dev: name.entry.stat.dev, ino: name.entry.stat.ino)
        let destination = name.destinationDirectory.appending(name.entry.targetName)
        let link = LinkItem(node: 0, existing: destination, destinationDirectory: name.destinationDirectory, name: name.entry.targetName,
                            source: name.sourceDirectory.appending(name.entry.name), staged: name.staged)
        if let upToDate = name.upToDateInode {
            guard var inode = inodes[key] else {
                inodes[key] = Inode(leader: destination, done: true, waiters: [], destinationInode: upToDate)
                return
            }
            if inode.done && inode.destinationInode == upToDate { return } // linked already
            progress.filesFound += 1
            var waiter = link
            waiter.existing = inode.leader
            if inode.done { local.append(.link(waiter)) } else { inode.waiters.append(waiter); inodes[key] = inode }
            return
        }
        progress.filesFound += 1
        if var inode = inodes[key] {
            var waiter = link
            waiter.existing = inode.leader
            if inode.done { local.append(.link(waiter)) } else { inode.waiters.append(waiter); inodes[key] = inode }
            return
        }
        inodes[key] = Inode(leader: destination, done: false, waiters: [])
        leaders[destination] = key
        progress.bytesFound += name.entry.stat.size
        if isLarge(name.entry) {
            addLarge(name.entry, source: name.sourceDirectory, destination: name.destinationDirectory)
        } else {
            local.append(.files(FileBatch(node: -1, sourceDirectory: name.sourceDirectory, destinationDirectory: name.destinationDirectory,
                                          entries: [name.entry], inheritsGroup: name.inheritsGroup, staged: name.staged)))
        }
    }

    private func addLarge(_ entry: FileEntry, source: FilePath, destination: FilePath) {
        // The owner's rank in the low 16 bits: whoever copies a chunk knows where to report it.
        let large = nextLarge << 16 | rank
        nextLarge += 1
        // The rank in the sequence part keeps the name unique across hosts, where two ranks may
        // have the same pid and start time; it stays a name the sweep of a later run knows.
        temporarySequence += 1
        let sequence = UInt64(rank) << 40 | temporarySequence
        guard let temporaryName = FilePath.Component(performer.temporaryPrefix + String(sequence, radix: 16)) else { return }
        let temporary = destination.appending(temporaryName)
        // Made here, before any rank is given a chunk: chunks never create it (see
        // Performer.copyChunk), so one removed midway fails its file.
        do throws(Errno) { try performer.createTemporary(temporary) } catch {
            let target = destination.appending(entry.targetName)
            progress.result.failures.append(CopyFailure(path: source.appending(entry.name), operation: "create", errno: error,
                                                        detail: Resolver.explain(error, destination: target)))
            progress.filesDone += 1
            settleLeader(target, done: false)
            return
        }
        let chunks = Int((entry.stat.size + options.chunkSize - 1) / options.chunkSize)
        let finish = LargeFinishItem(large: large, node: 0, sourceDirectory: source, destinationDirectory: destination,
                                     entry: entry, temporaryName: temporaryName)
        larges[large] = Large(remaining: chunks, failed: false, finish: finish, temporary: temporary)
        let path = source.appending(entry.name)
        for i in 0..<chunks {
            let offset = Int64(i) * options.chunkSize
            bulk.append(.chunk(ChunkItem(large: large, source: path, temporary: temporary, offset: offset,
                                         length: min(options.chunkSize, entry.stat.size - offset), sparse: entry.stat.isSparse)))
        }
    }

    private func chunkDone(_ id: Int, _ result: WorkResult) {
        guard var large = larges[id] else { return }
        large.remaining -= 1
        if !result.failures.isEmpty || result.cancelled {
            // A large file that failed in one chunk is one failed file, reported once.
            if !large.failed { progress.result.failures += result.failures }
            large.failed = true
        }
        larges[id] = large
        guard large.remaining == 0 else { return }
        if large.failed {
            larges[id] = nil
            try? performer.resolver.unlink(large.temporary, .destination)
            progress.filesDone += 1
            settleLeader(large.finish.destinationDirectory.appending(large.finish.entry.targetName), done: false)
        } else {
            local.append(.finishLarge(large.finish))
        }
    }

    /// The first copy of a multiply-linked inode is in place (or failed): link the others to it,
    /// or copy them on their own.
    private func settleLeader(_ destination: FilePath, done: Bool) {
        guard let key = leaders.removeValue(forKey: destination), var inode = inodes[key] else { return }
        let waiters = inode.waiters
        inode.waiters = []
        if done {
            inode.done = true
            inodes[key] = inode
            for w in waiters { local.append(.link(w)) }
            return
        }
        inodes[key] = nil
        for w in waiters {
            progress.filesFound -= 1
            if let st = try? performer.resolver.stat(w.source, .source) {
                let entry = FileEntry(name: w.source.lastComponent ?? w.name, destinationName: w.name, stat: SourceStat(st))
                // Under its inode's owner (this rank) again: the first becomes the new leader.
                acceptLinked(HardLinkName(sourceDirectory: w.source.removingLastComponent(), destinationDirectory: w.destinationDirectory,
                                          entry: entry, inheritsGroup: true, staged: w.staged, upToDateInode: nil))
            } else {
                progress.result.failures.append(CopyFailure(path: w.source, operation: "stat", errno: .noSuchFileOrDirectory))
            }
        }
    }
}
#endif
