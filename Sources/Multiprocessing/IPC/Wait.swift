import SystemPackage
import MultiprocessingSystem
import Synchronization

/// Something `wait(_:timeout:)` can wait on: a ``Connection`` (a message or the end of the
/// stream to read), a ``ProcessSentinel`` or a ``ChildProcess`` (the child ended), or a listener
/// of `MultiprocessingConnection` (a client to accept).
///
/// A ``Queue`` is not one: its items live in shared memory behind a futex, with no descriptor to
/// poll. Wait on a queue with its own `get(timeout:)`, or send its items over a ``Connection``.
/// Only this package's types conform: ``WaitSource`` has no public initializer.
public protocol Waitable: AnyObject, Sendable {
    /// What a wait polls for this object, held until the wait ends.
    ///
    /// - Throws: when the object cannot be waited on (a closed connection, a write-only end).
    func waitSource() throws -> WaitSource
}

/// The descriptors a wait polls for one ``Waitable`` (it is ready when any of them is), and
/// what it holds while it waits.
public struct WaitSource: Sendable {
    package let descriptors: [(descriptor: CInt, events: Int16)]
    /// Ready without any descriptor being ready (a message already buffered).
    package let readyNow: @Sendable () -> Bool
    /// Ends the wait's hold on the object (a connection's in-flight count).
    package let release: @Sendable () -> Void
    /// Keeps what owns the descriptors alive while the wait polls them.
    package let owner: (any Sendable)?

    package init(descriptors: [(descriptor: CInt, events: Int16)], owner: (any Sendable)? = nil,
                 readyNow: @escaping @Sendable () -> Bool = { false }, release: @escaping @Sendable () -> Void = {}) {
        self.descriptors = descriptors
        self.owner = owner
        self.readyNow = readyNow
        self.release = release
    }

    /// `POLLIN`: readable, or hung up.
    package static let readable = systemPollIn
}

/// Waits until at least one of `objects` is ready, or `timeout` passes: Python's
/// `multiprocessing.connection.wait`.
///
/// A connection is ready when a receive would not wait (a message, or the end of the stream, or
/// it was closed meanwhile); a process or its sentinel when the child has ended; a listener when a
/// client waits to be accepted.
///
/// - Parameters:
///   - objects: what to wait on; an empty list waits for the timeout.
///   - timeout: how long to wait; `nil` waits for ever, `.zero` only looks.
/// - Returns: the ready objects, in the order given; empty when the timeout passed first.
/// - Throws: ``MultiprocessingError/Code/closed`` for a connection closed before the call;
///   ``MultiprocessingError/Code/misuse`` for the write end of a pipe, a negative timeout, or a
///   process that was not started; ``MultiprocessingError/Code/systemCall`` when `poll(2)` fails.
public func wait(_ objects: [any Waitable], timeout: Duration? = nil) throws -> [any Waitable] {
    let ready = try waitForReady(objects, timeout: timeout, interrupt: nil)
    return ready.map { objects[$0] }
}

/// Waits until at least one of `objects` is ready; see `wait(_:timeout:)` for the rules.
///
/// - Parameters:
///   - objects: what to wait on, all of one type (connections, say).
///   - timeout: how long to wait; `nil` waits for ever, `.zero` only looks.
/// - Returns: the ready objects, in the order given; empty when the timeout passed first.
/// - Throws: as `wait(_:timeout:)` for a list of any kinds.
public func wait<W: Waitable>(_ objects: [W], timeout: Duration? = nil) throws -> [W] {
    let ready = try waitForReady(objects, timeout: timeout, interrupt: nil)
    return ready.map { objects[$0] }
}

/// Waits without blocking the cooperative pool until at least one of `objects` is ready; see the
/// blocking `wait(_:timeout:)`.
///
/// - Parameters:
///   - objects: what to wait on.
///   - timeout: how long to wait; `nil` waits for ever, `.zero` only looks.
/// - Returns: the ready objects, in the order given; empty when the timeout passed first.
/// - Throws: as the blocking twin, and ``MultiprocessingError/Code/cancelled`` when the task is
///   cancelled.
public func wait(_ objects: [any Waitable], timeout: Duration? = nil) async throws -> [any Waitable] {
    let ready = try await waitForReadyAsync(objects, timeout: timeout)
    return ready.map { objects[$0] }
}

/// Waits without blocking the cooperative pool until at least one of `objects` is ready; see the
/// blocking `wait(_:timeout:)`.
///
/// - Parameters:
///   - objects: what to wait on, all of one type.
///   - timeout: how long to wait; `nil` waits for ever, `.zero` only looks.
/// - Returns: the ready objects, in the order given; empty when the timeout passed first.
/// - Throws: as the blocking twin, and ``MultiprocessingError/Code/cancelled``.
public func wait<W: Waitable>(_ objects: [W], timeout: Duration? = nil) async throws -> [W] {
    let ready = try await waitForReadyAsync(objects, timeout: timeout)
    return ready.map { objects[$0] }
}

private func waitForReadyAsync(_ objects: [any Waitable], timeout: Duration?) async throws -> [Int] {
    try Deadline.validate(timeout, "wait")
    // A look first, on the caller's thread: when something is ready, no thread hop.
    let now = try waitForReady(objects, timeout: .zero, interrupt: nil)
    if !now.isEmpty || timeout == .zero { return now }
    return try await ipcRunBlocking { interrupt in
        try waitForReady(objects, timeout: timeout, interrupt: interrupt)
    }
}

/// The indices of the ready objects. `poll(2)` on every descriptor of every object, with the
/// interrupt's eventfd beside them.
private func waitForReady(_ objects: [any Waitable], timeout: Duration?, interrupt: IPCInterrupt?) throws -> [Int] {
    let deadline = try Deadline(timeout: timeout, "wait")
    var sources: [WaitSource] = []
    sources.reserveCapacity(objects.count)
    defer { for source in sources { source.release() } }
    for object in objects { sources.append(try object.waitSource()) }

    var fds: [CInt] = []
    var events: [Int16] = []
    var owners: [Int] = []
    for (index, source) in sources.enumerated() {
        for (fd, event) in source.descriptors {
            fds.append(fd)
            events.append(event)
            owners.append(index)
        }
    }
    if let interrupt {
        do throws(Errno) {
            fds.append(try interrupt.eventDescriptor())
            events.append(WaitSource.readable)
            owners.append(-1)
        } catch {
            throw MultiprocessingError.system("creating a wake-up descriptor for wait", error)
        }
    }
    while true {
        var ready = Set(sources.indices.filter { sources[$0].readyNow() })
        if !ready.isEmpty { return ready.sorted() }
        let revents: [Int16]
        do throws(Errno) {
            revents = try system_pollMany(fds, events: events, timeoutMilliseconds: ready.isEmpty ? deadline.pollMilliseconds : 0)
        } catch {
            throw MultiprocessingError.system("waiting on \(objects.count) objects", error)
        }
        for (i, r) in revents.enumerated() where r != 0 && owners[i] >= 0 {
            // POLLNVAL: a descriptor closed under the wait; its object is "ready" (the next call
            // on it says what happened).
            ready.insert(owners[i])
        }
        if !ready.isEmpty { return ready.sorted() }
        if let interrupt, interrupt.isTriggered { throw MultiprocessingError.cancelledWait("wait") }
        if deadline.hasPassed { return [] }
    }
}

extension Connection: Waitable {
    /// The connection's descriptor and its close notification; a message already read whole (one
    /// left by a buffer too short) makes it ready at once.
    ///
    /// - Throws: ``MultiprocessingError/Code/closed`` after ``close()``;
    ///   ``MultiprocessingError/Code/misuse`` for the write end of a pipe.
    public func waitSource() throws -> WaitSource {
        guard isReadable else {
            throw MultiprocessingError.misuse("wait: this is the write end of a simplex pipe, which never has anything to receive.")
        }
        let closeWake = try enter("wait")
        return WaitSource(descriptors: [(descriptor, WaitSource.readable), (closeWake, WaitSource.readable)], owner: self,
                          readyNow: { [self] in hasPendingFrame.load(ordering: .acquiring) },
                          release: { [self] in leave() })
    }
}

extension ProcessSentinel: Waitable {
    /// The sentinel's eventfd.
    public func waitSource() throws -> WaitSource {
        WaitSource(descriptors: [(fileDescriptor.rawValue, WaitSource.readable)], owner: self)
    }
}

extension ChildProcess: Waitable {
    /// A new ``sentinel``'s descriptor, held until the wait ends.
    ///
    /// - Throws: as ``sentinel``.
    public func waitSource() throws -> WaitSource {
        let sentinel = try self.sentinel
        return WaitSource(descriptors: [(sentinel.fileDescriptor.rawValue, WaitSource.readable)], owner: sentinel)
    }
}
