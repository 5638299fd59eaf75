#if MPI
// MultiprocessingMPI's path to libc: the few calls a serving rank makes outside MPI.
import Glibc

/// Ends this process at once with `code`, without running atexit handlers twice over a finalized MPI.
internal func system_exit(_ code: Int32) -> Never { Glibc.exit(code) }

/// Sleeps about `nanoseconds` (the back-off between probes).
internal func system_nanosleep(_ nanoseconds: Int) {
    var request = timespec(tv_sec: nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
    _ = Glibc.nanosleep(&request, nil)
}

/// A monotonic clock in nanoseconds.
internal func system_monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    _ = Glibc.clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

/// An environment variable, or nil.
internal func system_getenv(_ name: String) -> String? {
    guard let value = Glibc.getenv(name) else { return nil }
    return String(cString: value)
}

/// The number of threads this process runs now (the entries of /proc/self/task).
internal func system_threadCount() -> Int {
    guard let directory = Glibc.opendir("/proc/self/task") else { return 0 }
    defer { Glibc.closedir(directory) }
    var count = 0
    while let entry = Glibc.readdir(directory) {
        let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
        if first != UInt8(ascii: ".") { count += 1 }
    }
    return count
}
#endif

#if MPI
/// Writes `text` to standard error, unbuffered.
internal func system_writeError(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buffer in
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            let written = Glibc.write(2, base + offset, buffer.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}
#endif
