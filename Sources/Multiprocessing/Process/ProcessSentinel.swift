public import SystemPackage
import MultiprocessingSystem

/// A descriptor that becomes readable once a child process has ended: Python's `Process.sentinel`.
///
/// Get one from ``ChildProcess/sentinel``, and wait on it with `wait(_:timeout:)` beside
/// connections and listeners, or hand ``fileDescriptor`` to your own `poll(2)` or event loop. It
/// is ready once the child has been reaped and its outcome read, so `join` and `value` return at
/// once after it. The descriptor is the sentinel's own and is closed when the sentinel is released.
public final class ProcessSentinel: Sendable {
    /// The descriptor (an eventfd): readable (`POLLIN`) once the child has ended. Do not read from
    /// it or close it: it belongs to the sentinel.
    public let fileDescriptor: FileDescriptor
    /// The child's name, for messages.
    public let processName: String

    internal init(descriptor: CInt, name: String) {
        self.fileDescriptor = FileDescriptor(rawValue: descriptor)
        self.processName = name
    }

    deinit { system_close(fileDescriptor.rawValue) }

    /// Whether the child has ended, checked without waiting.
    public var isReady: Bool {
        (try? system_poll(fileDescriptor.rawValue, events: Int16(1) /* POLLIN */, timeoutMilliseconds: 0)).map { $0 != 0 } ?? true
    }
}
