#if os(Linux)
// System calls for finding what interrupted runs left behind (see Syscalls+MPCopy+Linux.swift for
// the conventions: one `system_` function per call, `Errno` thrown).
public import Glibc
public import SystemPackage

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`): with
/// the pid, it names one process for the life of the system, so a reused pid is told apart.
/// Nil when there is no such process, or when it has ended and only its exit status is left (a
/// zombie, state Z or X): it can never write again, so whatever it left is an orphan's.
///
/// - Throws: `Errno` when `/proc` cannot be read (not mounted, say) or the line is malformed.
@inlinable package func system_processStartTime(_ pid: pid_t) throws(Errno) -> UInt64? {
    let fd: CInt
    do throws(Errno) {
        fd = try "/proc/\(pid)/stat".withCName { p throws(Errno) in try system_openat(systemATFDCWD, p, O_RDONLY) }
    } catch .noSuchFileOrDirectory {
        return nil
    }
    defer { system_close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
    defer { buffer.deallocate() }
    var length = 0
    while length < buffer.count {
        let n: Int
        do throws(Errno) { n = try system_pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[length...]), Int64(length)) } catch .noSuchProcess {
            return nil // it ended between the open and the read
        }
        if n == 0 { break }
        length += n
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from
    // the last ')'; the state is field 3 and the start time field 22.
    let line = buffer.prefix(length)
    guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { throw Errno.invalidArgument }
    let fields = line[(close + 1)...].split(separator: UInt8(ascii: " "))
    guard fields.count > 19, let start = UInt64(String(decoding: fields[fields.startIndex + 19], as: UTF8.self)) else {
        throw Errno.invalidArgument
    }
    if let state = fields.first?.first, state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") { return nil }
    return start
}

/// Which set of pids a pid means something in: a 64-bit FNV-1a hash of this kernel's boot id
/// (`/proc/sys/kernel/random/boot_id`) and this process's pid namespace (the target of
/// `/proc/self/ns/pid`, such as `pid:[4026531836]`). Two processes with the same tag can look at
/// each other in `/proc`; a pid and start time written by a process with another tag (another
/// host sharing a file system, a container with a pid namespace of its own, an earlier boot) say
/// nothing here. Nil when the boot id cannot be read (no `/proc`).
@inlinable package func system_processNamespaceTag() -> UInt64? {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ bytes: some Sequence<UInt8>) {
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash = (hash ^ 0xff) &* 0x100_0000_01b3 // a separator, so that fields cannot run together
    }
    guard let fd = try? "/proc/sys/kernel/random/boot_id".withCName({ p throws(Errno) in try system_openat(systemATFDCWD, p, O_RDONLY) }) else {
        return nil
    }
    defer { system_close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 1)
    defer { buffer.deallocate() }
    guard let n = try? system_pread(fd, buffer, 0), n > 0 else { return nil }
    mix(buffer.prefix(n))
    if let link = try? "/proc/self/ns/pid".withCName({ p throws(Errno) in try system_readlinkat(systemATFDCWD, p) }) {
        mix(link.dropLast().map { UInt8(bitPattern: $0) })
    }
    return hash
}
#endif
