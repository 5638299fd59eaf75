import CMultiprocessing
import Glibc
import Synchronization
import SystemPackage

/// Does the work of one item: the system calls of the copy. One performer is shared by all the
/// worker threads of a process (a worker child has its own).
internal final class Performer: Sendable {
    let options: CopyOptions
    let umask: mode_t
    let isRoot: Bool
    let euid: UInt32
    let egid: UInt32
    /// Set by `cancel()`: workers stop at the next file or 16 MiB step and remove their temporaries.
    let cancelled = Atomic<Bool>(false)
    /// Bytes copied so far, for the progress bar (updated within large files too).
    let bytesDone = Atomic<Int64>(0)
    /// Turned off after the first EOPNOTSUPP-like answer, so that ext4 pays for one failed FICLONE only.
    private let cloneWorks = Atomic<Bool>(true)
    private let copyRangeWorks = Atomic<Bool>(true)
    private let tmpfileWorks: Atomic<Bool>
    private let emptyPathLinkWorks = Atomic<Bool>(true)
    private let noAtimeWorks = Atomic<Bool>(true)
    private let sequence = Atomic<UInt64>(0)
    /// `.mpcp-tmp-<pid>-<start>-`, in hex, where `<start>` is when this process started (random
    /// where `/proc` is missing): unique per process, never the name of a source file. A later
    /// run removes such names whose process is gone (`LeftoverSweep` in CopyJob.swift).
    let temporaryPrefix: String
    private let excludes: [(pattern: [CChar], hasSlash: Bool)]
    private let excludesNeedRelative: Bool
    /// Opens every path of a work item beneath its tree's root, never through a symlink.
    let resolver = Resolver()

    /// The size of one copy_file_range step: the granularity of progress and cancellation.
    static let step = 16 << 20

    init(options: CopyOptions) {
        self.options = options
        umask = system_readUmask()
        tmpfileWorks = Atomic(options.unnamedTemporaries)
        euid = system_geteuid()
        egid = system_getegid()
        isRoot = euid == 0
        let pid = String(system_getpid(), radix: 16)
        let start = (try? system_processStartTime(system_getpid())) ?? nil
        let salt = String(start ?? (system_randomUInt64() & 0xFFFF_FFFF), radix: 16)
        temporaryPrefix = ".mpcp-tmp-\(pid)-\(salt)-"
        excludes = (options.excludes.map { Array($0.utf8) } + options.excludeBytes).map { pattern in
            (pattern.map { CChar(bitPattern: $0) } + [0], pattern.contains(UInt8(ascii: "/")))
        }
        excludesNeedRelative = excludes.contains { $0.hasSlash }
    }

    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    func nextTemporaryName() -> FilePath.Component {
        let n = sequence.add(1, ordering: .relaxed).newValue
        // The prefix is ASCII and has no slash, so the component is valid.
        guard let name = FilePath.Component(temporaryPrefix + String(n, radix: 16)) else {
            preconditionFailure("the temporary prefix is ASCII without a slash, so it is a valid name")
        }
        return name
    }

    func perform(_ item: WorkItem) -> WorkResult {
        var result = WorkResult()
        switch item {
        case .scan(let scan): self.scan(scan, &result)
        case .files(let batch): copyBatch(batch, &result)
        case .chunk(let chunk): copyChunk(chunk, &result)
        case .finishLarge(let finish): finishLarge(finish, &result)
        case .link(let link): makeLink(link, &result)
        case .finishDirectory(let finish): finishDirectory(finish, &result)
        }
        return result
    }

    // MARK: - scan

    private func isExcluded(_ name: CName, relative: FilePath, component: () -> FilePath.Component?) -> Bool {
        if excludes.isEmpty { return false }
        for exclude in excludes where !exclude.hasSlash {
            if system_fnmatch(exclude.pattern, name, pathname: false) { return true }
        }
        guard excludesNeedRelative, let component = component() else { return false }
        return relative.appending(component).withPlatformString { path in
            excludes.contains { $0.hasSlash && system_fnmatch($0.pattern, path, pathname: true) }
        }
    }

    /// Reads one directory: creates its subdirectories in the destination, copies its symlinks,
    /// and returns its files and subdirectories for the scheduler to hand out.
    private func scan(_ item: ScanItem, _ result: inout WorkResult) {
        let srcfd: CInt
        do throws(Errno) {
            srcfd = try resolver.open(item.source, .source, O_RDONLY | O_DIRECTORY)
        } catch {
            result.failures.append(CopyFailure(path: item.source, operation: "open directory", errno: error, detail: Resolver.explain(error)))
            return
        }
        defer { system_close(srcfd) }
        do throws(Errno) {
            result.directoryStat = SourceStat(try system_fstatx(srcfd))
        } catch {
            result.failures.append(CopyFailure(path: item.source, operation: "stat directory", errno: error))
            return
        }
        if options.preserve.contains(.xattr) {
            result.directoryAttributes = readAttributes(srcfd)
        }
        var dstfd: CInt = -1
        if !options.dryRun {
            do throws(Errno) {
                // An operand's directory is a name in its root (its parent), made here or
                // left by an earlier run; a symlink there is refused like any other.
                if item.createDestination, let name = item.destination.lastComponent {
                    let parent = try resolver.directory(item.destination.removingLastComponent(), .destination)
                    defer { system_close(parent) }
                    try name.withCName { n throws(Errno) in
                        do throws(Errno) { try system_mkdirat(parent, n, 0o700) } catch .fileExists {
                            // An earlier run's directory: fine if it is one.
                            let st = try system_statx(parent, n, follow: false)
                            if st.mode & modeTypeMask != modeDirectory { throw Errno.fileExists }
                        }
                    }
                }
                dstfd = try resolver.directory(item.destination, .destination)
            } catch {
                result.failures.append(CopyFailure(path: item.source, operation: "create directory \(shellQuoted(item.destination, always: true))", errno: error,
                                                   detail: error == .fileExists ? Resolver.notADirectory : Resolver.explain(error)))
                return
            }
        } else if options.update || options.checksum || options.noClobber {
            dstfd = (try? resolver.directory(item.destination, .destination)) ?? -1
        }
        defer { if dstfd >= 0 { system_close(dstfd) } }
        result.scanned = true
        if dstfd >= 0, !options.dryRun, let st = try? system_fstatx(dstfd) {
            result.destinationSetGID = st.mode & 0o2000 != 0
        } else {
            result.destinationSetGID = true
        }
        result.directories = 1
        if options.verbose { result.copied.append(item.source) }

        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }
        do throws(Errno) {
            try system_forEachEntry(srcfd, buffer) { name, entryType in
                var type = entryType
                if isExcluded(name, relative: item.relative, component: { FilePath.Component(platformString: name) }) {
                    result.excluded += 1
                    return
                }
                guard let component = FilePath.Component(platformString: name) else { return }
                var stat: SourceStat?
                if type == 0 /* DT_UNKNOWN */ {
                    guard let st = try? system_statx(srcfd, name, follow: false) else { return }
                    let s = SourceStat(st)
                    stat = s
                    type = s.isDirectory ? 4 : s.isRegular ? 8 : s.isSymlink ? 10 : UInt8(s.fileType >> 12)
                }
                switch type {
                case 4: // DT_DIR
                    if !options.dryRun {
                        do throws(Errno) { try system_mkdirat(dstfd, name, 0o700) } catch .fileExists {
                            let st = try? system_statx(dstfd, name, follow: false)
                            if st.map({ $0.mode & modeTypeMask != modeDirectory }) ?? true {
                                result.failures.append(CopyFailure(path: item.source.appending(component), operation: "create directory", errno: .fileExists,
                                                                   detail: Resolver.notADirectory))
                                return
                            }
                        } catch {
                            result.failures.append(CopyFailure(path: item.source.appending(component), operation: "create directory", errno: error))
                            return
                        }
                    }
                    result.subdirectories.append(component)
                case 8: // DT_REG
                    let s: SourceStat
                    if let stat { s = stat } else {
                        do throws(Errno) { s = SourceStat(try system_statx(srcfd, name, follow: false)) } catch {
                            result.failures.append(CopyFailure(path: item.source.appending(component), operation: "stat", errno: error))
                            return
                        }
                    }
                    if dstfd >= 0, skips(s, srcfd, name, dstfd, name, staged: item.staged) {
                        result.skipped += 1
                        // The scheduler still needs it to link the inode's other names to it.
                        if s.nlink > 1 && options.preserve.contains(.links), let d = try? system_statx(dstfd, name, follow: false) {
                            result.upToDateLinks.append(FileEntry(name: component, destinationName: nil, stat: s))
                            result.upToDateInodes.append(d.ino)
                        }
                        return
                    }
                    result.foundFiles.append(FileEntry(name: component, destinationName: nil, stat: s))
                case 10: // DT_LNK
                    copySymlink(srcfd, dstfd, name, source: item.source.appending(component), staged: item.staged, &result)
                case 1: // DT_FIFO
                    copyFifo(srcfd, dstfd, name, source: item.source.appending(component), &result)
                default:
                    result.failures.append(CopyFailure(path: item.source.appending(component), operation: "copy",
                                                       detail: "device and socket files are not copied"))
                }
            }
        } catch {
            result.failures.append(CopyFailure(path: item.source, operation: "read directory", errno: error))
        }
    }

    /// Removes, under the directory `dirfd`, the `.mpcp-tmp-*` files that a killed run left in a
    /// staged tree (the named temporaries of large files), so that taking the tree over does not
    /// put them in place. Returns how many went.
    func removeTemporaries(under dirfd: CInt) -> Int {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }
        let prefix = Array(".mpcp-tmp-".utf8CString.dropLast())
        var removed = 0
        var subdirectories: [[CChar]] = []
        try? system_forEachEntry(dirfd, buffer) { name, type in
            if type == 4 /* DT_DIR */ {
                subdirectories.append(Array(UnsafeBufferPointer(start: name, count: strlen(name) + 1)))
            } else if strncmp(name, prefix, prefix.count) == 0, (try? system_unlinkat(dirfd, name)) != nil {
                removed += 1
            }
        }
        for name in subdirectories {
            name.withUnsafeBufferPointer { n in
                guard let p = n.baseAddress, let fd = try? system_openat(dirfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) else { return }
                removed += removeTemporaries(under: fd)
                system_close(fd)
            }
        }
        return removed
    }

    /// The skip decision of `-u`, `--checksum` and `--no-clobber` for the regular file
    /// `srcdir`/`sourceName` (stat `s`) and its destination `dstdir`/`name`.
    ///
    /// - `--no-clobber` (cp -n): any existing name stays.
    /// - `-u` (cp -u, rsync -u): a destination newer than the source stays; one of the same size
    ///   and modification time is up to date.
    /// - `--checksum` (rsync -c): a destination of the same size and the same bytes (and, with
    ///   times kept, the same modification time) is up to date; same size and time alone is not.
    ///
    /// In a staged tree (`staged`), which no one but mpcp writes, an existing file was left by a
    /// killed run: it is complete only if it has the source's size and modification time (given
    /// last), whatever its age, so "newer" and no-clobber do not apply there.
    func skips(_ s: SourceStat, _ srcdir: CInt, _ sourceName: CName, _ dstdir: CInt, _ name: CName, staged: Bool) -> Bool {
        guard options.update || options.checksum || options.noClobber else { return false }
        guard let d = try? system_statx(dstdir, name, follow: false) else { return false }
        if options.noClobber && !staged { return true }
        guard d.mode & modeTypeMask == modeRegular else { return false }
        let sameSize = Int64(d.size) == s.size
        let sameTime = d.mtime_sec == s.mtime && d.mtime_nsec == s.mtimeNanoseconds
        if staged {
            guard sameSize && sameTime && (options.update || options.checksum) else { return false }
            return !options.checksum || sameContent(srcdir, sourceName, dstdir, name)
        }
        if options.update && (d.mtime_sec > s.mtime || (d.mtime_sec == s.mtime && d.mtime_nsec > s.mtimeNanoseconds)) {
            return true
        }
        if options.checksum {
            guard sameSize, sameTime || !options.preserve.contains(.timestamps) else { return false }
            return sameContent(srcdir, sourceName, dstdir, name)
        }
        return sameSize && sameTime
    }

    /// Whether two files hold the same bytes, read through in 1 MiB steps. Any error: not the same.
    func sameContent(_ srcdir: CInt, _ sourceName: CName, _ dstdir: CInt, _ name: CName) -> Bool {
        guard let a = try? system_openat(srcdir, sourceName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) else { return false }
        defer { system_close(a) }
        guard let b = try? system_openat(dstdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) else { return false }
        defer { system_close(b) }
        let size = 1 << 20
        let x = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        let y = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { x.deallocate(); y.deallocate() }
        guard let px = x.baseAddress, let py = y.baseAddress else { return false }
        var offset: Int64 = 0
        while !isCancelled {
            guard let n = try? readFully(a, x, count: size, offset), let m = try? readFully(b, y, count: size, offset) else { return false }
            if n != m || memcmp(px, py, n) != 0 { return false }
            if n < size { return true }
            offset += Int64(n)
        }
        return false
    }

    private func copySymlink(_ srcfd: CInt, _ dstfd: CInt, _ name: CName, source: FilePath, staged: Bool, _ result: inout WorkResult) {
        do throws(Errno) {
            let target = try system_readlinkat(srcfd, name)
            if options.dryRun {
                result.symlinks += 1
                if options.verbose { result.copied.append(source) }
                return
            }
            // The times too: a run killed between creating a link and setting its times left it
            // with the wrong ones.
            if options.update, let existing = try? system_readlinkat(dstfd, name), existing == target,
               (try? symlinkMetadataMatches(srcfd, dstfd, name)) == true {
                result.skipped += 1
                return
            }
            if options.noClobber && !staged, (try? system_statx(dstfd, name, follow: false)) != nil {
                result.skipped += 1
                return
            }
            if staged {
                try replacingLeftover(dstfd, name) { () throws(Errno) in try system_symlinkat(target, dstfd, name) }
                do throws(Errno) { try applySymlinkMetadata(srcfd, name, dstfd, name) } catch {
                    try? system_unlinkat(dstfd, name)
                    throw error
                }
            } else {
                try placeSymlink(target, srcfd, dstfd, name, sourceName: name)
            }
            result.symlinks += 1
            if options.verbose { result.copied.append(source) }
        } catch {
            result.failures.append(CopyFailure(path: source, operation: "copy symlink", errno: error))
        }
    }

    /// Whether the link `dstfd`/`name` has the times (and, as root, the owner) that
    /// ``applySymlinkMetadata(_:_:_:_:)`` would give it from `srcfd`/`name`.
    private func symlinkMetadataMatches(_ srcfd: CInt, _ dstfd: CInt, _ name: CName) throws(Errno) -> Bool {
        let timestamps = options.preserve.contains(.timestamps), owner = options.preserve.contains(.ownership) && isRoot
        guard timestamps || owner else { return true }
        let s = try system_statx(srcfd, name, follow: false), d = try system_statx(dstfd, name, follow: false)
        return (!timestamps || (s.mtime_sec == d.mtime_sec && s.mtime_nsec == d.mtime_nsec))
            && (!owner || (s.uid == d.uid && s.gid == d.gid))
    }

    /// Creates the link under a temporary name and renames it over whatever holds the final name.
    func placeSymlink(_ target: [CChar], _ srcfd: CInt, _ dstfd: CInt, _ name: CName, sourceName: CName) throws(Errno) {
        let temporary = nextTemporaryName()
        try temporary.withCName { tmp throws(Errno) in
            try system_symlinkat(target, dstfd, tmp)
            do throws(Errno) {
                try applySymlinkMetadata(srcfd, sourceName, dstfd, tmp)
                try system_renameat(dstfd, tmp, dstfd, name)
            } catch {
                try? system_unlinkat(dstfd, tmp)
                throw error
            }
        }
    }

    /// Runs `create`, which makes `name` in a staged directory. A name already there was left by a
    /// killed run whose staged tree this run took over, and was not found complete (or -u is off):
    /// it goes, and `create` runs again.
    private func replacingLeftover<T>(_ dirfd: CInt, _ name: CName, _ create: () throws(Errno) -> T) throws(Errno) -> T {
        do throws(Errno) { return try create() } catch .fileExists {
            try system_unlinkat(dirfd, name)
            return try create()
        }
    }

    /// Gives the link `dstfd`/`name` the owner (as root) and times of the source link `srcfd`/`sourceName`.
    private func applySymlinkMetadata(_ srcfd: CInt, _ sourceName: CName, _ dstfd: CInt, _ name: CName) throws(Errno) {
        guard options.preserve.contains(.ownership) || options.preserve.contains(.timestamps) else { return }
        let st = try system_statx(srcfd, sourceName, follow: false)
        if options.preserve.contains(.ownership) && isRoot {
            try system_lchownat(dstfd, name, st.uid, st.gid)
        }
        if options.preserve.contains(.timestamps) {
            try system_lutimensat(dstfd, name, atime: (st.atime_sec, st.atime_nsec), mtime: (st.mtime_sec, st.mtime_nsec))
        }
    }

    private func copyFifo(_ srcfd: CInt, _ dstfd: CInt, _ name: CName, source: FilePath, _ result: inout WorkResult) {
        if options.dryRun {
            result.files += 1
            if options.verbose { result.copied.append(source) } // -n lists it as any other file
            return
        }
        do throws(Errno) {
            let st = try system_statx(srcfd, name, follow: false)
            do throws(Errno) { try system_mkfifoat(dstfd, name, mode_t(st.mode & 0o7777)) } catch .fileExists {
                if options.update || options.noClobber { result.skipped += 1; return }
            }
            if options.preserve.contains(.timestamps) {
                try system_lutimensat(dstfd, name, atime: (st.atime_sec, st.atime_nsec), mtime: (st.mtime_sec, st.mtime_nsec))
            }
            result.files += 1
            if options.verbose { result.copied.append(source) }
        } catch {
            result.failures.append(CopyFailure(path: source, operation: "create fifo", errno: error))
        }
    }

    // MARK: - files

    /// A failure inside the copy of one file: which step, and why.
    struct StepError: Error {
        var operation: String
        var errno: Errno?
        var detail: String? = nil
    }

    private func copyBatch(_ batch: FileBatch, _ result: inout WorkResult) {
        if options.dryRun {
            for entry in batch.entries {
                result.files += 1
                result.bytes += entry.stat.size
                if options.verbose { result.copied.append(batch.sourceDirectory.appending(entry.name)) }
                result.entryDone.append(true)
            }
            return
        }
        /// Every entry of the batch fails at `operation`.
        func failAll(_ operation: String, _ error: Errno) {
            for entry in batch.entries {
                result.failures.append(CopyFailure(path: batch.sourceDirectory.appending(entry.name), operation: operation, errno: error,
                                                   detail: Resolver.explain(error)))
            }
            result.entryDone = Array(repeating: false, count: batch.entries.count)
        }
        let sdir: CInt, ddir: CInt
        do throws(Errno) {
            sdir = try resolver.directory(batch.sourceDirectory, .source)
        } catch {
            failAll("open directory", error)
            return
        }
        defer { system_close(sdir) }
        do throws(Errno) {
            ddir = try resolver.directory(batch.destinationDirectory, .destination)
        } catch {
            failAll("open destination directory", error)
            return
        }
        defer { system_close(ddir) }
        for entry in batch.entries {
            if isCancelled {
                result.cancelled = true
                result.entryDone.append(false)
                continue
            }
            do throws(StepError) {
                let bytes = try copyFile(sdir, ddir, entry, inheritsGroup: batch.inheritsGroup, staged: batch.staged)
                result.files += 1
                result.bytes += bytes
                result.entryDone.append(true)
                if options.verbose { result.copied.append(batch.sourceDirectory.appending(entry.name)) }
            } catch {
                result.entryDone.append(false)
                if error.operation == "cancelled" { result.cancelled = true; continue }
                result.failures.append(CopyFailure(path: batch.sourceDirectory.appending(entry.name), operation: error.operation,
                                                   errno: error.errno, detail: error.detail))
            }
        }
    }

    /// Copies one file whole, never visible under its final name until complete with its metadata.
    ///
    /// In a staged tree (`staged`), whose path is not final yet, the file is created under its own
    /// name and removed again if its copy fails. Elsewhere it is written as an unnamed `O_TMPFILE`
    /// in the destination directory and linked under its final name at the end (`linkat`):
    /// nothing is left behind even after SIGKILL, and it costs one directory update instead of a
    /// create plus a rename. Where O_TMPFILE is not supported, a `.mpcp-tmp-*` name and
    /// `renameat` do the same job.
    private func copyFile(_ sdir: CInt, _ ddir: CInt, _ entry: FileEntry, inheritsGroup: Bool, staged: Bool) throws(StepError) -> Int64 {
        let input: CInt
        do throws(Errno) {
            input = try entry.name.withCName { n throws(Errno) in try openSource(sdir, n, owner: entry.stat.uid) }
        } catch { throw StepError(operation: "open", errno: error) }
        defer { system_close(input) }
        // No fstat here: the copy goes by the scan's statx, and `fill` checks once the data is
        // written that the file opened is still the one scanned (one statx per file, not two).
        let createMode = mode_t(entry.stat.mode & 0o777)
        if staged {
            return try entry.targetName.withCName { final throws(StepError) -> Int64 in
                let output: CInt
                do throws(Errno) {
                    output = try replacingLeftover(ddir, final) { () throws(Errno) in
                        try system_openat(ddir, final, O_WRONLY | O_CREAT | O_EXCL, createMode)
                    }
                } catch {
                    throw StepError(operation: "create", errno: error)
                }
                var complete = false
                // The tree is not under its final name yet, but a partial file must not reach it.
                defer {
                    system_close(output)
                    if !complete { try? system_unlinkat(ddir, final) }
                }
                let bytes = try fill(output, from: input, entry, created: createMode, inheritsGroup: inheritsGroup)
                complete = true
                return bytes
            }
        }
        if tmpfileWorks.load(ordering: .relaxed) {
            var output: CInt = -1
            do throws(Errno) {
                output = try ".".withCName { dot throws(Errno) in try system_openat(ddir, dot, systemOTmpfile | O_WRONLY, createMode) }
            } catch {
                switch error {
                case .notSupported, .isDirectory, .invalidArgument: tmpfileWorks.store(false, ordering: .relaxed)
                default: throw StepError(operation: "create", errno: error)
                }
            }
            if output >= 0 {
                defer { system_close(output) }
                let bytes = try fill(output, from: input, entry, created: createMode, inheritsGroup: inheritsGroup)
                do throws(Errno) {
                    try entry.targetName.withCName { final throws(Errno) in try publish(output, ddir, final) }
                } catch { throw StepError(operation: "link into place", errno: error) }
                return bytes
            }
        }
        let temporary = nextTemporaryName()
        return try temporary.withCName { tmp throws(StepError) -> Int64 in
            let output: CInt
            do throws(Errno) { output = try system_openat(ddir, tmp, O_WRONLY | O_CREAT | O_EXCL, createMode) } catch {
                throw StepError(operation: "create", errno: error)
            }
            var placed = false
            // Whatever goes wrong, the temporary goes: a partial file never stays behind.
            defer {
                system_close(output)
                if !placed { try? system_unlinkat(ddir, tmp) }
            }
            let bytes = try fill(output, from: input, entry, created: createMode, inheritsGroup: inheritsGroup)
            do throws(Errno) {
                try entry.targetName.withCName { final throws(Errno) in try system_renameat(ddir, tmp, ddir, final) }
            } catch { throw StepError(operation: "rename into place", errno: error) }
            placed = true
            return bytes
        }
    }

    /// Opens a source file for reading, with O_NOATIME where allowed (our own files, or as root):
    /// the copy leaves the source's access time alone, as `tar --atime-preserve=system` does, and
    /// the kernel need not write the source's inode back for it.
    private func openSource(_ dirfd: CInt, _ name: CName, owner: UInt32) throws(Errno) -> CInt {
        if (isRoot || owner == euid) && noAtimeWorks.load(ordering: .relaxed) {
            do throws(Errno) { return try system_openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | systemONoAtime) } catch .notPermitted {
                // No CAP_FOWNER after all (a user namespace, say): plain opens from now on.
                noAtimeWorks.store(false, ordering: .relaxed)
            }
        }
        return try system_openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
    }

    /// Writes one whole file into `output`: its data, the check that the source is still the
    /// file the scan saw (`checkUnchanged`), the read-back of --verify, and its metadata (times
    /// last, so that a file whose times match its source's is complete).
    private func fill(_ output: CInt, from input: CInt, _ entry: FileEntry, created: mode_t, inheritsGroup: Bool) throws(StepError) -> Int64 {
        let bytes: Int64
        do throws(StepError) { bytes = try copyContents(input, output, entry.stat, whole: true) } catch {
            // A copy that failed on a file that is no longer the one scanned (a FIFO, a
            // directory or another file put in its place) is reported as that change.
            if error.operation != "cancelled" { try checkUnchanged(input, entry.stat) }
            throw error
        }
        try checkUnchanged(input, entry.stat)
        if options.verify { try verify(input, output, size: entry.stat.size) }
        try applyMetadata(output, entry.stat, from: input, created: created, inheritsGroup: inheritsGroup)
        return bytes
    }

    /// A short read before the size the file had: it shrank while it was copied.
    static func shrank(expected: Int64, at offset: Int64) -> StepError {
        StepError(operation: "copy", errno: nil,
                  detail: "the file changed while it was copied (it ended at byte \(offset), before byte \(expected)); not copied")
    }

    /// Throws unless the source `input` is still the file the scan saw (`stat`, its `statx`): the
    /// same inode, still a regular file, with the same size, modification time and change time.
    /// Otherwise it changed since the scan, maybe while it was copied, and the copy may hold
    /// content it never had (a zero tail, a mix of old and new), so it must not take its final
    /// name. Comparing with the scan's statx instead of an fstat when the file is opened costs one
    /// call per file instead of two, and also catches a change between the scan and the open.
    func checkUnchanged(_ input: CInt, _ stat: SourceStat) throws(StepError) {
        let now: cmp_stat_t
        do throws(Errno) { now = try system_fstatx(input) } catch { throw StepError(operation: "stat", errno: error) }
        var what: [String] = []
        // Renamed over by another file (a large file's chunks and its finish each open the name,
        // and a small file is opened by its name after the scan).
        if now.ino != stat.ino || (now.dev_major << 32 | now.dev_minor) != stat.dev { what.append("it was replaced") }
        if now.mode & modeTypeMask != modeRegular {
            what.append("it is no longer a regular file")
        } else {
            if Int64(now.size) != stat.size { what.append("its size went from \(stat.size) to \(now.size) bytes") }
            if now.mtime_sec != stat.mtime || now.mtime_nsec != stat.mtimeNanoseconds { what.append("it was modified") }
        }
        if what.isEmpty, now.ctime_sec != stat.ctime || now.ctime_nsec != stat.ctimeNanoseconds { what.append("its inode changed") }
        guard what.isEmpty else {
            throw StepError(operation: "copy", errno: nil,
                            detail: "the file changed while it was copied (\(what.joined(separator: ", "))); not copied")
        }
    }

    /// Whether `fd` is a regular file: asked only before a failed clone or copy_file_range turns
    /// that call off for the rest of the run, since a FIFO or device put in a file's place since
    /// the scan fails them too, and must not cost every later file its fast path.
    private func isRegularFile(_ fd: CInt) -> Bool {
        (try? system_fstatx(fd)).map { $0.mode & modeTypeMask == modeRegular } ?? false
    }

    /// Gives the unnamed file `fd` the name `name` in `ddir`, replacing an older file atomically.
    private func publish(_ fd: CInt, _ ddir: CInt, _ name: CName) throws(Errno) {
        do throws(Errno) {
            try link(fd, ddir, name)
        } catch .fileExists {
            // An older copy holds the name: link under a temporary name, then rename over it.
            try nextTemporaryName().withCName { tmp throws(Errno) in
                try link(fd, ddir, tmp)
                do throws(Errno) { try system_renameat(ddir, tmp, ddir, name) } catch {
                    try? system_unlinkat(ddir, tmp)
                    throw error
                }
            }
        }
    }

    /// `linkat` of an open file: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, /proc/self/fd does not.
    private func link(_ fd: CInt, _ ddir: CInt, _ name: CName) throws(Errno) {
        if emptyPathLinkWorks.load(ordering: .relaxed) {
            do throws(Errno) {
                try "".withCName { empty throws(Errno) in try system_linkat(fd, empty, ddir, name, systemATEmptyPath) }
                return
            } catch {
                guard error == .noSuchFileOrDirectory || error == .notPermitted else { throw error }
                emptyPathLinkWorks.store(false, ordering: .relaxed)
            }
        }
        try "/proc/self/fd/\(fd)".withCName { path throws(Errno) in
            try system_linkat(systemATFDCWD, path, ddir, name, systemATSymlinkFollow)
        }
    }

    /// Copies the data of a whole file (or, from chunks, a range), keeping holes.
    private func copyContents(_ input: CInt, _ output: CInt, _ stat: SourceStat, whole: Bool) throws(StepError) -> Int64 {
        if stat.size == 0 { return 0 }
        if whole && cloneWorks.load(ordering: .relaxed) && !options.verify {
            do throws(Errno) {
                try system_ficlone(output, input)
                bytesDone.add(stat.size, ordering: .relaxed)
                return stat.size
            } catch {
                switch error {
                case .notSupported, .invalidArgument, .improperLink, .badFileDescriptor, .noFunction:
                    if isRegularFile(input) { cloneWorks.store(false, ordering: .relaxed) }
                default: break
                }
            }
        }
        let copied = try copyRange(input, output, from: 0, to: stat.size, sparse: stat.isSparse)
        if stat.isSparse {
            // A trailing hole leaves the file short: set the size.
            do throws(Errno) { try system_ftruncate(output, stat.size) } catch { throw StepError(operation: "truncate", errno: error) }
        }
        return copied
    }

    /// Copies `[from, to)`. With `sparse`, only the data segments (SEEK_DATA/SEEK_HOLE), so holes stay holes.
    func copyRange(_ input: CInt, _ output: CInt, from: Int64, to end: Int64, sparse: Bool) throws(StepError) -> Int64 {
        if !sparse { return try copySegment(input, output, from: from, to: end) }
        var position = from
        var total: Int64 = 0
        while position < end {
            let data: Int64?
            do throws(Errno) { data = try system_lseek(input, position, systemSeekData) } catch { throw StepError(operation: "seek data", errno: error) }
            guard let data, data < end else { break }
            let hole: Int64?
            do throws(Errno) { hole = try system_lseek(input, data, systemSeekHole) } catch { throw StepError(operation: "seek hole", errno: error) }
            let segmentEnd = min(hole ?? end, end)
            total += try copySegment(input, output, from: data, to: segmentEnd)
            position = segmentEnd
        }
        return total
    }

    private func copySegment(_ input: CInt, _ output: CInt, from: Int64, to end: Int64) throws(StepError) -> Int64 {
        var inOffset = from
        var outOffset = from
        if copyRangeWorks.load(ordering: .relaxed) {
            while inOffset < end {
                if isCancelled { throw StepError(operation: "cancelled", errno: nil) }
                let n: Int
                do throws(Errno) {
                    n = try system_copyFileRange(input, &inOffset, output, &outOffset, Int(min(Int64(Performer.step), end - inOffset)))
                } catch {
                    switch error {
                    case .improperLink, .invalidArgument, .noFunction, .notSupported, .notSupportedOnSocket:
                        // This file system pair refuses: read and write from here on. (Unless
                        // the source is no longer a regular file: then the file fails.)
                        guard isRegularFile(input) else {
                            throw StepError(operation: "copy", errno: nil, detail: "it is no longer a regular file")
                        }
                        if inOffset == from { copyRangeWorks.store(false, ordering: .relaxed) }
                        return (inOffset - from) + (try readWrite(input, output, from: inOffset, to: end))
                    default:
                        throw StepError(operation: "copy", errno: error)
                    }
                }
                if n == 0 { throw Performer.shrank(expected: end, at: inOffset) }
                bytesDone.add(Int64(n), ordering: .relaxed)
            }
            return inOffset - from
        }
        return try readWrite(input, output, from: from, to: end)
    }

    private func readWrite(_ input: CInt, _ output: CInt, from: Int64, to end: Int64) throws(StepError) -> Int64 {
        let size = Int(min(Int64(1 << 20), max(end - from, 1)))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        var offset = from
        while offset < end {
            if isCancelled { throw StepError(operation: "cancelled", errno: nil) }
            let want = Int(min(Int64(size), end - offset))
            let n: Int
            do throws(Errno) { n = try system_pread(input, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), offset) } catch {
                throw StepError(operation: "read", errno: error)
            }
            if n == 0 { throw Performer.shrank(expected: end, at: offset) }
            var written = 0
            while written < n {
                do throws(Errno) {
                    written += try system_pwrite(output, UnsafeRawBufferPointer(rebasing: buffer[written..<n]), offset + Int64(written))
                } catch { throw StepError(operation: "write", errno: error) }
            }
            offset += Int64(n)
            bytesDone.add(Int64(n), ordering: .relaxed)
        }
        return offset - from
    }

    /// Reads both files back and compares them byte for byte.
    private func verify(_ input: CInt, _ output: CInt, size: Int64) throws(StepError) {
        let size1 = Int(min(Int64(1 << 20), max(size, 1)))
        let a = UnsafeMutableRawBufferPointer.allocate(byteCount: size1, alignment: 16)
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: size1, alignment: 16)
        defer { a.deallocate(); b.deallocate() }
        guard let pa = a.baseAddress, let pb = b.baseAddress else { return }
        // The output was opened write-only: read it through a new descriptor.
        let reader: CInt
        do throws(Errno) { reader = try "/proc/self/fd/\(output)".withCName { p throws(Errno) in try system_openat(systemATFDCWD, p, O_RDONLY) } } catch {
            throw StepError(operation: "verify", errno: error)
        }
        defer { system_close(reader) }
        var offset: Int64 = 0
        while true {
            if isCancelled { throw StepError(operation: "cancelled", errno: nil) }
            let n1: Int, n2: Int
            do throws(Errno) {
                n1 = try system_pread(input, a, offset)
                n2 = n1 == 0 ? try system_pread(reader, UnsafeMutableRawBufferPointer(rebasing: b[0..<1]), offset) : try readFully(reader, b, count: n1, offset)
            } catch { throw StepError(operation: "verify", errno: error) }
            if n1 != n2 || memcmp(pa, pb, n1) != 0 {
                throw StepError(operation: "verify", errno: nil, detail: "checksum mismatch at byte \(offset): the copy differs from the source")
            }
            if n1 == 0 { return }
            offset += Int64(n1)
        }
    }

    private func readFully(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer, count: Int, _ offset: Int64) throws(Errno) -> Int {
        var got = 0
        while got < count {
            let n = try system_pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[got..<count]), offset + Int64(got))
            if n == 0 { break }
            got += n
        }
        return got
    }

    /// Owner, mode, xattrs, then times last (anything written after would change mtime).
    ///
    /// - Parameters:
    ///   - created: the mode the file was created with (before the umask), or nil if unknown:
    ///     a `chmod` is skipped when the umask left exactly the wanted bits.
    ///   - inheritsGroup: the destination directory is set-group-ID, so a new file's group is not
    ///     ours and `chown` cannot be skipped.
    func applyMetadata(_ output: CInt, _ stat: SourceStat, from input: CInt?, created: mode_t? = nil, inheritsGroup: Bool = true) throws(StepError) {
        do throws(Errno) {
            var chowned = false
            if options.preserve.contains(.ownership) && isRoot
                && (stat.uid != euid || stat.gid != egid || inheritsGroup) {
                try system_fchown(output, stat.uid, stat.gid)
                chowned = true
            }
            // chown clears set-user-ID bits, so the mode comes after it.
            let mode = options.preserve.contains(.mode) ? mode_t(stat.mode & 0o7777) : mode_t(stat.mode & 0o777) & ~umask
            if chowned || created.map({ $0 & ~umask }) != mode { try system_fchmod(output, mode) }
        } catch { throw StepError(operation: "set owner and mode", errno: error) }
        if options.preserve.contains(.xattr), let input {
            for attribute in readAttributes(input) {
                do throws(Errno) { try setAttribute(output, attribute) } catch {
                    throw StepError(operation: "set xattr", errno: error)
                }
            }
        }
        if options.preserve.contains(.timestamps) {
            do throws(Errno) {
                try system_futimens(output, atime: (stat.atime, stat.atimeNanoseconds), mtime: (stat.mtime, stat.mtimeNanoseconds))
            } catch { throw StepError(operation: "set times", errno: error) }
        }
    }

    func readAttributes(_ fd: CInt) -> [ExtendedAttribute] {
        guard let list = try? system_flistxattr(fd), !list.isEmpty else { return [] }
        var attributes: [ExtendedAttribute] = []
        var start = 0
        for i in list.indices where list[i] == 0 {
            let name = Array(list[start...i])
            start = i + 1
            guard let value = try? name.withUnsafeBufferPointer({ (n) throws(Errno) -> [UInt8] in
                guard let base = n.baseAddress else { throw Errno.invalidArgument }
                return try system_fgetxattr(fd, base)
            }) else { continue }
            attributes.append(ExtendedAttribute(name: name.dropLast().map { UInt8(bitPattern: $0) }, value: value))
        }
        return attributes
    }

    func setAttribute(_ fd: CInt, _ attribute: ExtendedAttribute) throws(Errno) {
        let name = attribute.name.map { CChar(bitPattern: $0) } + [0]
        try name.withUnsafeBufferPointer { (n) throws(Errno) in
            guard let base = n.baseAddress else { return }
            do throws(Errno) { try system_fsetxattr(fd, base, attribute.value) } catch {
                // security.* or trusted.* need privileges a non-root copy lacks: cp -a skips them too.
                if error == .notPermitted || error == .permissionDenied { return }
                throw error
            }
        }
    }

    // MARK: - large files

    private func copyChunk(_ chunk: ChunkItem, _ result: inout WorkResult) {
        if isCancelled { result.cancelled = true; return }
        do throws(Errno) {
            // O_NONBLOCK: a FIFO put in the file's place since the scan is not waited on.
            let input = try resolver.open(chunk.source, .source, O_RDONLY | O_NONBLOCK)
            defer { system_close(input) }
            guard try system_fstatx(input).mode & modeTypeMask == modeRegular else {
                result.failures.append(CopyFailure(path: chunk.source, operation: "open", detail: "it is no longer a regular file"))
                return
            }
            let output = try resolver.open(chunk.temporary, .destination, O_WRONLY | O_CREAT, 0o600)
            defer { system_close(output) }
            do throws(StepError) {
                result.bytes += try copyRange(input, output, from: chunk.offset, to: chunk.offset + chunk.length, sparse: chunk.sparse)
            } catch {
                if error.operation == "cancelled" { result.cancelled = true; return }
                result.failures.append(CopyFailure(path: chunk.source, operation: error.operation, errno: error.errno, detail: error.detail))
            }
        } catch {
            result.failures.append(CopyFailure(path: chunk.source, operation: "open", errno: error, detail: Resolver.explain(error)))
        }
    }

    private func finishLarge(_ item: LargeFinishItem, _ result: inout WorkResult) {
        let source = item.sourceDirectory.appending(item.entry.name)
        do throws(Errno) {
            let input = try resolver.open(source, .source, O_RDONLY | O_NONBLOCK)
            defer { system_close(input) }
            let ddir = try resolver.directory(item.destinationDirectory, .destination)
            defer { system_close(ddir) }
            let output = try item.temporaryName.withCName { t throws(Errno) in try system_openat(ddir, t, O_WRONLY | O_NOFOLLOW) }
            defer { system_close(output) }
            do throws(StepError) {
                do throws(Errno) { try system_ftruncate(output, item.entry.stat.size) } catch {
                    throw StepError(operation: "truncate", errno: error)
                }
                try checkUnchanged(input, item.entry.stat)
                if options.verify { try verify(input, output, size: item.entry.stat.size) }
                try applyMetadata(output, item.entry.stat, from: input)
            } catch {
                if error.operation == "cancelled" { result.cancelled = true; return }
                result.failures.append(CopyFailure(path: source, operation: error.operation, errno: error.errno, detail: error.detail))
                return
            }
            try item.temporaryName.withCName { t throws(Errno) in
                try item.entry.targetName.withCName { d throws(Errno) in try system_renameat(ddir, t, ddir, d) }
            }
            result.files = 1
            result.entryDone = [true]
            if options.verbose { result.copied.append(source) }
        } catch {
            result.failures.append(CopyFailure(path: source, operation: "finish", errno: error, detail: Resolver.explain(error)))
        }
    }

    // MARK: - links and directories

    private func makeLink(_ item: LinkItem, _ result: inout WorkResult) {
        if options.dryRun { result.hardLinks += 1; return }
        do throws(Errno) {
            // Both names resolved beneath the destination's root: a directory swapped for a
            // symlink on either side must not link a file from outside, or into outside.
            guard let existingName = item.existing.lastComponent else { throw Errno.invalidArgument }
            let edir = try resolver.directory(item.existing.removingLastComponent(), .destination)
            defer { system_close(edir) }
            let ddir = try resolver.directory(item.destinationDirectory, .destination)
            defer { system_close(ddir) }
            try existingName.withCName { e throws(Errno) in
                if item.staged {
                    try item.name.withCName { d throws(Errno) in
                        try replacingLeftover(ddir, d) { () throws(Errno) in try system_linkat(edir, e, ddir, d) }
                    }
                    return
                }
                try nextTemporaryName().withCName { t throws(Errno) in
                    try system_linkat(edir, e, ddir, t)
                    do throws(Errno) {
                        try item.name.withCName { d throws(Errno) in try system_renameat(ddir, t, ddir, d) }
                    } catch {
                        try? system_unlinkat(ddir, t)
                        throw error
                    }
                }
            }
            result.hardLinks = 1
            if options.verbose { result.copied.append(item.source) }
        } catch {
            result.failures.append(CopyFailure(path: item.source, operation: "hard link", errno: error, detail: Resolver.explain(error)))
        }
    }

    private func finishDirectory(_ item: DirectoryFinishItem, _ result: inout WorkResult) {
        if options.dryRun { return }
        do throws(Errno) {
            let fd = try resolver.open(item.destination, .destination, O_RDONLY | O_DIRECTORY)
            defer { system_close(fd) }
            do {
                if options.preserve.contains(.ownership) && isRoot { try system_fchown(fd, item.stat.uid, item.stat.gid) }
                let mode = options.preserve.contains(.mode) ? mode_t(item.stat.mode & 0o7777) : mode_t(item.stat.mode & 0o777) & ~umask
                try system_fchmod(fd, mode)
                if options.preserve.contains(.xattr) { for attribute in item.attributes { try setAttribute(fd, attribute) } }
                if options.preserve.contains(.timestamps) {
                    try system_futimens(fd, atime: (item.stat.atime, item.stat.atimeNanoseconds), mtime: (item.stat.mtime, item.stat.mtimeNanoseconds))
                }
            }
        } catch {
            result.failures.append(CopyFailure(path: item.source, operation: "set directory metadata", errno: error, detail: Resolver.explain(error)))
        }
    }
}
