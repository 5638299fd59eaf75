import CMultiprocessing
import Synchronization
import SystemPackage
import MultiprocessingSystem

// Every path a work item names lies beneath a root: a source operand (or the directory a file
// operand is in), or the directory the operand's copy is a name in. The root itself is opened as the
// command line names it, following symlinks as cp does, and must still be the directory it was
// when the job started; everything below it is resolved one component at a time, relative to
// directory descriptors, and never through a symlink: `openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS)` where the kernel has it, `O_NOFOLLOW` per component where it does not.
// So a user who swaps a directory of either tree for a symlink while the copy runs (as root) makes
// that directory's work fail with a report, and never makes it read or write outside the trees.

/// A directory that paths are resolved beneath, and the identity it had when the job started.
internal struct TreeRoot: Codable, Sendable, Hashable {
    /// Exactly as the work items' paths begin (possibly empty: the current directory).
    var path: FilePath
    var device: UInt64
    var inode: UInt64
    /// Whether a symlink as the root's last component is followed: yes for a destination (cp
    /// copies into the directory a symlink names), no for a source directory operand (cp -a
    /// copies a symlink operand as a symlink).
    var followsSymlink: Bool
}

/// The roots of one job, source side and destination side: what a worker process needs to
/// resolve its items' paths.
internal struct TreeRoots: Codable, Sendable {
    var sources: [TreeRoot] = []
    var destinations: [TreeRoot] = []
}

/// Opens paths beneath their roots (see the top of this file). One per performer; the roots'
/// descriptors are opened on first use in each process and kept for the job.
internal final class Resolver: Sendable {
    enum Side: Sendable { case source, destination }

    private struct State {
        var roots = TreeRoots()
        /// Open `O_PATH` descriptors of the roots, by side and index; -1 until first used.
        var sourceDescriptors: [CInt] = []
        var destinationDescriptors: [CInt] = []
    }

    private let state = Mutex(State())
    /// Cleared at the first ENOSYS (a kernel before 5.6) or a sandbox's EPERM, or by
    /// `MPCP_RESOLVE_BY_COMPONENT` in the environment (so that the tests cover the fallback too).
    private let beneathWorks: Atomic<Bool>

    init() {
        beneathWorks = Atomic(!system_environmentHas("MPCP_RESOLVE_BY_COMPONENT"))
    }

    deinit {
        state.withLock { state in
            for fd in state.sourceDescriptors + state.destinationDescriptors where fd >= 0 { system_close(fd) }
        }
    }

    /// The roots registered so far.
    var roots: TreeRoots { state.withLock { $0.roots } }

    /// Adds roots; call before any work item that lies beneath them is performed.
    func register(_ roots: TreeRoots) {
        state.withLock { state in
            state.roots.sources += roots.sources
            state.roots.destinations += roots.destinations
            state.sourceDescriptors += Array(repeating: -1, count: roots.sources.count)
            state.destinationDescriptors += Array(repeating: -1, count: roots.destinations.count)
        }
    }

    /// The identity of the directory `path` names now (symlinks followed, or not for a last
    /// component that is one when `followsSymlink` is false), as a root.
    static func root(_ path: FilePath, followsSymlink: Bool) throws(Errno) -> TreeRoot {
        let st = try (path.isEmpty ? FilePath(".") : path).withCName { p throws(Errno) in
            try system_statx(systemATFDCWD, p, follow: followsSymlink)
        }
        guard st.mode & modeTypeMask == modeDirectory else { throw Errno.notDirectory }
        return TreeRoot(path: path, device: st.dev_major << 32 | st.dev_minor, inode: st.ino, followsSymlink: followsSymlink)
    }

    // MARK: opening

    /// Opens `path` with `flags`: its root as the job found it, then every component below it
    /// without following a symlink (the last one included: ELOOP).
    func open(_ path: FilePath, _ side: Side, _ flags: CInt, _ mode: mode_t = 0) throws(Errno) -> CInt {
        let (root, relative) = try split(path, side)
        return try open(beneath: root, relative, flags, mode)
    }

    /// Opens the directory `path` as an `O_PATH` descriptor, for the `*at` calls on names inside it.
    func directory(_ path: FilePath, _ side: Side) throws(Errno) -> CInt {
        try open(path, side, systemOPath | systemODirectory)
    }

    /// `statx` of `path` itself (a symlink is not followed).
    func stat(_ path: FilePath, _ side: Side) throws(Errno) -> cmp_stat_t {
        guard let name = path.lastComponent else { throw Errno.invalidArgument }
        let dirfd = try directory(path.removingLastComponent(), side)
        defer { system_close(dirfd) }
        return try name.withCName { n throws(Errno) in try system_statx(dirfd, n, follow: false) }
    }

    /// Removes the file `path` (not a directory).
    func unlink(_ path: FilePath, _ side: Side) throws(Errno) {
        guard let name = path.lastComponent else { throw Errno.invalidArgument }
        let dirfd = try directory(path.removingLastComponent(), side)
        defer { system_close(dirfd) }
        try name.withCName { n throws(Errno) in try system_unlinkat(dirfd, n) }
    }

    /// Why a directory cannot be made where the destination has something else under its name.
    static let notADirectory = "the destination has something else under this name (a symlink there is not followed)"

    /// Words for a failure to give `destination` its name: cp's for a directory in the way
    /// (`rename`/`link` fail with EISDIR, whose own words name neither the file nor the problem),
    /// else ``explain(_:)``'s.
    static func explain(_ error: Errno, destination: FilePath) -> String? {
        if error == .isDirectory {
            return "cannot overwrite directory \(shellQuoted(destination, always: true)) with non-directory"
        }
        return explain(error)
    }

    /// Words for the errors that resolving beneath a root adds, for a failure report.
    static func explain(_ error: Errno) -> String? {
        switch error {
        case .tooManySymbolicLinkLevels:
            return "a directory on its path was replaced by a symlink while the copy ran; the symlink is not followed"
        case .staleNFSFileHandle:
            return "the operand's directory was replaced since the copy started; the new one is not used"
        default:
            return nil
        }
    }

    // MARK: internals

    /// The open root `path` lies beneath (the longest registered one), and the rest of the path.
    private func split(_ path: FilePath, _ side: Side) throws(Errno) -> (CInt, FilePath) {
        let found: (index: Int, root: TreeRoot, fd: CInt, relative: FilePath)? = state.withLock { state in
            let roots = side == .source ? state.roots.sources : state.roots.destinations
            var best: (index: Int, root: TreeRoot, fd: CInt, relative: FilePath)?
            for (index, root) in roots.enumerated() {
                var relative = path
                guard relative.removePrefix(root.path) else { continue }
                if let best, best.root.path.components.count >= root.path.components.count { continue }
                let fd = side == .source ? state.sourceDescriptors[index] : state.destinationDescriptors[index]
                best = (index, root, fd, relative)
            }
            return best
        }
        // Every path of a work item starts with a root the job registered: anything else is a bug,
        // reported as a failure of that item rather than resolved from the current directory.
        guard let found else { throw Errno.invalidArgument }
        if found.fd >= 0 { return (found.fd, found.relative) }
        let opened = try openRoot(found.root)
        let fd = state.withLock { state -> CInt in
            // Another thread may have opened it meanwhile: keep one.
            let current = side == .source ? state.sourceDescriptors[found.index] : state.destinationDescriptors[found.index]
            if current >= 0 { return current }
            if side == .source { state.sourceDescriptors[found.index] = opened } else { state.destinationDescriptors[found.index] = opened }
            return opened
        }
        if fd != opened { system_close(opened) }
        return (fd, found.relative)
    }

    private func openRoot(_ root: TreeRoot) throws(Errno) -> CInt {
        let flags = systemOPath | systemODirectory | (root.followsSymlink ? 0 : systemONoFollow)
        let fd = try (root.path.isEmpty ? FilePath(".") : root.path).withCName { p throws(Errno) in
            try system_openat(systemATFDCWD, p, flags)
        }
        do throws(Errno) {
            let st = try system_fstatx(fd)
            guard st.dev_major << 32 | st.dev_minor == root.device, st.ino == root.inode else { throw Errno.staleNFSFileHandle }
        } catch {
            system_close(fd)
            throw error
        }
        return fd
    }

    private static func openat2IsRefused() -> Bool {
        do throws(Errno) {
            system_close(try ".".withCName { p throws(Errno) in try system_openBeneath(systemATFDCWD, p, systemOPath) })
            return false
        } catch {
            return error == .notPermitted || error == .noFunction
        }
    }

    private func open(beneath root: CInt, _ relative: FilePath, _ flags: CInt, _ mode: mode_t) throws(Errno) -> CInt {
        let path = relative.isEmpty ? FilePath(".") : relative
        if beneathWorks.load(ordering: .relaxed) {
            do throws(Errno) {
                return try path.withCName { p throws(Errno) in try system_openBeneath(root, p, flags, mode) }
            } catch .noFunction {
                beneathWorks.store(false, ordering: .relaxed)
            } catch .notPermitted {
                // Some container sandboxes (seccomp profiles older than the call) answer EPERM
                // for a system call they do not know. If even "." cannot be opened so, that is
                // it; otherwise this was a real refusal.
                guard !Resolver.openat2IsRefused() else {
                    beneathWorks.store(false, ordering: .relaxed)
                    return try open(beneath: root, relative, flags, mode)
                }
                throw Errno.notPermitted
            }
        }
        // One component at a time, none followed if it is a symlink.
        var dirfd = root
        defer { if dirfd != root { system_close(dirfd) } }
        var components = path.components.makeIterator()
        guard var component = components.next() else { throw Errno.invalidArgument }
        while true {
            let next = components.next()
            let stepFlags = next == nil ? flags | systemONoFollow : systemOPath | systemODirectory | systemONoFollow
            let fd: CInt
            do throws(Errno) {
                fd = try component.withCName { n throws(Errno) in try system_openat(dirfd, n, stepFlags, mode) }
            } catch .notDirectory {
                // An O_PATH open of a symlink opens the link, which then is not a directory.
                let isLink = (try? component.withCName { n throws(Errno) in try system_statx(dirfd, n, follow: false) })
                    .map { $0.mode & modeTypeMask == modeSymlink } ?? false
                throw isLink ? Errno.tooManySymbolicLinkLevels : Errno.notDirectory
            }
            guard let following = next else { return fd }
            if dirfd != root { system_close(dirfd) }
            dirfd = fd
            component = following
        }
    }
}
