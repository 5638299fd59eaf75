import Glibc
import MultiprocessingSystem

/// A value that each thread sees separately: Python's `threading.local`.
///
/// Each thread starts with its own copy of the default value; a thread's changes are invisible to
/// the others, and its value is released when the thread exits.
///
/// ```swift
/// let requests = ThreadLocal(default: 0)
/// requests.value += 1   // this thread's count only
/// ```
///
/// The values live in a POSIX thread-specific key (there are at most 1024 per process). When the
/// `ThreadLocal` itself is released, the values that other live threads still hold are leaked
/// (POSIX runs no destructors for a deleted key): keep thread-locals for the life of the program,
/// as globals or statics.
public final class ThreadLocal<Value>: @unchecked Sendable {
    // Each thread's value is boxed and retained in the key; the key's destructor releases it.
    private final class Box {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    private let key: pthread_key_t
    private let makeDefault: @Sendable () -> Value

    /// Creates a thread-local whose value in each thread starts as `makeDefault()`.
    /// - Parameter makeDefault: Called once per thread, on first use.
    /// - Throws: `.systemCall` when the process has no thread-specific keys left.
    public init(default makeDefault: @autoclosure @escaping @Sendable () -> Value) throws {
        do {
            key = try system_keyCreate(destructor: { pointer in
                guard let pointer else { return }
                Unmanaged<AnyObject>.fromOpaque(pointer).release()
            })
        } catch {
            throw MultiprocessingError.system("pthread_key_create", error)
        }
        self.makeDefault = makeDefault
    }

    deinit {
        // This thread's value can be released; other threads' values leak (see the type's note).
        if let pointer = system_getSpecific(key) {
            Unmanaged<AnyObject>.fromOpaque(pointer).release()
        }
        system_keyDelete(key)
    }

    private var box: Box {
        if let pointer = system_getSpecific(key) {
            // Stored as AnyObject; always a Box of this ThreadLocal.
            return unsafeDowncast(Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue(), to: Box.self)
        }
        let box = Box(makeDefault())
        system_setSpecific(key, Unmanaged.passRetained(box as AnyObject).toOpaque())
        return box
    }

    /// The calling thread's value.
    public var value: Value {
        get { box.value }
        set { box.value = newValue }
    }

    /// Runs `body` with the calling thread's value, which it may change in place.
    /// - Returns: What `body` returns.
    public func withValue<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try body(&box.value)
    }
}
