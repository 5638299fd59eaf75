#if os(Linux)
// System calls used by the process pool (Sources/Multiprocessing/Pool).
public import Glibc
public import CMultiprocessing

/// In a pool worker: SIGINT and SIGHUP are the terminal's and the parent's to handle, not each
/// worker's (Python's bpo-8296: a Ctrl-C printed a traceback from every worker).
@inlinable package func system_ignoreInterrupts() {
    _ = Glibc.signal(SIGINT, SIG_IGN)
    _ = Glibc.signal(SIGHUP, SIG_IGN)
}

/// The CPU the calling thread runs on now (`sched_getcpu(3)`, no system call), or nil when the
/// kernel does not say.
@inlinable package func system_currentCPU() -> Int? {
    let cpu = cmp_pool_current_cpu()
    return cpu < 0 ? nil : Int(cpu)
}

/// The resident memory of this process in bytes, from `/proc/self/statm`; 0 if it cannot be read.
@inlinable package func system_residentBytes() -> Int {
    let fd = Glibc.open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 0 }
    defer { system_close(fd) }
    var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    let n = withUnsafeMutableBytes(of: &buffer) { raw in
        (try? system_read(fd, raw)) ?? 0
    }
    guard n > 0 else { return 0 }
    // "size resident shared ...": the second field, in pages.
    var field = 0
    var value = 0
    withUnsafeBytes(of: &buffer) { raw in
        for byte in raw.prefix(n) {
            if byte == UInt8(ascii: " ") {
                field += 1
                if field > 1 { break }
            } else if field == 1, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
        }
    }
    return value * Int(sysconf(CInt(_SC_PAGESIZE)))
}
#endif
