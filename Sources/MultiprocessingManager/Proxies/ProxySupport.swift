import Multiprocessing

/// The thread that owns a manager lock, as the server sees it: the kernel thread id of the caller.
internal func callerThread() -> UInt64 { UInt64(UInt32(bitPattern: ManagerPlatform.threadID())) }
