import Multiprocessing

/// A fixed-length array's elements (``ManagedArray``): encoded, and never more or fewer than
/// it was made with.
internal final class ArrayState {
    internal var elements: [[UInt8]]

    internal init(_ elements: [[UInt8]]) { self.elements = elements }
}

extension ManagerServer {
    internal func serve(_ request: ArrayRequest, _ object: ServerObject, _ state: ArrayState) throws -> ArrayReply {
        switch request {
        case .get(let index):
            return .get(element: try locked(object) { state.elements[try arrayIndex(index, state.elements.count)] })
        case .set(let index, let element):
            try locked(object) { state.elements[try arrayIndex(index, state.elements.count)] = element }
            return .set
        case .count:
            return .count(try locked(object) { state.elements.count })
        case .snapshot:
            return .snapshot(elements: try locked(object) { state.elements })
        case .setSlice(let start, let elements):
            try locked(object) {
                let count = state.elements.count
                guard start >= 0, start <= Int64(count), Int64(elements.count) <= Int64(count) - start else {
                    throw MultiprocessingError(.misuse, "ManagedArray.set(_:at:): \(elements.count) elements from index \(start) do not fit in an array of \(count) (its length cannot change).")
                }
                let from = Int(start)
                state.elements.replaceSubrange(from..<(from + elements.count), with: elements)
            }
            return .setSlice
        case .increment(let index, let delta):
            return .increment(try locked(object) { () -> Int64 in
                let i = try arrayIndex(index, state.elements.count)
                let (sum, overflow) = try wireStoredInteger(state.elements[i]).addingReportingOverflow(delta)
                guard !overflow else { throw MultiprocessingError(.misuse, "increment: the result overflows a 64-bit integer.") }
                var bytes = ByteWriterRaw()
                bytes.signed(sum)
                state.elements[i] = bytes.bytes
                return sum
            })
        case .incrementDouble(let index, let delta):
            return .incrementDouble(try locked(object) { () -> Double in
                let i = try arrayIndex(index, state.elements.count)
                let sum = try wireStoredDouble(state.elements[i]) + delta
                state.elements[i] = wireDoubleBytes(sum)
                return sum
            })
        }
    }
}

/// `index` (negative counts from the end) as a position in an array of `count` elements.
private func arrayIndex(_ index: Int64, _ count: Int) throws -> Int {
    let i = index < 0 ? Int64(count) + index : index
    guard i >= 0, i < Int64(count) else {
        throw MultiprocessingError(.misuse, "Index \(index) is out of range for a managed array of \(count) elements.")
    }
    return Int(i)
}
