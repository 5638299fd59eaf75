// Task types for SyncSurfaceTests (issue 18, "Synchronisation and shared values"): a child holds
// an RLock or a condition's lock while the parent looks at it, and probes a lock the parent holds.
public import Multiprocessing

/// Takes `rlock` `depth` times, raises `held`, waits for `release`, then lets go of every level.
/// Returns what it saw of `isLocked` and `recursionDepth` while holding it.
public struct HoldRLockUntilReleased: ProcessTask {
    public var rlock: RLock
    public var depth: Int
    public var held: Event
    public var release: Event
    public init(rlock: RLock, depth: Int, held: Event, release: Event) {
        self.rlock = rlock
        self.depth = depth
        self.held = held
        self.release = release
    }
    public func run() throws -> [Int] {
        for _ in 0..<depth { try rlock.acquire(timeout: .seconds(60)) }
        let seen = [rlock.isLocked ? 1 : 0, rlock.recursionDepth]
        held.set()
        try release.wait(timeout: .seconds(60))
        for _ in 0..<depth { try rlock.release() }
        return seen + [rlock.isLocked ? 1 : 0]
    }
}

/// Looks at a lock that another process holds: `isLocked`, and whether `tryAcquire()` got it
/// (released again at once if it did).
public struct ProbeRLock: ProcessTask {
    public var rlock: RLock
    public init(rlock: RLock) { self.rlock = rlock }
    public func run() throws -> [Bool] {
        let locked = rlock.isLocked
        let got = try rlock.tryAcquire()
        if got { try rlock.release() }
        return [locked, got]
    }
}

/// Takes the condition's lock with `tryAcquire()` (spinning until it is free), raises `held`,
/// waits for `release`, then waits on the condition until `flag` is 1, which releases the lock
/// while it sleeps. Returns whether it held the lock when the wait returned.
public struct HoldConditionThenWait: ProcessTask {
    public var condition: Condition
    public var flag: SharedValue<Int>
    public var held: Event
    public var release: Event
    public init(condition: Condition, flag: SharedValue<Int>, held: Event, release: Event) {
        self.condition = condition
        self.flag = flag
        self.held = held
        self.release = release
    }
    public func run() throws -> Bool {
        while try !condition.tryAcquire() {}
        held.set()
        try release.wait(timeout: .seconds(60))
        try condition.wait(for: { flag.atomicLoad() == 1 }, timeout: .seconds(60))
        let holding = condition.isLocked
        try condition.release()
        return holding
    }
}

/// Tries the condition's lock once, from another process: whether it got it (and released it).
public struct ProbeCondition: ProcessTask {
    public var condition: Condition
    public init(condition: Condition) { self.condition = condition }
    public func run() throws -> Bool {
        let got = try condition.tryAcquire()
        if got { try condition.release() }
        return got
    }
}
