import Multiprocessing

/// A value's contents (``ManagedValue`` and ``ManagedNamespace``): one encoded value.
internal final class ValueState {
    internal var value: [UInt8]

    internal init(_ value: [UInt8]) { self.value = value }
}

extension ManagerServer {
    internal func serve(_ request: ValueRequest, _ object: ServerObject, _ state: ValueState) throws -> ValueReply {
        switch request {
        case .get:
            return .get(value: try locked(object) { state.value })
        case .set(let value):
            try locked(object) { state.value = value }
            return .set
        case .compareAndSwap(let expected, let new):
            let (swapped, current) = try locked(object) { () -> (Bool, [UInt8]) in
                guard state.value == expected else { return (false, state.value) }
                state.value = new
                return (true, new)
            }
            return .compareAndSwap(swapped: swapped, current: current)
        case .increment(let delta):
            return .increment(try locked(object) { () -> Int64 in
                let (sum, overflow) = try wireStoredInteger(state.value).addingReportingOverflow(delta)
                guard !overflow else { throw MultiprocessingError(.misuse, "increment: the result overflows a 64-bit integer.") }
                var bytes = ByteWriterRaw()
                bytes.signed(sum)
                state.value = bytes.bytes
                return sum
            })
        case .incrementDouble(let delta):
            return .incrementDouble(try locked(object) { () -> Double in
                let sum = try wireStoredDouble(state.value) + delta
                state.value = wireDoubleBytes(sum)
                return sum
            })
        }
    }
}
