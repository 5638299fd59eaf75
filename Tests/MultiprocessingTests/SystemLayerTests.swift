import Foundation
import Glibc
import Testing
@testable import Multiprocessing
import MultiprocessingSystem
import SystemPackage

/// The one system layer (issue 14, item 3): `Sources/MultiprocessingSystem`, its one write loop and
/// its one in-process monitor, and the rule that no other target reaches libc by itself.
@Suite("System layer")
struct SystemLayerTests {
    /// The repository's `Sources` folder, found from this file's path.
    private static var sources: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
    }

    @Test("No target but MultiprocessingSystem imports Glibc")
    func onlyTheSystemTargetImportsGlibc() throws {
        let root = Self.sources
        let files = try #require(FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil))
        var offenders: [String] = []
        var checked = 0
        for case let url as URL in files where url.pathExtension == "swift" {
            let relative = String(url.path.dropFirst(root.path.count + 1))
            if relative.hasPrefix("MultiprocessingSystem/") { continue }
            checked += 1
            let text = try String(contentsOf: url, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ")
                if let index = words.firstIndex(of: "import"), index + 1 < words.count, words[index + 1] == "Glibc" {
                    offenders.append(relative)
                }
            }
        }
        #expect(checked > 50, "the walk found the sources")
        #expect(offenders.isEmpty, "these files import Glibc instead of going through MultiprocessingSystem: \(offenders)")
    }

    @Test("writeAll writes everything through short writes of a pipe")
    func writeAllWritesEverything() throws {
        let (readEnd, writeEnd) = try system_pipe()
        defer { system_close(readEnd) }
        // Four times a pipe's 64 KiB buffer: every write but the last is short or waits for the reader.
        let bytes = (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let reader = OSThread(name: "reader") { () -> [UInt8] in
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = try chunk.withUnsafeMutableBytes { raw in try system_read(readEnd, raw) }
                if n == 0 { return received }
                received += chunk.prefix(n)
            }
        }
        try reader.start()
        try bytes.withUnsafeBytes { raw in try system_writeAll(writeEnd, raw) }
        system_close(writeEnd)
        try reader.join()
        #expect(try reader.result(as: [UInt8].self) == bytes)
    }

    @Test("writeAll to a socket whose peer is gone fails with EPIPE, not SIGPIPE")
    func writeAllToAClosedSocketIsBrokenPipe() throws {
        let (mine, theirs) = try system_socketpair()
        defer { system_close(mine) }
        system_close(theirs)
        let bytes = [UInt8](repeating: 1, count: 100)
        #expect(throws: Errno.brokenPipe) {
            try bytes.withUnsafeBytes { raw in try system_writeAll(mine, raw, socket: true) }
        }
    }

    @Test("ThreadMonitor's timed wait ends when its time runs out, on the monotonic clock")
    func monitorTimedWaitTimesOut() {
        let monitor = ThreadMonitor()
        let start = system_clockMonotonicNanoseconds()
        monitor.lock()
        var timedOut = false
        // A wait may end early (spuriously): wait until the monotonic deadline has passed.
        while system_clockMonotonicNanoseconds() - start < 30_000_000 {
            if !monitor.wait(nanoseconds: 30_000_000 - (system_clockMonotonicNanoseconds() - start)) { timedOut = true }
        }
        monitor.unlock()
        let elapsed = system_clockMonotonicNanoseconds() - start
        #expect(timedOut)
        #expect(elapsed >= 30_000_000)
        #expect(elapsed < 30_000_000_000, "a 30 ms wait took \(elapsed) ns")
    }

    @Test("ThreadMonitor's signal wakes a waiter")
    func monitorSignalWakesAWaiter() throws {
        final class Box: @unchecked Sendable { var ready = false; var woken = false }
        let monitor = ThreadMonitor()
        let box = Box()
        let waiter = OSThread(name: "waiter") {
            monitor.lock()
            box.ready = true
            monitor.broadcast()
            while !box.woken { monitor.wait() }
            monitor.unlock()
        }
        try waiter.start()
        monitor.lock()
        while !box.ready { monitor.wait() }
        box.woken = true
        monitor.signal()
        monitor.unlock()
        try waiter.join()
        #expect(box.woken)
    }
}
