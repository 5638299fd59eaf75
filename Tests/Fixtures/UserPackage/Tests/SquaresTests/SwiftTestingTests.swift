import Multiprocessing
import Squares
import Synchronization
import Testing

@Suite("Children started from Swift Testing")
struct SwiftTestingChildren {
    init() { aTestStartedInThisProcess.store(true, ordering: .relaxed) }

    @Test("a task type of the test target runs in a child", arguments: [StartMethod.spawn, .forkServer])
    func cubeInAChild(method: StartMethod) throws {
        let child = ChildProcess(Cube(x: 3), startMethod: method)
        try child.start()
        let report = try child.value(timeout: .seconds(120))
        #expect(report.cube == 27)
        #expect(report.testsRanHere == false)
        #expect(report.parent == CurrentProcess.pid)
        #expect(child.exitCode == 0)
    }

    @Test func async() async throws {
        let child = ChildProcess(Cube(x: 4))
        try child.start()
        #expect(try await child.value(timeout: .seconds(120)).cube == 64)
    }

    @Test("the library's own task, started by the library", arguments: [StartMethod.spawn, .forkServer])
    func librarysChildren(method: StartMethod) throws {
        #expect(try sumOfSquares([1, 2, 3], startMethod: method) == 14)
    }

    @Test func anErrorComesBack() throws {
        let child = ChildProcess(Refuse())
        try child.start()
        #expect {
            try child.join(timeout: .seconds(120))
            _ = try child.value()
        } throws: { error in
            (error as? MultiprocessingError)?.code == .childFailed && "\(error)".contains("refused in the child")
        }
    }
}
