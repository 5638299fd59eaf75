#if MPI
/// The error MultiprocessingMPI throws: an MPI call that failed, or a misuse of the MPI pool.
public struct MPIError: Error, Sendable, CustomStringConvertible {
    /// A stable kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        internal let rawValue: String
        internal init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// An MPI function returned an error; ``MPIError/mpiErrorCode`` is its code.
        public static let call = Code("call")
        /// MPI was used in a way it does not allow here (initialized twice, used after finalize,
        /// not enough thread support, a tag out of range).
        public static let misuse = Code("misuse")
        /// A message between ranks was not what the protocol expects.
        public static let protocolError = Code("protocolError")
    }

    /// The kind of failure.
    public var code: Code
    /// What happened and, where it helps, what to do.
    public var message: String
    /// The error code the MPI function returned, for ``Code/call``.
    public var mpiErrorCode: Int32?

    /// An error of kind `code`, saying `message`; `mpiErrorCode` for a failed MPI call.
    public init(_ code: Code, _ message: String, mpiErrorCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.mpiErrorCode = mpiErrorCode
    }

    /// The kind and the message.
    public var description: String { "MPIError.\(code): \(message)" }
}
#endif
