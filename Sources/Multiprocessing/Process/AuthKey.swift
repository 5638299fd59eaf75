
/// The secret both ends of an authenticated connection prove they know: Python's `authkey`.
///
/// Every process has one, ``CurrentProcess/authKey``: 32 random bytes made at first use in a
/// program's first process (or read from ``environmentVariable``), and inherited by every child,
/// which receives its parent's key with its task (on the socket to its parent, never in its
/// environment). Managers (`MultiprocessingManager`) and listeners and clients
/// (`MultiprocessingConnection`) use it unless given another; the HMAC-SHA256 that proves it lives
/// in those modules, so the core library never links swift-crypto. The key itself never crosses
/// the network: the handshakes send HMAC-SHA256 tags of random challenges, never the key.
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

    /// An environment variable that gives the first process of a program its key (in hexadecimal),
    /// so that unrelated programs can share one. Children do not need it: they receive their
    /// parent's key with their task.
    public static let environmentVariable = "MULTIPROCESSING_AUTHKEY"

    /// This process's key, ``CurrentProcess/authKey``: the default key of managers, listeners and
    /// clients. Kept for code written before the key moved to the core library.
    public static var processDefault: AuthKey { CurrentProcess.authKey }

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

    package static func decodeHex(_ text: String) -> [UInt8]? {
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

