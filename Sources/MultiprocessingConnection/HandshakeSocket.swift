import Multiprocessing
import MultiprocessingSystem
import SystemPackage

/// A blocking stream socket during a listener's or client's handshake, with an absolute deadline
/// over the whole handshake (a socket timeout would restart with every byte, and a peer sending a
/// byte every few seconds would hold the connection for ever). It reads exactly what is asked and
/// nothing more, so a message the peer sends right after the handshake stays in the socket for
/// the `Connection` that takes it over.
internal struct HandshakeSocket: HandshakeChannel {
    let descriptor: CInt
    /// CLOCK_MONOTONIC nanoseconds; nil for no limit.
    let deadline: Int64?
    let peer: String
    let timeout: Duration

    func readExactly(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            if let deadline {
                let left = deadline - ConnectionPlatform.monotonicNanoseconds()
                let milliseconds = left <= 0 ? 0 : CInt(clamping: (left + 999_999) / 1_000_000)
                guard left > 0, ConnectionPlatform.waitReadable(descriptor, milliseconds: milliseconds) else {
                    throw MultiprocessingError(.timedOut,
                        "The handshake with \(peer) did not finish within \(timeout): the peer sent \(filled) of the \(count) bytes it owed and then stalled (not a peer of this library, or a stalled one).")
                }
            }
            var n: Int?
            var failure: Errno?
            bytes.withUnsafeMutableBytes { raw in
                do throws(Errno) {
                    n = try ConnectionPlatform.readNow(descriptor, UnsafeMutableRawBufferPointer(rebasing: raw[filled...]))
                } catch {
                    failure = error
                }
            }
            if let failure {
                guard failure == .connectionReset else {
                    throw MultiprocessingError(.systemCall, "Reading the handshake from \(peer) failed: \(failure)", errno: failure)
                }
                n = 0
            }
            guard let n else {
                if deadline == nil { _ = ConnectionPlatform.waitReadable(descriptor, milliseconds: -1) }
                continue
            }
            if n == 0 {
                if filled == 0 {
                    throw MultiprocessingError(.endOfStream, "\(peer) closed the connection during the handshake.")
                }
                throw MultiprocessingError(.malformedFrame, "\(peer) closed the connection in the middle of a handshake message (after \(filled) of \(count) bytes).")
            }
            filled += n
        }
        return bytes
    }

    func write(_ bytes: [UInt8]) throws(Errno) {
        var failure: Errno?
        bytes.withUnsafeBytes { raw in
            do throws(Errno) { try ConnectionPlatform.writeAll(descriptor, raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The deadline `timeout` from now (nil for no limit or one past the clock's end).
    static func deadline(after timeout: Duration?) -> Int64? {
        guard let timeout else { return nil }
        let (seconds, attoseconds) = timeout.components
        let (ns, overflow1) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        guard !overflow1, !overflow2 else { return nil }
        let (deadline, overflow3) = ConnectionPlatform.monotonicNanoseconds().addingReportingOverflow(max(0, total))
        return overflow3 ? nil : deadline
    }
}
