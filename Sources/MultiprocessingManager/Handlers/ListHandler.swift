import Multiprocessing

/// A list's contents: encoded elements.
internal final class ListState {
    internal var elements: [[UInt8]] = []
}

extension ManagerServer {
    internal func serve(_ request: ListRequest, _ object: ServerObject, _ state: ListState) throws -> ListReply {
        switch request {
        case .append(let element):
            return .append(count: try locked(object) { () -> Int in
                state.elements.append(element)
                return state.elements.count
            })
        case .extend(let elements):
            return .extend(count: try locked(object) { () -> Int in
                state.elements.append(contentsOf: elements)
                return state.elements.count
            })
        case .get(let index):
            return .get(element: try locked(object) { state.elements[try listIndex(index, state.elements.count)] })
        case .set(let index, let element):
            try locked(object) { state.elements[try listIndex(index, state.elements.count)] = element }
            return .set
        case .count:
            return .count(try locked(object) { state.elements.count })
        case .snapshot:
            return .snapshot(elements: try locked(object) { state.elements })
        case .remove(let index):
            return .remove(element: try locked(object) { state.elements.remove(at: try listIndex(index, state.elements.count)) })
        case .insert(let element, let index):
            try locked(object) {
                let count = state.elements.count
                let i = index < 0 ? max(0, count + Int(clamping: index)) : min(count, Int(clamping: index))
                state.elements.insert(element, at: i)
            }
            return .insert
        case .removeAll:
            try locked(object) { state.elements = [] }
            return .removeAll
        }
    }
}

/// `index` (negative counts from the end) as a position in a list of `count` elements.
private func listIndex(_ index: Int64, _ count: Int) throws -> Int {
    let i = index < 0 ? Int64(count) + index : index
    guard i >= 0, i < Int64(count) else {
        throw MultiprocessingError(.misuse, "Index \(index) is out of range for a managed list of \(count) elements.")
    }
    return Int(i)
}
