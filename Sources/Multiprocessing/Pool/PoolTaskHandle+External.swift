// A task handle for a pool that lives in another module (MultiprocessingMPI's MPIPool), so that its
// submit returns the same PoolTaskHandle as ProcessPool's and ThreadPool's.

extension PoolTaskHandle {
    /// For pools outside this module: a new handle, and the function that gives it its result (the
    /// first result given wins; later ones are ignored). An implementation detail of MultiprocessingMPI.
    /// - Parameter cancel: What the handle's ``cancel()`` does besides failing the task with
    ///   ``MultiprocessingError/Code/cancelled``.
    public static func _external(cancel: @escaping @Sendable () -> Void) -> (handle: PoolTaskHandle<Output>, resolve: @Sendable (Result<Output, PoolTaskError>) -> Void) {
        let sink = PoolTaskSink<Output>(decode: { _ in throw MultiprocessingError(.unsupported, "An external pool's result is never decoded by the handle.") })
        return (PoolTaskHandle(sink: sink, cancel: cancel), { sink.resolve($0) })
    }
}
