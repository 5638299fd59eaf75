public import Multiprocessing

// The scoped form of a manager (Python's `with Manager() as manager:`) and the error of a start
// whose initializer failed.

extension Manager {
    /// Starts a manager, runs `body` with it, and shuts it down when `body` returns or throws:
    /// Python's `with Manager() as manager:`.
    ///
    /// ```swift
    /// let total = try Manager.with { manager in
    ///     let counts = try manager.dictionary(String.self, Int.self)
    ///     // ...children increment counts...
    ///     return try counts.get("total") ?? 0
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - address: where to serve (see ``init(address:authKey:limits:)``).
    ///   - authKey: the key; the process default key when nil.
    ///   - limits: the server's limits.
    ///   - actorTypes: distributed actor types to register before the start.
    ///   - initializer: a task the server runs once before it serves (see `start(initializer:)`).
    ///   - body: the work; proxies made from the manager fail once it returns.
    /// - Returns: what `body` returns.
    /// - Throws: what `start(initializer:)` throws (and `body` does not run); what `body`
    ///   throws (after the shutdown, whose own error is then dropped); what
    ///   `shutdown(timeout:)` throws after a `body` that returned.
    public static func with<R>(address: ManagerAddress? = nil, authKey: AuthKey? = nil, limits: ManagerLimits = ManagerLimits(),
                               actorTypes: [any ManagedActor.Type] = [], initializer: (any ProcessTask)? = nil,
                               _ body: (Manager) throws -> R) throws -> R {
        let manager = Manager(address: address, authKey: authKey, limits: limits)
        for type in actorTypes { manager.register(any: type) }
        try manager.start(initializer: initializer)
        let result: R
        do {
            result = try body(manager)
        } catch {
            try? manager.shutdown()
            throw error
        }
        try manager.shutdown()
        return result
    }

    /// The async form of ``with(address:authKey:limits:actorTypes:initializer:_:)``: starts and
    /// stops the server off the cooperative pool, and `body` may `await`.
    ///
    /// - Parameters:
    ///   - address: where to serve.
    ///   - authKey: the key; the process default key when nil.
    ///   - limits: the server's limits.
    ///   - actorTypes: distributed actor types to register before the start.
    ///   - initializer: a task the server runs once before it serves.
    ///   - body: the work.
    /// - Returns: what `body` returns.
    /// - Throws: as the blocking form, and `MultiprocessingError/Code/cancelled`.
    public static func with<R>(address: ManagerAddress? = nil, authKey: AuthKey? = nil, limits: ManagerLimits = ManagerLimits(),
                               actorTypes: [any ManagedActor.Type] = [], initializer: (any ProcessTask)? = nil,
                               _ body: (Manager) async throws -> R) async throws -> R {
        let manager = Manager(address: address, authKey: authKey, limits: limits)
        for type in actorTypes { manager.register(any: type) }
        try await manager.start(initializer: initializer)
        let result: R
        do {
            result = try await body(manager)
        } catch {
            try? await manager.shutdown()
            throw error
        }
        try await manager.shutdown()
        return result
    }

    /// The error of a start whose server ended before it was ready: what the initializer threw,
    /// as the server's child process reports it.
    internal static func initializerFailure(_ server: ChildProcess<Void>, _ readError: any Error) -> MultiprocessingError {
        do {
            try server.value(timeout: .seconds(10))
        } catch let error as MultiprocessingError where error.code == .timedOut {
            // Alive but not ready: the ready pipe failed some other way. Do not leave it running.
            try? server.kill()
            _ = try? server.join(timeout: .seconds(5))
            return MultiprocessingError(.childFailed, "Manager.start: the server did not report that it was ready (\(readError)); it was killed.")
        } catch let error as MultiprocessingError {
            return MultiprocessingError(error.code, "Manager.start: the server's initializer failed, so the manager did not start. \(error.message)",
                                        remoteTypeName: error.remoteTypeName)
        } catch {
            return MultiprocessingError(.childFailed, "Manager.start: the server's initializer failed, so the manager did not start: \(error)")
        }
        return MultiprocessingError(.childDied, "Manager.start: the server ended before it was ready, without an error (\(readError)).")
    }
}
