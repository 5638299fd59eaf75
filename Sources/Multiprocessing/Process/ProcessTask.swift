/// Work that runs in a child process: the Swift twin of Python's `Process(target=f, args=..., kwargs=...)`.
///
/// A task is a value. Its stored properties are the target's arguments (Python's `args` by position,
/// `kwargs` by name), and ``run()`` is the target. The task is encoded in the parent, sent to the child,
/// decoded there and run; its result (or the error it throws) comes back to the parent.
///
/// ```swift
/// struct Sing: ProcessTask {
///     var times: Int
///     func run() { for _ in 0..<times { print("singing") } }
/// }
/// let child = ChildProcess(Sing(times: 3))
/// try child.start()
/// try child.join()
/// ```
///
/// The type must be visible to the runtime by name in the child: a top-level or nested type, generic or
/// not, but not `private`/`fileprivate` and not declared inside a function. A child that cannot find
/// the type reports ``MultiprocessingError/Code/childStartFailed`` to the parent.
public protocol ProcessTask: Codable, Sendable {
    /// What ``run()`` returns: `Void`, or a `Codable` value sent back to the parent.
    associatedtype Output: Sendable = Void

    /// The work. It may be synchronous or `async`, and may throw: the parent sees the error as
    /// ``MultiprocessingError/Code/childFailed`` carrying the error's type name and description.
    func run() async throws -> Output
}
