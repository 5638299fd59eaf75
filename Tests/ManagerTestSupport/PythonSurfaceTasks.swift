// The child halves of the manager tests of issue 18 (the rest of Python's manager surface):
// Tests/ManagerTests/ManagerPythonSurfaceTests.swift.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing
public import MultiprocessingManager

/// Takes `count` items from a joinable queue, records each in `seen` and marks it done; then
/// calls `taskDone()` once too often and returns what that threw.
public struct JoinableConsumer: ProcessTask {
    public var queue: ManagedJoinableQueue<String>
    public var seen: ManagedList<String>
    public var count: Int
    public init(queue: ManagedJoinableQueue<String>, seen: ManagedList<String>, count: Int) {
        self.queue = queue
        self.seen = seen
        self.count = count
    }
    public func run() throws -> String {
        for _ in 0..<count {
            let item = try queue.get(timeout: .seconds(60))
            try seen.append(item)
            try queue.taskDone()
        }
        return shapeOutcome { try queue.taskDone() }
    }
}

/// Reads a queue's state from another process: what `isEmpty`, `isFull`, `count` and the
/// non-blocking forms say there.
public struct QueueStateReader: ProcessTask {
    public var queue: ManagedQueue<Int>
    public init(queue: ManagedQueue<Int>) { self.queue = queue }
    public func run() throws -> String {
        let state = "empty \(try queue.isEmpty) full \(try queue.isFull) count \(try queue.count)"
        let put = shapeOutcome { try queue.putNowait(99) }
        let timedPut = shapeOutcome { try queue.put(98, timeout: .milliseconds(20)) }
        var got: [Int] = []
        while let item = try? queue.getNowait() { got.append(item) }
        let get = shapeOutcome { _ = try queue.getNowait() }
        let timedGet = shapeOutcome { _ = try queue.get(timeout: .milliseconds(20)) }
        return "\(state); putNowait \(put), put \(timedPut); got \(got); getNowait \(get), get \(timedGet); empty \(try queue.isEmpty)"
    }
}

/// Uses a bounded semaphore from another process: takes its permits, tries once more, gives them
/// back, and releases once too often.
public struct BoundedSemaphoreUser: ProcessTask {
    public var semaphore: ManagedBoundedSemaphore
    public init(semaphore: ManagedBoundedSemaphore) { self.semaphore = semaphore }
    public func run() throws -> String {
        try semaphore.acquire(timeout: .seconds(60))
        let second = try semaphore.tryAcquire()
        let third = try semaphore.tryAcquire()
        let emptyValue = try semaphore.value
        try semaphore.release(2)
        let over = shapeOutcome { try semaphore.release() }
        return "bound \(try semaphore.bound) try \(second) \(third) value \(emptyValue) -> \(try semaphore.value) over \(over)"
    }
}

/// Reports whether `tryAcquire()` got a permit of a semaphore in this process, without waiting.
public struct TryAcquirer<S: SemaphoreProtocol & Codable>: ProcessTask {
    public var semaphore: S
    public init(semaphore: S) { self.semaphore = semaphore }
    public func run() throws -> Bool { try semaphore.tryAcquire() }
}

/// A manager initializer that appends its process id to the file at `path`, one line per run.
public struct RecordingInitializer: ProcessTask {
    public var path: String
    public init(path: String) { self.path = path }
    public func run() throws {
        guard let file = fopen(path, "a") else { throw InitializerRefusal(reason: "cannot open \(path)") }
        fputs("\(getpid())\n", file)
        fclose(file)
    }
}

/// What ``FailingInitializer`` throws.
public struct InitializerRefusal: Error, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "the initializer refused: \(reason)" }
}

/// A manager initializer that throws.
public struct FailingInitializer: ProcessTask {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public func run() throws { throw InitializerRefusal(reason: reason) }
}

/// Changes a namespace in another process and returns its text as that process prints it.
public struct NamespacePrinter: ProcessTask {
    public var namespace: ManagedNamespace<Settings>
    public init(namespace: ManagedNamespace<Settings>) { self.namespace = namespace }
    public func run() throws -> String {
        try namespace.update {
            $0.count += 1
            $0.tags.append("child")
        }
        return "\(namespace)"
    }
}

/// Uses a list's Python-like calls from another process and reports what it saw.
public struct ListSurfaceUser: ProcessTask {
    public var list: ManagedList<Int>
    public init(list: ManagedList<Int>) { self.list = list }
    public func run() throws -> String {
        let found = "count \(try list.count(of: 3)) index \(String(describing: try list.index(of: 3))) "
            + "from1 \(String(describing: try list.index(of: 3, from: 1))) last \(String(describing: try list.index(of: 3, from: -1))) "
            + "before \(String(describing: try list.index(of: 3, from: 1, to: 3))) none \(String(describing: try list.index(of: 9))) "
            + "in \(try list.contains(2)) \(try list.contains(9)) first \(try list[0]) end \(try list[-1])"
        try list.append(contentsOf: stride(from: 5, to: 3, by: -1))
        try list.reverse()
        let reversed = try list.snapshot()
        try list.sort()
        let sorted = try list.snapshot()
        try list.sort(by: >)
        return "\(found); reversed \(reversed) sorted \(sorted) descending \(try list.snapshot())"
    }
}

/// Appends `values` to a list one by one (racing a ``ListSorter``).
public struct ListAppender: ProcessTask {
    public var list: ManagedList<Int>
    public var values: [Int]
    public init(list: ManagedList<Int>, values: [Int]) {
        self.list = list
        self.values = values
    }
    public func run() throws {
        for value in values { try list.append(value) }
    }
}

/// Sorts a list `times` times (racing a ``ListAppender``).
public struct ListSorter: ProcessTask {
    public var list: ManagedList<Int>
    public var times: Int
    public init(list: ManagedList<Int>, times: Int) {
        self.list = list
        self.times = times
    }
    public func run() throws {
        for i in 0..<times { try list.sort(by: i % 2 == 0 ? (<) : (>)) }
    }
}

/// Uses a dictionary's Python-like calls from another process: changes the order of its keys,
/// updates from pairs, and pops the last entry.
public struct DictionarySurfaceUser: ProcessTask {
    public var dictionary: ManagedDictionary<String, Int>
    public init(dictionary: ManagedDictionary<String, Int>) { self.dictionary = dictionary }
    public func run() throws -> String {
        try dictionary.set("d", 4)
        try dictionary.set("a", 10)          // keeps its place
        try dictionary.removeValue(forKey: "b")
        try dictionary.set("b", 20)          // moves to the end
        let order = try dictionary.keys()
        try dictionary.update(contentsOf: [("x", 1), ("y", 2), ("x", 3)])
        try dictionary.update(["z": 26])
        let popped = try dictionary.popItem()
        return "order \(order) values \(try dictionary.values()) popped \(popped.map { "\($0.key)=\($0.value)" } ?? "none") "
            + "default \(try dictionary.get("missing", default: -1))"
    }
}

/// Merges `{k0: 1, ..., k4: 1}` into a dictionary `times` times, adding to what is there.
public struct DictionaryMerger: ProcessTask {
    public var dictionary: ManagedDictionary<String, Int>
    public var times: Int
    public init(dictionary: ManagedDictionary<String, Int>, times: Int) {
        self.dictionary = dictionary
        self.times = times
    }
    public func run() throws {
        let ones = Dictionary(uniqueKeysWithValues: (0..<5).map { ("k\($0)", 1) })
        for _ in 0..<times { try dictionary.merge(ones, uniquingKeysWith: +) }
    }
}

/// Changes a list and a dictionary while the parent iterates over them.
public struct IterationChanger: ProcessTask {
    public var list: ManagedList<Int>
    public var dictionary: ManagedDictionary<String, Int>
    public init(list: ManagedList<Int>, dictionary: ManagedDictionary<String, Int>) {
        self.list = list
        self.dictionary = dictionary
    }
    public func run() throws {
        try list.append(4)
        try list.remove(at: 0)
        try dictionary.set("d", 4)
        try dictionary.removeValue(forKey: "a")
    }
}

/// Adds 1 to every element of an array `times` times, and writes its marker into `slot`.
public struct ArrayIncrementer: ProcessTask {
    public var array: ManagedArray<Int>
    public var labels: ManagedArray<String>
    public var slot: Int
    public var times: Int
    public init(array: ManagedArray<Int>, labels: ManagedArray<String>, slot: Int, times: Int) {
        self.array = array
        self.labels = labels
        self.slot = slot
        self.times = times
    }
    public func run() throws -> String {
        for _ in 0..<times {
            for i in 0..<(try array.count()) { try array.increment(at: i) }
        }
        try labels.set(["child \(slot)"], at: slot)
        let tooLong = shapeOutcome { try labels.set(["a", "b", "c", "d"], at: 0) }
        let outside = shapeOutcome { _ = try array[10] }
        return "length \(try labels.count()) tooLong \(tooLong) outside \(outside) last \(try labels[-1])"
    }
}
