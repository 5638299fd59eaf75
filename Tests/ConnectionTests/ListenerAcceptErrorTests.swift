import Foundation
import Testing
import TestHarness
import Multiprocessing
import MultiprocessingConnection

// Outside checks (red team): what accept(2) may say to a Listener. Linux passes a new
// connection's pending network error to accept(2), and that connection is gone (accept(2)'s man
// page says to accept again). `Listener.accept` threw the first one (ENETDOWN, EPERM...) to its
// caller, although the next client was fine; it retried only ECONNABORTED and EPROTO.

/// Listens on loopback, tells the parent where, and returns what the first client it accepts
/// sends (or the error of its accept). Run with the accept-faults library preloaded.
struct ListenThroughAcceptFaults: ProcessTask {
    var report: Connection
    init(report: Connection) { self.report = report }
    func run() throws -> String {
        let listener = try Listener(address: .tcp(host: "127.0.0.1", port: 0))
        try report.send(listener.address)
        do {
            let connection = try listener.accept(timeout: .seconds(60))
            return try connection.receive(String.self, timeout: .seconds(60))
        } catch {
            return "accept failed: \(error)"
        }
    }
}

@Suite("Listener accept errors")
struct ListenerAcceptErrorTests {
    /// Three connections that accept(2) reports as ENETDOWN, EPERM (a firewall) and EHOSTUNREACH
    /// (each taken and closed, as the kernel does): the Listener accepts the fourth. Before, its
    /// accept threw "ENETDOWN".
    @Test func aConnectionsNetworkErrorIsRetriedByAccept() throws {
        let library = try preloadLibrary(fixture: "accept-faults/accept_faults.c")
        let (report, reportEnd) = try Connection.pipe(duplex: true)
        let configuration = ChildProcessConfiguration(environment: [
            "LD_PRELOAD": library, "MP_ACCEPT_FAULTS": [ENETDOWN, EPERM, EHOSTUNREACH].map(String.init).joined(separator: ","),
        ])
        let child = ChildProcess(ListenThroughAcceptFaults(report: reportEnd), configuration: configuration)
        try child.start()
        let address = try report.receive(ConnectionAddress.self, timeout: .seconds(120))
        var refused = 0
        for _ in 0..<10 {
            do {
                let connection = try Connection.connect(to: address)
                try connection.send("served")
                break
            } catch {
                refused += 1
            }
        }
        #expect(refused == 3)
        #expect(try child.value(timeout: .seconds(120)) == "served")
    }
}
