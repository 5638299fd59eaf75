/// The elements of a shared array, for what ``SharedArray`` and ``RawSharedArray`` share: Python's
/// slices (`a[i:j]`, `a[i:j] = values`) and the text view of a byte array (`Array('c')`'s `.value`).
/// The caller holds whatever lock applies; nothing here waits.
internal struct SharedElements<T: BitwiseCopyable> {
    internal let start: UnsafeMutablePointer<T>
    internal let count: Int

    @inline(__always)
    internal init(_ start: UnsafeMutablePointer<T>, count: Int) {
        self.start = start
        self.count = count
    }

    internal var buffer: UnsafeMutableBufferPointer<T> { UnsafeMutableBufferPointer(start: start, count: count) }

    /// `bounds` as a range of this array's indices, or `.misuse` naming what is wrong with it. A
    /// negative index is refused, not counted from the end as in Python.
    internal static func checked(_ bounds: some RangeExpression<Int>, count: Int,
                                 _ operation: StaticString) throws(MultiprocessingError) -> Range<Int> {
        // `i...` runs to the end of this array. Otherwise Int.max is never an index here, and
        // `relative(to:)` of a closed range ending there would overflow.
        let open = bounds is PartialRangeFrom<Int>
        guard open || !bounds.contains(Int.max) else {
            throw .misuse("\(operation): the range reaches index \(Int.max), past the array's \(count) elements (0..<\(count)).")
        }
        let wide = bounds.relative(to: 0..<Int.max)
        let lower = wide.lowerBound
        let upper = open ? max(lower, count) : wide.upperBound
        if lower < 0 {
            throw .misuse("\(operation): the range \(lower)..<\(upper) starts at a negative index. Indices run from 0 to count - 1 (0..<\(count)); Python's a[-k] is a[a.count - k] here.")
        }
        if upper > count {
            throw .misuse("\(operation): the range \(lower)..<\(upper) reaches past the array's \(count) elements (0..<\(count)).")
        }
        return lower..<upper
    }

    /// A copy of `range` (checked by the caller).
    internal func copy(_ range: Range<Int>) -> [T] {
        Array(UnsafeBufferPointer(start: start + range.lowerBound, count: range.count))
    }

    /// Checks that `values` fits `range` exactly, before anything is written.
    internal static func checkReplacement(count valuesCount: Int, _ range: Range<Int>,
                                          _ operation: StaticString) throws(MultiprocessingError) {
        guard valuesCount == range.count else {
            throw .misuse("\(operation): \(valuesCount) values cannot replace the \(range.count) elements of \(range). A shared array's size is fixed when it is made, so a slice and its new values must have the same count (Python raises ValueError).")
        }
    }

    /// Writes `values` over `range`; their counts were checked with ``checkReplacement(count:_:_:)``.
    internal func replace(_ range: Range<Int>, with values: some Collection<T>) {
        let written: Void? = values.withContiguousStorageIfAvailable { source in
            if let base = source.baseAddress, source.count > 0 {
                (start + range.lowerBound).update(from: base, count: source.count)
            }
        }
        if written == nil {
            var index = range.lowerBound
            for value in values {
                start[index] = value
                index += 1
            }
        }
    }
}

extension SharedElements where T == UInt8 {
    /// The bytes before the first NUL (all of them when there is none), as UTF-8 text.
    internal var string: String {
        let end = UnsafeBufferPointer(buffer).firstIndex(of: 0) ?? count
        return String(decoding: UnsafeBufferPointer(start: start, count: end), as: UTF8.self)
    }

    /// Python's `a.value = b"..."`: the text's UTF-8 bytes, then a NUL when there is room for one.
    internal func checkString(_ utf8Count: Int, _ operation: StaticString) throws(MultiprocessingError) {
        guard utf8Count <= count else {
            throw .misuse("\(operation): the string's \(utf8Count) UTF-8 bytes do not fit in this array of \(count) bytes (Python raises ValueError: byte string too long).")
        }
    }

    internal func storeString(_ bytes: UnsafeBufferPointer<UInt8>) {
        if let base = bytes.baseAddress, bytes.count > 0 {
            start.update(from: base, count: bytes.count)
        }
        if bytes.count < count { start[bytes.count] = 0 }
    }
}
