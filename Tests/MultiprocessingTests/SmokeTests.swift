import Testing
@testable import Multiprocessing

@Test func deadlineCountsDown() {
    let deadline = Deadline(timeout: .milliseconds(50))
    let left = deadline.remainingNanoseconds ?? -1
    #expect(left > 0 && left <= 50_000_000)
    #expect(Deadline.never.remainingNanoseconds == nil)
}
