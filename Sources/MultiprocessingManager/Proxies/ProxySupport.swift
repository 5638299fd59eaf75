import Multiprocessing
import MultiprocessingSystem

/// The thread that owns a manager lock, as the server sees it: the kernel thread id of the caller,
/// or, in the body of an async `withLock`, the owner that `withLock` took the lock as
/// (``AsyncLockOwner``), so that the body's own calls (a condition's `notify`, an RLock taken
/// again) act as the lock's holder, as they do on a local lock.
internal func callerThread() -> UInt64 {
    AsyncLockOwner.current ?? UInt64(UInt32(bitPattern: ManagerPlatform.threadID()))
}

/// The owner an async `withLock`'s synchronous body acts as.
internal enum AsyncLockOwner {
    @TaskLocal static var current: UInt64?
}
