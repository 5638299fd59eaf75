// Codes of connections (issue 18), in a file of their own so that merges stay easy.

extension MultiprocessingError.Code {
    /// A message is larger than the buffer it was to be received into (Python's `BufferTooShort`).
    /// The message was not taken: the next receive returns it.
    public static let bufferTooShort = MultiprocessingError.Code("bufferTooShort")
}
