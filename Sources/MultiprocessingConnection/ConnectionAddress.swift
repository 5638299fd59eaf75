/// Where a ``Listener`` listens and a client connects: Python's address families.
public enum ConnectionAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A Unix socket at a path (Python's `'AF_UNIX'` with a path). The listener removes the socket
    /// file when it closes.
    case unix(path: String)
    /// A name in Linux's abstract namespace (Python's `'AF_UNIX'` with an address starting with a
    /// NUL byte): no file, and gone when the listener closes. Any process of the machine (in this
    /// network namespace) may connect: the key is the only guard.
    case abstract(name: String)
    /// A TCP socket: a numeric IPv4 address (or `localhost`) or IPv6 address, and a port (Python's
    /// `'AF_INET'` and `'AF_INET6'` with `(host, port)`). An IPv6 host may be written with or
    /// without brackets (`::1`, `[::1]`), and a link-local one with its interface (`fe80::1%eth0`).
    /// Port 0 picks a free one; ``Listener/address`` tells which.
    case tcp(host: String, port: Int)

    /// The path, `@name` for an abstract name (as `ss` shows it), `host:port`, or `[host]:port`
    /// for an IPv6 host.
    public var description: String {
        switch self {
        case .unix(let path): return path
        case .abstract(let name): return "@\(name)"
        case .tcp(let host, let port):
            return host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}
