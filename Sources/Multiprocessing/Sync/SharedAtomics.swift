import CMultiprocessing

/// Lock-free operations on an integer in shared memory, for ``SharedValue`` and ``SharedArray``.
///
/// Integers of 1, 2, 4 and 8 bytes use the processor's atomic instructions; other widths (`Int128`)
/// return nil and the caller falls back to its lock.
internal enum SharedAtomics {
    @inline(__always)
    internal static func load<T: FixedWidthInteger>(_ p: UnsafeMutableRawPointer, as: T.Type) -> T? {
        switch MemoryLayout<T>.size {
        case 1: return T(truncatingIfNeeded: cmp_atomic_load8(p.assumingMemoryBound(to: UInt8.self)))
        case 2: return T(truncatingIfNeeded: cmp_atomic_load16(p.assumingMemoryBound(to: UInt16.self)))
        case 4: return T(truncatingIfNeeded: cmp_atomic_load32(p.assumingMemoryBound(to: UInt32.self)))
        case 8: return T(truncatingIfNeeded: cmp_atomic_load64(p.assumingMemoryBound(to: UInt64.self)))
        default: return nil
        }
    }

    @inline(__always)
    internal static func store<T: FixedWidthInteger>(_ p: UnsafeMutableRawPointer, _ value: T) -> Bool {
        switch MemoryLayout<T>.size {
        case 1: cmp_atomic_store8(p.assumingMemoryBound(to: UInt8.self), UInt8(truncatingIfNeeded: value))
        case 2: cmp_atomic_store16(p.assumingMemoryBound(to: UInt16.self), UInt16(truncatingIfNeeded: value))
        case 4: cmp_atomic_store32(p.assumingMemoryBound(to: UInt32.self), UInt32(truncatingIfNeeded: value))
        case 8: cmp_atomic_store64(p.assumingMemoryBound(to: UInt64.self), UInt64(truncatingIfNeeded: value))
        default: return false
        }
        return true
    }

    /// Compare-and-swap: nil when `T`'s width has no atomic instruction.
    @inline(__always)
    internal static func compareExchange<T: FixedWidthInteger>(_ p: UnsafeMutableRawPointer, expected: T, desired: T) -> (exchanged: Bool, original: T)? {
        switch MemoryLayout<T>.size {
        case 1:
            var e = UInt8(truncatingIfNeeded: expected)
            let ok = cmp_atomic_cas8(p.assumingMemoryBound(to: UInt8.self), &e, UInt8(truncatingIfNeeded: desired))
            return (ok, T(truncatingIfNeeded: e))
        case 2:
            var e = UInt16(truncatingIfNeeded: expected)
            let ok = cmp_atomic_cas16(p.assumingMemoryBound(to: UInt16.self), &e, UInt16(truncatingIfNeeded: desired))
            return (ok, T(truncatingIfNeeded: e))
        case 4:
            var e = UInt32(truncatingIfNeeded: expected)
            let ok = cmp_atomic_cas32(p.assumingMemoryBound(to: UInt32.self), &e, UInt32(truncatingIfNeeded: desired))
            return (ok, T(truncatingIfNeeded: e))
        case 8:
            var e = UInt64(truncatingIfNeeded: expected)
            let ok = cmp_atomic_cas64(p.assumingMemoryBound(to: UInt64.self), &e, UInt64(truncatingIfNeeded: desired))
            return (ok, T(truncatingIfNeeded: e))
        default:
            return nil
        }
    }

    /// Wrapping add; returns the new value, or nil when `T`'s width has no atomic instruction.
    @inline(__always)
    internal static func add<T: FixedWidthInteger>(_ p: UnsafeMutableRawPointer, _ delta: T) -> T? {
        if MemoryLayout<T>.size == 8 {
            let old = cmp_atomic_add64(p.assumingMemoryBound(to: UInt64.self), UInt64(truncatingIfNeeded: delta))
            return T(truncatingIfNeeded: old) &+ delta
        }
        if MemoryLayout<T>.size == 4 {
            let old = cmp_atomic_add32(p.assumingMemoryBound(to: UInt32.self), UInt32(truncatingIfNeeded: delta))
            return T(truncatingIfNeeded: old) &+ delta
        }
        guard var current = load(p, as: T.self) else { return nil }
        while true {
            guard let (ok, original) = compareExchange(p, expected: current, desired: current &+ delta) else { return nil }
            if ok { return current &+ delta }
            current = original
        }
    }

    /// Swaps in `value`; returns the previous value, or nil when `T`'s width has no atomic instruction.
    @inline(__always)
    internal static func exchange<T: FixedWidthInteger>(_ p: UnsafeMutableRawPointer, _ value: T) -> T? {
        guard var current = load(p, as: T.self) else { return nil }
        while true {
            guard let (ok, original) = compareExchange(p, expected: current, desired: value) else { return nil }
            if ok { return current }
            current = original
        }
    }
}
