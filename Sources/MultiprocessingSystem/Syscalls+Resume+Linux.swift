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
#endif
