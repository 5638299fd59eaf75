// Task types for the manager correctness tests (issue 12, items 13–18).
public import Multiprocessing
public import MultiprocessingManager

/// Stores `value` under `key`: another process's write, between a caller's read and its write.
public struct SetEntryTask: ProcessTask {
    public var dictionary: ManagedDictionary<String, Int>
    public var key: String
    public var value: Int
    public init(dictionary: ManagedDictionary<String, Int>, key: String, value: Int) {
        self.dictionary = dictionary
        self.key = key
        self.value = value
    }
    public func run() throws { try dictionary.set(key, value) }
}

/// Waits on an event from `waiters` threads at once; returns how many waits returned true.
public struct WaitEventTask: ProcessTask {
    public var event: ManagedEvent
    public var waiters: Int
    public var timeout: Duration
    public init(event: ManagedEvent, waiters: Int, timeout: Duration) {
        self.event = event
        self.waiters = waiters
        self.timeout = timeout
    }
    public func run() async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<waiters {
                group.addTask {
                    do {
                        try await event.wait(timeout: timeout)
                        return true
                    } catch let error as MultiprocessingError where error.code == .timedOut {
                        return false
                    }
                }
            }
            var woken = 0
            for try await result in group where result { woken += 1 }
            return woken
        }
    }
}
