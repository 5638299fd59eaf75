/// What tells ``Lock`` and ``RLock`` apart: whether the owner may take the lock again, the tag in
/// its shared memory, and the names in its messages. Everything else is ``LockCore``.
internal protocol LockFlavor {
    static var recursive: Bool { get }
    static var sharedKind: UInt32 { get }
    static var typeName: StaticString { get }
    static var acquireName: StaticString { get }
    static var tryAcquireName: StaticString { get }
    static var releaseName: StaticString { get }
    static var withLockName: StaticString { get }
}

internal enum PlainLockFlavor: LockFlavor {
    static var recursive: Bool { false }
    static var sharedKind: UInt32 { SharedKind.lock }
    static var typeName: StaticString { "Lock" }
    static var acquireName: StaticString { "Lock.acquire" }
    static var tryAcquireName: StaticString { "Lock.tryAcquire" }
    static var releaseName: StaticString { "Lock.release" }
    static var withLockName: StaticString { "Lock.withLock" }
}

internal enum RecursiveLockFlavor: LockFlavor {
    static var recursive: Bool { true }
    static var sharedKind: UInt32 { SharedKind.rlock }
    static var typeName: StaticString { "RLock" }
    static var acquireName: StaticString { "RLock.acquire" }
    static var tryAcquireName: StaticString { "RLock.tryAcquire" }
    static var releaseName: StaticString { "RLock.release" }
    static var withLockName: StaticString { "RLock.withLock" }
}

/// The one implementation of ``Lock`` and ``RLock``, as swift-nio's `LockStorage` is the one
/// implementation of `NIOLock` and `NIOLockedValueBox`: the shared memory, the robust mutex in it,
/// and every operation. The two public classes only forward to it and document.
///
/// Layout: kind (4) | unused (4) | robust lock (48; see ``RobustMutex``).
internal struct LockCore<Flavor: LockFlavor>: @unchecked Sendable {
    internal let memory: SharedAllocation
    internal let mutex: RobustMutex

    internal static var size: Int { 8 + RobustMutex.size }

    /// A new, unlocked lock in shared memory.
    internal init() throws {
        memory = try SharedArena.allocate(size: LockCore.size)
        mutex = RobustMutex(memory.base + 8)
        try mutex.initialize(recursive: Flavor.recursive)
        memory.kind.store(Flavor.sharedKind)
    }

    /// A view of a mutex that `memory` holds at offset 8: a lock's own memory, or the built-in lock
    /// of ``SharedValue`` and ``SharedArray``.
    internal init(viewing memory: SharedAllocation) {
        self.memory = memory
        self.mutex = RobustMutex(memory.base + 8)
    }

    /// A lock sent by another process: both then use the same shared memory.
    internal init(from decoder: any Decoder) throws {
        self.init(viewing: try SharedAllocation(from: decoder, kind: Flavor.sharedKind, size: LockCore.size,
                                                typeName: Flavor.typeName))
    }

    internal func encode(to encoder: any Encoder) throws {
        try memory.encode(to: encoder)
    }

    internal func acquire(timeout: Duration?) throws {
        try mutex.acquire(timeout: timeout, Flavor.acquireName)
    }

    internal func tryAcquire() throws -> Bool {
        try mutex.tryAcquire(Flavor.tryAcquireName)
    }

    internal func release() throws {
        try mutex.unlock(Flavor.releaseName)
    }

    internal func enterWithLock(_ timeout: Duration?) throws {
        try mutex.enterCriticalSection(timeout: timeout, Flavor.withLockName)
    }

    internal func exitWithLock() {
        _ = try? mutex.unlock(Flavor.withLockName)
    }

    internal nonisolated(nonsending) func withLock<R>(timeout: Duration?, _ body: () throws -> R) async throws -> R {
        try await mutex.enterCriticalSection(timeout: timeout, Flavor.withLockName)
        defer { exitWithLock() }
        return try body()
    }

    /// Whether some thread, in any process, holds the lock.
    internal var isLocked: Bool { mutex.ownerTID != 0 }

    /// Whether the calling thread holds the lock.
    internal var isOwnedByCurrentThread: Bool { mutex.ownerTID == ThreadID.current }
}

extension RobustMutex {
    // What `Lock` and `RLock` (and the primitives built on them) do on acquisition, in one place.

    /// Takes the mutex for `acquire`. When the previous owner died, throws `.ownerDied` with the
    /// mutex held, so that the caller can repair the data and then release it.
    internal func acquire(timeout: Duration?, _ operation: StaticString) throws {
        try Deadline.validate(timeout, operation)
        if try lock(.current(timeout: timeout, operation)) == .afterOwnerDied {
            throw Lock.ownerDiedError(operation)
        }
    }

    /// `tryLock` for `tryAcquire`: whether the caller now holds the mutex; `.ownerDied` as in ``acquire(timeout:_:)``.
    internal func tryAcquire(_ operation: StaticString) throws -> Bool {
        switch try tryLock(operation) {
        case nil: return false
        case .normally?: return true
        case .afterOwnerDied?: throw Lock.ownerDiedError(operation)
        }
    }

    /// Takes the mutex for a `withLock` body. When the previous owner died, the body must not run
    /// on what it left half-changed: the mutex is released again and `.ownerDied` thrown, so that a
    /// retry succeeds.
    internal func enterCriticalSection(timeout: Duration?, _ operation: StaticString) throws {
        try Deadline.validate(timeout, operation)
        if try lock(.current(timeout: timeout, operation)) == .afterOwnerDied {
            try unlock(operation)
            throw Lock.ownerDiedError(operation)
        }
    }

    /// The async twin of ``enterCriticalSection(timeout:_:)``.
    internal nonisolated(nonsending) func enterCriticalSection(timeout: Duration?, _ operation: StaticString) async throws {
        if try await lockAsync(timeout: timeout, operation) == .afterOwnerDied {
            try unlock(operation)
            throw Lock.ownerDiedError(operation)
        }
    }

    /// The async acquisition: try on the caller's thread, wait off the pool until the mutex looks
    /// free, and try again on the caller's thread (a pthread mutex belongs to the thread that locks it).
    internal nonisolated(nonsending) func lockAsync(timeout: Duration?, cancellable: Bool = true,
                                                     _ operation: StaticString) async throws -> Acquired {
        try Deadline.validate(timeout, operation)
        if let acquired = try tryLock(operation) { return acquired }
        return try await lockAsync(deadline: Deadline(timeout: timeout, operation), timeout: timeout,
                                   cancellable: cancellable, operation)
    }

    /// ``lockAsync(timeout:cancellable:_:)`` against a deadline computed earlier (a condition's
    /// `withLock(waitingFor:)` takes its lock several times within one timeout).
    internal nonisolated(nonsending) func lockAsync(deadline: Deadline, timeout: Duration?, cancellable: Bool = true,
                                                     _ operation: StaticString) async throws -> Acquired {
        if let acquired = try tryLock(operation) { return acquired }
        if let acquired = try tryLockAfterSpinning(operation) { return acquired }
        let mutex = self
        while true {
            try await waitOffPool(operation, cancellable: cancellable, restartable: true) { cancellation in
                try mutex.waitUntilFree(WaitContext(deadline: deadline, timeout: timeout,
                                                    cancellation: cancellation, operation: operation))
            }
            if let acquired = try mutex.tryLockAfterSleeping(operation) { return acquired }
        }
    }
}
