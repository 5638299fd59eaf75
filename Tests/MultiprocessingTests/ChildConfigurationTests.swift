import Foundation
import Testing
import TestHarness
import Multiprocessing
import Synchronization
import SystemPackage
import TestSupport

/// Set by this suite's tests as they start. A child reports it: true would mean that the test runner
/// ran in the child before its task did (what calling bootstrap() inside a test used to do).
let aConfigurationTestStartedHere = Atomic<Bool>(false)

/// Declared in the test target, as a user's test would: no helper binary knows it.
struct TaskDeclaredInTheTests: ProcessTask {
    var word: String
    func run() -> ChildFacts {
        ChildFacts(word: word + "!",
                   executable: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "?",
                   variable: ProcessInfo.processInfo.environment["MP_CONFIGURATION_TEST"],
                   testsRanHere: aConfigurationTestStartedHere.load(ordering: .relaxed))
    }
}

struct ChildFacts: Codable, Sendable, Equatable {
    var word: String
    var executable: String
    var variable: String?
    var testsRanHere: Bool
}

/// This test binary's own path, as its children see theirs.
private let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "?"

@Suite("Child configuration and children of a test binary")
struct ChildConfigurationTests {
    init() { aConfigurationTestStartedHere.store(true, ordering: .relaxed) }

    // Issue 14, item 6: the test binary re-executed is a child that runs its task, found in the
    // test target, and neither the test runner nor main. Before the library's constructor, the
    // start was refused ("whose main has not called bootstrap()").
    @Test("a test starts a child whose task the test target declares", arguments: [StartMethod.spawn, .forkServer])
    func childOfTheTestBinary(method: StartMethod) async throws {
        let child = ChildProcess(TaskDeclaredInTheTests(word: "hello"), configuration: ChildProcessConfiguration(startMethod: method))
        try child.start()
        let facts = try await child.value(timeout: .seconds(120))
        #expect(facts.word == "hello!")
        #expect(facts.executable == testBinary)
        #expect(facts.testsRanHere == false)
        #expect(child.exitCode == 0)
    }

    // Item 1: a configuration is per child. Two children with different environments, through
    // each start method that re-executes, see their own; this process's environment and the
    // process-wide default stay as they were.
    @Test("each child gets its own configuration's environment", arguments: [StartMethod.spawn, .forkServer])
    func environmentPerChild(method: StartMethod) throws {
        let before = ChildProcessConfiguration.default
        var first = ChildProcessConfiguration(startMethod: method)
        first.environment["MP_CONFIGURATION_TEST"] = "first"
        var second = first
        second.environment["MP_CONFIGURATION_TEST"] = "second"
        let plain = ChildProcessConfiguration(startMethod: method)
        let children = [first, second, plain].map { ChildProcess(TaskDeclaredInTheTests(word: "w"), configuration: $0) }
        for child in children { try child.start() }
        let seen = try children.map { try $0.value(timeout: .seconds(120)).variable }
        #expect(seen == ["first", "second", nil])
        #expect(ProcessInfo.processInfo.environment["MP_CONFIGURATION_TEST"] == nil)
        #expect(ChildProcessConfiguration.default == before)
        #expect(children[0].configuration == first)
        #expect(children[0].startMethod == method)
    }

    // Item 1: the executable is per child too: one child runs the helper, the next this binary.
    @Test("each child runs its own configuration's executable", arguments: [StartMethod.spawn, .forkServer])
    func executablePerChild(method: StartMethod) throws {
        let helper = ChildProcess(Square(x: 6), configuration: ChildProcessConfiguration(startMethod: method, executable: FilePath(helperPath)))
        try helper.start()
        let own = ChildProcess(TaskDeclaredInTheTests(word: "own"), configuration: ChildProcessConfiguration(startMethod: method))
        try own.start()
        #expect(try helper.value(timeout: .seconds(120)) == 36)
        #expect(try own.value(timeout: .seconds(120)).executable == testBinary)
        // The helper cannot know a type of the test target: a clear error, not a crash.
        let missing = ChildProcess(TaskDeclaredInTheTests(word: "x"), configuration: ChildProcessConfiguration(startMethod: method, executable: FilePath(helperPath)))
        try missing.start()
        #expect {
            _ = try missing.value(timeout: .seconds(120))
        } throws: { error in
            (error as? MultiprocessingError)?.code == .childStartFailed && "\(error)".contains("TaskDeclaredInTheTests")
        }
    }

    @Test("the startMethod argument overrides the configuration's")
    func startMethodArgumentWins() throws {
        let child = ChildProcess(TaskDeclaredInTheTests(word: "a"), startMethod: .forkServer, configuration: ChildProcessConfiguration(startMethod: .spawn))
        #expect(child.startMethod == .forkServer)
        #expect(child.configuration.startMethod == .forkServer)
        try child.start()
        #expect(try child.value(timeout: .seconds(120)).word == "a!")
    }

    @Test("a configuration a child cannot be given is refused by name", arguments: ["", "A=B", "SWIFT_MULTIPROCESSING_CHILD"])
    func badEnvironmentIsRefused(name: String) throws {
        var configuration = ChildProcessConfiguration()
        configuration.environment[name] = "1"
        let child = ChildProcess(TaskDeclaredInTheTests(word: "a"), configuration: configuration)
        #expect {
            try child.start()
        } throws: { error in
            (error as? MultiprocessingError)?.code == .misuse && "\(error)".contains("\"\(name)\"") || "\(error)".contains("\(name) is the library's own")
        }
        #expect(child.pid == nil)
    }

    // Item 6: a program whose main never calls bootstrap() starts children, and a child runs only
    // its task: the helper prints a line first thing in main, which must appear once, from the parent.
    @Test("a program without bootstrap() starts children that never run its main", arguments: ["spawn", "forkserver"])
    func noBootstrapNeeded(method: String) async throws {
        let result = try await runHelper(["no-bootstrap", method])
        #expect(result.stdout.contains("value 4"), "\(result.stdout)\(result.stderr)")
        let mains = result.stdout.split(separator: "\n").filter { $0.hasPrefix("main ran") }
        #expect(mains.count == 1, "\(result.stdout)")
    }
}
