import CMultiprocessing
import Glibc
import Synchronization
import SystemPackage
import MultiprocessingSystem

// Metadata: owner, mode, xattrs and times of files, symlinks and directories.

extension Performer {
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

    /// Whether the link `dstfd`/`name` has the times (and, as root, the owner) that
    /// ``applySymlinkMetadata(_:_:_:_:)`` would give it from `srcfd`/`name`.
    func symlinkMetadataMatches(_ srcfd: CInt, _ dstfd: CInt, _ name: CName) throws(Errno) -> Bool {
        let timestamps = options.preserve.contains(.timestamps), owner = options.preserve.contains(.ownership) && isRoot
        guard timestamps || owner else { return true }
        let s = try system_statx(srcfd, name, follow: false), d = try system_statx(dstfd, name, follow: false)
        return (!timestamps || (s.mtime_sec == d.mtime_sec && s.mtime_nsec == d.mtime_nsec))
            && (!owner || (s.uid == d.uid && s.gid == d.gid))
    }

    /// Gives the link `dstfd`/`name` the owner (as root) and times of the source link `srcfd`/`sourceName`.
    func applySymlinkMetadata(_ srcfd: CInt, _ sourceName: CName, _ dstfd: CInt, _ name: CName) throws(Errno) {
        guard options.preserve.contains(.ownership) || options.preserve.contains(.timestamps) else { return }
        let st = try system_statx(srcfd, sourceName, follow: false)
        if options.preserve.contains(.ownership) && isRoot {
            try system_lchownat(dstfd, name, st.uid, st.gid)
        }
        if options.preserve.contains(.timestamps) {
            try system_lutimensat(dstfd, name, atime: (st.atime_sec, st.atime_nsec), mtime: (st.mtime_sec, st.mtime_nsec))
        }
    }

    func finishDirectory(_ item: DirectoryFinishItem, _ result: inout WorkResult) {
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
