import Multiprocessing

/// The thread that owns a manager lock, as the server sees it: the kernel thread id of the caller.
private func callerThread() -> UInt64 { UInt64(UInt32(bitPattern: ManagerPlatform.threadID())) }

/// A dictionary held by a manager's server: Python's `manager.dict()`, typed.
///
/// Every call travels to the server and runs there under one lock, so each is atomic; the
/// read-modify-write calls (`increment(_:by:)`, ``append(_:to:)``, ``setIfAbsent(_:_:)``,
/// ``compareAndSwap(_:expected:new:)``, ``update(_:_:)``) never lose an update between processes,
/// where Python's `d[k] += 1` does. Keys are compared by their encoded bytes: use keys whose
/// encoding is deterministic (strings, numbers, and structs and enums of them; not `Set` or
/// `Dictionary`). The proxy is `Sendable` and `Codable`: pass it to a child in its task.
public struct ManagedDictionary<Key: Codable & Sendable, Value: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// The value for `key`, or nil.
    ///
    /// - Parameter key: the key.
    /// - Returns: the value stored, or nil when there is none.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone;
    ///   `MultiprocessingError/Code/coding` when the stored value is not a `Value`.
    public func get(_ key: Key) throws -> Value? {
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dGet) { $0.blob(k) }
        guard try reply.bool() else { return nil }
        return try ValueCoding.decode(Value.self, try reply.blob())
    }

    /// Stores `value` under `key`.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value.
    /// - Throws: as ``get(_:)``.
    public func set(_ key: Key, _ value: Value) throws {
        let k = try ValueCoding.encode(key)
        let v = try ValueCoding.encode(value)
        _ = try reference.call(.dSet) {
            $0.blob(k)
            $0.blob(v)
        }
    }

    /// The value for `key`, or nil: `try counts["k"]`. Write with ``set(_:_:)``.
    ///
    /// - Parameter key: the key.
    public subscript(key: Key) -> Value? {
        get throws { try get(key) }
    }

    /// Removes the entry for `key`.
    ///
    /// - Parameter key: the key.
    /// - Returns: the value that was stored, or nil.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func removeValue(forKey key: Key) throws -> Value? {
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dDelete) { $0.blob(k) }
        guard try reply.bool() else { return nil }
        return try ValueCoding.decode(Value.self, try reply.blob())
    }

    /// Whether `key` has a value.
    ///
    /// - Parameter key: the key.
    /// - Returns: true when the dictionary holds the key.
    /// - Throws: as ``get(_:)``.
    public func contains(_ key: Key) throws -> Bool {
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dContains) { $0.blob(k) }
        return try reply.bool()
    }

    /// The number of entries.
    ///
    /// - Returns: the count.
    /// - Throws: as ``get(_:)``.
    public func count() throws -> Int {
        var reply = try reference.call(.dCount)
        return try reply.int()
    }

    /// A snapshot of every entry, taken atomically.
    ///
    /// - Returns: the dictionary's contents.
    /// - Throws: as ``get(_:)``.
    public func snapshot() throws -> [Key: Value] where Key: Hashable {
        var reply = try reference.call(.dItems)
        let n = try reply.int()
        var result: [Key: Value] = [:]
        for _ in 0..<n {
            let k = try ValueCoding.decode(Key.self, try reply.blob())
            result[k] = try ValueCoding.decode(Value.self, try reply.blob())
        }
        return result
    }

    /// Every entry as pairs, taken atomically (for keys that are not `Hashable`).
    ///
    /// - Returns: the entries in no particular order.
    /// - Throws: as ``get(_:)``.
    public func items() throws -> [(key: Key, value: Value)] {
        var reply = try reference.call(.dItems)
        let n = try reply.int()
        var result: [(key: Key, value: Value)] = []
        for _ in 0..<n {
            let k = try ValueCoding.decode(Key.self, try reply.blob())
            result.append((k, try ValueCoding.decode(Value.self, try reply.blob())))
        }
        return result
    }

    /// Removes every entry.
    ///
    /// - Throws: as ``get(_:)``.
    public func removeAll() throws {
        _ = try reference.call(.dClear)
    }

    /// Stores `value` only if `key` has none: Python's `setdefault`, atomically.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value to store when the key is absent.
    /// - Returns: whether it was stored, and the value the key now holds.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func setIfAbsent(_ key: Key, _ value: Value) throws -> (inserted: Bool, current: Value) {
        let k = try ValueCoding.encode(key)
        let v = try ValueCoding.encode(value)
        var reply = try reference.call(.dSetIfAbsent) {
            $0.blob(k)
            $0.blob(v)
        }
        let inserted = try reply.bool()
        return (inserted, try ValueCoding.decode(Value.self, try reply.blob()))
    }

    /// Replaces the value of `key` with `new` only if it is `expected` (nil: only if absent).
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - expected: the value the caller last saw, or nil for "no value".
    ///   - new: the replacement.
    /// - Returns: whether it swapped, and the value the key holds now.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func compareAndSwap(_ key: Key, expected: Value?, new: Value) throws -> (swapped: Bool, current: Value?) {
        let k = try ValueCoding.encode(key)
        let e = try expected.map { try ValueCoding.encode($0) }
        let n = try ValueCoding.encode(new)
        var reply = try reference.call(.dCompareAndSwap) {
            $0.blob(k)
            $0.bool(e != nil)
            $0.blob(e ?? [])
            $0.blob(n)
        }
        let swapped = try reply.bool()
        let present = try reply.bool()
        let current = try reply.blob()
        return (swapped, present ? try ValueCoding.decode(Value.self, current) : nil)
    }

    /// Applies `body` to the value of `key` atomically: an optimistic loop of read, apply,
    /// compare-and-swap that retries when another process changed the value in between.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - body: the change; it receives nil for an absent key, may run more than once, and
    ///     leaves the entry absent if it leaves nil.
    /// - Returns: the value stored.
    /// - Throws: what `body` throws, and as ``get(_:)``.
    @discardableResult
    public func update(_ key: Key, _ body: (inout Value?) throws -> Void) throws -> Value? {
        var current = try get(key)
        while true {
            var next = current
            try body(&next)
            guard let next else {
                // Delete only what `body` saw: another process's change in between makes it
                // run again on the new value.
                let (deleted, now) = try compareAndDelete(key, expected: current)
                if deleted { return nil }
                current = now
                continue
            }
            let (swapped, now) = try compareAndSwap(key, expected: current, new: next)
            if swapped { return next }
            current = now
        }
    }

    /// Removes the entry of `key` only if its value is `expected` (nil: only if absent, which
    /// removes nothing).
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - expected: the value the caller last saw, or nil for "no value".
    /// - Returns: whether the key is now absent because of this call's compare, and the value it
    ///   holds when the compare failed.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func compareAndDelete(_ key: Key, expected: Value?) throws -> (deleted: Bool, current: Value?) {
        let k = try ValueCoding.encode(key)
        let e = try expected.map { try ValueCoding.encode($0) }
        var reply = try reference.call(.dCompareAndDelete) {
            $0.blob(k)
            $0.bool(e != nil)
            $0.blob(e ?? [])
        }
        let deleted = try reply.bool()
        let present = try reply.bool()
        let current = try reply.blob()
        return (deleted, present ? try ValueCoding.decode(Value.self, current) : nil)
    }
}

extension ManagedDictionary where Value == Int {
    /// Adds `delta` to the integer under `key` (absent counts as 0), atomically on the server.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - delta: the amount to add.
    /// - Returns: the new value.
    /// - Throws: `MultiprocessingError/Code/misuse` on overflow; as ``get(_:)``.
    @discardableResult
    public func increment(_ key: Key, by delta: Int = 1) throws -> Int {
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dAddInt) {
            $0.blob(k)
            $0.signed(Int64(delta))
        }
        return Int(try reply.signed())
    }
}

extension ManagedDictionary where Value == Double {
    /// Adds `delta` to the number under `key` (absent counts as 0), atomically on the server.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - delta: the amount to add.
    /// - Returns: the new value.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func increment(_ key: Key, by delta: Double = 1) throws -> Double {
        let k = try ValueCoding.encode(key)
        var reply = try reference.call(.dAddDouble) {
            $0.blob(k)
            $0.double(delta)
        }
        return try reply.double()
    }
}

extension ManagedDictionary {
    /// Appends `element` to the list stored under `key` (absent starts an empty list), atomically
    /// on the server, without the list ever leaving it.
    ///
    /// - Parameters:
    ///   - element: the element.
    ///   - key: the key.
    /// - Returns: the list's new length.
    /// - Throws: `MultiprocessingError/Code/coding` when the stored value is not such a list.
    @discardableResult
    public func append<Element: Codable>(_ element: Element, to key: Key) throws -> Int where Value == [Element] {
        let k = try ValueCoding.encode(key)
        let single = try ValueCoding.encode([element])
        var reply = try reference.call(.dAppend) {
            $0.blob(k)
            $0.blob(single)
        }
        return try reply.int()
    }
}

/// A list held by a manager's server: Python's `manager.list()`, typed.
public struct ManagedList<Element: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Appends an element.
    ///
    /// - Parameter element: the element.
    /// - Returns: the new count.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    @discardableResult
    public func append(_ element: Element) throws -> Int {
        let e = try ValueCoding.encode(element)
        var reply = try reference.call(.lAppend) { $0.blob(e) }
        return try reply.int()
    }

    /// Appends several elements at once.
    ///
    /// - Parameter elements: the elements.
    /// - Returns: the new count.
    /// - Throws: as ``append(_:)``.
    @discardableResult
    public func append(contentsOf elements: [Element]) throws -> Int {
        let encoded = try elements.map { try ValueCoding.encode($0) }
        var reply = try reference.call(.lExtend) { writer in
            writer.varint(UInt64(encoded.count))
            for e in encoded { writer.blob(e) }
        }
        return try reply.int()
    }

    /// The element at `index` (negative counts from the end).
    ///
    /// - Parameter index: the position.
    /// - Returns: the element.
    /// - Throws: `MultiprocessingError/Code/misuse` for an index out of range; as ``append(_:)``.
    public func get(_ index: Int) throws -> Element {
        var reply = try reference.call(.lGet) { $0.signed(Int64(index)) }
        return try ValueCoding.decode(Element.self, try reply.blob())
    }

    /// Replaces the element at `index`.
    ///
    /// - Parameters:
    ///   - index: the position (negative counts from the end).
    ///   - element: the new element.
    /// - Throws: as ``get(_:)``.
    public func set(_ index: Int, _ element: Element) throws {
        let e = try ValueCoding.encode(element)
        _ = try reference.call(.lSet) {
            $0.signed(Int64(index))
            $0.blob(e)
        }
    }

    /// Inserts an element before `index` (clamped to the list, as Python's `insert`).
    ///
    /// - Parameters:
    ///   - element: the element.
    ///   - index: the position.
    /// - Throws: as ``append(_:)``.
    public func insert(_ element: Element, at index: Int) throws {
        let e = try ValueCoding.encode(element)
        _ = try reference.call(.lInsert) {
            $0.signed(Int64(index))
            $0.blob(e)
        }
    }

    /// Removes and returns the element at `index` (the last by default): Python's `pop`.
    ///
    /// - Parameter index: the position (negative counts from the end).
    /// - Returns: the element removed.
    /// - Throws: as ``get(_:)``.
    @discardableResult
    public func remove(at index: Int = -1) throws -> Element {
        var reply = try reference.call(.lRemoveAt) { $0.signed(Int64(index)) }
        return try ValueCoding.decode(Element.self, try reply.blob())
    }

    /// The number of elements.
    ///
    /// - Returns: the count.
    /// - Throws: as ``append(_:)``.
    public func count() throws -> Int {
        var reply = try reference.call(.lCount)
        return try reply.int()
    }

    /// Every element, taken atomically.
    ///
    /// - Returns: the list's contents.
    /// - Throws: as ``append(_:)``.
    public func snapshot() throws -> [Element] {
        var reply = try reference.call(.lSnapshot)
        let n = try reply.int()
        var result: [Element] = []
        result.reserveCapacity(min(n, 1 << 16))
        for _ in 0..<n { result.append(try ValueCoding.decode(Element.self, try reply.blob())) }
        return result
    }

    /// Removes every element.
    ///
    /// - Throws: as ``append(_:)``.
    public func removeAll() throws {
        _ = try reference.call(.lClear)
    }
}

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

/// A FIFO queue held by a manager's server: Python's `manager.Queue(maxsize)`, typed.
public struct ManagedQueue<Element: Codable & Sendable>: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Adds an item, waiting for room in a bounded queue.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever, `.zero` does not wait.
    /// - Throws: `MultiprocessingError/Code/full` when no room came in time;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        try put(item, timeout: timeout, interrupt: nil)
    }

    /// Adds an item without blocking the cooperative pool; see ``put(_:timeout:)``.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: how long to wait for room; nil waits for ever.
    /// - Throws: as ``put(_:timeout:)``, and `MultiprocessingError/Code/cancelled`.
    public func put(_ item: Element, timeout: Duration? = nil) async throws {
        try await managerRunBlocking { interrupt in try self.put(item, timeout: timeout, interrupt: interrupt) }
    }

    private func put(_ item: Element, timeout: Duration?, interrupt: CallInterrupt?) throws {
        let e = try ValueCoding.encode(item)
        _ = try reference.call(.qPut, interrupt: interrupt) {
            $0.blob(e)
            try $0.timeout(timeout)
        }
    }

    /// Removes and returns the oldest item, waiting for one.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever, `.zero` does not wait.
    /// - Returns: the item.
    /// - Throws: `MultiprocessingError/Code/empty` when none came in time;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func get(timeout: Duration? = nil) throws -> Element {
        try get(timeout: timeout, interrupt: nil)
    }

    /// Removes the oldest item without blocking the cooperative pool; see ``get(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the item.
    /// - Throws: as ``get(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    public func get(timeout: Duration? = nil) async throws -> Element {
        try await managerRunBlocking { interrupt in try self.get(timeout: timeout, interrupt: interrupt) }
    }

    private func get(timeout: Duration?, interrupt: CallInterrupt?) throws -> Element {
        var reply = try reference.call(.qGet, interrupt: interrupt) { try $0.timeout(timeout) }
        return try ValueCoding.decode(Element.self, try reply.blob())
    }

    /// The number of items waiting.
    ///
    /// - Returns: the count.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func count() throws -> Int {
        var reply = try reference.call(.qCount)
        return try reply.int()
    }
}

/// A lock held by a manager's server: Python's `manager.Lock()` (``ManagedKind/lock``) or
/// `manager.RLock()` (``ManagedKind/rLock``, recursive: the owning thread may acquire it again).
///
/// The owner is the calling thread of the calling process. When a process dies holding it, the
/// server frees it, and the next `acquire(timeout:)` throws `MultiprocessingError/Code/ownerDied`
/// **with the lock held**, so that the caller repairs the shared data and then releases it.
public struct ManagedLock: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Whether this is a recursive lock.
    public var isRecursive: Bool { reference.kind == .rLock }

    /// Takes the lock, waiting for it.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut`; `MultiprocessingError/Code/ownerDied`
    ///   (lock held); `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func acquire(timeout: Duration? = nil) throws {
        try acquire(timeout: timeout, thread: callerThread(), interrupt: nil)
    }

    /// Takes the lock without blocking the cooperative pool; see ``acquire(timeout:)``. The owner
    /// is the thread that called, so release it from the same task before it suspends elsewhere,
    /// or use a non-recursive lock (which any thread may release).
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as ``acquire(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    public func acquire(timeout: Duration? = nil) async throws {
        let thread = callerThread()
        try await managerRunBlocking { interrupt in try self.acquire(timeout: timeout, thread: thread, interrupt: interrupt) }
    }

    /// Takes the lock if it is free now.
    ///
    /// - Returns: whether the lock was taken.
    /// - Throws: `MultiprocessingError/Code/ownerDied` (lock held); as `acquire(timeout:)`.
    public func tryAcquire() throws -> Bool {
        do {
            try acquire(timeout: .zero)
            return true
        } catch let error as MultiprocessingError where error.code == .timedOut {
            return false
        }
    }

    internal func acquire(timeout: Duration?, thread: UInt64, interrupt: CallInterrupt?) throws {
        var reply = try reference.call(.acquire, interrupt: interrupt) {
            $0.varint(thread)
            try $0.timeout(timeout)
        }
        switch try reply.byte() {
        case 0: return
        case 2:
            throw MultiprocessingError(.ownerDied, "The manager lock's previous owner died while holding it. The lock is now held by the caller: repair the shared data, then release it.")
        default:
            throw MultiprocessingError(.timedOut, "Acquiring the manager lock timed out\(timeout.map { " after \($0)" } ?? "").")
        }
    }

    /// Releases the lock.
    ///
    /// - Throws: `MultiprocessingError/Code/misuse` when it is not held (or, for a recursive
    ///   lock, held by another thread); `MultiprocessingError/Code/endOfStream`.
    public func release() throws {
        _ = try reference.call(.release) { $0.varint(callerThread()) }
    }

    /// Whether some thread holds the lock now.
    ///
    /// - Returns: true when held.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func isLocked() throws -> Bool {
        var reply = try reference.call(.isLocked)
        return try reply.bool()
    }

    /// Runs `body` holding the lock. When the previous owner died, the lock is released and
    /// `MultiprocessingError/Code/ownerDied` is thrown without running `body`.
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for the lock.
    ///   - body: the critical section.
    /// - Returns: what `body` returns.
    /// - Throws: as `acquire(timeout:)`, and what `body` throws.
    public func withLock<R>(timeout: Duration? = nil, _ body: () throws -> R) throws -> R {
        do {
            try acquire(timeout: timeout)
        } catch let error as MultiprocessingError where error.code == .ownerDied {
            try? release()
            throw error
        }
        defer { try? release() }
        return try body()
    }
}

/// A counting semaphore held by a manager's server: Python's `manager.Semaphore(value)`.
public struct ManagedSemaphore: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Takes one permit, waiting for one.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `MultiprocessingError/Code/timedOut`; `MultiprocessingError/Code/endOfStream`.
    public func acquire(timeout: Duration? = nil) throws {
        try acquire(timeout: timeout, interrupt: nil)
    }

    /// Takes one permit without blocking the cooperative pool; see ``acquire(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as ``acquire(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    public func acquire(timeout: Duration? = nil) async throws {
        try await managerRunBlocking { interrupt in try self.acquire(timeout: timeout, interrupt: interrupt) }
    }

    private func acquire(timeout: Duration?, interrupt: CallInterrupt?) throws {
        var reply = try reference.call(.semAcquire, interrupt: interrupt) { try $0.timeout(timeout) }
        guard try reply.bool() else {
            throw MultiprocessingError(.timedOut, "Acquiring the manager semaphore timed out\(timeout.map { " after \($0)" } ?? "").")
        }
    }

    /// Returns `count` permits.
    ///
    /// - Parameter count: how many.
    /// - Throws: `MultiprocessingError/Code/misuse` for a negative `count`, or one that would
    ///   overflow the count; `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func release(_ count: Int = 1) throws {
        guard count >= 0 else {
            throw MultiprocessingError(.misuse, "ManagedSemaphore.release: count must not be negative (it was \(count)).")
        }
        _ = try reference.call(.semRelease) { $0.varint(UInt64(count)) }
    }

    /// The permits available now.
    ///
    /// - Returns: the count.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func value() throws -> Int {
        var reply = try reference.call(.semValue)
        return try reply.int()
    }
}

/// An event flag held by a manager's server: Python's `manager.Event()`.
public struct ManagedEvent: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Sets the flag and wakes every waiter.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func set() throws { _ = try reference.call(.evSet) }

    /// Clears the flag.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func clear() throws { _ = try reference.call(.evClear) }

    /// Whether the flag is set.
    ///
    /// - Returns: the flag.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func isSet() throws -> Bool {
        var reply = try reference.call(.evIsSet)
        return try reply.bool()
    }

    /// Waits until the flag is set.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: true when the flag is set, false when the timeout passed first (as Python).
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        try wait(timeout: timeout, interrupt: nil)
    }

    /// Waits without blocking the cooperative pool; see ``wait(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: true when the flag is set, false on timeout.
    /// - Throws: as ``wait(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Bool {
        try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, interrupt: CallInterrupt?) throws -> Bool {
        var reply = try reference.call(.evWait, interrupt: interrupt) { try $0.timeout(timeout) }
        return try reply.bool()
    }
}

/// A condition variable held by a manager's server, with its own recursive lock: Python's
/// `manager.Condition()`. Hold the lock (``acquire(timeout:)``) around `wait(timeout:)` and
/// ``notify(_:)``; the owner is the calling thread.
public struct ManagedCondition: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// The condition's lock, as a recursive ``ManagedLock``.
    public var lock: ManagedLock { ManagedLock(reference: reference) }

    /// Takes the condition's lock; see `ManagedLock/acquire(timeout:)`.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: as `ManagedLock/acquire(timeout:)`.
    public func acquire(timeout: Duration? = nil) throws { try lock.acquire(timeout: timeout) }

    /// Releases the condition's lock.
    ///
    /// - Throws: as ``ManagedLock/release()``.
    public func release() throws { try lock.release() }

    /// Releases the lock, waits for a notification, and takes the lock back.
    ///
    /// - Parameter timeout: how long to wait for the notification; nil waits for ever.
    /// - Returns: false when the timeout passed first.
    /// - Throws: `MultiprocessingError/Code/misuse` when the thread does not hold the lock;
    ///   `MultiprocessingError/Code/endOfStream` when the server is gone.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        try wait(timeout: timeout, thread: callerThread(), interrupt: nil)
    }

    /// Waits for a notification without blocking the cooperative pool; see ``wait(timeout:)``.
    /// The lock's owner is the thread that calls, so acquire, wait and release from the same task
    /// without suspending elsewhere in between.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: false when the timeout passed first.
    /// - Throws: as ``wait(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Bool {
        let thread = callerThread()
        return try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, thread: thread, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, thread: UInt64, interrupt: CallInterrupt?) throws -> Bool {
        var reply = try reference.call(.cWait, interrupt: interrupt) {
            $0.varint(thread)
            try $0.timeout(timeout)
        }
        return try reply.bool()
    }

    /// Waits until `predicate` holds, re-checking after each notification.
    ///
    /// - Parameters:
    ///   - timeout: the total time to wait; nil waits for ever.
    ///   - predicate: the condition, evaluated with the lock held.
    /// - Returns: the predicate's last value.
    /// - Throws: as `wait(timeout:)`, and what `predicate` throws.
    @discardableResult
    public func wait(for predicate: () throws -> Bool, timeout: Duration? = nil) throws -> Bool {
        if let timeout, timeout < .zero {
            throw MultiprocessingError(.misuse, "ManagedCondition.wait(for:): the timeout must not be negative (it was \(timeout)).")
        }
        let clock = ContinuousClock()
        // Capped at 292 years, so that `now +` cannot overflow Duration's 128 bits.
        let end = timeout.map { clock.now + min($0, .nanoseconds(Int64.max)) }
        while try !predicate() {
            var left: Duration?
            if let end {
                left = end - clock.now
                if let l = left, l <= .zero { return try predicate() }
            }
            try wait(timeout: left)
        }
        return true
    }

    /// Wakes up to `count` waiters.
    ///
    /// - Parameter count: how many.
    /// - Throws: `MultiprocessingError/Code/misuse` when the thread does not hold the lock, or
    ///   `count` is negative (as the module's own `Condition.notify`).
    public func notify(_ count: Int = 1) throws {
        guard count >= 0 else {
            throw MultiprocessingError(.misuse, "ManagedCondition.notify: the number of waiters to wake must not be negative (it was \(count)).")
        }
        _ = try reference.call(.cNotify) {
            $0.varint(callerThread())
            $0.varint(UInt64(count))
        }
    }

    /// Wakes every waiter.
    ///
    /// - Throws: as ``notify(_:)``.
    public func notifyAll() throws { try notify(Int(Int32.max)) }
}

/// A barrier held by a manager's server: Python's `manager.Barrier(parties)`.
public struct ManagedBarrier: Sendable, Codable, Hashable {
    /// The server object behind this proxy.
    public let reference: ObjectReference

    internal init(reference: ObjectReference) { self.reference = reference }

    /// Waits until `parties` callers have arrived.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: this caller's arrival index, 0 ..< parties.
    /// - Throws: `MultiprocessingError/Code/broken` when the barrier is or becomes broken
    ///   (aborted, reset, or another waiter timed out); `MultiprocessingError/Code/timedOut`
    ///   (and the barrier breaks); `MultiprocessingError/Code/endOfStream`.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Int {
        try wait(timeout: timeout, interrupt: nil)
    }

    /// Waits without blocking the cooperative pool; see ``wait(timeout:)``.
    ///
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Returns: the arrival index.
    /// - Throws: as ``wait(timeout:)``, and `MultiprocessingError/Code/cancelled`.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Int {
        try await managerRunBlocking { interrupt in try self.wait(timeout: timeout, interrupt: interrupt) }
    }

    private func wait(timeout: Duration?, interrupt: CallInterrupt?) throws -> Int {
        var reply = try reference.call(.bWait, interrupt: interrupt) { try $0.timeout(timeout) }
        return try reply.int()
    }

    /// Returns the barrier to its initial state; callers waiting now get
    /// `MultiprocessingError/Code/broken`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func reset() throws { _ = try reference.call(.bReset) }

    /// Breaks the barrier: every waiter, now and later, gets `MultiprocessingError/Code/broken`.
    ///
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func abort() throws { _ = try reference.call(.bAbort) }

    /// The parties, the callers waiting now, and whether the barrier is broken.
    ///
    /// - Returns: the barrier's state.
    /// - Throws: `MultiprocessingError/Code/endOfStream` when the server is gone.
    public func state() throws -> (parties: Int, waiting: Int, broken: Bool) {
        var reply = try reference.call(.bInfo)
        return (try reply.int(), try reply.int(), try reply.bool())
    }
}
