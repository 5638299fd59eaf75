import Multiprocessing
import Squares
import Synchronization
import XCTest

final class XCTestChildren: XCTestCase {
    override func setUp() { aTestStartedInThisProcess.store(true, ordering: .relaxed) }

    func testSpawnedChild() throws {
        try cube(.spawn)
    }

    func testForkServerChild() throws {
        try cube(.forkServer)
    }

    func testLibrarysChildren() throws {
        XCTAssertEqual(try sumOfSquares([4, 5]), 41)
    }

    private func cube(_ method: StartMethod) throws {
        let child = ChildProcess(Cube(x: 5), startMethod: method)
        try child.start()
        let report = try child.value(timeout: .seconds(120))
        XCTAssertEqual(report.cube, 125)
        XCTAssertFalse(report.testsRanHere)
        XCTAssertEqual(report.parent, CurrentProcess.pid)
    }
}
