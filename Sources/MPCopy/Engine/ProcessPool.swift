import Multiprocessing
import Synchronization
import SystemPackage
import MultiprocessingSystem

// Worker processes: each is a ChildProcess running `CopyWorkerTask`, a loop that takes a work item
// from its request Queue, performs it with its own Performer and puts the result on its result
// Queue. The scheduler stays in the parent, with one feeder thread per child; so a worker process
// is exactly what a worker thread is — something that takes work items and reports results.

/// The task a worker child runs: perform items until the parent closes the request queue.
/// An item on the cancel queue (or its closing) makes it stop the current file and remove its
/// temporary, as a worker thread does when the job is cancelled.
internal struct CopyWorkerTask: ProcessTask {
    var options: CopyOptions
    var requests: Queue<WorkItem>
    var results: Queue<WorkResult>
    var cancel: SimpleQueue<Bool>
    /// The job's roots, which every path of an item lies beneath (see `Resolver`).
    var roots: TreeRoots

    func run() throws {
        // The terminal's Ctrl-C (and its hang-up) reaches the whole process group: the parent
        // decides what stops, and tells this child through the cancel queue.
        system_ignoreInterrupts()
        let performer = Performer(options: options)
        performer.resolver.register(roots)
        let cancel = self.cancel
        _ = try? startThread("mpcp-cancel", daemon: true) {
            _ = try? cancel.get()
            performer.cancelled.store(true, ordering: .relaxed)
        }
        while true {
            let item: WorkItem
            do { item = try requests.get() } catch let error as MultiprocessingError where error.code == .closed {
                return // no more work
            }
            try results.put(performer.perform(item))
        }
    }
}

/// `jobs` worker child processes fed by one thread each.
internal final class ProcessPool: WorkerPool, Sendable {
    private struct Worker: Sendable {
        let child: ChildProcess<Void>
        let requests: Queue<WorkItem>
        let results: Queue<WorkResult>
        let cancel: SimpleQueue<Bool>
    }

    let jobs: Int
    let options: CopyOptions
    let performer: Performer
    private let workers = Mutex<[Worker]>([])

    init(jobs: Int, options: CopyOptions, performer: Performer) {
        self.jobs = jobs
        self.options = options
        self.performer = performer
    }

    /// Tells every child to stop its current file; the feeders then stop asking for work.
    func cancel() {
        for worker in workers.withLock({ $0 }) { try? worker.cancel.put(true) }
    }

    func run(_ scheduler: any WorkSource) throws(MPCopyError) {
        // The workers' own configuration: the program's default, with the worker executable if one
        // was chosen, and the default itself left alone.
        var configuration = ChildProcessConfiguration.default
        if let executable = options.workerExecutable { configuration.executable = executable }
        var started: [Worker] = []
        var firstError: (any Error)?
        for index in 0..<jobs {
            do {
                let requests = try Queue<WorkItem>()
                let results = try Queue<WorkResult>()
                let cancel = try SimpleQueue<Bool>(maximumMessageSize: 1 << 12)
                let task = CopyWorkerTask(options: options, requests: requests, results: results, cancel: cancel,
                                          roots: performer.resolver.roots)
                // A daemon child: the core arms PR_SET_PDEATHSIG for it (and checks its parent is
                // still there), so a worker never outlives an mpcp killed with SIGKILL.
                let child = ChildProcess(task, name: "mpcp-worker-\(index)", daemon: true, configuration: configuration)
                try child.start()
                let worker = Worker(child: child, requests: requests, results: results, cancel: cancel)
                workers.withLock { $0.append(worker) }
                started.append(worker)
            } catch {
                firstError = firstError ?? error
                break
            }
        }
        if started.isEmpty {
            throw MPCopyError(.workers, "cannot start a worker process: \(firstError.map { "\($0)" } ?? "unknown error")")
        }
        if performer.isCancelled { cancel() }

        var threads: [OSThread] = []
        for worker in started {
            let performer = self.performer
            if let thread = try? startThread("mpcp-feeder", daemon: false, { self.feed(worker, scheduler: scheduler, performer: performer) }) {
                threads.append(thread)
            } else {
                feed(worker, scheduler: scheduler, performer: performer)
            }
        }
        for thread in threads { try? thread.join() }
        for worker in started {
            worker.requests.close() // the child's loop ends and it exits
            try? worker.child.join()
            worker.cancel.close()
        }
        // If every child died, finish what is left in this process rather than drop it.
        if !performer.isCancelled {
            try ThreadPool(jobs: 1, performer: performer).run(scheduler)
        }
    }

    /// Sends the scheduler's items to one child and hands back its results, until there is no
    /// more work or the child dies.
    private func feed(_ worker: Worker, scheduler: any WorkSource, performer: Performer) {
        while let item = scheduler.next() {
            var result: WorkResult?
            do {
                try worker.requests.put(item)
                while result == nil {
                    do {
                        result = try worker.results.get(timeout: .milliseconds(250))
                    } catch let error as MultiprocessingError where error.code == .timedOut {
                        // Still working, or dead? A dead child never answers.
                        if !worker.child.isAlive { break }
                    }
                }
            } catch {
                result = nil
            }
            guard let result else {
                if !worker.child.isAlive {
                    // The child is gone (and reaped). Whatever it put before it died is in the
                    // queue: a result handed back just before the death counts as any other.
                    if let late = try? worker.results.getNowait() {
                        performer.bytesDone.add(late.bytes, ordering: .relaxed)
                        scheduler.complete(item, late)
                        return
                    }
                    // Still in the request queue: the child died before it took the item (idle,
                    // after its last result). Nothing of it was done; another worker does it.
                    if (try? worker.requests.getNowait()) != nil {
                        scheduler.giveBack(item)
                        return
                    }
                }
                // The child died with this item: report it and let the other workers go on.
                let failed = salvage(item, preservesTimes: options.preserve.contains(.timestamps), performer)
                performer.bytesDone.add(failed.bytes, ordering: .relaxed)
                scheduler.complete(item, failed)
                return
            }
            performer.bytesDone.add(result.bytes, ordering: .relaxed)
            scheduler.complete(item, result)
        }
    }
}

/// The result of an item whose worker process died while it held it. For a batch, a file that is
/// complete under its final name counts as copied: the performer sets a file's times last, so one
/// whose size and modification time are its source's (the test `-u` makes) was finished. Each
/// other file is reported, and in a staged tree, where files are written under their own names,
/// removed, since it may be partial. Any other item is reported whole. Every path is resolved
/// beneath the destination root, as the performer resolves it. With `--checksum` the batch holds
/// files whose old copies may have the source's size and time already, so a file counts as
/// copied only if it has the source's bytes too (the test the scan makes).
private func salvage(_ item: WorkItem, preservesTimes: Bool, _ performer: Performer) -> WorkResult {
    var result = WorkResult()
    guard case .files(let batch) = item else {
        result.failures = [CopyFailure(path: item.sourcePath, operation: "copy", detail: "the worker process died")]
        return result
    }
    let resolver = performer.resolver
    /// Whether the copy under its final name has the source's bytes (only asked with --checksum).
    func sameBytes(_ entry: FileEntry) -> Bool {
        guard let sdir = try? resolver.directory(batch.sourceDirectory, .source) else { return false }
        defer { system_close(sdir) }
        guard let ddir = try? resolver.directory(batch.destinationDirectory, .destination) else { return false }
        defer { system_close(ddir) }
        return entry.name.withCName { s in entry.targetName.withCName { d in performer.sameContent(sdir, s, ddir, d) } }
    }
    for entry in batch.entries {
        let destination = batch.destinationDirectory.appending(entry.targetName)
        let st = try? resolver.stat(destination, .destination)
        if preservesTimes, let st, st.mode & modeTypeMask == modeRegular, Int64(st.size) == entry.stat.size,
           st.mtime_sec == entry.stat.mtime, st.mtime_nsec == entry.stat.mtimeNanoseconds,
           !performer.options.checksum || sameBytes(entry) {
            result.files += 1
            result.bytes += entry.stat.size
            result.entryDone.append(true)
            continue
        }
        if batch.staged, st != nil {
            try? resolver.unlink(destination, .destination)
        }
        result.failures.append(CopyFailure(path: batch.sourceDirectory.appending(entry.name), operation: "copy",
                                           detail: "the worker process died"))
        result.entryDone.append(false)
    }
    return result
}

/// Starts the library's `OSThread` running `body`. Signals blocked in the caller stay blocked in it.
internal func startThread(_ name: String, daemon: Bool, _ body: @escaping @Sendable () -> Void) throws -> OSThread {
    let thread = OSThread(name: name, daemon: daemon, target: body)
    try thread.start()
    return thread
}
