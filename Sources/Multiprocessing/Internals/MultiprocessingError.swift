public import SystemPackage
import MultiprocessingSystem

/// The error every API of the `Multiprocessing` module throws.
///
/// Match on ``code`` to handle a kind of failure; ``message`` says what happened and what to do,
/// and ``underlyingErrno`` keeps the system's own error where there is one.
public struct MultiprocessingError: Error, Sendable, CustomStringConvertible {
    /// A stable, extensible kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        internal let rawValue: String
        internal init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A system call failed; ``MultiprocessingError/underlyingErrno`` says why.
        public static let systemCall = Code("systemCall")
        /// A blocking call ran out of time.
        public static let timedOut = Code("timedOut")
        /// The Swift task or thread waiting was cancelled.
        public static let cancelled = Code("cancelled")
        /// An API was used in an order it does not allow (start twice, join before start...).
        public static let misuse = Code("misuse")
        /// A value could not be encoded or decoded.
        public static let coding = Code("coding")
        /// A child process could not be started or could not run its task.
        public static let childStartFailed = Code("childStartFailed")
        /// The task in a child process threw; ``MultiprocessingError/remoteTypeName`` names the error type.
        public static let childFailed = Code("childFailed")
        /// A child process ended without a result: it crashed, was killed, or exited by itself.
        public static let childDied = Code("childDied")
        /// The other end of a connection closed: the stream has ended.
        public static let endOfStream = Code("endOfStream")
        /// Bytes on a pipe or socket did not form a valid frame.
        public static let malformedFrame = Code("malformedFrame")
        /// A lock's previous owner died while holding it. The lock is now held by the caller.
        public static let ownerDied = Code("ownerDied")
        /// A primitive is broken (a barrier that was aborted or timed out).
        public static let broken = Code("broken")
        /// The operation is not available with this start method or on this platform.
        public static let unsupported = Code("unsupported")
        /// A queue was full or empty where the call did not wait.
        public static let full = Code("full")
        /// A queue was empty where the call did not wait.
        public static let empty = Code("empty")
        /// An object was used after it was closed.
        public static let closed = Code("closed")
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence for a person: what happened and, where it helps, what to do.
    public var message: String
    /// The `errno` behind the failure, if a system call failed.
    public var underlyingErrno: Errno?
    /// For ``Code/childFailed``: the Swift type name of the error the child threw.
    public var remoteTypeName: String?

    public init(_ code: Code, _ message: String, errno: Errno? = nil, remoteTypeName: String? = nil) {
        self.code = code
        self.message = message
        self.underlyingErrno = errno
        self.remoteTypeName = remoteTypeName
    }

    public var description: String {
        var text = message
        if let remoteTypeName { text += " [\(remoteTypeName)]" }
        if let underlyingErrno { text += " (\(underlyingErrno))" }
        return text
    }

    internal static func system(_ what: String, _ errno: Errno) -> MultiprocessingError {
        MultiprocessingError(.systemCall, "\(what) failed: \(errno)", errno: errno)
    }

    internal static func misuse(_ message: String) -> MultiprocessingError {
        MultiprocessingError(.misuse, message)
    }
}
