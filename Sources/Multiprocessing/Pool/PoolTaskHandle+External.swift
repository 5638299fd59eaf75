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

    /// For pools of this package outside this module (MPIPool): as ``_external(cancel:)``, and
    /// - Parameters:
    ///   - settle: Called by `isDone` and `onDone` (`false`), and by `value` and `get()` after
    ///     `drive` (`get()`: `true`): the handle's result is wanted, so the pool should look for it.
    ///   - drive: Called first by `value` (`false`) and `get()` (`true`): the waiting thread may
    ///     drive the pool's progress itself for a while before it sleeps.
    ///   - callbacks: Where the handle's `onDone` callbacks run (the pool's callback threads), as
    ///     a ``ProcessPool``'s do, never on the thread that gives the result.
    package static func _external(cancel: @escaping @Sendable () -> Void, settle: @escaping @Sendable (Bool) -> Void,
                                  drive: @escaping @Sendable (Bool) -> Void, callbacks: PoolCallbacks)
        -> (handle: PoolTaskHandle<Output>, resolve: @Sendable (Result<Output, PoolTaskError>) -> Void) {
        let sink = PoolTaskSink<Output>(decode: { _ in throw MultiprocessingError(.unsupported, "An external pool's result is never decoded by the handle.") },
                                        callbacks: callbacks)
        return (PoolTaskHandle(sink: sink, cancel: cancel, settle: settle, drive: drive), { sink.resolve($0) })
    }
}
