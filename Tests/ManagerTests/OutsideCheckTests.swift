import Foundation
import Testing
import TestHarness
import Multiprocessing
@testable import MultiprocessingManager
import ManagerTestSupport

// Outside checks after issue 12: variations of its manager items that its own tests do not cover.

/// Durations past `Int64.max` seconds: valid values whose `components` trap.
private let durationsPastInt64Seconds: [Duration] = [
    .seconds(Int64.max) * 2,
    .seconds(Int64.max) * 18,
    .init(secondsComponent: Int64.max, attosecondsComponent: Int64.max),
]

extension ManagerTests {
    @Test func proxyCallsTakeDurationsPastInt64SecondsAndTheServerSurvives() throws {
        #expect(wireTimeoutNanoseconds(.seconds(Int64.max) * 2) == Int64.max)
        // A part of a nanosecond rounds up, as Deadline does: a wait never ends early.
        #expect(wireTimeoutNanoseconds(.init(secondsComponent: 0, attosecondsComponent: 1)) == 1)
        let manager = try started(ManagerLimits(handshakeTimeout: .seconds(Int64.max) * 2))
        defer { try? manager.shutdown() }
        let lock = try manager.lock()
        let semaphore = try manager.semaphore(value: 1)
        let event = try manager.event()
        let condition = try manager.condition()
        let queue = try manager.queue(Int.self)
        try event.set()
        for timeout in durationsPastInt64Seconds {
            try lock.acquire(timeout: timeout)
            try lock.release()
            try semaphore.acquire(timeout: timeout)
            try semaphore.release()
            #expect(try event.wait(timeout: timeout))
            try condition.acquire(timeout: timeout)
            #expect(try condition.wait(for: { true }, timeout: timeout))
            try condition.release()
            try queue.put(1, timeout: timeout)
            #expect(try queue.get(timeout: timeout) == 1)
        }
        // The server still answers.
        #expect(try manager.value(3).get() == 3)
    }
}
