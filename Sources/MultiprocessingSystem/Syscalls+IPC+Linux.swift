#if os(Linux)
// System calls used by connections and queues (Sources/Multiprocessing/IPC).
public import Glibc
public import CMultiprocessing
public import SystemPackage

// MARK: IPC

/// Writes `a` then `b` in one gather call; never raises SIGPIPE, never blocks (the caller waits
/// with poll on `EAGAIN`). On a socket, `descriptors` go with the first byte (SCM_RIGHTS).
/// Returns the bytes written, which may be fewer than asked.
@inlinable package func system_ipcWrite(_ fd: CInt, socket: Bool, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, descriptors: [CInt] = []) throws(Errno) -> Int {
    try descriptors.withUnsafeBufferPointer { (fds) throws(Errno) -> Int in
        try negatedErrno {
            cmp_ipc_write2(fd, socket, a.baseAddress, a.count, b.baseAddress, b.count, fds.baseAddress, CInt(fds.count))
        }
    }
}

/// `poll(2)` on several descriptors at once. Returns each descriptor's `revents`, all zero on
/// timeout. `timeoutMilliseconds < 0` waits forever. EINTR returns as all zero (a spurious wake-up)
/// so that callers recompute their deadline.
@inlinable package func system_pollMany(_ fds: [CInt], events: [Int16], timeoutMilliseconds: CInt) throws(Errno) -> [Int16] {
    var pfds = [pollfd]()
    pfds.reserveCapacity(fds.count)
    for (fd, ev) in zip(fds, events) { pfds.append(pollfd(fd: fd, events: ev, revents: 0)) }
    let n = Glibc.poll(&pfds, nfds_t(pfds.count), timeoutMilliseconds)
    if n == -1 {
        let error = Errno(rawValue: Glibc.errno)
        if error == .interrupted { return Array(repeating: 0, count: fds.count) }
        throw error
    }
    return pfds.map(\.revents)
}

/// Frees the memory behind `[offset, offset + length)` of a memfd; reads there see zeros.
@inlinable package func system_punchHole(_ fd: CInt, offset: Int, length: Int) throws(Errno) {
    _ = try negatedErrno { cmp_ipc_punch_hole(fd, Int64(offset), Int64(length)) }
}

/// The bytes of storage a file holds (`st_blocks` × 512): for a memfd, its resident pages.
@inlinable package func system_allocatedBytes(_ fd: CInt) throws(Errno) -> Int {
    var st = stat()
    _ = try valueOrErrno { Glibc.fstat(fd, &st) }
    return Int(st.st_blocks) * 512
}

/// Shuts both directions of a socket down: a thread blocked reading it wakes with end of stream
/// (the blocking bridge's ``WakeSource/socket(_:)``). The corresponding C function is
/// `shutdown(2)`; errors (a socket already shut down) are ignored.
@inlinable package func system_shutdown(_ fd: CInt) { _ = Glibc.shutdown(fd, CInt(SHUT_RDWR)) }

#endif
