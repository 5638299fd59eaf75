extension MultiprocessingError.Code {
    /// The queue was shut down (``Queue/shutdown(immediate:)``): a put is refused, and a get finds
    /// it empty. Python's `queue.ShutDown`.
    public static let shutDown = MultiprocessingError.Code("shutDown")
}
