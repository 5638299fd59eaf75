// End-to-end tests of the seed's examples: each runs the built `examples` binary with short intervals
// and checks its output for the facts that do not depend on scheduling.
import Foundation
import TestHarness
import Testing

/// What one run of the `examples` binary printed.
struct ExampleRun {
    var status: Int32
    var output: String
    var seconds: Double
    var lines: [String] { output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }

    func count(_ line: String) -> Int { lines.filter { $0 == line }.count }
    func count(containing text: String) -> Int { lines.filter { $0.contains(text) }.count }
}

enum ExampleBinary {
    /// The `examples` executable SwiftPM built beside this test bundle (found from /proc/self/exe,
    /// looking in its directory and then its parents).
    static let url: URL? = builtExecutable("examples").map { URL(fileURLWithPath: $0) }
}

struct ExampleTimeout: Error, CustomStringConvertible {
    var arguments: [String]
    var description: String { "examples \(arguments.joined(separator: " ")) did not finish in time" }
}

/// Runs `examples ARGUMENTS`, killing it after `timeout` seconds (which fails the test: every example
/// must finish by itself).
func runExample(_ arguments: [String], timeout: Double = 30) throws -> ExampleRun {
    let binary = try #require(ExampleBinary.url, "the examples binary was not built beside the tests")
    let process = Foundation.Process()
    process.executableURL = binary
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    let start = Date()
    try process.run()
    let timedOut = TimeoutFlag()
    let pid = process.processIdentifier
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
        if process.isRunning {
            timedOut.set()
            kill(pid, SIGKILL)
        }
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if timedOut.isSet { throw ExampleTimeout(arguments: arguments) }
    return ExampleRun(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self),
                      seconds: Date().timeIntervalSince(start))
}

final class TimeoutFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// The integer at the end of `line` after `prefix`, e.g. `"n = 0"` → 0.
func number(after prefix: String, in line: String) -> Double? {
    guard let range = line.range(of: prefix) else { return nil }
    let rest = line[range.upperBound...].prefix { $0.isNumber || $0 == "." || $0 == "-" }
    return Double(rest)
}

// Serialized: the examples measure time and count threads, so they should not compete for the two
// cores with each other.
@Suite("Examples", .serialized)
struct ExamplesTests {
    @Test("examples with no argument lists every example")
    func listsEveryExample() throws {
        let run = try runExample([])
        #expect(run.status == 0)
        let names = ["process-start", "process-args", "process-ids", "process-daemon", "process-terminate",
                     "process-copier", "thread-start", "thread-args", "thread-daemon", "thread-order",
                     "thread-lock", "thread-rlock", "thread-semaphore", "thread-event", "thread-copier",
                     "thread-stop", "thread-cores", "queue", "pipe", "manager", "manager-server", "manager-client", "pool"]
        for name in names {
            #expect(run.lines.contains { $0.hasPrefix("  \(name) ") }, "\(name) is not listed:\n\(run.output)")
        }
        #expect(run.lines.count == names.count + 1)
    }

    // MARK: processes

    @Test("process-start: sing and draw, three lines each, from two processes")
    func processStart() throws {
        let run = try runExample(["process-start", "--interval", "0.05"])
        #expect(run.status == 0)
        #expect(run.count("singing") == 3)
        #expect(run.count("drawing") == 3)
        #expect(run.lines.count == 6, "\(run.output)")
    }

    @Test("process-args: arguments by position and by name reach the children")
    func processArgs() throws {
        let run = try runExample(["process-args", "--interval", "0.05"])
        #expect(run.status == 0)
        #expect(run.count("singing") == 3)
        #expect(run.count("drawing") == 3)
        #expect(run.lines.count == 6, "\(run.output)")
    }

    @Test("process-ids: the child's parent pid is the parent's pid")
    func processIDs() throws {
        let run = try runExample(["process-ids"])
        #expect(run.status == 0)
        #expect(run.lines.count == 2, "\(run.output)")
        let parent = try #require(run.lines.first { $0.hasPrefix("parent MainProcess") })
        let child = try #require(run.lines.first { $0.hasPrefix("child  sing-process") })
        let parentPID = try #require(number(after: ": pid ", in: parent))
        let childPID = try #require(number(after: ": pid ", in: child))
        let childsParent = try #require(number(after: "parent pid ", in: child))
        #expect(childsParent == parentPID)
        #expect(childPID != parentPID)
    }

    @Test("process-daemon: the daemon child dies when the main process ends")
    func processDaemon() throws {
        // The child would print 10 lines over 5 s; the main process ends after 0.25 s, and the child
        // with it. Only the upper bound is the property: how many lines a loaded machine lets the child
        // print first is not.
        let run = try runExample(["process-daemon", "--interval", "0.5", "--wait", "0.25"])
        #expect(run.status == 0)
        #expect(run.count(containing: "主进程结束") == 1)
        #expect(run.count("singing") < 10, "\(run.output)")
    }

    @Test("process-terminate: SIGTERM, joined, and no zombie in /proc")
    func processTerminate() throws {
        // The child would print 10 lines over 5 s; it is terminated after 0.25 s.
        let run = try runExample(["process-terminate", "--interval", "0.5", "--wait", "0.25"])
        #expect(run.status == 0)
        #expect(run.lines.contains("terminated ChildProcess-1, exit code -15"), "\(run.output)")
        let proc = try #require(run.lines.first { $0.hasPrefix("/proc/") && $0.contains(" after join: ") })
        #expect(proc.hasSuffix("after join: gone (reaped: no zombie)"))
        #expect(run.count("singing") < 10, "\(run.output)")
    }

    // MARK: threads

    @Test("thread-start: sing and dance, five lines each")
    func threadStart() throws {
        let run = try runExample(["thread-start", "--interval", "0.02"])
        #expect(run.status == 0)
        #expect(run.count("sing") == 5)
        #expect(run.count("dance") == 5)
        #expect(run.lines.count == 10)
    }

    @Test("thread-args: arguments by position and by name")
    func threadArgs() throws {
        let run = try runExample(["thread-args", "--interval", "0.02"])
        #expect(run.status == 0)
        #expect(run.count("sing") == 3)
        #expect(run.count("dance") == 3)
        #expect(run.lines.count == 6)
    }

    @Test("thread-daemon: the daemon thread does not keep the process alive")
    func threadDaemon() throws {
        // The thread would print its 5th line at 4 s; the main thread ends after 0.3 s, and the
        // process with it. Only the upper bound is the property.
        let run = try runExample(["thread-daemon", "--interval", "1", "--wait", "0.3"])
        #expect(run.status == 0)
        #expect(run.count(containing: "主线程结束") == 1)
        #expect(run.count("sing") < 5, "\(run.output)")
    }

    @Test("thread-order: five threads, each prints its own name and ident")
    func threadOrder() throws {
        let run = try runExample(["thread-order", "--interval", "0.05"])
        #expect(run.status == 0)
        #expect(run.lines.count == 5, "\(run.output)")
        #expect(run.lines.allSatisfy { $0.hasPrefix("<OSThread(Thread-") && $0.hasSuffix(")>") })
        let names = Set(run.lines.map { $0.split(separator: ",")[0] })
        let idents = run.lines.compactMap { number(after: "started ", in: $0) }
        #expect(names.count == 5)
        // Every line names an ident, but not necessarily a distinct one: an ident is the pthread
        // handle, which (as Python's `threading.get_ident()`) a thread started after another ended may
        // reuse. On a loaded machine a thread can finish its 50 ms before the fifth one starts.
        #expect(idents.count == 5 && idents.allSatisfy { $0 > 0 }, "\(run.output)")
    }

    @Test("thread-lock: 100 decrements under the lock end at 0")
    func threadLock() throws {
        let run = try runExample(["thread-lock", "--interval", "0.001"])
        #expect(run.status == 0)
        #expect(run.lines == ["n = 0"])
    }

    @Test("thread-lock --unlocked: without the lock, updates are lost")
    func threadLockUnlocked() throws {
        // Each thread holds the value for 50 ms; 100 threads start within that time, so most read
        // the same value. The point of the lock, shown by its absence.
        let run = try runExample(["thread-lock", "--unlocked", "--interval", "0.05"])
        #expect(run.status == 0)
        let line = try #require(run.lines.first)
        let n = try #require(number(after: "n = ", in: line))
        #expect(n > 0)
    }

    @Test("thread-rlock: each thread takes the lock twice; the count prints 1 to 10 in order")
    func threadRLock() throws {
        let run = try runExample(["thread-rlock", "--interval", "0.01"])
        #expect(run.status == 0)
        #expect(run.lines == (1...10).map(String.init))
    }

    @Test("thread-semaphore: 22 threads, never more than 5 inside")
    func threadSemaphore() throws {
        let run = try runExample(["thread-semaphore", "--interval", "0.05"])
        #expect(run.status == 0)
        let runs = run.lines.filter { $0.hasPrefix("run the thread:") }
        #expect(Set(runs) == Set((0..<22).map { "run the thread:t-\($0)" }))
        #expect(runs.count == 22)
        let done = try #require(run.lines.firstIndex(of: "-----all threads done-----"))
        #expect(run.lines[..<done].filter { $0.hasPrefix("run the thread:") }.count == 22)
        let most = try #require(run.lines.first { $0.hasPrefix("most threads inside at once:") })
        let inside = try #require(number(after: "at once: ", in: most))
        #expect(inside >= 1 && inside <= 5)
    }

    @Test("thread-event: green, red, the car waits and goes; it stops after --seconds")
    func threadEvent() throws {
        // 30 ticks: green 0-5, red 6-10, green 11 onwards.
        let run = try runExample(["thread-event", "--seconds", "1.5", "--tick", "0.05"])
        #expect(run.status == 0)
        #expect(run.count("green light is on...") >= 1)
        #expect(run.count("red light is on...") >= 1)
        #expect(run.count("[MINI] running...") >= 1)
        #expect(run.count("[MINI] sees red light,waiting...") >= 1)
        #expect(run.count("[MINI] green light is on,start going...") >= 1)
        // Each wait ends in "start going" before the car runs again.
        let car = run.lines.filter { $0.hasPrefix("[MINI]") }
        for (i, line) in car.enumerated() where line.hasSuffix("waiting...") && i + 1 < car.count {
            #expect(car[i + 1].hasSuffix("start going..."), "\(car)")
        }
        let last = try #require(run.lines.last)
        #expect(last.hasPrefix("light off after 1.5 s; car stopped"))
        #expect(last.contains("cancelled"))
        #expect(run.seconds < 10)
    }

    @Test("thread-stop: the thread stops by cancellation, the child process by SIGTERM")
    func threadStop() throws {
        let run = try runExample(["thread-stop", "--interval", "0.01", "--after", "0.1"])
        #expect(run.status == 0)
        let threadStopped = try #require(run.lines.firstIndex { $0.hasPrefix("stopped: thread print_time ended by cancellation") })
        #expect(run.lines[threadStopped].contains("was cancelled"))
        let processStopped = try #require(run.lines.firstIndex { $0.hasPrefix("stopped: process print_time-process terminated") })
        #expect(run.lines[processStopped].hasSuffix("exit code -15"))
        #expect(threadStopped < processStopped)
        #expect(processStopped == run.lines.count - 1, "output after the child was joined")
        // Each round is six lines in one write: whole rounds, in order, on both sides.
        let numbers = ["111111111111", "222222222222", "333333333333", "444444444444", "555555555555", "666666666666"]
        let threadPart = run.lines[..<threadStopped], processPart = run.lines[(threadStopped + 1)..<processStopped]
        #expect(threadPart.count >= 6, "the thread ran at least one round before it was cancelled")
        for part in [threadPart, processPart] {
            #expect(part.count % 6 == 0, "\(part)")
            for (i, line) in part.enumerated() { #expect(line == numbers[i % 6]) }
        }
    }

    @Test("thread-cores: one and two threads compute the same, and the speed-up is printed")
    func threadCores() throws {
        let run = try runExample(["thread-cores", "--millions", "5"])
        #expect(run.status == 0)
        #expect(run.lines.contains("same results: true"), "\(run.output)")
        let speedUp = try #require(run.lines.first { $0.hasPrefix("speed-up: ") })
        let factor = try #require(number(after: "speed-up: ", in: speedUp))
        #expect(factor > 0)
        #expect(run.count(containing: "2 jobs in") == 2)
    }

    // MARK: copiers

    /// A source folder of `count` files of different sizes, and a destination path that may exist.
    func makeFolders(count: Int, destinationExists: Bool) throws -> (root: URL, source: URL, dest: URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("examples-test-\(UUID().uuidString)")
        let source = root.appendingPathComponent("src"), dest = root.appendingPathComponent("dst")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        if destinationExists { try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true) }
        for i in 0..<count {
            let bytes = (0..<(i * 5_000 + 3)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
            try Data(bytes).write(to: source.appendingPathComponent("f\(i).dat"))
        }
        return (root, source, dest)
    }

    func expectSameFiles(_ source: URL, _ dest: URL, count: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: dest.path).sorted()
        #expect(names == (0..<count).map { "f\($0).dat" }.sorted(), "no temporaries or strays", sourceLocation: sourceLocation)
        for name in names {
            let a = try Data(contentsOf: source.appendingPathComponent(name))
            let b = try Data(contentsOf: dest.appendingPathComponent(name))
            #expect(a == b, "\(name) differs", sourceLocation: sourceLocation)
        }
    }

    @Test("process-copier and thread-copier: one worker per file, every file identical", arguments: ["process", "thread"])
    func naiveCopier(kind: String) throws {
        let (root, source, dest) = try makeFolders(count: 6, destinationExists: false)
        defer { try? FileManager.default.removeItem(at: root) }
        let run = try runExample(["\(kind)-copier", source.path, dest.path])
        #expect(run.status == 0, "\(run.output)")
        let copied = run.lines.filter { $0.hasPrefix("copied f") }
        #expect(copied.count == 6, "\(run.output)")
        // One worker per file: six different processes, or six different threads.
        let workers = Set(copied.compactMap { $0.split(separator: " ").last })
        #expect(workers.count == 6)
        #expect(run.lines.contains("copied 6 files with 6 \(kind == "process" ? "processes" : "threads") (one per file)"))
        #expect(run.lines.last == "check: 6 of 6 files in the destination are identical to the source")
        #expect(run.count(containing: "目标文件夹已存在") == 0)
        try expectSameFiles(source, dest, count: 6)
    }

    @Test("process-copier and thread-copier --engine: mpcp's engine, into an existing folder", arguments: ["process", "thread"])
    func engineCopier(kind: String) throws {
        let (root, source, dest) = try makeFolders(count: 5, destinationExists: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let run = try runExample(["\(kind)-copier", "--engine", source.path, dest.path])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.count(containing: "目标文件夹已存在") == 1)
        #expect(run.lines.contains { $0.hasPrefix("copied 5 files, ") && $0.contains("with the MPCopy engine") && $0.contains("worker \(kind == "process" ? "processes" : "threads")") },
                "\(run.output)")
        #expect(run.count(containing: "what the engine does better") == 1)
        #expect(run.lines.last == "check: 5 of 5 files in the destination are identical to the source")
        try expectSameFiles(source, dest, count: 5)
    }

    @Test("process-copier with no folders copies a demo folder and removes it")
    func demoCopier() throws {
        let before = try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("examples-copier-") }
        let run = try runExample(["process-copier", "--files", "4"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.lines.first?.hasPrefix("demo: 4 files in /tmp/examples-copier-") == true)
        #expect(run.lines.last == "check: 4 of 4 files in the destination are identical to the source")
        let after = try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("examples-copier-") }
        #expect(Set(after).subtracting(before).isEmpty, "the demo folder was left behind")
    }

    // MARK: pipe

    @Test("pipe: a parent and a child exchange a message each way over a connection")
    func pipe() throws {
        let run = try runExample(["pipe"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.lines.contains("parent received: hello from the child"))
        #expect(run.lines.contains("child received: hello from the parent"))
    }

    // MARK: queue

    @Test("queue: every item is put once and delivered to exactly one consumer")
    func queue() throws {
        let run = try runExample(["queue", "--items", "20", "--interval", "0.005"])
        #expect(run.status == 0)
        let expected = (0..<20).map { "item-\($0)" }
        let put = run.lines.filter { $0.hasPrefix("[producer] put ") }.map { String($0.dropFirst("[producer] put ".count)) }
        #expect(put == expected)
        let got = run.lines.filter { $0.hasPrefix("[consumer-") }.compactMap { $0.split(separator: " ").last.map(String.init) }
        #expect(got.sorted() == expected.sorted(), "\(run.output)")
        let taken = run.lines.filter { $0.hasSuffix(" items") && $0.contains(" took ") }
            .compactMap { number(after: " took ", in: $0) }
        #expect(taken.count == 2)
        #expect(taken.reduce(0, +) == 20)
        #expect(run.lines.last == "delivered 20 of 20 items")
    }
}
