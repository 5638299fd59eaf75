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
        var reply = try reference.call(.vGet)
        return try ValueCoding.decode(Wrapped.self, try reply.blob())
    }

    /// Replaces the value.
    ///
    /// - Parameter value: the new value.
    /// - Throws: as ``get()``.
    public func set(_ value: Wrapped) throws {
        let v = try ValueCoding.encode(value)
        _ = try reference.call(.vSet) { $0.blob(v) }
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
        let e = try ValueCoding.encode(expected)
        let n = try ValueCoding.encode(new)
        var reply = try reference.call(.vCompareAndSwap) {
            $0.blob(e)
            $0.blob(n)
        }
        let swapped = try reply.bool()
        return (swapped, try ValueCoding.decode(Wrapped.self, try reply.blob()))
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
        var reply = try reference.call(.vAddInt) { $0.signed(Int64(delta)) }
        return Int(try reply.signed())
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
        var reply = try reference.call(.vAddDouble) { $0.double(delta) }
        return try reply.double()
    }
}
