import Multiprocessing
import Synchronization
public import SystemPackage
import MultiprocessingSystem

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
        /// `resumed`: the marker of an interrupted in-place copy into `target` (see ``resumeMarker(of:)``).
        /// `intoOperand`: `target` is the destination operand itself, an existing directory
        /// (`SRC/.`, or a resumed copy), followed if it is a symlink as cp follows it.
        case directory(source: FilePath, target: FilePath, resumed: FilePath?, intoOperand: Bool)
        case file(source: FilePath, target: FilePath, stat: SourceStat)
        case symlink(source: FilePath, target: FilePath)
        case fifo(source: FilePath, target: FilePath, stat: SourceStat)
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
    /// The staged trees an interrupted run left under their staged names, for the advice.
    private let keptStages = Mutex<[FilePath]>([])
#if MPI
    /// Set by ``distributeOverMPI()``: the work goes to the MPI job's serving ranks.
    internal let overMPI = Atomic<Bool>(false)
#endif

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
        guard options.jobs >= 1 else { throw MPCopyError(.usage, "the number of workers (jobs) must be at least 1, not \(options.jobs)") }
        guard options.chunkSize >= 1 << 20 else { throw MPCopyError(.usage, "the chunk size must be at least 1 MiB") }
        self.options = options
        performer = Performer(options: options)

        let destinationStat = try? destination.withCName { p throws(Errno) in try system_statx(systemATFDCWD, p, follow: true) }
        let destinationIsDirectory = destinationStat.map { SourceStat($0).isDirectory } ?? false
        if sources.count > 1 && !destinationIsDirectory {
            throw MPCopyError(.usage, "target \(shellQuoted(destination, always: true)) is not a directory (several sources need an existing directory)")
        }
        var roots: [Root] = []
        for source in sources {
            let st: SourceStat
            do throws(Errno) {
                st = SourceStat(try source.withCName { p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) })
            } catch {
                throw MPCopyError(.usage, "cannot stat \(shellQuoted(source, always: true))", errno: error)
            }
            var name = source.lastComponent
            if name == nil || name?.kind != .regular {
                name = system_realpath(source)?.lastComponent
            }
            guard let name else { throw MPCopyError(.usage, "cannot copy \(shellQuoted(source, always: true)): it has no name to copy to") }
            // `SRC/.` names SRC's contents: as with cp, they go into DEST itself.
            let contentsOnly = source.lastComponent?.kind == .currentDirectory && st.isDirectory
            var target = destinationIsDirectory && !contentsOnly ? destination.appending(name) : destination
            // An interrupted run that built `destination` itself, in place, left a marker beside
            // it: the same command finishes that copy instead of copying into it (cp's rule for
            // an existing directory would make destination/name).
            var resumed: FilePath?
            if st.isDirectory && options.recursive {
                if sources.count == 1 && destinationIsDirectory && !contentsOnly,
                   let marker = CopyJob.resumeMarker(of: destination), CopyJob.marker(marker, names: source) {
                    target = destination
                }
                // Gone when this run ends uninterrupted (also when the rerun copies into it by cp's rule).
                if let marker = CopyJob.resumeMarker(of: target), CopyJob.marker(marker, names: source) { resumed = marker }
            }
            let targetParent = target.removingLastComponent()
            let parentPath = targetParent.isEmpty ? FilePath(".") : targetParent
            guard let realParent = system_realpath(parentPath) else {
                throw MPCopyError(.usage, "cannot create \(shellQuoted(target, always: true)): its directory \(shellQuoted(parentPath, always: true)) does not exist")
            }
            if st.isDirectory {
                guard options.recursive else {
                    roots.append(.failure(CopyFailure(path: source, operation: "copy", detail: "-r not specified; omitting directory")))
                    continue
                }
                if let realSource = system_realpath(source), let last = target.lastComponent {
                    let realTarget = realParent.appending(last)
                    if realTarget == realSource || realTarget.starts(with: realSource) {
                        throw MPCopyError(.usage, "cannot copy a directory, \(shellQuoted(source, always: true)), into itself, \(shellQuoted(target, always: true))")
                    }
                }
                roots.append(.directory(source: source, target: target, resumed: resumed,
                                        intoOperand: destinationIsDirectory && target == destination))
            } else {
                if let t = try? target.withCName({ p throws(Errno) in try system_statx(systemATFDCWD, p, follow: true) }),
                   t.ino == st.ino && (t.dev_major << 32 | t.dev_minor) == st.dev {
                    throw MPCopyError(.usage, "\(shellQuoted(source, always: true)) and \(shellQuoted(target, always: true)) are the same file")
                }
                if st.isSymlink {
                    roots.append(.symlink(source: source, target: target))
                } else if st.isRegular {
                    roots.append(.file(source: source, target: target, stat: st))
                } else if st.fileType == 0o010000 /* S_IFIFO */ && options.recursive {
                    roots.append(.fifo(source: source, target: target, stat: st)) // as cp -a and cp -r: a new FIFO
                } else {
                    // Reading a FIFO waits for a writer, and a device may never end: refused, not hung.
                    let what = st.fileType == 0o010000 ? "a FIFO (use -r or -a to create a FIFO in its place)" : "a device or socket"
                    roots.append(.failure(CopyFailure(path: source, operation: "copy", detail: "it is \(what); its data is not copied")))
                }
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
        let scheduler = Scheduler(options: schedulingOptions(), performer: performer, events: events)
        self.scheduler.withLock { $0 = scheduler }
#if MPI
        // Spread over ranks, the walk is distributed: the roots go to it, not to the Scheduler.
        if overMPI.load(ordering: .relaxed) && MPICopyState.size > 1 { scheduler.keepRoots() }
#endif

        var stages: [Stage] = []
        var markers: [FilePath] = []
        var inPlaceTargets: [FilePath] = []
        var fileRootDirectories: [FilePath] = []
        defer { for stage in stages { system_close(stage.lock) } }
        for root in roots {
            switch root {
            case .directory(let source, let target, let resumed, let intoOperand):
                if let resumed { markers.append(resumed) }
                if intoOperand {
                    // The operand names an existing directory, through a symlink or not (cp
                    // copies into where it points): it is the root, and the copy merges into it.
                    if let failure = registerRoots(source: source, sourceFollowsSymlink: false, destination: target) {
                        scheduler.record(WorkResult(failures: [failure]))
                        continue
                    }
                    inPlaceTargets.append(target)
                    scheduler.addDirectoryRoot(source: source, destination: target, staged: false, createDestination: false)
                    continue
                }
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
                case .inPlace(let existed):
                    if existed {
                        inPlaceTargets.append(target)
                    } else if !options.dryRun, let marker = markResume(source: source, target: target) {
                        markers.append(marker)
                    }
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
                let skip = source.withCName { s in
                    target.withCName { t in performer.skips(stat, systemATFDCWD, s, systemATFDCWD, t, staged: false) }
                }
                if skip {
                    var skipped = WorkResult()
                    skipped.skipped = 1
                    scheduler.record(skipped)
                    continue
                }
                let from: FilePath = sourceDirectory.isEmpty ? "." : sourceDirectory
                let into: FilePath = targetDirectory.isEmpty ? "." : targetDirectory
                if !fileRootDirectories.contains(into) { fileRootDirectories.append(into) }
                if let failure = registerRoots(source: from, sourceFollowsSymlink: true, destination: into) {
                    scheduler.record(WorkResult(failures: [failure]))
                    continue
                }
                scheduler.addFileRoot(sourceDirectory: from, destinationDirectory: into,
                                      entry: FileEntry(name: name, destinationName: targetName, stat: stat))
            case .symlink(let source, let target):
                if options.noClobber, (try? target.withCName({ p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) })) != nil {
                    var skipped = WorkResult()
                    skipped.skipped = 1
                    scheduler.record(skipped)
                    continue
                }
                scheduler.record(copySymlinkOperand(source: source, target: target))
            case .fifo(let source, let target, let stat):
                scheduler.record(performer.copyFifoOperand(source: source, target: target, stat: stat))
            case .failure(let failure):
                var result = WorkResult()
                result.failures = [failure]
                scheduler.record(result)
            }
        }

        // Temporaries that killed runs left where this one merges (no staging to take over):
        // theirs if their process is gone. A new directory of this run can hold none.
        // Serving MPI ranks of another boot or pid namespace sweep the same directories for their own.
        var sweeps: [LeftoverSweep.Directory] = []
        if !options.dryRun {
            sweeps = inPlaceTargets.map { LeftoverSweep.Directory(path: $0, recursive: true) }
                + fileRootDirectories.map { LeftoverSweep.Directory(path: $0, recursive: false) }
            LeftoverSweep.sweep(sweeps, place: performer.namespaceTag, performer.resolver)
        }

        let local: any WorkerPool
        if options.workers == .threads {
            local = ThreadPool(jobs: options.jobs, performer: performer)
        } else {
            let processes = ProcessPool(jobs: options.jobs, options: options, performer: performer)
            cancelHook.withLock { $0 = { processes.cancel() } }
            local = processes
        }
        let pool = distributed(local, sweeps: sweeps)
        let ticker = onProgress.map { ProgressTicker(interval: progressInterval, job: self, body: $0) }
        defer { ticker?.stop() }
        do throws(MPCopyError) {
            try pool.run(scheduler)
        } catch {
            // No worker took any item (an MPI rank that cannot see the trees refused the job):
            // a staged tree is still the empty directory made above; rmdir removes only that.
            for stage in stages { stage.directory.withPlatformString { p in try? system_unlinkat(systemATFDCWD, p, systemATRemoveDir) } }
            throw error
        }

        // Read once: a signal that lands after this point finds the copy complete and published,
        // and must not report it interrupted (the advice printed then would nest into dst/src).
        let interrupted = performer.isCancelled
        if interrupted {
            scheduler.removeLeftoverTemporaries()
            // The workers removed their partial files, so a staged tree holds only complete ones.
            // It stays under its staged name: the same command (best with -u) takes it over and
            // finishes it. Put in place, it would be an existing directory to that command, which
            // would copy into it.
            keptStages.withLock { $0 = stages.map(\.directory) }
        } else {
            for stage in stages { scheduler.record(publish(stage)) }
            for marker in markers { marker.withPlatformString { p in try? system_unlinkat(systemATFDCWD, p) } }
        }
        var report = scheduler.finalReport()
        report.interrupted = interrupted
        report.dryRun = options.dryRun
        report.seconds = Double(system_clockMonotonicNanoseconds() - start) / 1e9
        return report
    }

    /// The options the Scheduler plans with: the job's, except that a copy spread over MPI ranks
    /// has more than one worker whatever this rank's `-j` (so large files are cut into chunks).
    private func schedulingOptions() -> CopyOptions {
#if MPI
        if overMPI.load(ordering: .relaxed) && MPICopyState.size > 1 {
            var planned = options
            planned.jobs = max(options.jobs, 2)
            return planned
        }
#endif
        return options
    }

    /// The pool the copy runs on: `local`, or (with ``distributeOverMPI()``) rank 0's MPI pool.
    /// `sweeps`: the directories that rank 0 swept for leftover temporaries, for the serving ranks.
    private func distributed(_ local: any WorkerPool, sweeps: [LeftoverSweep.Directory]) -> any WorkerPool {
#if MPI
        if overMPI.load(ordering: .relaxed) { return MPIWorkerPool(local: local, performer: performer, options: options, sweeps: sweeps) }
#endif
        return local
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
            return CopyFailure(path: source, operation: "open destination directory \(shellQuoted(destination, always: true))", errno: error)
        }
        performer.resolver.register(roots)
        return nil
    }

    /// Stops the copy: workers finish the step they are in (at most 16 MiB), remove their
    /// temporary files, and ``run(events:progressInterval:onProgress:)`` returns with ``CopyReport/interrupted`` set. Files
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
        /// `existed`: the copy merges into a directory that was there before this run.
        case inPlace(existed: Bool)
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
        if (try? target.withCName({ p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) })) != nil {
            return .inPlace(existed: true) // the copy merges into what is there
        }
        guard options.stageNewDirectories && !options.dryRun, let name = target.lastComponent else { return .inPlace(existed: false) }
        let directory = target.removingLastComponent().appending(stagingName(name))
        // A finishing run may rename the directory between our open and our lock: check, and retry.
        for _ in 0..<3 {
            let fd: CInt
            var leftByAKilledRun = false
            do throws(Errno) {
                fd = try directory.withCName { p throws(Errno) -> CInt in
                    do throws(Errno) { try system_mkdirat(systemATFDCWD, p, 0o700) } catch .fileExists { leftByAKilledRun = true }
                    return try system_openat(systemATFDCWD, p, systemORdOnly | systemODirectory | systemONoFollow)
                }
            } catch {
                return .inPlace(existed: false) // no staging here; the scan of the target reports what is wrong
            }
            do throws(Errno) {
                try system_tryLockExclusive(fd)
                let held = try system_fstatx(fd)
                let named = try directory.withCName { p throws(Errno) in try system_statx(systemATFDCWD, p, follow: false) }
                if named.ino == held.ino && named.dev_major == held.dev_major && named.dev_minor == held.dev_minor {
                    // Ours now. A tree a killed run left may hold its unfinished large files.
                    if leftByAKilledRun, let listing = try? system_openat(fd, ".", systemORdOnly | systemODirectory) {
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
                                               detail: "another copy to \(shellQuoted(target, always: true)) is in progress (it holds \(shellQuoted(directory, always: true)))"))
                }
                if error != .noSuchFileOrDirectory { return .inPlace(existed: false) }
            }
        }
        return .inPlace(existed: false)
    }

    /// `.mpcp-tmp-stage-` and the 64-bit FNV-1a hash of the target's name, in hex: short whatever
    /// the name's length, and the same in every run.
    private func stagingName(_ name: FilePath.Component) -> FilePath.Component {
        CopyJob.fixedName("stage", name)
    }

    /// `.mpcp-tmp-<kind>-` and the hash of `name` (see ``stagingName(_:)``).
    private static func fixedName(_ kind: String, _ name: FilePath.Component) -> FilePath.Component {
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
        guard let component = FilePath.Component(".mpcp-tmp-\(kind)-" + padded) else {
            preconditionFailure("an ASCII name without a slash is a valid component")
        }
        return component
    }

    /// Where a run that builds `target` in place (not staged) marks it as unfinished:
    /// `.mpcp-tmp-resume-<hash of its name>` beside it, holding the source's real path. The marker
    /// is there from before the directory is made until the copy ends uninterrupted, so a run
    /// interrupted by any signal (SIGKILL too) leaves it, and the same command, finding it beside
    /// an existing `target`, goes on copying into `target` itself.
    private static func resumeMarker(of target: FilePath) -> FilePath? {
        guard let name = target.lastComponent, name.kind == .regular else { return nil }
        return target.removingLastComponent().appending(fixedName("resume", name))
    }

    /// Whether the marker `marker` exists and names `source` (its real path, byte for byte).
    private static func marker(_ marker: FilePath, names source: FilePath) -> Bool {
        guard let real = system_realpath(source) else { return false }
        let want = rawBytes(real)
        // O_NONBLOCK: a FIFO put under the marker's name must not stop the run.
        guard let fd = try? marker.withCName({ p throws(Errno) in try system_openat(systemATFDCWD, p, systemORdOnly | systemONoFollow | systemONonBlock) })
        else { return false }
        defer { system_close(fd) }
        guard let st = try? system_fstatx(fd), st.mode & modeTypeMask == modeRegular else { return false }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: want.count + 1, alignment: 1)
        defer { buffer.deallocate() }
        var got = 0
        while got < buffer.count {
            guard let n = try? system_pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[got...]), Int64(got)), n > 0 else { break }
            got += n
        }
        return got == want.count && buffer.prefix(got).elementsEqual(want)
    }

    /// Writes the resume marker of `target` before this run creates it in place; nil if it cannot.
    private func markResume(source: FilePath, target: FilePath) -> FilePath? {
        guard let marker = CopyJob.resumeMarker(of: target), let real = system_realpath(source) else { return nil }
        do throws(Errno) {
            // A new file: whatever has the name (a stale marker, or a FIFO or a hard link to
            // another file that someone put there) goes first, and is never opened or written.
            let fd = try marker.withCName { p throws(Errno) -> CInt in
                do throws(Errno) { try system_unlinkat(systemATFDCWD, p) } catch .noSuchFileOrDirectory {}
                return try system_openat(systemATFDCWD, p, systemOWrOnly | systemOCreate | systemOExcl | systemONoFollow, 0o600)
            }
            defer { system_close(fd) }
            let content = rawBytes(real)
            let written = content.withUnsafeBytes { b in try? system_pwrite(fd, b, 0) }
            return written == content.count ? marker : nil
        } catch {
            return nil
        }
    }

    /// What to tell the user after ``run(events:progressInterval:onProgress:)`` returned an
    /// interrupted report: that partial files are gone, where the unfinished staged trees are,
    /// and the command that finishes the copy.
    ///
    /// - Parameter resumeCommand: the command that runs the same copy again with `update` on
    ///   (mpcp passes its own command line with `-u`, each word quoted for the shell as GNU `ls`
    ///   quotes names): the rerun finishes the copy.
    public func interruptionAdvice(resumeCommand: String) -> String {
        var text = "partial files removed; "
        let kept = keptStages.withLock { $0 }
        if !kept.isEmpty {
            text += "the copy so far is kept in " + kept.map { shellQuoted($0, always: true) }.joined(separator: ", ") + "; "
        }
        return text + "to finish the copy, run: " + resumeCommand
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
                ? "\(shellQuoted(stage.target, always: true)) appeared while the copy ran; the copy is left in \(shellQuoted(stage.directory, always: true))"
                : "the copy is left in \(shellQuoted(stage.directory, always: true))"
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
                try system_openat(systemATFDCWD, p, systemOPath | systemODirectory)
            }
            defer { system_close(sdir) }
            let link = try name.withCName { n throws(Errno) in try system_readlinkat(sdir, n) }
            if options.dryRun {
                result.symlinks = 1
                return result
            }
            let ddir = try (targetDirectory.isEmpty ? "." : targetDirectory).withCName { p throws(Errno) in
                try system_openat(systemATFDCWD, p, systemOPath | systemODirectory)
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
            result.failures.append(CopyFailure(path: source, operation: "copy symlink", errno: error,
                                               detail: Resolver.explain(error, destination: target)))
        }
        return result
    }
}

/// Removes the `.mpcp-tmp-<pid>-<start>-<where>-<n>` files (see ``Performer/temporaryPrefix``)
/// whose process has ended: a run or worker killed with SIGKILL left them. The pid and its start
/// time together tell a live process from one that reused its pid; a temporary of a live process
/// (another run copying into the same tree) stays. So does one whose `<where>` is not this
/// process's boot and pid namespace: its pid cannot be looked up here (another host writing the
/// same shared tree, a container). Names of the older form `.mpcp-tmp-<pid>-<start>-<n>`
/// (mpcp before the `<where>` field) are judged as this namespace's. Names of any other form stay.
///
/// An `--mpi` run sweeps once per boot and pid namespace: rank 0 its own, and each serving rank
/// whose namespace differs from rank 0's (another host, a container) the same directories for the
/// names of its namespace, before it takes any work (``MPICopySetup/sweeps``).
internal final class LeftoverSweep {
    /// A directory to sweep: with its subdirectories (a tree merged into) or alone (the directory
    /// that file operands are copied into).
    struct Directory: Codable, Sendable, Equatable {
        var path: FilePath
        var recursive: Bool
    }

    /// Sweeps each of `directories` for the leftovers of `place` (see ``init(place:)``).
    static func sweep(_ directories: [Directory], place: UInt64?, _ resolver: Resolver) {
        guard !directories.isEmpty else { return }
        let sweep = LeftoverSweep(place: place)
        for directory in directories { sweep.sweep(directory.path, recursive: directory.recursive, resolver) }
    }

    private struct Process: Hashable { var pid: Int32; var start: UInt64 }
    /// Whether each process seen so far is alive.
    private var alive: [Process: Bool] = [:]
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)

    deinit { buffer.deallocate() }

    /// Without `/proc` nothing can be told apart, and nothing is removed.
    private let procWorks = ((try? system_processStartTime(system_getpid())) ?? nil) != nil
    /// This process's boot and pid namespace: only names that carry it are judged by their pid.
    private let place: UInt64?

    init(place: UInt64?) { self.place = place }

    /// Sweeps `directory`, resolved beneath its root as the copy's own paths are.
    func sweep(_ directory: FilePath, recursive: Bool, _ resolver: Resolver) {
        guard procWorks, let fd = try? resolver.open(directory, .destination, systemORdOnly | systemODirectory) else { return }
        sweep(fd, recursive: recursive)
        system_close(fd)
    }

    private func sweep(_ fd: CInt, recursive: Bool) {
        var subdirectories: [[CChar]] = []
        var leftovers: [[CChar]] = []
        try? system_forEachEntry(fd, buffer) { name, entryType in
            var type = entryType
            if type == 0 /* DT_UNKNOWN */, let st = try? system_statx(fd, name, follow: false) {
                type = SourceStat(st).isDirectory ? 4 : 8
            }
            let copy = { Array(UnsafeBufferPointer(start: name, count: system_strlen(name) + 1)) }
            if type == 4 /* DT_DIR */ {
                if recursive { subdirectories.append(copy()) }
            } else if LeftoverSweep.owner(of: name, place: place) != nil {
                leftovers.append(copy())
            }
        }
        for name in leftovers {
            name.withUnsafeBufferPointer { n in
                guard let p = n.baseAddress, let (pid, start) = LeftoverSweep.owner(of: p, place: place), !isAlive(pid, start) else { return }
                try? system_unlinkat(fd, p)
            }
        }
        for name in subdirectories {
            name.withUnsafeBufferPointer { n in
                guard let p = n.baseAddress, let sub = try? system_openat(fd, p, systemORdOnly | systemODirectory | systemONoFollow) else { return }
                sweep(sub, recursive: true)
                system_close(sub)
            }
        }
    }

    private func isAlive(_ pid: Int32, _ start: UInt64) -> Bool {
        let key = Process(pid: pid, start: start)
        if let known = alive[key] { return known }
        // An unreadable /proc entry counts as alive: remove only what is surely orphaned.
        let now: Bool
        do throws(Errno) { now = try system_processStartTime(pid) == start } catch { now = true }
        alive[key] = now
        return now
    }

    /// The pid and start time in a name `.mpcp-tmp-<pid>-<start>-<where>-<n>` whose `<where>` is
    /// `place`, or in an older `.mpcp-tmp-<pid>-<start>-<n>` (all in hex); nil for any other name.
    private static func owner(of name: CName, place: UInt64?) -> (Int32, UInt64)? {
        let prefix = ".mpcp-tmp-"
        var fields: [UInt64] = [0]
        var digits = 0
        var i = 0
        for c in prefix.utf8 {
            guard UInt8(bitPattern: name[i]) == c else { return nil }
            i += 1
        }
        while name[i] != 0 {
            let c = UInt8(bitPattern: name[i])
            i += 1
            if c == UInt8(ascii: "-") {
                guard digits > 0, fields.count < 4 else { return nil }
                fields.append(0)
                digits = 0
                continue
            }
            let value: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = c - UInt8(ascii: "a") + 10
            default: return nil
            }
            digits += 1
            guard digits <= 16 else { return nil }
            fields[fields.count - 1] = fields[fields.count - 1] << 4 | UInt64(value)
        }
        guard fields.count >= 3, digits > 0, fields[0] > 0, fields[0] <= UInt64(Int32.max) else { return nil }
        if fields.count == 4 && fields[2] != place { return nil }
        return (Int32(fields[0]), fields[1])
    }
}

/// Calls a progress closure every interval on a thread of its own until stopped.
private final class ProgressTicker: Sendable {
    private final class State: Sendable {
        let stopped = Atomic<Bool>(false)
        let monitor = ThreadMonitor()
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
    func run(_ scheduler: any WorkSource) throws(MPCopyError)
}

/// Where a pool takes its items and reports their results: the ``Scheduler`` on the rank that
/// plans the copy, or (with `--mpi`) a serving rank's queue of the items rank 0 sent it. The same
/// thread that took an item with ``next()`` completes it or gives it back.
internal protocol WorkSource: AnyObject, Sendable {
    /// The next item; nil when there is none left (or the copy was cancelled).
    func next() -> WorkItem?
    /// The result of an item ``next()`` handed out.
    func complete(_ item: WorkItem, _ result: WorkResult)
    /// An item ``next()`` handed out that nobody performed, for another worker.
    func giveBack(_ item: WorkItem)
}

extension Scheduler: WorkSource {}

/// `jobs` plain threads in this process, each taking an item, performing it and reporting it.
internal struct ThreadPool: WorkerPool {
    let jobs: Int
    let performer: Performer

    func run(_ scheduler: any WorkSource) throws(MPCopyError) {
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

