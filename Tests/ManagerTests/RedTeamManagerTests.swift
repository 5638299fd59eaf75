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
