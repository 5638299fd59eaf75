import Multiprocessing

/// Where a manager's server listens.
public enum ManagerAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A Unix socket at this path (the default: in a new 0700 directory).
    case unix(path: String)
    /// A TCP socket: a numeric IPv4 address (or `localhost`) or IPv6 address (`::1`, with or
    /// without brackets), and a port.
    case tcp(host: String, port: Int)

    /// Parses `host:port` (TCP), `[ipv6]:port`, or a path that contains a `/` (Unix).
    ///
    /// - Parameter text: `127.0.0.1:5000`, `localhost:5000`, `:5000` (loopback), `[::1]:5000` or
    ///   `/tmp/x/socket`.
    /// - Returns: nil when the text is none of these (an IPv6 host needs its brackets: in
    ///   `::1:5000` the port cannot be told from the address).
    public init?(_ text: String) {
        if text.contains("/") {
            self = .unix(path: text)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") {
            guard host.count > 2, host.hasSuffix("]") else { return nil }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil
        }
        self = .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: port)
    }

    /// `host:port`, `[host]:port` for an IPv6 host, or the socket path.
    public var description: String {
        switch self {
        case .unix(let path): return path
        case .tcp(let host, let port):
            return host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}
