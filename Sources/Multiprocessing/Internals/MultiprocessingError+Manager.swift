// Codes used by the MultiprocessingManager module, in a file of their own so that merges stay easy.

extension MultiprocessingError.Code {
    /// A manager connection failed the HMAC challenge: the two sides do not hold the same key.
    public static let authenticationFailed = MultiprocessingError.Code("authenticationFailed")
    /// A manager server does not know the object, method or type a request named.
    public static let notFound = MultiprocessingError.Code("notFound")
    /// A manager server turned a connection away: it serves its maximum of authenticated
    /// connections, or too many connections were in the handshake at once. The message names
    /// the limit.
    public static let serverBusy = MultiprocessingError.Code("serverBusy")

    /// The code's name, as it travels in a manager's error reply.
    package var name: String { rawValue }

    /// The code named by a manager's error reply.
    package static func named(_ name: String) -> MultiprocessingError.Code { MultiprocessingError.Code(name) }
}
