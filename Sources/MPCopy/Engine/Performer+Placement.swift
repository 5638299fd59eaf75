import CMultiprocessing
import Synchronization
import SystemPackage
import MultiprocessingSystem

// Placement: how a file's copy is written and takes its final name (a staged tree's own name,
// an O_TMPFILE linked into place, or a named temporary renamed), batches of small files, the
// chunks and finish of a large file, hard links.

extension Performer {
    func copyBatch(_ batch: FileBatch, _ result: inout WorkResult) {
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
                // A directory where the file goes: the placing step's EISDIR, in cp's words.
                let placing = ["create", "link into place", "rename into place"].contains(error.operation)
                let detail = error.detail ?? (placing ? error.errno.flatMap {
                    Resolver.explain($0, destination: batch.destinationDirectory.appending(entry.targetName))
                } : nil)
                result.failures.append(CopyFailure(path: batch.sourceDirectory.appending(entry.name), operation: error.operation,
                                                   errno: error.errno, detail: detail))
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
    func copyFile(_ sdir: CInt, _ ddir: CInt, _ entry: FileEntry, inheritsGroup: Bool, staged: Bool) throws(StepError) -> Int64 {
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
                        try system_openat(ddir, final, systemOWrOnly | systemOCreate | systemOExcl, createMode)
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
                output = try ".".withCName { dot throws(Errno) in try system_openat(ddir, dot, systemOTmpfile | systemOWrOnly, createMode) }
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
            do throws(Errno) { output = try system_openat(ddir, tmp, systemOWrOnly | systemOCreate | systemOExcl, createMode) } catch {
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
    func openSource(_ dirfd: CInt, _ name: CName, owner: UInt32) throws(Errno) -> CInt {
        if (isRoot || owner == euid) && noAtimeWorks.load(ordering: .relaxed) {
            do throws(Errno) { return try system_openat(dirfd, name, systemORdOnly | systemONoFollow | systemONonBlock | systemONoAtime) } catch .notPermitted {
                // No CAP_FOWNER after all (a user namespace, say): plain opens from now on.
                noAtimeWorks.store(false, ordering: .relaxed)
            }
        }
        return try system_openat(dirfd, name, systemORdOnly | systemONoFollow | systemONonBlock)
    }

    /// Writes one whole file into `output`: its data, the check that the source is still the
    /// file the scan saw (`checkUnchanged`), the read-back of --verify, and its metadata (times
    /// last, so that a file whose times match its source's is complete).
    func fill(_ output: CInt, from input: CInt, _ entry: FileEntry, created: mode_t, inheritsGroup: Bool) throws(StepError) -> Int64 {
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

    /// Gives the unnamed file `fd` the name `name` in `ddir`, replacing an older file atomically.
    func publish(_ fd: CInt, _ ddir: CInt, _ name: CName) throws(Errno) {
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
    func link(_ fd: CInt, _ ddir: CInt, _ name: CName) throws(Errno) {
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
    func replacingLeftover<T>(_ dirfd: CInt, _ name: CName, _ create: () throws(Errno) -> T) throws(Errno) -> T {
        do throws(Errno) { return try create() } catch .fileExists {
            try system_unlinkat(dirfd, name)
            return try create()
        }
    }

    /// Creates a large file's temporary, empty, when the file is planned and before any of its
    /// chunks is handed out: chunks open it without O_CREAT (see ``copyChunk(_:_:)``).
    func createTemporary(_ path: FilePath) throws(Errno) {
        system_close(try resolver.open(path, .destination, systemOWrOnly | systemOCreate | systemOExcl, 0o600))
    }

    func copyChunk(_ chunk: ChunkItem, _ result: inout WorkResult) {
        if isCancelled { result.cancelled = true; return }
        do throws(Errno) {
            // O_NONBLOCK: a FIFO put in the file's place since the scan is not waited on.
            let input = try resolver.open(chunk.source, .source, systemORdOnly | systemONonBlock)
            defer { system_close(input) }
            guard try system_fstatx(input).mode & modeTypeMask == modeRegular else {
                result.failures.append(CopyFailure(path: chunk.source, operation: "open", detail: "it is no longer a regular file"))
                return
            }
            // Never O_CREAT: the temporary was made when the file was planned
            // (``createTemporary(_:)``), and one that is gone now was removed midway (by a user,
            // a cleaner): making it anew would put a file with holes where the earlier chunks
            // went under the final name.
            let output: CInt
            do throws(Errno) { output = try resolver.open(chunk.temporary, .destination, systemOWrOnly) } catch .noSuchFileOrDirectory {
                result.failures.append(CopyFailure(path: chunk.source, operation: "open", errno: .noSuchFileOrDirectory,
                                                   detail: "its temporary \(chunk.temporary) was removed while the file was being copied"))
                return
            }
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

    func finishLarge(_ item: LargeFinishItem, _ result: inout WorkResult) {
        let source = item.sourceDirectory.appending(item.entry.name)
        do throws(Errno) {
            let input = try resolver.open(source, .source, systemORdOnly | systemONonBlock)
            defer { system_close(input) }
            let ddir = try resolver.directory(item.destinationDirectory, .destination)
            defer { system_close(ddir) }
            let output = try item.temporaryName.withCName { t throws(Errno) in try system_openat(ddir, t, systemOWrOnly | systemONoFollow) }
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
            result.failures.append(CopyFailure(path: source, operation: "finish", errno: error,
                                               detail: Resolver.explain(error, destination: item.destinationDirectory.appending(item.entry.targetName))))
        }
    }

    func makeLink(_ item: LinkItem, _ result: inout WorkResult) {
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
            result.failures.append(CopyFailure(path: item.source, operation: "hard link", errno: error,
                                               detail: Resolver.explain(error, destination: item.destinationDirectory.appending(item.name))))
        }
    }
}
