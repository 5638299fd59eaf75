#if os(Linux)
// The one path from the MPCopy engine to libc on Linux.
//
// Every system call the engine makes goes through a `system_` function here, so that EINTR retries,
// errno capture and the C shim live in one file. Each wrapper throws `Errno`, read right after the
// call; the engine turns it into a `CopyFailure` that names the path.
public import Glibc
public import CMultiprocessing
public import SystemPackage

// `valueOrErrno` and `negatedErrno` are in Syscalls+Linux.swift.

/// A name inside a directory as the C string the `*at` calls take. Names are bytes: no decoding.
@usableFromInline package typealias CName = UnsafePointer<CChar>

@usableFromInline package let systemATFDCWD: CInt = AT_FDCWD
@usableFromInline package let systemATEmptyPath: CInt = cmp_at_empty_path()
@usableFromInline package let systemATSymlinkNoFollow: CInt = AT_SYMLINK_NOFOLLOW
@usableFromInline package let systemATRemoveDir: CInt = AT_REMOVEDIR
@usableFromInline package let systemOPath: CInt = cmp_o_path()
@usableFromInline package let systemOTmpfile: CInt = cmp_o_tmpfile()
@usableFromInline package let systemONoAtime: CInt = cmp_o_noatime()
@usableFromInline package let systemATSymlinkFollow: CInt = cmp_at_symlink_follow()

// MARK: identity and environment

@inlinable package func system_geteuid() -> uid_t { Glibc.geteuid() }
@inlinable package func system_getegid() -> gid_t { Glibc.getegid() }
@inlinable package func system_isatty(_ fd: CInt) -> Bool { Glibc.isatty(fd) == 1 }

/// Reads the process umask. umask(2) can only be read by setting it, so call this once, before
/// any worker thread creates files.
@inlinable package func system_readUmask() -> mode_t {
    let old = Glibc.umask(0o022)
    _ = Glibc.umask(old)
    return old
}

@inlinable package func system_randomUInt64() -> UInt64 {
    var generator = SystemRandomNumberGenerator()
    return generator.next()
}

// MARK: descriptors and paths

@inlinable package func system_openat(_ dirfd: CInt, _ name: CName, _ flags: CInt, _ mode: mode_t = 0) throws(Errno) -> CInt {
    try negatedErrno { cmp_openat(dirfd, name, flags | O_CLOEXEC, mode) }
}

/// `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: `path` is resolved below `dirfd`
/// and fails with ELOOP if any of its components (the last one too) is a symlink. ENOSYS where
/// the kernel is older than 5.6.
@inlinable package func system_openBeneath(_ dirfd: CInt, _ path: CName, _ flags: CInt, _ mode: mode_t = 0) throws(Errno) -> CInt {
    var attempts = 0
    while true {
        do throws(Errno) {
            return try negatedErrno { cmp_openat2(dirfd, path, flags, mode, systemResolveBeneathNoSymlinks) }
        } catch .resourceTemporarilyUnavailable {
            // A rename elsewhere raced the lookup and the kernel could not prove the result
            // beneath: openat2(2) says to try again.
            attempts += 1
            if attempts == 16 { throw Errno.resourceTemporarilyUnavailable }
        }
    }
}

@usableFromInline package let systemResolveBeneathNoSymlinks: UInt64 = cmp_resolve_beneath() | cmp_resolve_no_symlinks()

/// Whether the environment variable `name` is set (to anything).
@inlinable package func system_environmentHas(_ name: String) -> Bool { Glibc.getenv(name) != nil }

@inlinable package func system_statx(_ dirfd: CInt, _ name: CName, follow: Bool) throws(Errno) -> cmp_stat_t {
    var st = cmp_stat_t()
    _ = try negatedErrno { cmp_statx(dirfd, name, follow, &st) }
    return st
}

/// `statx` of an open descriptor (AT_EMPTY_PATH).
@inlinable package func system_fstatx(_ fd: CInt) throws(Errno) -> cmp_stat_t {
    try system_statx(fd, "", follow: false)
}

@inlinable package func system_getdents(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    try negatedErrno { cmp_getdents64(fd, buffer.baseAddress, buffer.count) }
}

/// Reads the directory `fd` to its end with `getdents64(2)` through `buffer`, calling `body` with
/// each entry's name and `d_type` (0 when the file system does not say); `.` and `..` are left out.
@inlinable package func system_forEachEntry(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer,
                                  _ body: (CName, UInt8) -> Void) throws(Errno) {
    guard let base = buffer.baseAddress else { return }
    while true {
        let n = try system_getdents(fd, buffer)
        if n == 0 { return }
        var offset = 0
        while offset < n {
            // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[].
            let record = base + offset
            offset += Int(record.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
            let type = record.load(fromByteOffset: 18, as: UInt8.self)
            let name = UnsafeRawPointer(record + 19).assumingMemoryBound(to: CChar.self)
            if name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0)) { continue }
            body(name, type)
        }
    }
}

@inlinable package func system_mkdirat(_ dirfd: CInt, _ name: CName, _ mode: mode_t) throws(Errno) {
    _ = try valueOrErrno { Glibc.mkdirat(dirfd, name, mode) }
}

@inlinable package func system_mkfifoat(_ dirfd: CInt, _ name: CName, _ mode: mode_t) throws(Errno) {
    _ = try valueOrErrno { Glibc.mkfifoat(dirfd, name, mode) }
}

@inlinable package func system_unlinkat(_ dirfd: CInt, _ name: CName, _ flags: CInt = 0) throws(Errno) {
    _ = try valueOrErrno { Glibc.unlinkat(dirfd, name, flags) }
}

/// `renameat(2)`: replaces `new` atomically, so a reader sees the old file or the whole new one.
@inlinable package func system_renameat(_ olddir: CInt, _ old: CName, _ newdir: CInt, _ new: CName) throws(Errno) {
    _ = try valueOrErrno { Glibc.renameat(olddir, old, newdir, new) }
}

/// `renameat2(2)` with RENAME_NOREPLACE: fails with EEXIST rather than replace `new`. Where the file
/// system does not support the flag (EINVAL), a plain rename after checking that `new` is absent.
@inlinable package func system_renameNoReplace(_ olddir: CInt, _ old: CName, _ newdir: CInt, _ new: CName) throws(Errno) {
    do throws(Errno) {
        _ = try negatedErrno { cmp_renameat2(olddir, old, newdir, new, cmp_rename_noreplace()) }
    } catch .invalidArgument {
        if (try? system_statx(newdir, new, follow: false)) != nil { throw Errno.fileExists }
        try system_renameat(olddir, old, newdir, new)
    }
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: EWOULDBLOCK while another open file description holds it.
@inlinable package func system_tryLockExclusive(_ fd: CInt) throws(Errno) {
    _ = try negatedErrno { cmp_try_lock_exclusive(fd) }
}

@inlinable package func system_linkat(_ olddir: CInt, _ old: CName, _ newdir: CInt, _ new: CName, _ flags: CInt = 0) throws(Errno) {
    _ = try valueOrErrno { Glibc.linkat(olddir, old, newdir, new, flags) }
}

@inlinable package func system_symlinkat(_ target: CName, _ dirfd: CInt, _ name: CName) throws(Errno) {
    _ = try valueOrErrno { Glibc.symlinkat(target, dirfd, name) }
}

/// `readlinkat(2)`: the target's bytes, NUL-terminated, whatever their length.
@inlinable package func system_readlinkat(_ dirfd: CInt, _ name: CName) throws(Errno) -> [CChar] {
    var capacity = 256
    while true {
        var buffer = [CChar](repeating: 0, count: capacity)
        let n = try buffer.withUnsafeMutableBufferPointer { (b) throws(Errno) -> Int in
            guard let base = b.baseAddress else { throw Errno.invalidArgument }
            return try valueOrErrno { Glibc.readlinkat(dirfd, name, base, b.count) }
        }
        if n < capacity {
            buffer.removeSubrange(n...)
            buffer.append(0)
            return buffer
        }
        capacity *= 4
    }
}

@inlinable package func system_realpath(_ path: FilePath) -> FilePath? {
    path.withPlatformString { p -> FilePath? in
        guard let resolved = Glibc.realpath(p, nil) else { return nil }
        defer { Glibc.free(resolved) }
        return FilePath(platformString: resolved)
    }
}

// MARK: file contents

/// `copy_file_range(2)` from `offIn` to `offOut`, which it advances. Returns 0 at end of file.
@inlinable package func system_copyFileRange(_ fdIn: CInt, _ offIn: inout Int64, _ fdOut: CInt, _ offOut: inout Int64, _ length: Int) throws(Errno) -> Int {
    try negatedErrno { cmp_copy_file_range(fdIn, &offIn, fdOut, &offOut, length) }
}

/// `ioctl(FICLONE)`: shares the source's blocks (reflink) on file systems that can.
@inlinable package func system_ficlone(_ dest: CInt, _ source: CInt) throws(Errno) {
    _ = try negatedErrno { cmp_ficlone(dest, source) }
}

@inlinable package func system_pread(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer, _ offset: Int64) throws(Errno) -> Int {
    try valueOrErrno { Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
}

@inlinable package func system_pwrite(_ fd: CInt, _ buffer: UnsafeRawBufferPointer, _ offset: Int64) throws(Errno) -> Int {
    try valueOrErrno { Glibc.pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
}

/// `lseek(2)`. With SEEK_DATA or SEEK_HOLE, returns nil for ENXIO (no data past `offset`).
@inlinable package func system_lseek(_ fd: CInt, _ offset: Int64, _ whence: CInt) throws(Errno) -> Int64? {
    let r = Glibc.lseek(fd, off_t(offset), whence)
    if r >= 0 { return Int64(r) }
    let error = Errno(rawValue: Glibc.errno)
    if error == .noSuchAddressOrDevice { return nil }
    throw error
}

@usableFromInline package let systemSeekData: CInt = cmp_seek_data()
@usableFromInline package let systemSeekHole: CInt = cmp_seek_hole()

@inlinable package func system_ftruncate(_ fd: CInt, _ size: Int64) throws(Errno) {
    _ = try valueOrErrno { Glibc.ftruncate(fd, off_t(size)) }
}

@inlinable package func system_fadviseSequential(_ fd: CInt) { _ = cmp_fadvise_sequential(fd) }

// MARK: metadata

@inlinable package func system_fchmod(_ fd: CInt, _ mode: mode_t) throws(Errno) {
    _ = try valueOrErrno { Glibc.fchmod(fd, mode) }
}

@inlinable package func system_fchown(_ fd: CInt, _ uid: uid_t, _ gid: gid_t) throws(Errno) {
    _ = try valueOrErrno { Glibc.fchown(fd, uid, gid) }
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`: the owner of a symlink itself.
@inlinable package func system_lchownat(_ dirfd: CInt, _ name: CName, _ uid: uid_t, _ gid: gid_t) throws(Errno) {
    _ = try valueOrErrno { Glibc.fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) }
}

/// `futimens(2)`: atime and mtime with nanoseconds.
@inlinable package func system_futimens(_ fd: CInt, atime: (Int64, UInt32), mtime: (Int64, UInt32)) throws(Errno) {
    var times = [timespec(tv_sec: Int(atime.0), tv_nsec: Int(atime.1)),
                 timespec(tv_sec: Int(mtime.0), tv_nsec: Int(mtime.1))]
    _ = try valueOrErrno { Glibc.futimens(fd, &times) }
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`: the times of a symlink itself.
@inlinable package func system_lutimensat(_ dirfd: CInt, _ name: CName, atime: (Int64, UInt32), mtime: (Int64, UInt32)) throws(Errno) {
    var times = [timespec(tv_sec: Int(atime.0), tv_nsec: Int(atime.1)),
                 timespec(tv_sec: Int(mtime.0), tv_nsec: Int(mtime.1))]
    _ = try valueOrErrno { Glibc.utimensat(dirfd, name, &times, AT_SYMLINK_NOFOLLOW) }
}

/// `flistxattr(2)`: the NUL-separated list of attribute names.
@inlinable package func system_flistxattr(_ fd: CInt) throws(Errno) -> [CChar] {
    var capacity = 1024
    while true {
        var buffer = [CChar](repeating: 0, count: capacity)
        let r = buffer.withUnsafeMutableBufferPointer { b in cmp_flistxattr(fd, b.baseAddress, b.count) }
        if r >= 0 {
            buffer.removeSubrange(r...)
            return buffer
        }
        let error = Errno(rawValue: CInt(-r))
        if error == .interrupted { continue }
        guard error == .outOfRange, capacity < 1 << 22 else { throw error }
        capacity *= 8
    }
}

/// `fgetxattr(2)`: one attribute's value.
@inlinable package func system_fgetxattr(_ fd: CInt, _ name: CName) throws(Errno) -> [UInt8] {
    var capacity = 256
    while true {
        var buffer = [UInt8](repeating: 0, count: capacity)
        let r = buffer.withUnsafeMutableBytes { b in cmp_fgetxattr(fd, name, b.baseAddress, b.count) }
        if r >= 0 {
            buffer.removeSubrange(r...)
            return buffer
        }
        let error = Errno(rawValue: CInt(-r))
        if error == .interrupted { continue }
        guard error == .outOfRange, capacity < 1 << 24 else { throw error }
        capacity *= 16
    }
}

@inlinable package func system_fsetxattr(_ fd: CInt, _ name: CName, _ value: [UInt8]) throws(Errno) {
    let r = value.withUnsafeBytes { b in cmp_fsetxattr(fd, name, b.baseAddress, b.count) }
    if r < 0 { throw Errno(rawValue: -r) }
}

// MARK: matching

/// `fnmatch(3)`: true when `name` matches the shell pattern.
@inlinable package func system_fnmatch(_ pattern: CName, _ name: CName, pathname: Bool) -> Bool {
    cmp_fnmatch(pattern, name, pathname, false) == 0
}

// MARK: threads

/// A pthread mutex and condition variable: workers sleep here until there is work.
package final class Monitor: @unchecked Sendable {
    // Heap-allocated because pthread objects must not move.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits with the lock held; returns with it held again.
    package func wait() { pthread_cond_wait(condition, mutex) }
    /// Waits up to `nanoseconds`.
    package func wait(nanoseconds: Int64) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let total = Int64(now.tv_nsec) + nanoseconds
        var until = timespec(tv_sec: now.tv_sec + Int(total / 1_000_000_000), tv_nsec: Int(total % 1_000_000_000))
        pthread_cond_timedwait(condition, mutex, &until)
    }
    package func signal() { pthread_cond_signal(condition) }
    package func broadcast() { pthread_cond_broadcast(condition) }
    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

#endif

#if os(Linux)
// File type bits of st_mode (inode(7)); Glibc's S_IFMT is ambiguous in Swift.
@usableFromInline package let modeTypeMask: UInt32 = 0o170000
@usableFromInline package let modeDirectory: UInt32 = 0o040000
@usableFromInline package let modeRegular: UInt32 = 0o100000
@usableFromInline package let modeSymlink: UInt32 = 0o120000

extension FilePath {
    /// The path's bytes as a C string, keeping the closure's typed error.
    @inline(__always)
    @inlinable package func withCName<R, E: Error>(_ body: (CName) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withPlatformString { p in Result { () throws(E) -> R in try body(p) } }
        return try result.get()
    }
}

extension FilePath.Component {
    /// The name's bytes as a C string, keeping the closure's typed error.
    @inline(__always)
    @inlinable package func withCName<R, E: Error>(_ body: (CName) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withPlatformString { p in Result { () throws(E) -> R in try body(p) } }
        return try result.get()
    }
}

extension String {
    @inline(__always)
    @inlinable package func withCName<R, E: Error>(_ body: (CName) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withCString { p in Result { () throws(E) -> R in try body(p) } }
        return try result.get()
    }
}
#endif

#if os(Linux)
// MARK: worker processes

/// Ignores `signal` in this process (a worker child leaves Ctrl-C to its parent).
@inlinable package func system_ignoreSignal(_ signal: CInt) { Glibc.signal(signal, SIG_IGN) }
#endif
