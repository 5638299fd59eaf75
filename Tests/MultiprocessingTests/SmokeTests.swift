import Testing
@testable import Multiprocessing

@Test func deadlineCountsDown() throws {
    let deadline = try Deadline(timeout: .milliseconds(50), "test")
    let left = deadline.remainingNanoseconds ?? -1
    #expect(left > 0 && left <= 50_000_000)
    #expect(Deadline.never.remainingNanoseconds == nil)
}
