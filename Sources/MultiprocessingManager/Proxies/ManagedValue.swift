import Multiprocessing

/// One value held by a manager's server: Python's `manager.Value(typecode, value)`, typed.
public struct ManagedValue<Wrapped: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// The current value.
    ///
    /// - Returns: the value.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func get() throws -> Wrapped {
        guard case .get(let value) = try reference.call(ValueRequest.get) else { throw unexpectedReply(to: ValueRequest.get) }
        return try ValueCoding.decode(Wrapped.self, value)
    }

    /// Replaces the value.
    ///
    /// - Parameter value: the new value.
    /// - Throws: as ``get()``.
    public func set(_ value: Wrapped) throws {
        let request = ValueRequest.set(value: try ValueCoding.encode(value))
        guard case .set = try reference.call(request) else { throw unexpectedReply(to: request) }
    }

    /// Replaces the value with `new` only if it is `expected`.
    ///
    /// - Parameters:
    ///   - expected: the value the caller last saw.
    ///   - new: the replacement.
    /// - Returns: whether it swapped, and the value now held.
    /// - Throws: as ``get()``.
    @discardableResult
    public func compareAndSwap(expected: Wrapped, new: Wrapped) throws -> (swapped: Bool, current: Wrapped) {
        let request = ValueRequest.compareAndSwap(expected: try ValueCoding.encode(expected), new: try ValueCoding.encode(new))
        guard case .compareAndSwap(let swapped, let current) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return (swapped, try ValueCoding.decode(Wrapped.self, current))
    }

    /// Applies `body` atomically (read, apply, compare-and-swap, retried on a race).
    ///
    /// - Parameter body: the change; it may run more than once.
    /// - Returns: the value stored.
    /// - Throws: what `body` throws, and as ``get()``.
    @discardableResult
    public func update(_ body: (inout Wrapped) throws -> Void) throws -> Wrapped {
        var current = try get()
        while true {
            var next = current
            try body(&next)
            let (swapped, now) = try compareAndSwap(expected: current, new: next)
            if swapped { return next }
            current = now
        }
    }
}

extension ManagedValue where Wrapped == Int {
    /// Adds `delta` atomically on the server.
    ///
    /// - Parameter delta: the amount.
    /// - Returns: the new value.
    /// - Throws: as ``get()``.
    @discardableResult
    public func increment(by delta: Int = 1) throws -> Int {
        let request = ValueRequest.increment(by: Int64(delta))
        guard case .increment(let sum) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return Int(sum)
    }
}

extension ManagedValue where Wrapped == Double {
    /// Adds `delta` atomically on the server.
    ///
    /// - Parameter delta: the amount.
    /// - Returns: the new value.
    /// - Throws: as ``get()``.
    @discardableResult
    public func increment(by delta: Double = 1) throws -> Double {
        let request = ValueRequest.incrementDouble(by: delta)
        guard case .incrementDouble(let sum) = try reference.call(request) else { throw unexpectedReply(to: request) }
        return sum
    }
}
