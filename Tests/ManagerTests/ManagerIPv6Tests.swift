import Testing
import Multiprocessing
import MultiprocessingManager
import ManagerTestSupport

// A manager over TCP on the IPv6 loopback (`::1`), used here and from a child process, and the
// text form of an IPv6 manager address.
@Suite struct ManagerIPv6Tests {
    @Test func aManagerServesOverTheIPv6Loopback() throws {
        let manager = Manager(address: .tcp(host: "::1", port: 0))
        try manager.start()
        defer { try? manager.shutdown() }
        guard case .tcp(let host, let port)? = manager.address else {
            Issue.record("not a TCP address: \(String(describing: manager.address))")
            return
        }
        #expect(host == "::1" && port > 0)
        #expect(manager.address?.description == "[::1]:\(port)")
        let dictionary = try manager.dictionary(String.self, Int.self)
        try dictionary.set("here", 1)
        let writer = ChildProcess(SetEntryTask(dictionary: dictionary, key: "child", value: 2))
        try writer.start()
        try writer.value(timeout: .seconds(120))
        #expect(try dictionary.get("here") == 1 && dictionary.get("child") == 2)
    }

    @Test func anIPv6AddressParsesOnlyInBrackets() {
        #expect(ManagerAddress("[::1]:5000") == .tcp(host: "::1", port: 5000))
        #expect(ManagerAddress("[::1]:5000")?.description == "[::1]:5000")
        #expect(ManagerAddress("[fe80::1%eth0]:7") == .tcp(host: "fe80::1%eth0", port: 7))
        #expect(ManagerAddress("::1:5000") == nil)
        #expect(ManagerAddress("[::1:5000") == nil)
        #expect(ManagerAddress("[]:5000") == nil)
        #expect(ManagerAddress("127.0.0.1:5000")?.description == "127.0.0.1:5000")
    }
}
