import MultiprocessingSystem

/// The kernel thread id (gettid) of the calling thread.
///
/// Owner checks compare it with the TID a robust lock's word holds. The shim caches it per thread
/// (a system call otherwise) and forgets it in a forked child, whose thread has a new TID.
internal enum ThreadID {
    @inline(__always)
    internal static var current: UInt32 { system_robustTID() }
}
