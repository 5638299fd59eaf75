import MultiprocessingSystem

// The bounded, adaptive spin of a direct round trip (one task in flight): a blocking `get()` polls
// the answer ring for a short while before it sleeps in `poll`, and a worker that answered a direct
// task polls its task ring for a short while before it sleeps in `read`. When both spin, a round
// trip makes no system call and wakes no one; when a spin does not pay (a long task, a caller that
// does other work between tasks, a machine whose cores are taken), it turns itself off for a while.

/// What one side of direct round trips has seen of its spins (tests read it; not API).
package struct PoolSpinStatistics: Sendable, Codable, Equatable {
    /// Spins started.
    package var attempts = 0
    /// Spins that saw what they waited for within their budget.
    package var successes = 0
    /// Spins that ran out of budget.
    package var timeouts = 0
    /// Spins cut short because the spinner saw a gap in the clock between two polls: it was
    /// descheduled, so the cores are taken.
    package var deschedules = 0
    /// Waits that did not spin because the spin was off after a spin that did not pay.
    package var skipped = 0
    /// Waits that did not spin because the other side last ran on this CPU (so it would wait for
    /// this spin to end), or, for a worker, because its answer had to wake its reader.
    package var declined = 0
    /// The budget of the next spin, in nanoseconds.
    package var budgetNanoseconds: Int64 = 0
    /// Waits still to go without a spin (0: the next wait spins).
    package var skipLeft = 0

    package init() {}
}

/// One side's spin policy: a budget that follows the waits that succeeded, and an off switch
/// that a spin that did not pay throws for a number of waits that doubles while spins keep failing.
///
/// Shaped after glibc's adaptive mutex (a per-mutex estimate of the spins that were needed, moved
/// an eighth of the way to each new count, and a hard cap) and Go's (spin only on a multicore
/// machine with another processor running, a few short rounds, then sleep), with two changes for a
/// loaded 2-core machine: the bound is wall time, not a count, and a spinner that finds itself
/// descheduled (a gap in the clock between two polls) stops at once and turns the spin off, since
/// then spinning takes the core of the very process it waits for.
struct PoolSpin {
    struct Limits {
        /// The first budget, and the least a budget shrinks to.
        var initial: Int64
        var minimum: Int64
        /// The hard cap on one spin.
        var maximum: Int64
        /// A gap longer than this between two polls means the spinner was descheduled.
        var descheduledGap: Int64
        /// The longest run of waits without a spin after spins kept failing.
        var maximumSkip: Int
    }

    /// A `get()`: it waits for the worker's pick-up (at once when the worker spins, a wake-up
    /// otherwise), the task and the answer's copy.
    static let caller = Limits(initial: 25_000, minimum: 8_000, maximum: 25_000, descheduledGap: 10_000, maximumSkip: 256)
    /// A worker after a direct answer: it waits for the caller to take the answer, return to its
    /// code and submit the next task.
    static let worker = Limits(initial: 25_000, minimum: 8_000, maximum: 25_000, descheduledGap: 10_000, maximumSkip: 256)

    enum Outcome: Equatable {
        case ready(waited: Int64)
        case timedOut
        case descheduled
    }

    let limits: Limits
    private(set) var statistics = PoolSpinStatistics()
    /// A running estimate of the successful waits (an eighth of the way to each new one).
    private var estimate: Int64 = 0
    /// Spins in a row that did not pay, for the length of the next pause.
    private var failuresInARow = 0

    init(_ limits: Limits) {
        self.limits = limits
        statistics.budgetNanoseconds = limits.initial
    }

    /// The budget for the next wait, or nil when this one must not spin (the spin is off for a
    /// while). Each nil counts one of the waits to skip.
    mutating func begin() -> Int64? {
        if statistics.skipLeft > 0 {
            statistics.skipLeft -= 1
            statistics.skipped += 1
            return nil
        }
        statistics.attempts += 1
        return statistics.budgetNanoseconds
    }

    /// Records what the spin that `begin()` allowed saw.
    mutating func end(_ outcome: Outcome) {
        switch outcome {
        case .ready(let waited):
            statistics.successes += 1
            failuresInARow = 0
            estimate = estimate == 0 ? waited : estimate + (waited - estimate) / 8
            // Room for four times the usual wait, within the bounds.
            statistics.budgetNanoseconds = min(limits.maximum, max(limits.minimum, 4 * estimate, waited + waited / 2))
        case .timedOut, .descheduled:
            if outcome == .timedOut { statistics.timeouts += 1 } else { statistics.deschedules += 1 }
            failuresInARow += 1
            // Off for 2, 4, 8 … waits, up to the cap; the next spin after the pause starts from a
            // smaller budget, and grows again only if it pays.
            statistics.skipLeft = min(limits.maximumSkip, 1 << min(failuresInARow, 16))
            statistics.budgetNanoseconds = limits.initial
        }
    }

    /// Spins until `ready()` holds, for at most `budget` nanoseconds, and returns early when the
    /// clock jumps between two polls (this thread was descheduled). Each poll is a look at shared
    /// memory, four `pause` instructions and a read of the (vDSO) clock: about 0.1–0.3 µs.
    static func wait(budget: Int64, gap: Int64, until ready: () -> Bool) -> Outcome {
        let start = system_clockMonotonicNanoseconds()
        var last = start
        while true {
            if ready() { return .ready(waited: system_clockMonotonicNanoseconds() - start) }
            system_cpuRelax()
            system_cpuRelax()
            system_cpuRelax()
            system_cpuRelax()
            let now = system_clockMonotonicNanoseconds()
            if now - last > gap { return .descheduled }
            if now - start >= budget { return ready() ? .ready(waited: now - start) : .timedOut }
            last = now
        }
    }

    /// The CPU this thread runs on, plus one (0: unknown), as the ring's CPU words hold it.
    static func cpuTag() -> UInt32 { system_currentCPU().map { UInt32(truncatingIfNeeded: $0 + 1) } ?? 0 }

    /// Whether two CPU tags name the same CPU.
    static func sameCPU(_ a: UInt32, _ b: UInt32) -> Bool { a != 0 && a == b }

    /// Counts a wait that did not spin because the other side could not have made progress.
    mutating func decline() { statistics.declined += 1 }

    /// `begin()`, the spin, and `end(_:)` for a side that owns its policy alone (a worker).
    /// True when `ready()` held before the spin ended.
    mutating func spin(until ready: () -> Bool) -> Bool {
        guard let budget = begin() else { return false }
        let outcome = Self.wait(budget: budget, gap: limits.descheduledGap, until: ready)
        end(outcome)
        if case .ready = outcome { return true }
        return false
    }
}

/// The worker's spin statistics, for a task that runs in a pool worker (tests; not API).
package enum PoolSpinTesting {
    /// The spin of the worker this process is (set once by its loop, before any task runs).
    nonisolated(unsafe) static var worker: PoolWorkerLoop?

    /// What this worker's spins have seen; nil when this process is not a pool worker.
    package static var workerStatistics: PoolSpinStatistics? { worker?.spin.statistics }

    /// Whether the driver allowed this worker to spin after the task it runs now.
    package static var workerMaySpin: Bool? { worker.map { $0.ring.load32(PoolRing.Offset.workerMaySpin) != 0 } }

    /// Starts this worker's spin policy afresh (its next allowed wait spins); false when this
    /// process is not a pool worker.
    package static func resetWorker() -> Bool {
        guard let worker else { return false }
        worker.resetSpin()
        return true
    }
}
