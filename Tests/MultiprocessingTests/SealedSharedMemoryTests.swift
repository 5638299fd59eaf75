import Testing
import Glibc
@testable import Multiprocessing
import MultiprocessingSystem
import SystemPackage

// Outside checks (red team): a holder of a primitive's memfd that resizes it. Every process that
// received a lock, event, queue or pool ring holds its memfd and could ftruncate it; before the
// memfds were sealed, one that shrank it made every other holder fault (SIGBUS) at its next
// access. Now the size is sealed at creation, and a receiver maps only sealed memfds.

/// A hostile holder: shrinks the memfd of an event it holds, then uses the event (as any other
/// holder would). Before the fix the ftruncate succeeded and the `set` faulted: the child died of
/// SIGBUS.
struct ShrinkSharedMemoryTask: ProcessTask {
    func run() throws -> String {
        let event = try Event()
        let fd = event.memory.region.fd
        let shrunk = ftruncate(fd, 0) == 0 ? "shrunk" : "refused \(errno == EPERM ? "EPERM" : "\(errno)")"
        let grown = ftruncate(fd, 1 << 30) == 0 ? "grown" : "refused \(errno == EPERM ? "EPERM" : "\(errno)")"
        event.set()
        return "\(shrunk) \(grown) \(event.isSet)"
    }
}

/// What a forged primitive's memory is made of.
enum ForgedMemoryKind: String, Codable, Sendable, CaseIterable {
    /// A memfd that may be sealed but is not.
    case unsealedMemfd
    /// A file of tmpfs (/dev/shm): shmem, but a size any holder can change.
    case shmFile
    /// A regular file.
    case regularFile
}

/// Sends itself a lock whose memory is a resizable file with a lock's magic in it, and decodes it.
struct DecodeResizableMemoryTask: ProcessTask {
    var kind: ForgedMemoryKind
    func run() throws -> String {
        let fd: CInt
        switch kind {
        case .unsealedMemfd:
            fd = try system_memfdCreate("forged")
        case .shmFile:
            let path = "/dev/shm/mp-forged-\(getpid())"
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            unlink(path)
        case .regularFile:
            let path = "/tmp/mp-forged-\(getpid())"
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            unlink(path)
        }
        guard fd >= 0, ftruncate(fd, 65536) == 0 else { return "setup failed \(errno)" }
        defer { close(fd) }
        var magic = SharedKind.lock
        guard pwrite(fd, &magic, 4, 0) == 4 else { return "setup failed \(errno)" }
        let forged = ForgedSharedMemory(memory: SharedDescriptor(FileDescriptor(rawValue: fd)), offset: 0)
        do {
            let lock = try throughTheWireAs(forged, Lock.self)
            // What a hostile sender does next: shrink it under the receiver's mapping.
            _ = ftruncate(fd, 0)
            try lock.acquire()
            return "decoded"
        } catch {
            return "refused \(error)"
        }
    }
}

@Suite("Sealed shared memory")
struct SealedSharedMemoryTests {
    /// The holder's ftruncate fails (EPERM) both ways, and the event still works.
    @Test func aHolderCannotResizeAPrimitivesMemory() throws {
        let child = ChildProcess(ShrinkSharedMemoryTask())
        try child.start()
        let outcome = try child.value(timeout: .seconds(120))
        #expect(outcome == "refused EPERM refused EPERM true")
    }

    /// Memory that some holder could still resize is refused with an error that says why; before
    /// the fix each decoded, and the shrink that followed killed the receiver (SIGBUS).
    @Test(arguments: ForgedMemoryKind.allCases)
    func resizableMemoryIsRefused(kind: ForgedMemoryKind) throws {
        let child = ChildProcess(DecodeResizableMemoryTask(kind: kind))
        try child.start()
        let outcome = try child.value(timeout: .seconds(120))
        #expect(outcome.hasPrefix("refused"), "\(outcome)")
        #expect(outcome.contains("seal"), "\(outcome)")
    }

    /// The library's own memory still crosses: a queue, a lock and a shared value, to a child.
    @Test func sealedMemoryStillCrosses() throws {
        let queue = try Queue<Int>()
        let child = ChildProcess(PutSquaresTask(queue: queue, count: 3))
        try child.start()
        try child.join(timeout: .seconds(120))
        #expect(child.exitStatus == .exited(0))
        #expect(try (0..<3).map { _ in try queue.get(timeout: .seconds(60)) } == [0, 1, 4])
    }
}

/// Puts the squares of 0..<count on a queue it received.
struct PutSquaresTask: ProcessTask {
    var queue: Queue<Int>
    var count: Int
    func run() throws {
        for i in 0..<count { try queue.put(i * i) }
    }
}

extension SealedSharedMemoryTests {
    /// Every kind of the library's shared memory is created sealed: the arena's chunks (locks,
    /// events, values...), an object of its own memfd (a large array), a queue's ring and a pool
    /// worker's rings all go through `SharedRegion.create`.
    @Test func everyCreatorSealsItsMemory() throws {
        let lock = try Lock()
        let event = try Event()
        let value = try SharedValue(0)
        let large = try SharedArray(repeating: 0, count: 8192)
        let raw = try RawSharedArray(repeating: UInt8(0), count: 100_000)
        let queue = try Queue<Int>()
        let ring = try PoolRing()
        let regions: [(String, SharedRegion)] = [
            ("lock", lock.core.memory.region), ("event", event.memory.region), ("value", value.memory.region),
            ("large array", large.memory.region), ("raw array", raw.memory.region),
            ("queue", queue.storage.region), ("pool ring", ring.region),
        ]
        for (name, region) in regions {
            #expect(system_sizeSeals(region.fd) == .fixed, "\(name)")
            #expect(ftruncate(region.fd, 0) == -1 && errno == EPERM, "\(name)")
        }
    }

    /// A queue and a pool ring refuse a forged, unsealed memfd as a lock does: they adopt the
    /// memory through the same path.
    @Test func aQueueAndAPoolRingRefuseUnsealedMemory() throws {
        let fd = try system_memfdCreate("forged")
        defer { close(fd) }
        try #require(ftruncate(fd, 1 << 20) == 0)
        let queueFD = dup(fd)
        let ringFD = dup(fd)
        #expect {
            _ = try QueueStorage(adopting: queueFD, expectJoinable: nil, codingPath: [])
        } throws: { "\($0)".contains("not sealed against resizing") }
        #expect {
            _ = try PoolRing(adopting: ringFD)
        } throws: { "\($0)".contains("not sealed against resizing") }
    }
}
