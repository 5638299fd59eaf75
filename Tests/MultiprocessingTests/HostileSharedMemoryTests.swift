import Testing
import Glibc
@testable import Multiprocessing
import MultiprocessingSystem
import SystemPackage

// Outside checks (red team): what a peer that forges a primitive's encoding can do to the
// process that decodes it.

/// A value that encodes as a primitive's memory does (the descriptor of its memfd, then an
/// offset), with any offset the sender likes.
struct ForgedSharedMemory: Codable {
    var memory: SharedDescriptor
    var offset: Int
}

/// Decodes a lock whose offset was forged, in a child: if the decoder traps, only the child dies.
struct DecodeForgedLockTask: ProcessTask {
    var offset: Int
    func run() throws -> String {
        let lock = try Lock()
        let forged = ForgedSharedMemory(memory: SharedDescriptor(FileDescriptor(rawValue: lock.core.memory.region.fd)), offset: offset)
        do {
            _ = try throughTheWireAs(forged, Lock.self)
            return "decoded"
        } catch let error as DecodingError {
            return "refused \(error)"
        }
    }
}

/// Sleeps until it is killed (at most a minute).
struct SleepUntilKilledTask: ProcessTask {
    func run() -> Int { for _ in 0..<600 { usleep(100_000) }; return 0 }
}

@Suite("Hostile shared memory")
struct HostileSharedMemoryTests {
    /// A forged offset near `Int.max` made `offset + size` overflow in the decoder's bounds check:
    /// the receiving process trapped (SIGILL) instead of refusing the message. (Seen failing:
    /// the child was killed by SIGILL for the first two offsets.)
    @Test(arguments: [Int.max - 7, (Int.max & ~7) - 8, 1 << 62, 65536])
    func aForgedOffsetIsRefusedNotATrap(offset: Int) throws {
        let child = ChildProcess(DecodeForgedLockTask(offset: offset))
        try child.start()
        let outcome = try child.value(timeout: .seconds(120))
        #expect(outcome.hasPrefix("refused"), "\(outcome)")
        #expect(outcome.contains("at offset \(offset)"), "\(outcome)")
    }

    /// The message of a child that died by a signal read "it killed by SIGILL".
    @Test func aChildKilledByASignalIsSaidToHaveBeenKilled() throws {
        let child = ChildProcess(SleepUntilKilledTask())
        try child.start()
        try child.kill()
        try child.join(timeout: .seconds(120))
        #expect(child.exitStatus == .signaled(.kill))
        #expect(throws: MultiprocessingError.self) { _ = try child.value() }
        do { _ = try child.value() } catch {
            #expect("\(error)".contains("it was killed by SIGKILL"), "\(error)")
        }
    }
}
