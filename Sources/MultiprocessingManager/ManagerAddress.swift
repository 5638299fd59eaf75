import Multiprocessing

/// Where a manager's server listens.
public enum ManagerAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A Unix socket at this path (the default: in a new 0700 directory).
    case unix(path: String)
    /// A TCP socket: an IPv4 address (or `localhost`) and a port.
    case tcp(host: String, port: Int)

    /// Parses `host:port` (TCP) or a path that contains a `/` (Unix).
    ///
    /// - Parameter text: `127.0.0.1:5000`, `localhost:5000`, `:5000` (loopback) or `/tmp/x/socket`.
    /// - Returns: nil when the text is neither.
    public init?(_ text: String) {
        if text.contains("/") {
            self = .unix(path: text)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        let host = String(text[..<colon])
        self = .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: port)
    }

    /// `host:port` or the socket path.
    public var description: String {
        switch self {
        case .unix(let path): return path
        case .tcp(let host, let port): return "\(host):\(port)"
        }
    }
}
