import Multiprocessing

/// A list's contents: encoded elements.
internal final class ListState {
    /// Every change bumps ``version`` (the observer runs after in-place changes too), so that a
    /// client's read-change-replace (sort, update) replaces only what it read.
    internal var elements: [[UInt8]] = [] {
        didSet { version &+= 1 }
    }
    internal private(set) var version: UInt64 = 0
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
        case .countOf(let element):
            return .countOf(try locked(object) { state.elements.reduce(0) { $1 == element ? $0 + 1 : $0 } })
        case .indexOf(let element, let start, let end):
            return .indexOf(try locked(object) { () -> Int? in
                let count = state.elements.count
                let from = sliceBound(start, count)
                let to = end.map { sliceBound($0, count) } ?? count
                guard from < to else { return nil }
                return state.elements[from..<to].firstIndex(of: element)
            })
        case .reverse:
            try locked(object) { state.elements.reverse() }
            return .reverse
        case .versionedSnapshot:
            return try locked(object) { .versionedSnapshot(version: state.version, elements: state.elements) }
        case .replace(let version, let elements):
            return try locked(object) { () -> ListReply in
                guard state.version == version else { return .replace(replaced: false, version: state.version) }
                state.elements = elements
                return .replace(replaced: true, version: state.version)
            }
        }
    }
}

/// A slice bound as Python reads one: negative counts from the end, then clamped to 0...count.
private func sliceBound(_ bound: Int64, _ count: Int) -> Int {
    let i = bound < 0 ? Int64(count) + bound : bound
    return Int(min(Int64(count), max(0, i)))
}

/// `index` (negative counts from the end) as a position in a list of `count` elements.
private func listIndex(_ index: Int64, _ count: Int) throws -> Int {
    let i = index < 0 ? Int64(count) + index : index
    guard i >= 0, i < Int64(count) else {
        throw MultiprocessingError(.misuse, "Index \(index) is out of range for a managed list of \(count) elements.")
    }
    return Int(i)
}
