/// Runs a closure on its own thread after a delay, unless cancelled first: Python's
/// `threading.Timer`.
///
/// Named `OSTimer` so that it does not clash with Foundation's `Timer`.
///
/// ```swift
/// let timer = OSTimer(after: .seconds(2)) { print("time is up") }
/// try timer.start()
/// timer.cancel()   // before the two seconds: the closure never runs
/// ```
public final class OSTimer: Sendable {
    /// The thread that waits and then runs the closure.
    public let thread: OSThread
    /// The delay between ``start()`` and the closure.
    public let interval: Duration

    /// Creates a timer; nothing happens until ``start()``.
    /// - Parameters:
    ///   - interval: How long to wait before running `action`.
    ///   - name: The thread's name.
    ///   - daemon: Whether the timer's thread dies with the process (by default, as the creating thread).
    ///   - action: The closure to run.
    public init(after interval: Duration, name: String? = nil, daemon: Bool? = nil,
                _ action: @escaping @Sendable () throws -> Void) {
        self.interval = interval
        self.thread = OSThread(name: name, daemon: daemon) {
            // The wait is the thread's own cancellation word: cancel() wakes it at once.
            do {
                let word = OSThread.currentCancellation
                let context = try WaitContext(timeout: interval, cancellation: word, operation: "OSTimer")
                while true { try context.wait(on: SharedWord(word.word), expected: 0, shared: false) }
            } catch let error as MultiprocessingError where error.code == .timedOut {
                try action()
                return true
            } catch {
                return false
            }
        }
    }

    /// Starts the countdown.
    /// - Throws: `.misuse` when started twice, or when ``interval`` is negative.
    public func start() throws {
        try Deadline.validate(interval, "OSTimer(after:)")
        try thread.start()
    }

    /// Stops the timer if it is still waiting: the action will not run.
    public func cancel() { thread.cancel() }

    /// Waits until the timer has run its action or been cancelled.
    /// - Parameter timeout: How long to wait; `nil` waits forever.
    /// - Throws: as `OSThread/join(timeout:)`.
    public func join(timeout: Duration? = nil) throws { try thread.join(timeout: timeout) }

    /// The async twin of ``join(timeout:)``.
    /// - Throws: as `OSThread/join(timeout:)`.
    public func join(timeout: Duration? = nil) async throws { try await thread.join(timeout: timeout) }

    /// Whether the action ran: false while waiting, and after a cancellation.
    public var didFire: Bool { (try? thread.result(as: Bool.self)) ?? false }

    /// Whether the timer is still waiting or running its action.
    public var isAlive: Bool { thread.isAlive }
}
