import CMultiprocessing
import Synchronization
import SystemPackage
import MultiprocessingSystem

// Scanning: one directory read, its subdirectories made in the destination, its symlinks and
// FIFOs copied on the spot, its files handed back to the scheduler; the skip decision of -u,
// --checksum and --no-clobber; the sweep of a killed run's temporaries.

extension Performer {
    func isExcluded(_ name: CName, relative: FilePath, component: () -> FilePath.Component?) -> Bool {
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
    func scan(_ item: ScanItem, _ result: inout WorkResult) {
        let srcfd: CInt
        do throws(Errno) {
            srcfd = try resolver.open(item.source, .source, systemORdOnly | systemODirectory)
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
                    copySymlink(srcfd, dstfd, name, source: item.source.appending(component),
                                destination: item.destination.appending(component), staged: item.staged, &result)
                case 1: // DT_FIFO
                    copyFifo(srcfd, dstfd, name, source: item.source.appending(component),
                             destination: item.destination.appending(component), &result)
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
                subdirectories.append(Array(UnsafeBufferPointer(start: name, count: system_strlen(name) + 1)))
            } else if system_strncmp(name, prefix, prefix.count) == 0, (try? system_unlinkat(dirfd, name)) != nil {
                removed += 1
            }
        }
        for name in subdirectories {
            name.withUnsafeBufferPointer { n in
                guard let p = n.baseAddress, let fd = try? system_openat(dirfd, p, systemORdOnly | systemODirectory | systemONoFollow) else { return }
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
        guard let a = try? system_openat(srcdir, sourceName, systemORdOnly | systemONoFollow | systemONonBlock) else { return false }
        defer { system_close(a) }
        guard let b = try? system_openat(dstdir, name, systemORdOnly | systemONoFollow | systemONonBlock) else { return false }
        defer { system_close(b) }
        let size = 1 << 20
        let x = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        let y = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { x.deallocate(); y.deallocate() }
        guard let px = x.baseAddress, let py = y.baseAddress else { return false }
        var offset: Int64 = 0
        while !isCancelled {
            guard let n = try? readFully(a, x, count: size, offset), let m = try? readFully(b, y, count: size, offset) else { return false }
            if n != m || system_memcmp(px, py, n) != 0 { return false }
            if n < size { return true }
            offset += Int64(n)
        }
        return false
    }

    func copySymlink(_ srcfd: CInt, _ dstfd: CInt, _ name: CName, source: FilePath, destination: FilePath, staged: Bool, _ result: inout WorkResult) {
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
            result.failures.append(CopyFailure(path: source, operation: "copy symlink", errno: error,
                                               detail: Resolver.explain(error, destination: destination)))
        }
    }

    /// Copies a FIFO inside a tree: a new FIFO with the source's mode (and times with them kept).
    /// Whatever else holds the name (an earlier copy's regular file, say) is replaced, as `cp -a`
    /// and rsync replace it: the FIFO is made under a temporary name and renamed over it, so the
    /// old file stays whole until then. A directory there is refused, as cp refuses it; `-u` and
    /// `--no-clobber` keep a FIFO already there.
    func copyFifo(_ srcfd: CInt, _ dstfd: CInt, _ name: CName, source: FilePath, destination: FilePath, _ result: inout WorkResult) {
        if options.dryRun {
            result.files += 1
            if options.verbose { result.copied.append(source) } // -n lists it as any other file
            return
        }
        do throws(Errno) {
            let st = try system_statx(srcfd, name, follow: false)
            let mode = mode_t(st.mode & 0o7777)
            /// Sets the new FIFO's times (its mode is `mkfifoat`'s, less the umask, as before).
            func finish(_ fifo: CName) throws(Errno) {
                if options.preserve.contains(.timestamps) {
                    try system_lutimensat(dstfd, fifo, atime: (st.atime_sec, st.atime_nsec), mtime: (st.mtime_sec, st.mtime_nsec))
                }
            }
            do throws(Errno) {
                try system_mkfifoat(dstfd, name, mode)
                try finish(name)
            } catch .fileExists {
                let existing = try system_statx(dstfd, name, follow: false)
                if options.noClobber || (options.update && existing.mode & modeTypeMask == st.mode & modeTypeMask) {
                    result.skipped += 1
                    return
                }
                // Something else holds the name: a FIFO made beside it replaces it in one rename.
                try nextTemporaryName().withCName { tmp throws(Errno) in
                    try system_mkfifoat(dstfd, tmp, mode)
                    do throws(Errno) {
                        try finish(tmp)
                        try system_renameat(dstfd, tmp, dstfd, name)
                    } catch {
                        try? system_unlinkat(dstfd, tmp)
                        throw error
                    }
                }
            }
            result.files += 1
            if options.verbose { result.copied.append(source) }
        } catch {
            result.failures.append(CopyFailure(path: source, operation: "create fifo", errno: error,
                                               detail: Resolver.explain(error, destination: destination)))
        }
    }
}
