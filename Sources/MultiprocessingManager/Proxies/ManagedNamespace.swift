import Multiprocessing

/// A `Codable` struct held by a manager's server: Python's `manager.Namespace()`, typed.
///
/// Read a field with `namespace.fieldName` (one call that reads the whole struct) or
/// ``get()``; change fields atomically with ``update(_:)``.
@dynamicMemberLookup
public struct ManagedNamespace<State: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The value holding the struct.
    public let storage: ManagedValue<State>

    internal init(reference: ObjectReference) { storage = ManagedValue(reference: reference) }

    /// The whole struct.
    ///
    /// - Returns: the current state.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func get() throws -> State { try storage.get() }

    /// Replaces the whole struct.
    ///
    /// - Parameter state: the new state.
    /// - Throws: as ``get()``.
    public func set(_ state: State) throws { try storage.set(state) }

    /// Changes the struct atomically (read, apply, compare-and-swap, retried on a race).
    ///
    /// - Parameter body: the change; it may run more than once.
    /// - Returns: the state stored.
    /// - Throws: what `body` throws, and as ``get()``.
    @discardableResult
    public func update(_ body: (inout State) throws -> Void) throws -> State { try storage.update(body) }

    /// One field, read from the server: `try namespace.count`. Change fields with ``update(_:)``.
    ///
    /// - Parameter keyPath: the field.
    public subscript<Field>(dynamicMember keyPath: KeyPath<State, Field>) -> Field {
        get throws { try get()[keyPath: keyPath] }
    }
}
