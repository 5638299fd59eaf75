import CMultiprocessing
import MultiprocessingSystem

/// A 32-bit word in memory that other threads or processes also use: sequentially consistent atomics
/// plus futex wait and wake.
///
/// Swift's `Atomic` must own its storage, and this memory belongs to a mapping that another process
/// also maps, so the word wraps a raw pointer and the shim's inline atomics.
internal struct SharedWord: @unchecked Sendable {
    internal let pointer: UnsafeMutablePointer<UInt32>

    @inline(__always) internal init(_ pointer: UnsafeMutablePointer<UInt32>) { self.pointer = pointer }
    @inline(__always) internal init(_ raw: UnsafeMutableRawPointer) {
        self.pointer = raw.assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always) internal func load() -> UInt32 { cmp_atomic_load32(pointer) }
    @inline(__always) internal func store(_ value: UInt32) { cmp_atomic_store32(pointer, value) }
    /// Adds and returns the previous value.
    @inline(__always) @discardableResult
    internal func add(_ value: UInt32) -> UInt32 { cmp_atomic_add32(pointer, value) }
    /// Subtracts and returns the previous value.
    @inline(__always) @discardableResult
    internal func subtract(_ value: UInt32) -> UInt32 { cmp_atomic_sub32(pointer, value) }
    @inline(__always) @discardableResult
    internal func or(_ value: UInt32) -> UInt32 { cmp_atomic_or32(pointer, value) }
    @inline(__always)
    internal func exchange(_ value: UInt32) -> UInt32 { cmp_atomic_exchange32(pointer, value) }
    /// Compare-and-swap; on failure `expected` receives the current value.
    @inline(__always)
    internal func compareExchange(_ expected: inout UInt32, _ desired: UInt32) -> Bool {
        cmp_atomic_cas32(pointer, &expected, desired)
    }

    /// Wakes up to `count` threads waiting on this word, in any process.
    @inline(__always)
    internal func wake(_ count: Int32 = 1, shared: Bool = true) {
        system_futexWake(pointer, count: count, shared: shared)
    }
    internal func wakeAll(shared: Bool = true) { wake(Int32.max, shared: shared) }
}

/// A 64-bit word in shared memory.
internal struct SharedWord64: @unchecked Sendable {
    internal let pointer: UnsafeMutablePointer<UInt64>
    @inline(__always) internal init(_ raw: UnsafeMutableRawPointer) {
        self.pointer = raw.assumingMemoryBound(to: UInt64.self)
    }
    @inline(__always) internal func load() -> UInt64 { cmp_atomic_load64(pointer) }
    @inline(__always) internal func store(_ value: UInt64) { cmp_atomic_store64(pointer, value) }
    @inline(__always)
    internal func compareExchange(_ expected: inout UInt64, _ desired: UInt64) -> Bool {
        cmp_atomic_cas64(pointer, &expected, desired)
    }
}
