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
            try event.wait(timeout: timeout)
            try condition.acquire(timeout: timeout)
            try condition.wait(for: { true }, timeout: timeout)
            try condition.release()
            try queue.put(1, timeout: timeout)
            #expect(try queue.get(timeout: timeout) == 1)
        }
        // The server still answers.
        #expect(try manager.value(3).get() == 3)
    }
}

extension ManagerTests {
    @Test func proxyArgumentsAtTheirLimitsAreErrorsAndTheServerSurvives() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let condition = try manager.condition()
        try condition.acquire()
        // As the module's own Condition.notify: a negative count is refused, not taken as 0.
        #expect(performing: { try condition.notify(-1) },
                throws: { ($0 as? MultiprocessingError)?.code == .misuse && "\($0)".contains("negative") })
        try condition.notify(0)
        try condition.notify(Int.max)
        try condition.release()
        let list = try manager.list(Int.self)
        try list.append(1)
        for index in [Int.min, Int.max, 1, -2] {
            #expect(throws: MultiprocessingError.self) { _ = try list.get(index) }
            #expect(throws: MultiprocessingError.self) { try list.set(index, 5) }
            #expect(throws: MultiprocessingError.self) { _ = try list.remove(at: index) }
        }
        try list.insert(0, at: Int.min)
        try list.insert(2, at: Int.max)
        #expect(try list.snapshot() == [0, 1, 2])
        #expect(try list.get(-1) == 2)
        for size in [-1, Int.min, Int.max] {
            let queue = try manager.queue(Int.self, maximumSize: size)
            try queue.put(size)
            #expect(try queue.get(timeout: .seconds(10)) == size)
        }
        let semaphore = try manager.semaphore(value: Int(Int32.max))
        try semaphore.acquire(timeout: .zero)
        #expect(try manager.value(3).get() == 3)
    }
}
