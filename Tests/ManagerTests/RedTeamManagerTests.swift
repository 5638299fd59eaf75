import Testing
import Multiprocessing
@testable import MultiprocessingManager

// Outside checks (red team): limits no server can serve with.

extension ManagerTests {
    /// `ManagerLimits` were not checked: `maximumMessageSize: -1` started a server whose
    /// connection thread trapped on the first request (`UInt64(-1)`), so every call failed with
    /// "the server closed the connection"; `maximumConnections: 0` refused every client "at its
    /// maximum of 1 connections"; a zero or negative `handshakeTimeout` failed every handshake.
    /// (Seen failing: `start()` returned for each of them.) Now `start()` refuses them with
    /// `.misuse`, naming the field.
    @Test(arguments: [
        (ManagerLimits(maximumMessageSize: -1), "maximumMessageSize"),
        (ManagerLimits(maximumMessageSize: 0), "maximumMessageSize"),
        (ManagerLimits(maximumConnections: 0), "maximumConnections"),
        (ManagerLimits(maximumConnections: -5), "maximumConnections"),
        (ManagerLimits(handshakeTimeout: .seconds(-1)), "handshakeTimeout"),
        (ManagerLimits(handshakeTimeout: .zero), "handshakeTimeout"),
        (ManagerLimits(maximumPendingHandshakes: -3), "maximumPendingHandshakes"),
    ])
    func limitsNoServerCanServeWithAreRefusedAtStart(limits: ManagerLimits, field: String) throws {
        let manager = Manager(limits: limits)
        do {
            try manager.start()
            try? manager.shutdown()
            Issue.record("start() accepted \(limits)")
        } catch let error as MultiprocessingError {
            #expect(error.code == .misuse, "\(error)")
            #expect("\(error)".contains(field), "\(error)")
        }
        #expect(manager.serverExitStatus == nil)
        // The smallest accepted size serves.
        let small = Manager(limits: ManagerLimits(maximumMessageSize: ManagerLimits.smallestMessageSize))
        try small.start()
        defer { try? small.shutdown() }
        let d = try small.dictionary(String.self, Int.self)
        try d.set("a", 1)
        #expect(try d.get("a") == 1)
    }
}

extension ManagerTests {
    /// A request over the server's `maximumMessageSize`, or a reply over what a client reads,
    /// failed with "The manager server … closed the connection (it died or shut down) before
    /// replying": the server had neither died nor shut down, and nothing named the limit. (Seen
    /// failing with that message for both.) Now the server replies why before it closes, and the
    /// client names its own limit for a reply (256 MiB: not tested, a 300 MiB reply takes minutes
    /// in a debug build); the server and the proxies go on working.
    @Test func requestsAndRepliesOverTheLimitsSayWhichLimit() throws {
        let manager = try started(ManagerLimits(maximumMessageSize: 1 << 20))
        defer { try? manager.shutdown() }
        let values = try manager.dictionary(String.self, [UInt8].self)
        do {
            try values.set("big", [UInt8](repeating: 1, count: 8 << 20))
            Issue.record("an 8 MiB request was taken by a server limited to 1 MiB")
        } catch let error as MultiprocessingError {
            #expect(error.code == .misuse, "\(error)")
            #expect(error.message.contains("maximumMessageSize of 1048576 bytes"), "\(error)")
        }
        try values.set("small", [1])
        #expect(try values.get("small") == [1])
        #expect(manager.serverExitStatus == nil)
    }
}
