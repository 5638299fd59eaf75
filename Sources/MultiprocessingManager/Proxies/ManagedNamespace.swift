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

extension ManagedNamespace: CustomStringConvertible {
    /// The namespace as Python prints one, `Namespace(name="job", count=2)`: each stored property
    /// of the state read from the server (one call), with its label and its value as
    /// `String(reflecting:)` writes it (strings quoted). A state without stored properties (a
    /// plain number, say) prints as `Namespace(5)`. When the server cannot be reached, the text
    /// says so instead (`Namespace(<unavailable: ...>)`); ``text()`` throws then.
    public var description: String {
        do {
            return try text()
        } catch {
            return "Namespace(<unavailable: \(error)>)"
        }
    }

    /// The namespace's text, as ``description``, read from the server.
    ///
    /// - Returns: `Namespace(label=value, ...)`.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func text() throws -> String {
        Self.text(of: try get())
    }

    /// `Namespace(label=value, ...)` for `state`.
    internal static func text(of state: State) -> String {
        let mirror = Mirror(reflecting: state)
        guard !mirror.children.isEmpty, mirror.displayStyle == .struct || mirror.displayStyle == .class else {
            return "Namespace(\(String(reflecting: state)))"
        }
        let fields = mirror.children.map { child in
            "\(child.label ?? "_")=\(String(reflecting: child.value))"
        }
        return "Namespace(\(fields.joined(separator: ", ")))"
    }
}
