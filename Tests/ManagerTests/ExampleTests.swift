import Foundation
import Testing
import TestHarness
import Multiprocessing
@testable import MultiprocessingManager
import MultiprocessingSystem

/// The built `examples` binary.
let examplesPath = builtExecutable("examples") ?? "examples-not-found"

func runExamples(_ arguments: [String]) throws -> ProgramOutput {
    try runProgram(examplesPath, arguments)
}

/// A free TCP port on loopback (bound, read, closed).
func freePort() throws -> Int {
    let fd = try ManagerPlatform.tcpSocket()
    defer { ManagerPlatform.close(fd) }
    return try ManagerPlatform.listenTCP(fd, host: "127.0.0.1", port: 0, backlog: 1)
}

extension ManagerTests {
    @Test func managerExampleFillsOneDictionaryAndList() throws {
        let result = try runExamples(["manager", "--workers", "4"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("dict: {'p0': 0, 'p1': 1, 'p2': 4, 'p3': 9}"))
        #expect(result.stdout.contains("list: [0, 1, 2, 3]"))
        #expect(result.lastLine == "sum: 6")
    }

    @Test func managerServerAndClientExamples() throws {
        let directory = NSTemporaryDirectory() + "mp-example-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keyFile = directory + "/key"
        let wrongFile = directory + "/wrong"
        try "example secret\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        try "not the secret\n".write(toFile: wrongFile, atomically: true, encoding: .utf8)
        let port = try freePort()

        let server = Foundation.Process()
        server.executableURL = URL(fileURLWithPath: examplesPath)
        server.arguments = ["manager-server", "--port", "\(port)", "--authkey-file", keyFile]
        let out = Foundation.Pipe()
        server.standardOutput = out
        try server.run()
        defer {
            if server.isRunning { kill(server.processIdentifier, SIGKILL) }
        }
        let ready = out.fileHandleForReading.availableData
        #expect(String(decoding: ready, as: UTF8.self).hasPrefix("ready"))

        // Two clients at once: atomic increments, so nothing is lost.
        let results = Mutex_<[ProgramOutput]>([])
        let clients = (0..<2).map { _ in
            Thread {
                if let r = try? runExamples(["manager-client", "--port", "\(port)", "--authkey-file", keyFile, "--key", "k", "--times", "300"]) {
                    results.update { $0.append(r) }
                }
            }
        }
        for client in clients { client.start() }
        #expect(eventually(within: .seconds(60)) { clients.allSatisfy(\.isFinished) })
        #expect(results.get().map(\.status) == [0, 0])
        let final = try runExamples(["manager-client", "--port", "\(port)", "--authkey-file", keyFile, "--key", "k", "--times", "1"])
        #expect(final.status == 0)
        #expect(final.lastLine == "601")

        let wrong = try runExamples(["manager-client", "--port", "\(port)", "--authkey-file", wrongFile, "--key", "k", "--times", "1"])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.lowercased().contains("authentication"))

        kill(server.processIdentifier, SIGTERM)
        #expect(eventually { !server.isRunning })
    }
}
