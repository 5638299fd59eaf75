import SystemPackage
import MultiprocessingSystem

/// The one place that knows the whole copy: the queue of work items, which directories still have
/// work under them (so that a directory's metadata is applied after its contents), which inodes
/// have been copied (hard links), and the running totals.
///
/// Workers of any kind call ``next()`` for an item and ``complete(_:_:)`` with its result; a
/// process worker's feeder thread does the same on behalf of its child.
internal final class Scheduler: @unchecked Sendable {
    // Everything below is guarded by `monitor`.
    private let monitor = ThreadMonitor()
    private let options: CopyOptions
    private let performer: Performer
    private let events: (@Sendable (CopyEvent) -> Void)?

    private struct Node {
        var parent: Int?
        var pending: Int
        var source: FilePath
        var destination: FilePath
        var relative: FilePath
        /// Set by a successful scan; nil for the pseudo-node of a single-file operand.
        var finish: DirectoryFinishItem?
        /// The destination directory is set-group-ID (new files take its group).
        var setGID = true
        /// Inside a tree built under a temporary name (see ``ScanItem/staged``).
        var staged = false
    }

    private struct Large {
        var node: Int
        var remaining: Int
        var failed: Bool
        var finish: LargeFinishItem
        var temporary: FilePath
    }

    private struct InodeKey: Hashable { var dev: UInt64; var ino: UInt64 }
    private struct Inode {
        var leader: FilePath
        var done: Bool
        var waiters: [LinkItem]
        /// The leader's inode number in the destination, when it was found up to date there.
        var destinationInode: UInt64? = nil
    }

    private var urgent: [WorkItem] = []      // scans, links, finishes: they unlock more work
    private var bulk: [WorkItem] = []        // batches and chunks, taken in order
    private var bulkHead = 0
    private var inFlight = 0
    /// Batches being copied, per directory node, and chunks being copied, per large file.
    private var workInFlight = WorkInFlight()
    private var finished = false
    private var nodes: [Int: Node] = [:]
    private var nextNode = 0
    private var larges: [Int: Large] = [:]
    private var nextLarge = 0
    private var inodes: [InodeKey: Inode] = [:]
    private var leaders: [FilePath: InodeKey] = [:]
    private var temporaries: Set<FilePath> = []
    private var walkPending = 0
    private(set) var report = CopyReport()
    private var filesFound = 0
    private var bytesFound: Int64 = 0
    private var filesDone = 0
    /// Set by ``keepRoots()``: roots are kept here for a distributed walk (mpcp --mpi) instead of
    /// being queued, and the walk's progress comes from ``addProgress(filesDone:filesFound:bytesFound:)``.
    private var keptRoots: [KeptRoot]?
    private var externalWalkRunning = false

    /// A root as ``addDirectoryRoot(source:destination:staged:createDestination:)`` or
    /// ``addFileRoot(sourceDirectory:destinationDirectory:entry:)`` got it.
    enum KeptRoot: Sendable {
        case directory(source: FilePath, destination: FilePath, staged: Bool, createDestination: Bool)
        case file(sourceDirectory: FilePath, destinationDirectory: FilePath, entry: FileEntry)
    }

    init(options: CopyOptions, performer: Performer, events: (@Sendable (CopyEvent) -> Void)?) {
        self.options = options
        self.performer = performer
        self.events = events
    }

    // MARK: roots

    /// Adds a directory operand: scanned, created in the destination, finished last.
    ///
    /// - Parameters:
    ///   - staged: `destination` is a new temporary name that the job renames into place at the
    ///     end, so entries below it are created under their own names.
    ///   - createDestination: false when `destination` is itself a root, an existing directory.
    func addDirectoryRoot(source: FilePath, destination: FilePath, staged: Bool, createDestination: Bool = true) {
        monitor.withLock {
            if keptRoots != nil {
                keptRoots?.append(.directory(source: source, destination: destination, staged: staged, createDestination: createDestination))
                return
            }
            let id = newNode(Node(parent: nil, pending: 1, source: source, destination: destination, relative: FilePath(), finish: nil, staged: staged))
            walkPending += 1
            urgent.append(.scan(ScanItem(node: id, source: source, destination: destination, relative: FilePath(),
                                         createDestination: createDestination, staged: staged)))
        }
    }

    /// Adds a regular-file operand.
    func addFileRoot(sourceDirectory: FilePath, destinationDirectory: FilePath, entry: FileEntry) {
        monitor.withLock {
            if keptRoots != nil {
                keptRoots?.append(.file(sourceDirectory: sourceDirectory, destinationDirectory: destinationDirectory, entry: entry))
                return
            }
            // setGID stays true (unknown): the owner is always set for an operand file.
            let id = newNode(Node(parent: nil, pending: 1, source: sourceDirectory, destination: destinationDirectory, relative: FilePath(), finish: nil))
            distribute([entry], node: id)
            release(id)
        }
    }

    /// Counts something the planner did itself (a symlink operand) or a failure it met.
    func record(_ result: WorkResult) {
        var out: [CopyEvent] = []
        monitor.withLock { merge(result, &out) }
        for e in out { events?(e) }
    }

    /// From now on, roots are kept for ``takeRoots()`` instead of queued (a distributed walk
    /// performs them; this Scheduler then only keeps the totals).
    func keepRoots() {
        monitor.withLock {
            keptRoots = []
            externalWalkRunning = true
        }
    }

    /// The roots kept since ``keepRoots()``.
    func takeRoots() -> [KeptRoot] {
        monitor.withLock {
            defer { keptRoots = [] }
            return keptRoots ?? []
        }
    }

    /// Progress made elsewhere (another rank of a distributed walk, or its own walk on rank 0).
    func addProgress(filesDone: Int, filesFound: Int, bytesFound: Int64) {
        monitor.withLock {
            self.filesDone += filesDone
            self.filesFound += filesFound
            self.bytesFound += bytesFound
        }
    }

    /// The distributed walk has found everything there is to find.
    func externalWalkFinished() {
        monitor.withLock { externalWalkRunning = false }
    }

    // MARK: workers

    /// The next item, waiting while other workers may still produce some. Nil when the copy is
    /// done or cancelled.
    func next() -> WorkItem? {
        monitor.lock()
        defer { monitor.unlock() }
        while true {
            switch offer() {
            case .item(let item): return item
            case .done:
                monitor.broadcast()
                return nil
            case .later: monitor.wait()
            }
        }
    }

    /// What ``tryNext()`` found.
    enum Offer {
        /// An item to perform; count it in flight as ``next()`` does.
        case item(WorkItem)
        /// Nothing now, but items in flight may produce more.
        case later
        /// The copy is done or cancelled.
        case done
    }

    /// ``next()`` without the wait, for a caller that must keep doing other things meanwhile
    /// (the MPI pool's thread, which also receives the results that make more work).
    func tryNext() -> Offer {
        monitor.withLock { offer() }
    }

    /// The one step of ``next()`` and ``tryNext()``; called with `monitor` held.
    private func offer() -> Offer {
        if performer.isCancelled { return .done }
        if let item = urgent.popLast() {
            // Batches and chunks are here only when given back (see giveBack).
            workInFlight.add(item)
            inFlight += 1
            return .item(item)
        }
        if bulkHead < bulk.count {
            workInFlight.preferWorkThatDoesNotCollide(in: &bulk, head: bulkHead)
            let item = bulk[bulkHead]
            bulkHead += 1
            workInFlight.add(item)
            if bulkHead > 4096 && bulkHead * 2 > bulk.count {
                bulk.removeFirst(bulkHead)
                bulkHead = 0
            }
            inFlight += 1
            return .item(item)
        }
        if inFlight == 0 {
            finished = true
            monitor.broadcast()
            return .done
        }
        return .later
    }

    /// Puts back an item that ``next()`` handed out but nobody performed (its worker process died
    /// before taking it), for another worker.
    func giveBack(_ item: WorkItem) {
        monitor.withLock {
            inFlight -= 1
            workInFlight.remove(item)
            urgent.append(item)
            monitor.signal()
        }
    }

    /// Wakes workers waiting in ``next()`` (after a cancellation).
    func wakeAll() { monitor.withLock { monitor.broadcast() } }

    /// Takes a worker's result for `item`: counts it, schedules what it found, and finishes the
    /// directories and hard links it completes.
    func complete(_ item: WorkItem, _ result: WorkResult) {
        var out: [CopyEvent] = []
        var result = result
        monitor.withLock {
            inFlight -= 1
            // A large file that failed in one chunk is one failed file, reported once.
            if case .chunk(let chunk) = item, larges[chunk.large]?.failed == true { result.failures = [] }
            merge(result, &out)
            let before = urgent.count + bulk.count - bulkHead
            switch item {
            case .scan(let scan):
                completeScan(scan, result)
            case .files(let batch):
                filesDone += batch.entries.count
                workInFlight.remove(item)
                // Only first copies of multiply-linked inodes have waiters to settle.
                if !leaders.isEmpty {
                    for (index, entry) in batch.entries.enumerated() where entry.stat.nlink > 1 {
                        let done = index < result.entryDone.count && result.entryDone[index]
                        settleLeader(batch.destinationDirectory.appending(entry.targetName), done: done)
                    }
                }
                release(batch.node)
            case .chunk(let chunk):
                workInFlight.remove(item)
                if var large = larges[chunk.large] {
                    large.remaining -= 1
                    if !result.failures.isEmpty || result.cancelled { large.failed = true }
                    larges[chunk.large] = large
                    if large.remaining == 0 {
                        if large.failed {
                            larges[chunk.large] = nil
                            removeTemporary(large.temporary)
                            filesDone += 1
                            settleLeader(large.finish.destinationDirectory.appending(large.finish.entry.targetName), done: false)
                            release(large.node)
                        } else {
                            urgent.append(.finishLarge(large.finish))
                        }
                    }
                }
            case .finishLarge(let finish):
                filesDone += 1
                if let large = larges.removeValue(forKey: finish.large) {
                    if result.entryDone.first == true { temporaries.remove(large.temporary) } else { removeTemporary(large.temporary) }
                }
                settleLeader(finish.destinationDirectory.appending(finish.entry.targetName), done: result.entryDone.first == true)
                release(finish.node)
            case .link(let link):
                filesDone += 1
                release(link.node)
            case .finishDirectory(let finish):
                let parent = nodes.removeValue(forKey: finish.node)?.parent
                if let parent { release(parent) }
            }
            let after = urgent.count + bulk.count - bulkHead
            if after > before + 1 { monitor.broadcast() } else if after > before { monitor.signal() }
            if inFlight == 0 && after == 0 { monitor.broadcast() }
        }
        for e in out { events?(e) }
    }

    // MARK: after the workers stop

    /// Removes the temporaries of large files that were not finished (after a cancellation).
    func removeLeftoverTemporaries() {
        monitor.withLock {
            for t in temporaries { removeTemporary(t) }
            temporaries.removeAll()
        }
    }

    func progress(startNanoseconds: Int64) -> CopyProgress {
        monitor.withLock {
            CopyProgress(bytesDone: performer.bytesDone.load(ordering: .relaxed), bytesFound: bytesFound,
                         filesDone: filesDone, filesFound: filesFound, walkFinished: walkPending == 0 && !externalWalkRunning,
                         seconds: Double(system_clockMonotonicNanoseconds() - startNanoseconds) / 1e9)
        }
    }

    func finalReport() -> CopyReport { monitor.withLock { report } }

    // MARK: internals (lock held)

    private func newNode(_ node: Node) -> Int {
        let id = nextNode
        nextNode += 1
        nodes[id] = node
        return id
    }

    private func merge(_ result: WorkResult, _ out: inout [CopyEvent]) {
        report.files += result.files
        report.bytes += result.bytes
        report.directories += result.directories
        report.symlinks += result.symlinks
        report.hardLinks += result.hardLinks
        report.skipped += result.skipped
        report.excluded += result.excluded
        report.failures += result.failures
        for f in result.failures { out.append(.failed(f)) }
        for c in result.copied { out.append(.copied(c)) }
    }

    private func completeScan(_ scan: ScanItem, _ result: WorkResult) {
        walkPending -= 1
        guard var node = nodes[scan.node] else { return }
        if result.scanned, let stat = result.directoryStat {
            node.finish = DirectoryFinishItem(node: scan.node, source: scan.source, destination: scan.destination,
                                              stat: stat, attributes: result.directoryAttributes)
        }
        node.setGID = result.destinationSetGID
        nodes[scan.node] = node
        for name in result.subdirectories {
            let source = scan.source.appending(name)
            let destination = scan.destination.appending(name)
            let relative = scan.relative.appending(name)
            let id = newNode(Node(parent: scan.node, pending: 1, source: source, destination: destination, relative: relative,
                                  finish: nil, staged: node.staged))
            nodes[scan.node]?.pending += 1
            walkPending += 1
            urgent.append(.scan(ScanItem(node: id, source: source, destination: destination, relative: relative,
                                         createDestination: false, staged: node.staged)))
        }
        distribute(result.foundFiles, node: scan.node)
        linkUpToDate(result.upToDateLinks, destinationInodes: result.upToDateInodes, node: scan.node)
        release(scan.node)
    }

    /// Files that `-u` found up to date and that have other hard links: the first of an inode
    /// leads (its other names are linked to it); a later one that is not the leader's inode in
    /// the destination is linked to the leader, as `cp -a -u` and `rsync -aH` do.
    private func linkUpToDate(_ files: [FileEntry], destinationInodes: [UInt64], node id: Int) {
        guard let node = nodes[id], !options.dryRun, options.preserve.contains(.links) else { return }
        for (entry, destinationInode) in zip(files, destinationInodes) {
            let key = InodeKey(dev: entry.stat.dev, ino: entry.stat.ino)
            let destination = node.destination.appending(entry.targetName)
            guard var inode = inodes[key] else {
                inodes[key] = Inode(leader: destination, done: true, waiters: [], destinationInode: destinationInode)
                continue
            }
            if inode.done && inode.destinationInode == destinationInode { continue } // linked already
            filesFound += 1
            let link = LinkItem(node: id, existing: inode.leader, destinationDirectory: node.destination,
                                name: entry.targetName, source: node.source.appending(entry.name), staged: node.staged)
            nodes[id]?.pending += 1
            if inode.done { urgent.append(.link(link)) } else { inode.waiters.append(link); inodes[key] = inode }
        }
    }

    /// Turns found files into work: hard links to earlier copies, chunked large files, and batches.
    private func distribute(_ files: [FileEntry], node id: Int) {
        guard let node = nodes[id] else { return }
        var batch: [FileEntry] = []
        var batchBytes: Int64 = 0
        func flush() {
            if batch.isEmpty { return }
            nodes[id]?.pending += 1
            bulk.append(.files(FileBatch(node: id, sourceDirectory: node.source, destinationDirectory: node.destination, entries: batch, inheritsGroup: node.setGID, staged: node.staged)))
            batch = []
            batchBytes = 0
        }
        for entry in files {
            filesFound += 1
            let destination = node.destination.appending(entry.targetName)
            if options.preserve.contains(.links) && entry.stat.nlink > 1 && !options.dryRun {
                let key = InodeKey(dev: entry.stat.dev, ino: entry.stat.ino)
                if var inode = inodes[key] {
                    let link = LinkItem(node: id, existing: inode.leader, destinationDirectory: node.destination,
                                        name: entry.targetName, source: node.source.appending(entry.name), staged: node.staged)
                    nodes[id]?.pending += 1
                    if inode.done { urgent.append(.link(link)) } else { inode.waiters.append(link); inodes[key] = inode }
                    continue
                }
                inodes[key] = Inode(leader: destination, done: false, waiters: [])
                leaders[destination] = key
            }
            bytesFound += entry.stat.size
            if entry.stat.size >= options.chunkSize && options.jobs > 1 && !options.dryRun {
                addLarge(entry, node: id)
                continue
            }
            batch.append(entry)
            batchBytes += entry.stat.size
            if batch.count >= options.batchFiles || batchBytes >= options.batchBytes { flush() }
        }
        flush()
    }

    private func addLarge(_ entry: FileEntry, node id: Int) {
        guard let node = nodes[id] else { return }
        let large = nextLarge
        nextLarge += 1
        let temporaryName = performer.nextTemporaryName()
        let temporary = node.destination.appending(temporaryName)
        do throws(Errno) { try performer.createTemporary(temporary) } catch {
            let destination = node.destination.appending(entry.targetName)
            report.failures.append(CopyFailure(path: node.source.appending(entry.name), operation: "create", errno: error,
                                               detail: Resolver.explain(error, destination: destination)))
            filesDone += 1
            settleLeader(destination, done: false)
            return
        }
        let chunks = Int((entry.stat.size + options.chunkSize - 1) / options.chunkSize)
        let finish = LargeFinishItem(large: large, node: id, sourceDirectory: node.source, destinationDirectory: node.destination,
                                     entry: entry, temporaryName: temporaryName)
        larges[large] = Large(node: id, remaining: chunks, failed: false, finish: finish, temporary: temporary)
        temporaries.insert(temporary)
        nodes[id]?.pending += 1
        let source = node.source.appending(entry.name)
        for i in 0..<chunks {
            let offset = Int64(i) * options.chunkSize
            bulk.append(.chunk(ChunkItem(large: large, source: source, temporary: temporary, offset: offset,
                                         length: min(options.chunkSize, entry.stat.size - offset), sparse: entry.stat.isSparse)))
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
            for w in waiters { urgent.append(.link(w)) }
        } else {
            inodes[key] = nil
            // Copy each waiter as a file of its own; the first becomes the new leader via distribute.
            for w in waiters {
                filesFound -= 1
                if let st = try? performer.resolver.stat(w.source, .source) {
                    let entry = FileEntry(name: w.source.lastComponent ?? w.name, destinationName: w.name, stat: SourceStat(st))
                    distribute([entry], node: w.node)
                } else {
                    report.failures.append(CopyFailure(path: w.source, operation: "stat", errno: .noSuchFileOrDirectory))
                }
                // The link item counted once in the node; distribute counted the file again.
                release(w.node)
            }
        }
    }

    /// One piece of work under node `id` is done; when none is left, finish the directory.
    private func release(_ id: Int) {
        guard var node = nodes[id] else { return }
        node.pending -= 1
        nodes[id] = node
        if node.pending > 0 { return }
        if let finish = node.finish, !options.dryRun {
            // The finish item's completion releases the parent.
            urgent.append(.finishDirectory(finish))
        } else {
            nodes[id] = nil
            if let parent = node.parent { release(parent) }
        }
    }

    private func removeTemporary(_ path: FilePath) {
        temporaries.remove(path)
        try? performer.resolver.unlink(path, .destination)
    }
}
