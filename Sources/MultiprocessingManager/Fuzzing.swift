import Multiprocessing
import SystemPackage
import MultiprocessingSystem

/// The server's request handler in this process, for the libFuzzer target in `Fuzz/` (see
/// docs/managers.md, Fuzzing). Not API: it is behind `@_spi(Fuzzing)`.
///
/// It holds a server with no listener and one object of every kind, and hands each request to
/// the same `handle` a connection's thread calls. Calls that would wait give up at once instead
/// (after the same deadline arithmetic), so that the fuzzer never blocks.
@_spi(Fuzzing) public final class ManagerFuzzing: @unchecked Sendable {
    // @unchecked: used by the fuzzer's one thread.
    private let server: ManagerServer
    private let connection: ConnectionContext

    /// A server holding a dictionary, a list, a value, a bounded queue, a lock, an RLock, a
    /// semaphore, an event, a condition and a barrier (object ids 1 to 10), then a bounded
    /// semaphore (11) and an array (12).
    ///
    /// - Throws: `MultiprocessingError/Code/systemCall` when no socket can be made.
    public init() throws {
        server = ManagerServer(listener: -1, key: AuthKey([1]), limits: ManagerLimits(), actorTypeNames: [])
        let descriptor: CInt
        do throws(Errno) {
            descriptor = try ManagerPlatform.unixSocket()
        } catch {
            throw MultiprocessingError(.systemCall, "ManagerFuzzing: cannot make a socket: \(error)", errno: error)
        }
        connection = ConnectionContext(socket: FrameSocket(descriptor: descriptor, maximumMessageSize: 1 << 20), client: 1)
        connection.neverWaits = true
        let kinds: [CreateRequest] = [.dictionary, .list, .value(initial: []), .queue(maximumSize: 2), .lock, .rLock,
                                      .semaphore(value: 1), .event, .condition, .barrier(parties: 2),
                                      .boundedSemaphore(value: 1), .array(elements: [[0], [1], [2]])]
        for kind in kinds {
            _ = try server.handle(ManagerWire.encodeRequest(.create(name: nil, kind)), connection)
        }
    }

    /// Serves each request cut from `data`: a sequence of (2-byte little-endian length, body)
    /// records, the last one taking whatever remains. Errors are the replies a client would get;
    /// only a crash or a hang is a finding.
    ///
    /// - Parameter data: the fuzzer's input.
    public func serve(_ data: UnsafeRawBufferPointer) {
        var position = 0
        while position < data.count {
            var length = data.count - position
            if length >= 2 {
                length = min(Int(data[position]) | Int(data[position + 1]) << 8, data.count - position - 2)
                position += 2
            }
            let request = Array(data[position..<(position + length)])
            position += length
            _ = try? server.handle(request, connection)
            connection.shutdownRequested = false
        }
    }
}
