#if os(Linux)
// System calls of connections made from a raw descriptor, of wait(), and of the listeners and
// clients of MultiprocessingConnection (`ConnectionPlatform`).
import Glibc
import CMultiprocessing
package import SystemPackage

/// What a descriptor is, for ``Connection/init(adopting:readable:writable:maximumMessageSize:)``.
package struct DescriptorKind {
    package enum Kind { case streamSocket(unix: Bool), otherSocket, pipe, other }
    package var kind: Kind
    /// `O_RDONLY`, `O_WRONLY` or `O_RDWR`.
    package var accessMode: CInt
}

/// The corresponding C functions are `fstat(2)`, `getsockopt(2)` (`SO_DOMAIN`, `SO_TYPE`) and
/// `fcntl(2)` (`F_GETFL`).
package func system_describeDescriptor(_ fd: CInt) throws(Errno) -> DescriptorKind {
    var st = stat()
    _ = try valueOrErrno { Glibc.fstat(fd, &st) }
    let flags = try negatedErrno { cmp_fcntl_getfl(fd) }
    let mode = flags & O_ACCMODE
    switch st.st_mode & S_IFMT {
    case S_IFSOCK:
        var domain: CInt = 0
        var type: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        _ = try valueOrErrno { Glibc.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) }
        length = socklen_t(MemoryLayout<CInt>.size)
        _ = try valueOrErrno { Glibc.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) }
        guard type == CInt(SOCK_STREAM.rawValue) else { return DescriptorKind(kind: .otherSocket, accessMode: mode) }
        return DescriptorKind(kind: .streamSocket(unix: domain == AF_UNIX), accessMode: mode)
    case S_IFIFO:
        return DescriptorKind(kind: .pipe, accessMode: mode)
    default:
        return DescriptorKind(kind: .other, accessMode: mode)
    }
}

/// Sockets for listeners and clients: Unix paths, the Linux abstract namespace, and TCP over IPv4
/// or IPv6.
package enum ConnectionPlatform {
    /// Whether a TCP `host` is an IPv6 address: it has a colon (`::1`, `[::1]`, `fe80::1%eth0`).
    package static func isIPv6(_ host: String) -> Bool { host.contains(":") }

    /// A TCP host as `inet_pton` takes it: without the brackets of `[::1]`.
    package static func bareHost(_ host: String) -> String {
        guard host.count >= 2, host.hasPrefix("["), host.hasSuffix("]") else { return host }
        return String(host.dropFirst().dropLast())
    }

    /// A new stream socket (`AF_UNIX`, or `AF_INET`/`AF_INET6` for a TCP `host`), close-on-exec, blocking.
    package static func socket(unix: Bool, tcpHost host: String = "") throws(Errno) -> CInt {
        let family = unix ? AF_UNIX : isIPv6(host) ? AF_INET6 : AF_INET
        let fd = try valueOrErrno { Glibc.socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0) }
        if !unix {
            // Frames are written whole and usually answered: Nagle's algorithm would hold back
            // a small one for up to 40 ms.
            var one: CInt = 1
            _ = Glibc.setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
        }
        return fd
    }

    /// A Unix address: a path, or (`abstract`) a name in the Linux abstract namespace, which has
    /// no file and ends with its last byte (no NUL).
    private static func withUnixAddress<R>(_ name: String, abstract: Bool, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(Errno) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let start = abstract ? 1 : 0
        guard start + bytes.count < capacity || (abstract && start + bytes.count == capacity) else { throw Errno.fileNameTooLong }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw[0] = 0
            UnsafeMutableRawBufferPointer(rebasing: raw[start...]).copyBytes(from: bytes)
            if !abstract { raw[bytes.count] = 0 }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        let length = abstract ? socklen_t(pathOffset + 1 + bytes.count) : socklen_t(MemoryLayout<sockaddr_un>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// An IPv4 or IPv6 address (`localhost` is 127.0.0.1): a numeric literal, an IPv6 one with or
    /// without brackets and with an optional `%interface` (a link-local address's scope).
    private static func withInetAddress<R>(_ host: String, _ port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(Errno) -> R {
        if isIPv6(host) {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            var literal = bareHost(host)
            if let percent = literal.firstIndex(of: "%") {
                let interface = String(literal[literal.index(after: percent)...])
                literal = String(literal[..<percent])
                let index = if_nametoindex(interface)
                guard index != 0 else { throw Errno.invalidArgument }
                address.sin6_scope_id = index
            }
            guard inet_pton(AF_INET6, literal, &address.sin6_addr) == 1 else { throw Errno.invalidArgument }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        let numeric = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, numeric, &address.sin_addr) == 1 else { throw Errno.invalidArgument }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Binds a Unix socket to a path or an abstract name, and listens.
    package static func listenUnix(_ fd: CInt, name: String, abstract: Bool, backlog: Int) throws(Errno) {
        let r = try withUnixAddress(name, abstract: abstract) { Glibc.bind(fd, $0, $1) }
        if r != 0 { throw Errno(rawValue: Glibc.errno) }
        _ = try valueOrErrno { Glibc.listen(fd, CInt(backlog)) }
    }

    /// Binds a TCP socket to `host:port` (IPv4, IPv6 or `localhost`; port 0 picks one) with
    /// `SO_REUSEADDR`, and listens. Returns the bound port.
    package static func listenTCP(_ fd: CInt, host: String, port: Int, backlog: Int) throws(Errno) -> Int {
        var one: CInt = 1
        _ = Glibc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        let r = try withInetAddress(host, port) { Glibc.bind(fd, $0, $1) }
        if r != 0 { throw Errno(rawValue: Glibc.errno) }
        _ = try valueOrErrno { Glibc.listen(fd, CInt(backlog)) }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try valueOrErrno {
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.getsockname(fd, $0, &length) }
            }
        }
        // sin_port and sin6_port are at the same offset, but read each as what it is.
        let family = CInt(address.ss_family)
        let port = withUnsafeBytes(of: address) { raw -> UInt16 in
            family == AF_INET6 ? raw.loadUnaligned(as: sockaddr_in6.self).sin6_port : raw.loadUnaligned(as: sockaddr_in.self).sin_port
        }
        return Int(UInt16(bigEndian: port))
    }

    /// Connects a Unix socket to a path or an abstract name. Retries `EINTR`.
    package static func connectUnix(_ fd: CInt, name: String, abstract: Bool) throws(Errno) {
        while true {
            let r = try withUnixAddress(name, abstract: abstract) { Glibc.connect(fd, $0, $1) }
            if r == 0 { return }
            let error = Errno(rawValue: Glibc.errno)
            if error != .interrupted { throw error }
        }
    }

    /// Connects a TCP socket to `host:port`. Retries `EINTR`.
    package static func connectTCP(_ fd: CInt, host: String, port: Int) throws(Errno) {
        while true {
            let r = try withInetAddress(host, port) { Glibc.connect(fd, $0, $1) }
            if r == 0 { return }
            let error = Errno(rawValue: Glibc.errno)
            if error != .interrupted { throw error }
        }
    }

    /// Accepts one connection without waiting (the listening socket is non-blocking): nil when
    /// none is queued. The new socket is close-on-exec and blocking.
    package static func acceptNow(_ fd: CInt) throws(Errno) -> CInt? {
        while true {
            let r = Glibc.accept(fd, nil, nil)
            if r >= 0 {
                try? system_setCloseOnExec(r, true)
                try? system_setNonBlocking(r, false)
                var one: CInt = 1
                _ = Glibc.setsockopt(r, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
                return r
            }
            let error = Errno(rawValue: Glibc.errno)
            if system_acceptErrorIsTheConnections(error) { continue }
            switch error {
            case .resourceTemporarilyUnavailable: return nil
            default: throw error
            }
        }
    }

    /// Sets or clears `O_NONBLOCK`.
    package static func setNonBlocking(_ fd: CInt, _ on: Bool) throws(Errno) { try system_setNonBlocking(fd, on) }

    /// Reads at most `buffer.count` bytes without waiting: nil when nothing is there, 0 at the end
    /// of the stream. Never reads more than asked, so nothing after the handshake is taken.
    package static func readNow(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        while true {
            let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, CInt(MSG_DONTWAIT))
            if n >= 0 { return n }
            let error = Errno(rawValue: Glibc.errno)
            if error == .interrupted { continue }
            if error == .resourceTemporarilyUnavailable { return nil }
            throw error
        }
    }

    /// Writes all of `buffer` (the package's one loop, `system_writeAll`); never raises SIGPIPE.
    /// A connection's socket is blocking (an accepted socket does not inherit the listener's
    /// `O_NONBLOCK`), so the loop waits for room in the kernel.
    package static func writeAll(_ fd: CInt, _ buffer: UnsafeRawBufferPointer) throws(Errno) {
        try system_writeAll(fd, buffer, socket: true)
    }

    /// Waits until `fd` is readable (or hung up), up to `milliseconds` (-1 for ever).
    package static func waitReadable(_ fd: CInt, milliseconds: CInt) -> Bool {
        ManagerPlatform.waitReadable(fd, milliseconds: milliseconds)
    }

    /// `poll(2)` on several descriptors: each one's `revents`, all zero on a timeout or `EINTR`.
    package static func pollMany(_ fds: [CInt], events: [Int16], timeoutMilliseconds: CInt) throws(Errno) -> [Int16] {
        try system_pollMany(fds, events: events, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// A new eventfd (close-on-exec, non-blocking), for waking a thread in `poll`.
    package static func eventfd() throws(Errno) -> CInt { try system_eventfd(nonBlocking: true) }

    /// Makes an eventfd readable.
    package static func eventfdSignal(_ fd: CInt) { system_eventfdSignal(fd) }

    /// Nanoseconds on CLOCK_MONOTONIC.
    package static func monotonicNanoseconds() -> Int64 { system_clockMonotonicNanoseconds() }

    /// Closes a descriptor.
    package static func close(_ fd: CInt) { system_close(fd) }

    /// Removes a file; errors are ignored (cleanup).
    package static func unlink(_ path: String) { ManagerPlatform.unlink(path) }

    /// Removes an empty directory; errors are ignored (cleanup).
    package static func removeDirectory(_ path: String) { ManagerPlatform.removeDirectory(path) }

    /// Makes a new private (0700) directory from a template ending in `XXXXXX`.
    package static func makeTemporaryDirectory(prefix: String) throws(Errno) -> String {
        try ManagerPlatform.makeTemporaryDirectory(prefix: prefix)
    }

    /// The directory for temporary files: `$TMPDIR`, else `/tmp`.
    package static var temporaryDirectory: String { system_getenv("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp" }
}
#endif
