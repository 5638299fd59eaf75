// The tutorial's "Managers": processes can't see each other's data, so they share it through a
// manager, a server process that owns the objects. Three commands: `manager` (the seed's idea),
// and `manager-server` / `manager-client`, a standalone server reached over TCP with a key.
import ArgumentParser
import Multiprocessing
import MultiprocessingManager
#if canImport(Glibc)
import Glibc
#endif

/// One worker: writes its square into the shared dictionary and its number into the shared list.
struct FillTask: ProcessTask {
    var number: Int
    var squares: ManagedDictionary<String, Int>
    var numbers: ManagedList<Int>
    var total: ManagedDictionary<String, Int>
    func run() throws {
        try squares.set("p\(number)", number * number)
        try numbers.append(number)
        try total.increment("sum", by: number)   // atomic on the server: no lost update
    }
}

struct ManagerExample: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "manager",
        abstract: "processes fill one shared dict and list through a manager")
    @Option(help: "how many worker processes") var workers = 5
    func run() throws {
        // Python: with Manager() as manager: d = manager.dict(); l = manager.list()
        let manager = Manager()
        try manager.start()
        defer { try? manager.shutdown() }
        let squares = try manager.dictionary(String.self, Int.self)
        let numbers = try manager.list(Int.self)
        let total = try manager.dictionary(String.self, Int.self)
        let children = (0..<workers).map { ChildProcess(FillTask(number: $0, squares: squares, numbers: numbers, total: total)) }
        for child in children { try child.start() }
        for child in children { try child.join() }
        let dict = try squares.snapshot().sorted { $0.key < $1.key }
        print("dict: {" + dict.map { "'\($0.key)': \($0.value)" }.joined(separator: ", ") + "}")
        print("list: \(try numbers.snapshot().sorted())")
        print("sum: \(try total.get("sum") ?? 0)")
    }
}

/// Reads a key file: its text, without the trailing newline.
func readKeyFile(_ path: String) throws -> AuthKey {
    guard let file = fopen(path, "r") else {
        throw ValidationError("cannot read the key file \(path)")
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, file)
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return AuthKey(String(decoding: bytes, as: UTF8.self))
}

struct ManagerServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "manager-server",
        abstract: "serve a dictionary named counters on 127.0.0.1:PORT until SIGTERM")
    @Option(help: "the TCP port on 127.0.0.1") var port: Int
    @Option(name: .customLong("authkey-file"), help: "a file holding the key") var authkeyFile: String
    func run() throws {
        let key = try readKeyFile(authkeyFile)
        // Whatever the parent set, SIGTERM must end this server.
        signal(SIGTERM, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigprocmask(SIG_UNBLOCK, &set, nil)
        try Manager.serveForever(address: .tcp(host: "127.0.0.1", port: port), authKey: key) { _ in
            // `counters` is created by name on first use (get-or-create), by any client.
            print("ready")
            fflush(nil)
        }
    }
}

struct ManagerClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "manager-client",
        abstract: "atomically increment counters[KEY] N times on a manager-server, print the value")
    @Option(help: "the server's TCP port on 127.0.0.1") var port: Int
    @Option(name: .customLong("authkey-file"), help: "a file holding the key") var authkeyFile: String
    @Option(help: "the counter to increment") var key: String
    @Option(help: "how many increments") var times = 1
    func run() throws {
        let authKey = try readKeyFile(authkeyFile)
        do {
            let manager = try Manager.connect(address: .tcp(host: "127.0.0.1", port: port), authKey: authKey)
            let counters = try manager.dictionary(String.self, Int.self, name: "counters")
            var value = try counters.get(key) ?? 0
            for _ in 0..<times { value = try counters.increment(key) }
            print("incremented counters[\(key)] \(times) times")
            print(value)
        } catch let error as MultiprocessingError where error.code == .authenticationFailed {
            var standardError = StandardError()
            print("manager-client: authentication failed: \(error.message)", to: &standardError)
            throw ExitCode(2)
        }
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
