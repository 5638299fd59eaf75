import Glibc

/// The kernel thread id (gettid) of the calling thread, cached per thread.
///
/// Owner checks compare it with the TID a robust mutex's word holds; `gettid` is a system call,
/// a thread-specific value is a few nanoseconds. A fork gives the one thread of the child a new
/// TID, so an at-fork handler forgets the cached one.
internal enum ThreadID {
    private static let key: pthread_key_t? = {
        guard let key = try? system_keyCreate(destructor: nil) else { return nil }
        system_atfork(child: { ThreadID.forgetInChild() })
        return key
    }()

    private static func forgetInChild() {
        if let key { system_setSpecific(key, nil) }
    }

    internal static var current: UInt32 {
        guard let key else { return UInt32(truncatingIfNeeded: system_gettid()) }
        if let cached = system_getSpecific(key) {
            return UInt32(truncatingIfNeeded: UInt(bitPattern: cached))
        }
        let tid = UInt32(truncatingIfNeeded: system_gettid())
        system_setSpecific(key, UnsafeMutableRawPointer(bitPattern: UInt(tid)))
        return tid
    }
}
