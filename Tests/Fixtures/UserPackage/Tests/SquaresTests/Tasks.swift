import Multiprocessing
import Synchronization

/// Set by every test as it starts. A child reports it: true would mean the test runner ran in the
/// child before its task (what calling bootstrap() inside a test used to do).
let aTestStartedInThisProcess = Atomic<Bool>(false)

/// A task type of the test target, found by the child (the test binary re-executed) by its name.
struct Cube: ProcessTask {
    var x: Int
    func run() -> CubeReport {
        CubeReport(cube: x * x * x, testsRanHere: aTestStartedInThisProcess.load(ordering: .relaxed), parent: CurrentProcess.parentPID)
    }
}

struct CubeReport: Codable, Sendable {
    var cube: Int
    var testsRanHere: Bool
    var parent: Int32
}

/// A task that fails, to see the error come back.
struct Refuse: ProcessTask {
    struct Refusal: Error, CustomStringConvertible {
        var description: String { "refused in the child" }
    }
    func run() throws { throw Refusal() }
}
