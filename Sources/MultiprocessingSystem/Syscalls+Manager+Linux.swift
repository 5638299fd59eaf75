#if os(Linux)
// What the MultiprocessingManager module needs from the system: stream sockets (Unix and TCP),
// blocking reads and writes, a futex-based wait. It is `package`, not public: the manager module is
// the only other caller. The frame header of Connection's framing and the thread starter with the
// core's error are added in Multiprocessing (`Internals/ManagerPlatform+Core.swift`).
import Glibc
import CMultiprocessing
package import SystemPackage

/// System calls and shared internals for the manager module (`package` access only).
package enum ManagerPlatform {
    // MARK: sockets

    // The socket calls are ConnectionPlatform's (Syscalls+Connection+Linux.swift), which the
    // listeners of MultiprocessingConnection share: one copy of the address building, bind,
    // listen and connect. A manager's Unix addresses are paths, never abstract names.

    /// A new Unix stream socket, close-on-exec, blocking.
    package static func unixSocket() throws(Errno) -> CInt { try ConnectionPlatform.socket(unix: true) }

    /// A new IPv4 TCP socket, close-on-exec, blocking, with `TCP_NODELAY` (requests are small and
    /// each waits for its reply: Nagle's algorithm would add 40 ms to some of them).
    package static func tcpSocket(host: String = "") throws(Errno) -> CInt { try ConnectionPlatform.socket(unix: false, tcpHost: host) }

    /// Binds a Unix socket to `path` and listens.
    package static func listenUnix(_ fd: CInt, path: String, backlog: Int) throws(Errno) {
        try ConnectionPlatform.listenUnix(fd, name: path, abstract: false, backlog: backlog)
    }

    /// Binds a TCP socket to `host:port` (an IPv4 address or `localhost`; port 0 picks a free one)
    /// with `SO_REUSEADDR`, and listens. Returns the bound port.
    package static func listenTCP(_ fd: CInt, host: String, port: Int, backlog: Int) throws(Errno) -> Int {
        try ConnectionPlatform.listenTCP(fd, host: host, port: port, backlog: backlog)
    }

    /// Connects a Unix socket to `path`.
    package static func connectUnix(_ fd: CInt, path: String) throws(Errno) {
        try ConnectionPlatform.connectUnix(fd, name: path, abstract: false)
    }

    /// Connects a TCP socket to `host:port`.
    package static func connectTCP(_ fd: CInt, host: String, port: Int) throws(Errno) {
        try ConnectionPlatform.connectTCP(fd, host: host, port: port)
    }

    /// Accepts one connection (close-on-exec, blocking). Retries `EINTR` and the errors that
    /// belong to the connection being accepted (`system_acceptErrorIsTheConnections`: reset,
    /// or a network error that Linux passes to accept(2)).
    package static func accept(_ fd: CInt) throws(Errno) -> CInt {
        while true {
            let r = Glibc.accept(fd, nil, nil)
            if r >= 0 {
                // accept4 is hidden behind _GNU_SOURCE; the server starts no programs, so setting
                // close-on-exec just after the accept leaves no window that matters.
                try? system_setCloseOnExec(r, true)
                var one: CInt = 1
                _ = Glibc.setsockopt(r, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
                return r
            }
            let error = Errno(rawValue: Glibc.errno)
            if system_acceptErrorIsTheConnections(error) { continue }
            throw error
        }
    }

    /// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO`: a blocking read or write that waits longer fails with
    /// `EAGAIN`. `nil` waits for ever.
    package static func setIOTimeout(_ fd: CInt, nanoseconds: Int64?) {
        var tv = timeval()
        if let nanoseconds {
            let ns = max(nanoseconds, 1_000)
            tv.tv_sec = Int(ns / 1_000_000_000)
            tv.tv_usec = Int((ns % 1_000_000_000) / 1_000)
        }
        _ = Glibc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = Glibc.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads what is there, at least one byte, blocking; 0 at the end of the stream. Retries `EINTR`.
    package static func read(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try valueOrErrno(retryOnInterrupt: true) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Reads what is there without waiting: nil when nothing is (`EAGAIN`), 0 at the end of the
    /// stream. `MSG_DONTWAIT` leaves the socket itself in blocking mode.
    package static func readNow(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        do throws(Errno) {
            return try system_receiveNonBlocking(fd, buffer)
        } catch .resourceTemporarilyUnavailable {
            return nil
        }
    }

    /// Gives the processor to another runnable thread, if there is one.
    package static func yield() { _ = sched_yield() }

    /// Shuts both directions of a socket down: a thread blocked reading it wakes with end of stream.
    package static func shutdown(_ fd: CInt) { system_shutdown(fd) }

    /// Shuts the reading direction of a socket down: a thread blocked reading it (or polling it)
    /// wakes and sees the end of the stream, and the socket can still be written.
    package static func shutdownRead(_ fd: CInt) { _ = Glibc.shutdown(fd, CInt(SHUT_RD)) }

    /// Writes what fits without waiting (`MSG_DONTWAIT`), never raising SIGPIPE; for a short
    /// notice on a new socket, whose empty send buffer always holds it. Errors are ignored.
    package static func writeNow(_ fd: CInt, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            _ = Glibc.send(fd, raw.baseAddress, raw.count, CInt(MSG_NOSIGNAL) | CInt(MSG_DONTWAIT))
        }
    }

    /// The bytes sent on this socket that its peer has not read yet (`SIOCOUTQ`); nil when the
    /// socket cannot tell.
    package static func unsentBytes(_ fd: CInt) -> Int? {
        let n = cmp_manager_unsent_bytes(fd)
        return n < 0 ? nil : Int(n)
    }

    /// Closes a descriptor.
    package static func close(_ fd: CInt) { system_close(fd) }

    /// Whether the peer of a socket has hung up (or reset), checked without waiting.
    package static func peerHungUp(_ fd: CInt) -> Bool {
        let rdhup: Int16 = 0x2000  // POLLRDHUP, hidden behind _GNU_SOURCE
        let events = rdhup | Int16(POLLHUP) | Int16(POLLERR)
        guard let revents = try? system_poll(fd, events: rdhup, timeoutMilliseconds: 0) else { return true }
        return revents & events != 0
    }

    /// Waits until `fd` is readable (or hung up), up to `milliseconds` (-1 for ever). Returns whether it is.
    package static func waitReadable(_ fd: CInt, milliseconds: CInt) -> Bool {
        guard let revents = try? system_poll(fd, events: Int16(POLLIN), timeoutMilliseconds: milliseconds) else { return true }
        return revents != 0
    }

    // MARK: files

    /// Makes a new private (0700) directory from a template ending in `XXXXXX`.
    package static func makeTemporaryDirectory(prefix: String) throws(Errno) -> String {
        var template = Array((prefix + "XXXXXX").utf8CString)
        let result = template.withUnsafeMutableBufferPointer { buffer -> UnsafeMutablePointer<CChar>? in
            guard let base = buffer.baseAddress else { return nil }
            return Glibc.mkdtemp(base)
        }
        guard result != nil else { throw Errno(rawValue: Glibc.errno) }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes a file; errors are ignored (cleanup).
    package static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    /// Removes an empty directory; errors are ignored (cleanup).
    package static func removeDirectory(_ path: String) { _ = Glibc.rmdir(path) }

    /// The environment variable `name`, if set.
    package static func environment(_ name: String) -> String? { system_getenv(name) }


    // MARK: time, processes, threads

    /// Nanoseconds on CLOCK_MONOTONIC.
    package static func monotonicNanoseconds() -> Int64 { system_clockMonotonicNanoseconds() }

    /// This process's id.
    package static func processID() -> Int32 { system_getpid() }

    /// This thread's kernel id: the owner of a manager RLock.
    package static func threadID() -> Int32 { system_gettid() }

    /// Sleeps the calling thread.
    package static func sleep(nanoseconds: Int64) { system_sleep(nanoseconds: nanoseconds) }

    /// Ends the process at once, without running exit handlers (the server's shutdown).
    package static func exitNow(_ code: CInt) -> Never { system__exit(code) }

    /// The resident memory of this process, in bytes (from /proc/self/statm).
    package static func residentBytes() -> Int { system_residentBytes() }

    // MARK: futex waits

    /// Waits while `*word == expected`, up to `nanoseconds` (process-private futex). Returns on a
    /// wake, a change, a timeout or a signal; the caller re-checks its condition.
    package static func futexWait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, nanoseconds: Int64?) {
        _ = try? system_futexWait(word, expected: expected, timeoutNanoseconds: nanoseconds, shared: false)
    }

    /// Wakes every thread waiting on `word`.
    package static func futexWakeAll(_ word: UnsafeMutablePointer<UInt32>) {
        _ = system_futexWake(word, count: Int32.max, shared: false)
    }

    /// Reads `*word` atomically.
    package static func atomicLoad(_ word: UnsafeMutablePointer<UInt32>) -> UInt32 { system_atomicLoad(word) }

    /// Adds to `*word` atomically.
    package static func atomicIncrement(_ word: UnsafeMutablePointer<UInt32>) { _ = system_atomicAdd(word, 1) }

}
#endif
