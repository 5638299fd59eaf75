import Testing
import Multiprocessing
import MultiprocessingManager
import ManagerTestSupport

/// The blocking bridge's socket kind of wait (issue 14, item 2), in a child of its own.
@Suite(.serialized)
struct BlockingBridgeManagerTests {
    @Test func cancellingAManagerCallShutsItsSocketAndFreesTheHelper() throws {
        let child = ChildProcess(CancelManagerCallTask())
        try child.start()
        let outcome = try child.value(timeout: .seconds(120))
        #expect(outcome.code == "cancelled")
        // It ends within milliseconds of the cancel; 2 s is far above any scheduling delay here.
        #expect(outcome.milliseconds < 2000, "the cancelled call took \(outcome.milliseconds) ms to end")
        #expect(outcome.busyAfter == 0)
        #expect(outcome.itemAfter == 5)
    }
}
