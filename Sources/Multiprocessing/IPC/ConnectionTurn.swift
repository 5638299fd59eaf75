import SystemPackage
import MultiprocessingSystem

/// Whose turn it is to send (or to receive) on one ``Connection`` in this process.
///
/// A frame must be written, and read, whole by one thread, so the threads of a process that send on
/// one end take turns, and so do the threads that receive. A turn is not a `Mutex` held across the
/// holder's wait for the descriptor: a second sender or receiver waits for its turn with *its own*
/// deadline and cancellation, and gives up when they say so.
///
/// The word is a private futex (0: free, 1: taken, 2: taken and someone may be waiting), the
/// textbook three-state futex lock: taking a free turn is one compare-and-swap, giving it back is an
/// exchange, and only a waiter, or a release that sees one, makes a system call. A waiter sleeps with
/// `futex_waitv` on the word and on a cancellation word that the async twin's cancellation sets, so a
/// cancellation is never lost. ``Connection/close()`` needs no hook: the holder's wait watches the
/// close, so the holder gives the turn back, and each waiter that gets it sees the close in turn.
internal final class ConnectionTurn: @unchecked Sendable {
    // Only touched through atomic helpers and the futex system calls; its own allocation keeps the
    // address stable.
    private let word: UnsafeMutablePointer<UInt32>

    private static let free: UInt32 = 0, taken: UInt32 = 1, contended: UInt32 = 2

    internal init() {
        word = .allocate(capacity: 1)
        word.initialize(to: ConnectionTurn.free)
    }

    deinit { word.deallocate() }

    /// Takes the turn if it is free, without waiting.
    @inline(__always)
    internal func tryTake() -> Bool {
        var expected = ConnectionTurn.free
        return SharedWord(word).compareExchange(&expected, ConnectionTurn.taken)
    }

    /// Takes the turn, waiting until it is free, the deadline passes or the interrupt triggers.
    /// - Parameters:
    ///   - deadline: The caller's own deadline.
    ///   - interrupt: The async twin's cancellation; nil for a blocking call.
    ///   - what: Names the call in errors, e.g. "receive".
    /// - Throws: `.timedOut` or `.cancelled`; the turn is then not held.
    internal func take(deadline: Deadline, interrupt: IPCInterrupt?, _ what: String) throws(MultiprocessingError) {
        if tryTake() { return }
        let shared = SharedWord(word)
        let cancellation = interrupt == nil ? CancellationWord.never : CancellationWord()
        interrupt?.setSource(.futex(cancellation))
        defer { interrupt?.setSource(nil) }
        while true {
            // Marks the turn contended, so that its holder wakes a waiter when it gives it back.
            if shared.exchange(ConnectionTurn.contended) == ConnectionTurn.free { return }
            let result: FutexWaitResult
            do throws(MultiprocessingError) {
                if cancellation.isCancelled { throw MultiprocessingError.cancelledWait("a connection") }
                if deadline.hasPassed { throw timedOut(what) }
                do throws(Errno) {
                    result = try system_futexWaitCancellable(word, expected: ConnectionTurn.contended, shared: false,
                                                             cancelWord: cancellation.word, deadline: deadline.nanoseconds)
                } catch {
                    throw MultiprocessingError.system("waiting for a turn on a connection (futex_waitv)", error)
                }
                if result == .timedOut { throw timedOut(what) }
            } catch {
                // A release may have woken this waiter just as it gave up: pass the wake-up on.
                shared.wake(1, shared: false)
                throw error
            }
        }
    }

    /// Gives the turn back, waking one waiter if there may be any.
    @inline(__always)
    internal func give() {
        if SharedWord(word).exchange(ConnectionTurn.free) == ConnectionTurn.contended {
            SharedWord(word).wake(1, shared: false)
        }
    }

    /// Whether some thread holds the turn, and whether another may be waiting for it (for tests).
    internal var isTaken: Bool { SharedWord(word).load() != ConnectionTurn.free }
    internal var isContended: Bool { SharedWord(word).load() == ConnectionTurn.contended }

    private func timedOut(_ what: String) -> MultiprocessingError {
        MultiprocessingError(.timedOut, "Connection.\(what) timed out while another thread of this process was using the connection for the same direction (a \(what) waits for the one before it to finish).")
    }
}
