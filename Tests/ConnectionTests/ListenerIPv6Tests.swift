import Foundation
import Testing
import Multiprocessing
import MultiprocessingConnection

// IPv6 over the real loopback (`::1`; this machine's `ip -6 addr` shows it on lo): a listener and
// its clients in threads and in a child process, the bracketed form, and a bad literal.
@Suite("Listener over IPv6")
struct ListenerIPv6Tests {
    @Test func aListenerOnTheIPv6LoopbackServesAChildAndAThread() throws {
        let listener = try Listener(address: .tcp(host: "::1", port: 0))
        guard case .tcp(let host, let port) = listener.address else {
            Issue.record("not a TCP address: \(listener.address)")
            return
        }
        #expect(host == "::1" && port > 0)
        #expect("\(listener.address)" == "[::1]:\(port)")
        // A child, given the listener's address.
        let child = ChildProcess(ConnectAndReport(address: listener.address), name: "client-ipv6")
        try child.start()
        let connection = try listener.accept(timeout: .seconds(60))
        #expect(try connection.receive(String.self, timeout: .seconds(60)) == "\(child.pid ?? 0) client-ipv6")
        try connection.send("echo ipv6")
        #expect(try connection.receive(String.self, timeout: .seconds(60)) == "echo ipv6")
        #expect(try child.value(timeout: .seconds(60)) == "connected")
        // A thread, with the address written in brackets.
        let client = OSThread(name: "client") { () throws -> String in
            let connection = try Connection.connect(to: .tcp(host: "[::1]", port: port))
            try connection.send("bracketed")
            return try connection.receive(String.self, timeout: .seconds(60))
        }
        try client.start()
        let second = try listener.accept(timeout: .seconds(60))
        #expect(try second.receive(String.self, timeout: .seconds(60)) == "bracketed")
        try second.send("back")
        try client.join(timeout: .seconds(60))
        #expect(try client.result(as: String.self) == "back")
    }

    /// The listener binds ::1 only: an IPv4 client at the same port reaches nothing of it.
    @Test func anIPv6ListenerIsNotReachedOverIPv4() throws {
        let listener = try Listener(address: .tcp(host: "[::1]", port: 0))
        guard case .tcp(_, let port) = listener.address else { return }
        expectCode(.systemCall, "could not connect to 127.0.0.1:\(port)") {
            _ = try Connection.connect(to: .tcp(host: "127.0.0.1", port: port))
        }
    }

    @Test func aBadIPv6LiteralIsAClearError() {
        expectCode(.systemCall, "could not listen on [::zz]:0") { _ = try Listener(address: .tcp(host: "::zz", port: 0)) }
        expectCode(.systemCall, "could not connect to [fe80::1%no-such-interface]:1") {
            _ = try Connection.connect(to: .tcp(host: "fe80::1%no-such-interface", port: 1))
        }
    }
}
