import Glibc
import Multiprocessing
import Synchronization
public import SystemPackage

/// A copy of one or more sources into a destination, planned and checked when created and run once.
///
/// ```swift
/// var options = CopyOptions()
/// options.recursive = true
/// options.preserve = .all
/// options.jobs = 4
/// let job = try CopyJob(sources: ["src"], destination: "backup", options: options)
/// let report = try job.run { event in print(event) }
/// ```
///
/// The destination follows `cp`: when it is an existing directory, each source is copied into it
/// under its own name; otherwise the single source is copied to that name.
public final class CopyJob: Sendable {
    private enum Root: Sendable {
        case directory(source: FilePath, target: FilePath)
        case file(source: FilePath, target: FilePath, stat: SourceStat)
        case symlink(source: FilePath, target: FilePath)
        case failure(CopyFailure)
    }

    /// The options the job runs with.
    public let options: CopyOptions
    private let roots: [Root]
    private let performer: Performer
    private let scheduler = Mutex<Scheduler?>(nil)
    private let startNanoseconds = Atomic<Int64>(0)
    private let started = Atomic<Bool>(false)
    private let cancelHook = Mutex<(@Sendable () -> Void)?>(nil)

    /// Plans a copy and checks its arguments.
    ///
    /// - Parameters:
    ///   - sources: files, directories or symlinks to copy. A directory needs `options.recursive`.
    ///   - destination: an existing directory, or a new name for a single source.
    ///   - options: how to copy.
    /// - Throws: ``MPCopyError`` with code ``MPCopyError/Code/usage`` when a source is missing,
    ///   several sources go to something that is not a directory, a directory would be copied into
    ///   itself, or the destination's parent does not exist.
    public init(sources: [FilePath], destination: FilePath, options: CopyOptions) throws(MPCopyError) {
        guard !sources.isEmpty else { throw MPCopyError(.usage, "missing source operand") }
        guard options.jobs >= 1 else { throw MPCopyError(.usage, "--jobs must be at least 1") }
        guard options.chunkSize >= 1 << 20 else { throw MPCopyError(.usage, "the chunk size must be at least 1 MiB") }
        self.options = options
        performer = Performer(options: options)

        let destinationStat = try? destination.withCName { p throws(Errno) in try system_statx(systemATFDCWD, p, follow: true) }
        let destinationIsDirectory = destinationStat.map { SourceStat($0).isDirectory } ?? false
        if sources.count > 1 && !destinationIsDirectory {
            throw MPCopyError(.usage, "target '\(destination)' is not a directory (several sources need an existing directory)")
        }
        var roots: [Root] = []
        for source in sources {
            let st: SourceStat
            do throws(Errno) {
                st = SourceStat(try source.withCName { p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) })
            } catch {
                throw MPCopyError(.usage, "cannot stat '\(source)'", errno: error)
            }
            var name = source.lastComponent
            if name == nil || name?.kind != .regular {
                name = system_realpath(source)?.lastComponent
            }
            guard let name else { throw MPCopyError(.usage, "cannot copy '\(source)': it has no name to copy to") }
            let target = destinationIsDirectory ? destination.appending(name) : destination
            let targetParent = target.removingLastComponent()
            let parentPath = targetParent.isEmpty ? FilePath(".") : targetParent
            guard let realParent = system_realpath(parentPath) else {
                throw MPCopyError(.usage, "cannot create '\(target)': its directory '\(parentPath)' does not exist")
            }
            if st.isDirectory {
                guard options.recursive else {
                    roots.append(.failure(CopyFailure(path: source, operation: "copy", detail: "-r not specified; omitting directory")))
                    continue
                }
                if let realSource = system_realpath(source), let last = target.lastComponent {
                    let realTarget = realParent.appending(last)
                    if realTarget == realSource || realTarget.starts(with: realSource) {
                        throw MPCopyError(.usage, "cannot copy a directory, '\(source)', into itself, '\(target)'")
                    }
                }
                roots.append(.directory(source: source, target: target))
            } else {
                if let t = try? target.withCName({ p throws(Errno) in try system_statx(systemATFDCWD, p, follow: true) }),
                   t.ino == st.ino && (t.dev_major << 32 | t.dev_minor) == st.dev {
                    throw MPCopyError(.usage, "'\(source)' and '\(target)' are the same file")
                }
                roots.append(st.isSymlink ? .symlink(source: source, target: target) : .file(source: source, target: target, stat: st))
            }
        }
        self.roots = roots
    }

    /// Runs the copy on `options.jobs` workers and returns when it is finished or cancelled.
    ///
    /// Per-file failures do not stop the copy: they are reported through `events` and in the
    /// report's ``CopyReport/failures``.
    ///
    /// - Parameters:
    ///   - events: called from worker threads as files are copied (only with
    ///     ``CopyOptions/verbose``) or fail.
    ///   - progressInterval: how often to call `onProgress`.
    ///   - onProgress: called on a thread of its own every `progressInterval` while the copy runs,
    ///     and once more at the end (for a progress bar).
    /// - Returns: the totals, with ``CopyReport/interrupted`` set if ``cancel()`` stopped it.
    /// - Throws: ``MPCopyError`` with code ``MPCopyError/Code/workers`` if no worker could be started.
    public func run(events: (@Sendable (CopyEvent) -> Void)? = nil,
                    progressInterval: Duration = .milliseconds(200),
                    onProgress: (@Sendable (CopyProgress) -> Void)? = nil) throws(MPCopyError) -> CopyReport {
        precondition(!started.exchange(true, ordering: .acquiring), "a CopyJob runs once")
        let start = system_clockMonotonicNanoseconds()
        startNanoseconds.store(start, ordering: .relaxed)
        let scheduler = Scheduler(options: options, performer: performer, events: events)
        self.scheduler.withLock { $0 = scheduler }

        var stages: [Stage] = []
        defer { for stage in stages { system_close(stage.lock) } }
        for root in roots {
            switch root {
            case .directory(let source, let target):
                // The target (or its staged twin) is a name in its parent, the destination
                // operand or the operand's parent, and is never followed: a symlink there is
                // refused, as cp -a refuses to "overwrite non-directory" with a directory.
                if let failure = registerRoots(source: source, sourceFollowsSymlink: false, destination: target.removingLastComponent()) {
                    scheduler.record(WorkResult(failures: [failure]))
                    continue
                }
                switch stage(source: source, target: target) {
                case .staged(let stage):
                    stages.append(stage)
                    scheduler.addDirectoryRoot(source: source, destination: stage.directory, staged: true)
                case .inPlace:
                    scheduler.addDirectoryRoot(source: source, destination: target, staged: false)
                case .failed(let failure):
                    var result = WorkResult()
                    result.failures = [failure]
                    scheduler.record(result)
                }
            case .file(let source, let target, let stat):
                guard let name = source.lastComponent, let targetName = target.lastComponent else { continue }
                let sourceDirectory = source.removingLastComponent()
                let targetDirectory = target.removingLastComponent()
                if options.update, let t = try? target.withCName({ p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) }),
                   Int64(t.size) == stat.size, t.mtime_sec == stat.mtime, t.mtime_nsec == stat.mtimeNanoseconds {
                    var skipped = WorkResult()
                    skipped.skipped = 1
                    scheduler.record(skipped)
                    continue
                }
                let from: FilePath = sourceDirectory.isEmpty ? "." : sourceDirectory
                let into: FilePath = targetDirectory.isEmpty ? "." : targetDirectory
                if let failure = registerRoots(source: from, sourceFollowsSymlink: true, destination: into) {
                    scheduler.record(WorkResult(failures: [failure]))
                    continue
                }
                scheduler.addFileRoot(sourceDirectory: from, destinationDirectory: into,
                                      entry: FileEntry(name: name, destinationName: targetName, stat: stat))
            case .symlink(let source, let target):
                scheduler.record(copySymlinkOperand(source: source, target: target))
            case .failure(let failure):
                var result = WorkResult()
                result.failures = [failure]
                scheduler.record(result)
            }
        }

        let pool: any WorkerPool
        if options.workers == .threads {
            pool = ThreadPool(jobs: options.jobs, performer: performer)
        } else {
            let processes = ProcessPool(jobs: options.jobs, options: options, performer: performer)
            cancelHook.withLock { $0 = { processes.cancel() } }
            pool = processes
        }
        let ticker = onProgress.map { ProgressTicker(interval: progressInterval, job: self, body: $0) }
        defer { ticker?.stop() }
        try pool.run(scheduler)

        if performer.isCancelled { scheduler.removeLeftoverTemporaries() }
        // After a cancellation too: the workers removed their partial files, so the staged trees
        // hold only complete ones, and a later run with -u goes on from there.
        for stage in stages { scheduler.record(publish(stage)) }
        var report = scheduler.finalReport()
        report.interrupted = performer.isCancelled
        report.dryRun = options.dryRun
        report.seconds = Double(system_clockMonotonicNanoseconds() - start) / 1e9
        return report
    }

    /// Records, for the performer (and the worker processes), the directories that the paths of
    /// one operand's work lie beneath, with their identity now (see `Resolver`). A failure when
    /// either is not a directory any more.
    private func registerRoots(source: FilePath, sourceFollowsSymlink: Bool, destination: FilePath) -> CopyFailure? {
        var roots = TreeRoots()
        do throws(Errno) {
            roots.sources = [try Resolver.root(source, followsSymlink: sourceFollowsSymlink)]
        } catch {
            return CopyFailure(path: source, operation: "open directory", errno: error)
        }
        do throws(Errno) {
            roots.destinations = [try Resolver.root(destination, followsSymlink: true)]
        } catch {
            return CopyFailure(path: source, operation: "open destination directory '\(destination)'", errno: error)
        }
        performer.resolver.register(roots)
        return nil
    }

    /// Stops the copy: workers finish the step they are in (at most 16 MiB), remove their
    /// temporary files, and ``run(events:)`` returns with ``CopyReport/interrupted`` set. Files
    /// already renamed into place stay; no file is left partial under its final name.
    ///
    /// Safe to call from any thread, any number of times.
    public func cancel() {
        performer.cancelled.store(true, ordering: .relaxed)
        scheduler.withLock { $0 }?.wakeAll()
        cancelHook.withLock { $0 }?()
    }

    /// Where the copy is now: bytes and files done and found so far. Cheap; call it a few times a second.
    public func progress() -> CopyProgress {
        guard let scheduler = scheduler.withLock({ $0 }) else {
            return CopyProgress(bytesDone: 0, bytesFound: 0, filesDone: 0, filesFound: 0, walkFinished: false, seconds: 0)
        }
        return scheduler.progress(startNanoseconds: startNanoseconds.load(ordering: .relaxed))
    }

    /// A new directory tree being built under a temporary name, and the descriptor whose lock
    /// tells other runs that this one owns it.
    private struct Stage {
        var source: FilePath
        var directory: FilePath
        var target: FilePath
        var lock: CInt
    }

    private enum Staging {
        case staged(Stage)
        case inPlace
        case failed(CopyFailure)
    }

    /// Where to build the copy of a directory operand.
    ///
    /// A `target` that does not exist yet is built as `.mpcp-tmp-stage-<hash of its name>` beside
    /// it: always the same name for the same target, so that a run killed with SIGKILL leaves a
    /// tree that the next run takes over (with -u, keeping the files that are complete) rather
    /// than garbage. The directory is locked (`flock`) for as long as the job runs; a locked one
    /// means another run is copying to the same target right now.
    private func stage(source: FilePath, target: FilePath) -> Staging {
        guard options.stageNewDirectories && !options.dryRun, let name = target.lastComponent else { return .inPlace }
        if (try? target.withCName({ p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) })) != nil {
            return .inPlace // the copy merges into what is there
        }
        let directory = target.removingLastComponent().appending(stagingName(name))
        // A finishing run may rename the directory between our open and our lock: check, and retry.
        for _ in 0..<3 {
            let fd: CInt
            var leftByAKilledRun = false
            do throws(Errno) {
                fd = try directory.withCName { p throws(Errno) -> CInt in
                    do throws(Errno) { try system_mkdirat(systemATFDCWD, p, 0o700) } catch .fileExists { leftByAKilledRun = true }
                    return try system_openat(systemATFDCWD, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
                }
            } catch {
                return .inPlace // no staging here; the scan of the target reports what is wrong
            }
            do throws(Errno) {
                try system_tryLockExclusive(fd)
                let held = try system_fstatx(fd)
                let named = try directory.withCName { p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) }
                if named.ino == held.ino && named.dev_major == held.dev_major && named.dev_minor == held.dev_minor {
                    // Ours now. A tree a killed run left may hold its unfinished large files.
                    if leftByAKilledRun, let listing = try? system_openat(fd, ".", O_RDONLY | O_DIRECTORY) {
                        _ = performer.removeTemporaries(under: listing)
                        system_close(listing)
                    }
                    return .staged(Stage(source: source, directory: directory, target: target, lock: fd))
                }
                system_close(fd)
            } catch {
                system_close(fd)
                if error == .wouldBlock {
                    return .failed(CopyFailure(path: source, operation: "copy", errno: error,
                                               detail: "another copy to '\(target)' is in progress (it holds '\(directory)')"))
                }
                if error != .noSuchFileOrDirectory { return .inPlace }
            }
        }
        return .inPlace
    }

    /// `.mpcp-tmp-stage-` and the 64-bit FNV-1a hash of the target's name, in hex: short whatever
    /// the name's length, and the same in every run.
    private func stagingName(_ name: FilePath.Component) -> FilePath.Component {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        name.withPlatformString { p in
            var q = p
            while q.pointee != 0 {
                hash = (hash ^ UInt64(UInt8(bitPattern: q.pointee))) &* 0x100_0000_01b3
                q += 1
            }
        }
        let hex = String(hash, radix: 16)
        let padded = String(repeating: "0", count: 16 - hex.count) + hex
        guard let component = FilePath.Component(".mpcp-tmp-stage-" + padded) else {
            preconditionFailure("an ASCII name without a slash is a valid component")
        }
        return component
    }

    /// Renames a finished staged tree to its final name, which must still be free.
    private func publish(_ stage: Stage) -> WorkResult {
        var result = WorkResult()
        do throws(Errno) {
            try stage.directory.withCName { t throws(Errno) in
                try stage.target.withCName { f throws(Errno) in try system_renameNoReplace(systemATFDCWD, t, systemATFDCWD, f) }
            }
        } catch {
            let why = error == .fileExists || error == .directoryNotEmpty
                ? "'\(stage.target)' appeared while the copy ran; the copy is left in '\(stage.directory)'"
                : "the copy is left in '\(stage.directory)'"
            result.failures = [CopyFailure(path: stage.source, operation: "move into place", errno: error, detail: why)]
        }
        return result
    }

    private func copySymlinkOperand(source: FilePath, target: FilePath) -> WorkResult {
        var result = WorkResult()
        guard let name = source.lastComponent, let targetName = target.lastComponent else { return result }
        let sourceDirectory = source.removingLastComponent()
        let targetDirectory = target.removingLastComponent()
        do throws(Errno) {
            let sdir = try (sourceDirectory.isEmpty ? "." : sourceDirectory).withCName { p throws(Errno) in
                try system_openat(systemATFDCWD, p, systemOPath | O_DIRECTORY)
            }
            defer { system_close(sdir) }
            let link = try name.withCName { n throws(Errno) in try system_readlinkat(sdir, n) }
            if options.dryRun {
                result.symlinks = 1
                return result
            }
            let ddir = try (targetDirectory.isEmpty ? "." : targetDirectory).withCName { p throws(Errno) in
                try system_openat(systemATFDCWD, p, systemOPath | O_DIRECTORY)
            }
            defer { system_close(ddir) }
            try name.withCName { n throws(Errno) in
                try targetName.withCName { t throws(Errno) in
                    // placeSymlink reads the source's times from `sdir`/`n` and writes `ddir`/`t`.
                    try performer.placeSymlink(link, sdir, ddir, t, sourceName: n)
                }
            }
            result.symlinks = 1
            if options.verbose { result.copied.append(source) }
        } catch {
            result.failures.append(CopyFailure(path: source, operation: "copy symlink", errno: error))
        }
        return result
    }
}

/// Calls a progress closure every interval on a thread of its own until stopped.
private final class ProgressTicker: Sendable {
    private final class State: Sendable {
        let stopped = Atomic<Bool>(false)
        let monitor = Monitor()
    }
    private let state = State()
    private let thread: OSThread?
    private let job: CopyJob
    private let body: @Sendable (CopyProgress) -> Void

    init(interval: Duration, job: CopyJob, body: @escaping @Sendable (CopyProgress) -> Void) {
        self.job = job
        self.body = body
        let (seconds, attoseconds) = interval.components
        let nanoseconds = max(Int64(seconds) * 1_000_000_000 + attoseconds / 1_000_000_000, 10_000_000)
        let state = self.state
        thread = try? startThread("mpcp-progress", daemon: true) { [job] in
            state.monitor.lock()
            while !state.stopped.load(ordering: .relaxed) {
                state.monitor.wait(nanoseconds: nanoseconds)
                if state.stopped.load(ordering: .relaxed) { break }
                state.monitor.unlock()
                body(job.progress())
                state.monitor.lock()
            }
            state.monitor.unlock()
        }
    }

    func stop() {
        state.monitor.withLock {
            state.stopped.store(true, ordering: .relaxed)
            state.monitor.broadcast()
        }
        try? thread?.join()
        body(job.progress())
    }
}

/// Something that runs the scheduler's items until there are none: threads here, or processes.
internal protocol WorkerPool {
    func run(_ scheduler: Scheduler) throws(MPCopyError)
}

/// `jobs` plain threads in this process, each taking an item, performing it and reporting it.
internal struct ThreadPool: WorkerPool {
    let jobs: Int
    let performer: Performer

    func run(_ scheduler: Scheduler) throws(MPCopyError) {
        var threads: [OSThread] = []
        for index in 0..<jobs {
            do {
                threads.append(try startThread("mpcp-worker-\(index)", daemon: false) { [performer] in
                    while let item = scheduler.next() {
                        scheduler.complete(item, performer.perform(item))
                    }
                })
            } catch {
                if threads.isEmpty { throw MPCopyError(.workers, "cannot start a worker thread: \(error)") }
                break
            }
        }
        for thread in threads { try? thread.join() }
    }
}
