// The managers' and connections' Python names, as docs/python-to-swift.md (and docs/zh) write
// them: Manager().dict/list/Namespace/Value/Lock, `with Manager() as m`, and
// multiprocessing.connection's Listener and Client with an authkey. A renamed or re-shaped mapping
// stops this file compiling; the tests run each once, with a real child.
import Multiprocessing
import MultiprocessingConnection
import MultiprocessingManager
import Testing

/// The guide's `work(d, l, n)`: the proxies travel to the child inside the task.
struct PythonNamesFillTask: ProcessTask {
    var number: Int
    var squares: ManagedDictionary<String, Int>
    var numbers: ManagedList<Int>
    var settings: ManagedNamespace<PythonNamesSettings>
    var total: ManagedValue<Int>
    var lock: ManagedLock
    func run() throws {
        try squares.set("p\(number)", number * number)     // d[n] = n * n
        _ = try numbers.append(number)                      // l.append(n)
        try lock.withLock {                                 // with m.Lock():
            _ = try total.increment(by: number)             // v.value += n, atomically
        }
        _ = try settings.update { $0.visits += 1 }          // ns.visits += 1
    }
}

/// A manager's `Namespace`: a `Codable` struct instead of free attributes.
struct PythonNamesSettings: Codable, Sendable {
    var label: String
    var visits: Int
}

/// The other side of `Client(address, authkey=b'secret')`.
struct PythonNamesClientTask: ProcessTask {
    var address: ConnectionAddress
    func run() throws {
        let connection = try Connection.connect(to: address, authKey: AuthKey("secret"))
        try connection.send("hello")
    }
}

@Suite struct PythonNamesManagerTests {
    @Test func managerNames() throws {
        try Manager.with { manager in                                       // with Manager() as manager:
            let squares = try manager.dictionary(String.self, Int.self)     // manager.dict()
            let numbers = try manager.list(Int.self)                        // manager.list()
            let settings = try manager.namespace(PythonNamesSettings(label: "x", visits: 0))   // manager.Namespace()
            let total = try manager.value(0)                                // manager.Value('i', 0)
            let lock = try manager.lock()                                   // manager.Lock()
            let children = (0..<3).map { n in
                ChildProcess(PythonNamesFillTask(number: n, squares: squares, numbers: numbers,
                                                 settings: settings, total: total, lock: lock))
            }
            for child in children { try child.start() }
            for child in children { try child.join(timeout: .seconds(60)) }
            #expect(try squares.snapshot() == ["p0": 0, "p1": 1, "p2": 4])
            #expect(try numbers.snapshot().sorted() == [0, 1, 2])
            #expect(try total.get() == 3)
            #expect(try settings.visits == 3)                               // ns.visits
        }
    }

    @Test func listenerAndClientWithAnAuthkey() throws {
        // with Listener(('127.0.0.1', 0), authkey=b'secret') as listener:
        let listener = try Listener(address: .tcp(host: "127.0.0.1", port: 0), authKey: AuthKey("secret"))
        defer { listener.close() }
        let client = ChildProcess(PythonNamesClientTask(address: listener.address))
        try client.start()
        let connection = try listener.accept(timeout: .seconds(60))         // conn = listener.accept()
        #expect(try connection.receive(String.self, timeout: .seconds(60)) == "hello")   // conn.recv()
        try client.join(timeout: .seconds(60))
        #expect(client.exitCode == 0)
    }
}
