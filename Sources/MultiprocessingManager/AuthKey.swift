import Multiprocessing
import Synchronization
import MultiprocessingSystem

/// The secret both ends of a manager connection prove they know: Python's `authkey`.
///
/// The default key (``AuthKey/processDefault``) is 32 random bytes made once per program. A child
/// process inherits it: it is exported in the environment variable `MULTIPROCESSING_AUTHKEY`
/// (readable only by the same user, like the manager's 0700 socket directory), and a proxy passed
/// in a task's arguments carries the key of its manager. The key itself never crosses the network:
/// the handshake sends HMAC-SHA256 tags of random challenges, never the key.
public struct AuthKey: Sendable, Hashable, CustomStringConvertible {
    /// The key's bytes.
    public let bytes: [UInt8]

    /// A key made of the given bytes.
    ///
    /// - Parameter bytes: the secret. TCP managers refuse an empty key.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// A key made of a string's UTF-8 bytes (a passphrase, or the contents of a key file with its
    /// trailing newline removed).
    ///
    /// - Parameter text: the secret.
    public init(_ text: String) {
        var bytes = Array(text.utf8)
        while let last = bytes.last, last == 10 || last == 13 { bytes.removeLast() }
        self.bytes = bytes
    }

    /// 32 bytes from the system's secure random source.
    public static func random() -> AuthKey {
        var generator = SystemRandomNumberGenerator()
        return AuthKey((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// The environment variable through which children inherit ``processDefault``.
    public static let environmentVariable = "MULTIPROCESSING_AUTHKEY"

    private static let defaultKey = Mutex<AuthKey?>(nil)

    /// This program's default key: inherited from the parent (through ``environmentVariable``)
    /// or made at first use and passed to the children started after that (through
    /// the core's inherited child environment, which leaves this process's own environment
    /// alone, so it is safe whatever threads run; a fork server started before the key was made is
    /// not used for the children after it). A proxy in a task's arguments carries its key in any case.
    public static var processDefault: AuthKey {
        defaultKey.withLock { stored in
            if let stored { return stored }
            let key: AuthKey
            if let hex = ManagerPlatform.environment(environmentVariable), let bytes = AuthKey.decodeHex(hex), !bytes.isEmpty {
                key = AuthKey(bytes)
            } else {
                key = AuthKey.random()
                ChildProcessConfiguration.setInheritedEnvironment(environmentVariable, key.hex)
            }
            stored = key
            return key
        }
    }

    /// The key in hexadecimal, for a key file.
    public var hex: String {
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return text
    }

    /// Never prints the secret.
    public var description: String { "AuthKey(\(bytes.count) bytes)" }

    internal static func decodeHex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var result: [UInt8] = []
        result.reserveCapacity(chars.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let high = value(chars[i]), let low = value(chars[i + 1]) else { return nil }
            result.append(high << 4 | low)
            i += 2
        }
        return result
    }
}

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
