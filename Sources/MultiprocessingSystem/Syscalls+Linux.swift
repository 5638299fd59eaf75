#if os(Linux)
// The one path from the Multiprocessing module to libc on Linux.
//
// Every libc call the module makes goes through a `system_` function here, so that EINTR
// handling, errno capture and the C shim live in one file. Each wrapper throws `Errno`
// read right after the call; callers turn it into a `MultiprocessingError` with context.
public import Glibc
public import CMultiprocessing
public import SystemPackage

/// Retries `body` while it fails with `EINTR`. `body` returns -1 and sets errno on failure.
/// `package`: the package's other modules (MPCopy) wrap their own calls with it.
@inlinable package func valueOrErrno<T: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ body: () -> T) throws(Errno) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Errno(rawValue: Glibc.errno)
        if retryOnInterrupt && error == .interrupted { continue }
        throw error
    }
}

/// For shim calls that return `-errno` instead of setting errno.
@inlinable package func negatedErrno<T: FixedWidthInteger & SignedInteger>(retryOnInterrupt: Bool = true, _ body: () -> T) throws(Errno) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let error = Errno(rawValue: CInt(truncatingIfNeeded: 0 - result))
        if retryOnInterrupt && error == .interrupted { continue }
        throw error
    }
}

// MARK: identity

@inlinable package func system_getpid() -> pid_t { Glibc.getpid() }
@inlinable package func system_getppid() -> pid_t { Glibc.getppid() }
@inlinable package func system_gettid() -> pid_t { cmp_gettid() }
@inlinable package func system_cpuCount() -> Int { Int(cmp_cpu_count()) }

// MARK: descriptors

/// `close(2)`. Never retried: on Linux the descriptor is gone even when close reports EINTR.
@inlinable package func system_close(_ fd: CInt) { _ = Glibc.close(fd) }

@inlinable package func system_read(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    try valueOrErrno { Glibc.read(fd, buffer.baseAddress, buffer.count) }
}

@inlinable package func system_write(_ fd: CInt, _ buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
    try valueOrErrno { Glibc.write(fd, buffer.baseAddress, buffer.count) }
}

/// Writes all of `buffer`, looping over short writes.
@inlinable package func system_writeAll(_ fd: CInt, _ buffer: UnsafeRawBufferPointer) throws(Errno) {
    var offset = 0
    while offset < buffer.count {
        offset += try system_write(fd, UnsafeRawBufferPointer(rebasing: buffer[offset...]))
    }
}

/// Reads exactly `buffer.count` bytes. Returns false at a clean end of stream before the first byte;
/// an end of stream after some bytes throws `EPIPE`-free `.ioError`... callers check the count.
@inlinable package func system_readExactly(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    var offset = 0
    while offset < buffer.count {
        let n = try system_read(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
        if n == 0 { break }
        offset += n
    }
    return offset
}

@inlinable package func system_socketpair() throws(Errno) -> (CInt, CInt) {
    var fds: [CInt] = [-1, -1]
    _ = try valueOrErrno { Glibc.socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
    return (fds[0], fds[1])
}

@inlinable package func system_pipe(cloexec: Bool = true) throws(Errno) -> (read: CInt, write: CInt) {
    var fds: [CInt] = [-1, -1]
    _ = try negatedErrno { cmp_pipe2(&fds, cloexec ? O_CLOEXEC : 0) }
    return (fds[0], fds[1])
}

@inlinable package func system_sendWithDescriptors(_ socket: CInt, _ bytes: UnsafeRawBufferPointer, _ fds: [CInt]) throws(Errno) -> Int {
    try fds.withUnsafeBufferPointer { (fdBuffer) throws(Errno) -> Int in
        try negatedErrno { cmp_send_with_fds(socket, bytes.baseAddress, bytes.count, fdBuffer.baseAddress, CInt(fdBuffer.count)) }
    }
}

/// Receives bytes and any descriptors sent with them (close-on-exec).
@inlinable package func system_receiveWithDescriptors(_ socket: CInt, _ buffer: UnsafeMutableRawBufferPointer, maxDescriptors: Int = 64) throws(Errno) -> (count: Int, descriptors: [CInt]) {
    var fds = [CInt](repeating: -1, count: maxDescriptors)
    var received: CInt = 0
    let n = try fds.withUnsafeMutableBufferPointer { (fdBuffer) throws(Errno) -> Int in
        try negatedErrno { cmp_recv_with_fds(socket, buffer.baseAddress, buffer.count, fdBuffer.baseAddress, CInt(maxDescriptors), &received) }
    }
    return (n, Array(fds.prefix(Int(received))))
}

@inlinable package func system_setCloseOnExec(_ fd: CInt, _ on: Bool) throws(Errno) {
    let flags = try negatedErrno { cmp_fcntl_getfd(fd) }
    _ = try negatedErrno { cmp_fcntl_setfd(fd, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC)) }
}

@inlinable package func system_setNonBlocking(_ fd: CInt, _ on: Bool) throws(Errno) {
    let flags = try negatedErrno { cmp_fcntl_getfl(fd) }
    _ = try negatedErrno { cmp_fcntl_setfl(fd, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)) }
}

/// Duplicates `fd` to the lowest free number at or above `minimum`, close-on-exec.
@inlinable package func system_dupCloseOnExec(_ fd: CInt, minimum: CInt = 0) throws(Errno) -> CInt {
    try negatedErrno { cmp_fcntl_dupfd_cloexec(fd, minimum) }
}

@inlinable package func system_eventfd(initial: UInt32 = 0, nonBlocking: Bool = false) throws(Errno) -> CInt {
    // EFD_CLOEXEC and EFD_NONBLOCK equal O_CLOEXEC and O_NONBLOCK (eventfd(2)).
    let flags = O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)
    return try negatedErrno { cmp_eventfd(initial, flags) }
}

/// `poll(2)` on one descriptor. `timeoutMilliseconds < 0` waits forever. Returns the revents, or 0 on timeout.
@inlinable package func system_poll(_ fd: CInt, events: Int16, timeoutMilliseconds: CInt) throws(Errno) -> Int16 {
    var pfd = pollfd(fd: fd, events: events, revents: 0)
    let n = try valueOrErrno(retryOnInterrupt: false) { Glibc.poll(&pfd, 1, timeoutMilliseconds) }
    return n == 0 ? 0 : pfd.revents
}

// MARK: shared memory

@inlinable package func system_memfdCreate(_ name: String) throws(Errno) -> CInt {
    try negatedErrno { cmp_memfd_create(name, true) }
}

@inlinable package func system_ftruncate(_ fd: CInt, _ size: Int) throws(Errno) {
    _ = try valueOrErrno { Glibc.ftruncate(fd, off_t(size)) }
}

@inlinable package func system_mmapShared(_ fd: CInt, size: Int) throws(Errno) -> UnsafeMutableRawPointer {
    guard let p = Glibc.mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
        throw Errno(rawValue: Glibc.errno)
    }
    return p
}

@inlinable package func system_munmap(_ p: UnsafeMutableRawPointer, size: Int) { _ = Glibc.munmap(p, size) }

// MARK: futex

/// Waits while `word` holds `expected`. Returns false on timeout; spurious and EAGAIN returns are true.
@inlinable package func system_futexWait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64?, shared: Bool) throws(Errno) -> Bool {
    let r = cmp_futex_wait(word, expected, timeoutNanoseconds ?? -1, shared)
    if r == 0 || r == -EAGAIN || r == -EINTR { return true }
    if r == -ETIMEDOUT { return false }
    throw Errno(rawValue: -r)
}

@discardableResult
@inlinable package func system_futexWake(_ word: UnsafeMutablePointer<UInt32>, count: Int32, shared: Bool) -> Int {
    Int(cmp_futex_wake(word, count, shared))
}

@inlinable package func system_atomicLoad(_ word: UnsafeMutablePointer<UInt32>) -> UInt32 { cmp_atomic_load_u32(word) }
/// Adds `delta` atomically and returns the previous value.
@inlinable package func system_atomicAdd(_ word: UnsafeMutablePointer<UInt32>, _ delta: UInt32) -> UInt32 { cmp_atomic_fetch_add_u32(word, delta) }
@inlinable package func system_atomicStore(_ word: UnsafeMutablePointer<UInt32>, _ value: UInt32) { cmp_atomic_store_u32(word, value) }

// MARK: processes

@inlinable package func system_kill(_ pid: pid_t, _ signal: CInt) throws(Errno) {
    _ = try valueOrErrno { Glibc.kill(pid, signal) }
}

@inlinable package func system_pidfdOpen(_ pid: pid_t) throws(Errno) -> CInt {
    try negatedErrno { cmp_pidfd_open(pid) }
}

@inlinable package func system_pidfdSendSignal(_ pidfd: CInt, _ signal: CInt) throws(Errno) {
    _ = try negatedErrno { cmp_pidfd_send_signal(pidfd, signal) }
}

/// Sets the signal this process receives when the thread that created it exits.
@inlinable package func system_setParentDeathSignal(_ signal: CInt) throws(Errno) {
    _ = try negatedErrno { cmp_set_pdeathsig(signal) }
}

@inlinable package func system_setThreadName(_ name: String) {
    _ = cmp_set_thread_name(name)
}

/// `waitpid(pid, WNOHANG or blocking)`. Returns nil when the child has not exited (WNOHANG).
@inlinable package func system_waitpid(_ pid: pid_t, block: Bool) throws(Errno) -> CInt? {
    var status: CInt = 0
    let r = try valueOrErrno { Glibc.waitpid(pid, &status, block ? 0 : WNOHANG) }
    return r == 0 ? nil : status
}

/// The wait(2) status macros: the signal that ended the process, or its exit code.
@inlinable package func system_decodeWaitStatus(_ status: CInt) -> (exitCode: CInt, signal: CInt?) {
    if cmp_wifsignaled(status) { return (0, cmp_wtermsig(status)) }
    return (cmp_wexitstatus(status), nil)
}

@inlinable package func system_threadCount() -> Int { Int(cmp_thread_count()) }

@inlinable package func system_fork() throws(Errno) -> pid_t {
    try valueOrErrno(retryOnInterrupt: false) { Glibc.fork() }
}

@inlinable package func system_exit(_ code: CInt) -> Never { Glibc.exit(code) }
@inlinable package func system__exit(_ code: CInt) -> Never { Glibc._exit(code) }

@inlinable package func system_clockMonotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

@inlinable package func system_sleep(nanoseconds: Int64) {
    var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var rem = timespec()
    while Glibc.nanosleep(&ts, &rem) == -1 && Glibc.errno == EINTR { ts = rem }
}
#endif
