import CMultiprocessing
import MultiprocessingSystem

/// The shared memory between a pool's driver and one worker: two single-producer, single-consumer
/// byte rings, one for frames to the worker (chunks, functions, tasks) and one for frames back
/// (answers), so that a frame costs a copy into shared memory, not a system call.
///
/// Each ring is a byte stream, as the socket was: frames (``PoolWire``) go into it back to back,
/// and a frame larger than the ring goes in pieces as the consumer takes them. Each side keeps its
/// own copy of the index it writes (the producer's tail, the consumer's head) and only reads the
/// other's from shared memory, checking it: a tail or head that would put more than the ring's
/// capacity in it is a corrupt peer (the driver kills that worker), never a read or a write out of
/// bounds. There is no lock, so no one can die holding one: the producer copies the bytes first and
/// then publishes them with one atomic store of its tail, so a worker killed while it copies an
/// answer leaves nothing the driver can see (or, for an answer larger than the ring, the first
/// pieces of a frame, which the driver drops with the dead worker, as it dropped a partial frame on
/// the socket).
///
/// Wake-ups: the socket between the two stays, for three things only: a worker's death (its end of
/// stream), the pool's end (the worker also sees ``Offset/workerClosed``, set before the driver
/// closes it), and one-byte wake-ups of the driver (or of a direct task's blocking reader). A side
/// that is about to sleep says so in a word here (seq-cst store, then it looks at the ring again,
/// then it waits: the driver in `poll` on the socket, the worker on that word, a futex); the other
/// side, after it publishes, reads that word and only when it is set takes it back (exchange) and
/// writes one byte (to the driver) or wakes the futex (the worker: a futex's wake-up lets the
/// worker run on another CPU, a socket's pulls it onto the waker's; ``wakeWorker()``). So a worker
/// that always has tasks makes no system call per task, and a driver that is busy is not woken per
/// answer. The driver also says how many answers it wants before it is woken (``wakeAt``): half of
/// what the worker holds, so that it refills the worker's ring in time and reads answers in
/// batches; an answer with a failure, and a worker about to sleep, wake it at once.
///
/// Header page (byte offsets; each word on a cache line of its own):
///
///     0    magic "MPR1", then the capacity of each ring (u64, at 8)
///     64   tasks: tail (u64, the driver's)
///     128  tasks: head (u64, the worker's)
///     192  the worker sleeps waiting for tasks or answer space (u32, set by the worker)
///     256  answers: tail (u64, the worker's)
///     320  answers: head (u64, the driver's)
///     384  the driver sleeps and wants a wake-up once `published` reaches this (u64; 0: awake)
///     448  answers published: frames the worker has put in the answer ring, whole (u64)
///     512  the driver waits for room in the task ring (u32)
///     576  the worker may spin for its next task after answering (u32, set by the driver: 1 after
///          a direct task, when the cores allow it; ``PoolSpin``)
///     640  the CPU a direct task's caller last ran on, plus one (u32; 0: unknown)
///     704  the CPU the worker last ran on, plus one (u32, set after a direct task; 0: unknown)
///     768  the driver is done with this worker (u32): it ends (set before its socket closes)
///
/// Then the task ring's data (`capacity` bytes) and the answer ring's (`capacity` bytes).
final class PoolRing: @unchecked Sendable {
    // @unchecked: the Swift object is immutable; the shared words are touched only with atomics,
    // and each ring's bytes are written by one side and read by the other in the order its
    // indices publish.

    static let headerSize = 4096
    static let magic: UInt32 = 0x4D50_5231 // "MPR1"
    /// Bytes in each ring: 256 KiB (a memfd page costs memory once touched, so 512 KiB per worker
    /// once both rings have cycled).
    static let defaultCapacity = 1 << 18

    enum Side { case tasks, answers }

    enum Offset {
        static let magic = 0
        static let capacity = 8
        static let taskTail = 64
        static let taskHead = 128
        static let workerSleeps = 192
        static let answerTail = 256
        static let answerHead = 320
        static let wakeAt = 384
        static let published = 448
        static let taskSpaceWanted = 512
        static let workerMaySpin = 576
        static let callerCPU = 640
        static let workerCPU = 704
        static let workerClosed = 768
    }

    let region: SharedRegion
    let capacity: Int
    private let mask: UInt64

    /// A new ring pair in a new memfd (the driver's side).
    init(capacity: Int = PoolRing.defaultCapacity) throws {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "a pool ring's capacity is a power of two")
        region = try SharedRegion.create(size: PoolRing.headerSize + 2 * capacity, name: "mp-pool-ring")
        self.capacity = capacity
        mask = UInt64(capacity - 1)
        (region.base + Offset.magic).storeBytes(of: PoolRing.magic, as: UInt32.self)
        (region.base + Offset.capacity).storeBytes(of: UInt64(capacity), as: UInt64.self)
    }

    /// Maps a ring pair that arrived from the driver (the worker's side); takes `fd`.
    init(adopting fd: CInt) throws {
        let region = try SharedRegion.adopt(fd: fd)
        guard region.size >= PoolRing.headerSize, region.base.load(fromByteOffset: Offset.magic, as: UInt32.self) == PoolRing.magic else {
            throw MultiprocessingError(.malformedFrame, "The pool worker's shared memory is not a pool ring.")
        }
        let capacity = region.base.load(fromByteOffset: Offset.capacity, as: UInt64.self)
        guard capacity > 0, capacity & (capacity - 1) == 0, capacity <= UInt64(region.size - PoolRing.headerSize) / 2 else {
            throw MultiprocessingError(.malformedFrame, "The pool worker's shared memory names a ring capacity (\(capacity)) it does not hold.")
        }
        self.region = region
        self.capacity = Int(capacity)
        mask = capacity - 1
    }

    var fd: CInt { region.fd }

    // MARK: words

    @inline(__always) func word64(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
        (region.base + offset).assumingMemoryBound(to: UInt64.self)
    }
    @inline(__always) func word32(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (region.base + offset).assumingMemoryBound(to: UInt32.self)
    }
    @inline(__always) func load(_ offset: Int) -> UInt64 { cmp_atomic_load64(word64(offset)) }
    @inline(__always) func store(_ offset: Int, _ value: UInt64) { cmp_atomic_store64(word64(offset), value) }
    @inline(__always) func exchange(_ offset: Int, _ value: UInt64) -> UInt64 { cmp_atomic_exchange64(word64(offset), value) }
    @inline(__always) func load32(_ offset: Int) -> UInt32 { cmp_atomic_load32(word32(offset)) }
    @inline(__always) func store32(_ offset: Int, _ value: UInt32) { cmp_atomic_store32(word32(offset), value) }
    @inline(__always) func exchange32(_ offset: Int, _ value: UInt32) -> UInt32 { cmp_atomic_exchange32(word32(offset), value) }

    private func offsets(_ side: Side) -> (tail: Int, head: Int, data: Int) {
        switch side {
        case .tasks: (Offset.taskTail, Offset.taskHead, PoolRing.headerSize)
        case .answers: (Offset.answerTail, Offset.answerHead, PoolRing.headerSize + capacity)
        }
    }

    // MARK: the byte streams

    /// The producer's step: copies as much of `bytes` as there is room for and publishes it.
    /// Returns the bytes copied (0 when the ring is full), or nil when the consumer's head is
    /// impossible (behind the tail by more than the capacity, or ahead of it).
    func produce(_ side: Side, _ bytes: UnsafeRawBufferPointer, tail: inout UInt64) -> Int? {
        let (tailOffset, headOffset, dataOffset) = offsets(side)
        let head = load(headOffset)
        let used = tail &- head
        guard used <= UInt64(capacity) else { return nil }
        let count = min(bytes.count, capacity - Int(used))
        guard count > 0, let source = bytes.baseAddress else { return 0 }
        let at = Int(tail & mask)
        let first = min(count, capacity - at)
        let data = region.base + dataOffset
        (data + at).copyMemory(from: source, byteCount: first)
        if count > first { data.copyMemory(from: source + first, byteCount: count - first) }
        tail &+= UInt64(count)
        store(tailOffset, tail)
        return count
    }

    /// The bytes the producer has published past `head`, or nil when its tail is impossible.
    func available(_ side: Side, head: UInt64) -> Int? {
        let tail = load(offsets(side).tail)
        let count = tail &- head
        guard count <= UInt64(capacity) else { return nil }
        return Int(count)
    }

    /// The consumer's step: copies up to `destination.count` published bytes out and frees them.
    /// Returns the bytes copied, or nil when the producer's tail is impossible.
    func consume(_ side: Side, into destination: UnsafeMutableRawBufferPointer, head: inout UInt64) -> Int? {
        guard let available = available(side, head: head) else { return nil }
        let count = min(available, destination.count)
        guard count > 0, let target = destination.baseAddress else { return 0 }
        let (_, headOffset, dataOffset) = offsets(side)
        let at = Int(head & mask)
        let first = min(count, capacity - at)
        let data = region.base + dataOffset
        target.copyMemory(from: data + at, byteCount: first)
        if count > first { (target + first).copyMemory(from: data, byteCount: count - first) }
        head &+= UInt64(count)
        store(headOffset, head)
        return count
    }

    /// Wakes the worker if it said it sleeps (for tasks, or for room for its answers). A futex,
    /// not a byte on the socket: a socket's wake-up is a "sync" one, which moves the woken worker
    /// onto the waker's CPU, so that the caller and the worker of a round trip end up sharing one
    /// CPU, where neither can spin for the other. A futex wake lets the scheduler keep the worker
    /// on a CPU of its own when one is idle.
    func wakeWorker() {
        if load32(Offset.workerSleeps) != 0 && exchange32(Offset.workerSleeps, 0) != 0 {
            system_futexWake(word32(Offset.workerSleeps), count: 1, shared: true)
        }
    }

    /// Tells the worker that the driver is done with it (before its socket closes): a worker asleep
    /// on its futex would not see the socket's end.
    func closeForWorker() {
        store32(Offset.workerClosed, 1)
        _ = exchange32(Offset.workerSleeps, 0)
        system_futexWake(word32(Offset.workerSleeps), count: 1, shared: true)
    }

    /// Whether the consumer of `side` has taken everything up to `tail`.
    func drained(_ side: Side, tail: UInt64) -> Bool { load(offsets(side).head) == tail }
}

// MARK: wake-ups over the socket

enum PoolWake {
    /// Writes one byte on the pool socket `fd` (the driver's end is non-blocking: a full buffer
    /// already holds a wake-up, so a failed write loses nothing), with `send` with `MSG_NOSIGNAL`: a peer that is gone is no SIGPIPE here (its end of stream tells).
    static func poke(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = withUnsafeBytes(of: &byte) { try? system_ipcWrite(fd, socket: true, $0, UnsafeRawBufferPointer(start: nil, count: 0)) }
    }
}

/// What a test may do to a worker's rings from a task running in it, to show that the driver
/// survives a worker that dies halfway through an answer or writes garbage into the shared memory.
/// Not API: `package` for the test tasks of this package only.
package enum PoolRingTesting {
    /// The rings and the socket of the worker this process is, if it is one (set once, by the
    /// worker's loop, before it runs any task).
    nonisolated(unsafe) static var current: (ring: PoolRing, fd: Int32)?

    /// What to do to the rings.
    package enum Damage: Sendable {
        /// Copy the first `bytes` bytes of an answer frame's header into the answer ring without
        /// publishing them, as a worker killed in the middle of its copy leaves them.
        case unpublishedPartialFrame(bytes: Int)
        /// Publish a frame header announcing `length` body bytes, and `published` of them.
        case publishedPartialFrame(length: UInt32, published: Int)
        /// Publish an answer tail this far past the driver's head (past the capacity is impossible).
        case impossibleTail(ahead: UInt64)
        /// Set the task ring's head past its tail (the driver's room check must refuse it).
        case impossibleTaskHead
        /// Publish this many bytes of garbage (frame kinds no one knows, lengths past the limit).
        case garbage(count: Int)
    }

    /// Damages the current worker's rings and wakes the driver; false when this process is not a
    /// pool worker.
    package static func damage(_ damage: Damage) -> Bool {
        guard let (ring, fd) = current else { return false }
        var tail = ring.load(PoolRing.Offset.answerTail)
        switch damage {
        case .unpublishedPartialFrame(let bytes):
            var header: [UInt8] = []
            PoolWire.appendHeader(&header, kind: .result, a: 1, b: 1, length: 64)
            let data = ring.region.base + PoolRing.headerSize + ring.capacity
            header.withUnsafeBytes { raw in
                if let base = raw.baseAddress { (data + Int(tail & UInt64(ring.capacity - 1))).copyMemory(from: base, byteCount: min(bytes, 16)) }
            }
            return true
        case .publishedPartialFrame(let length, let published):
            var frame: [UInt8] = []
            PoolWire.appendHeader(&frame, kind: .result, a: 1, b: 1, length: Int(length))
            frame.append(contentsOf: repeatElement(0, count: published))
            _ = frame.withUnsafeBytes { ring.produce(.answers, $0, tail: &tail) }
        case .impossibleTail(let ahead):
            ring.store(PoolRing.Offset.answerTail, ring.load(PoolRing.Offset.answerHead) &+ ahead)
        case .impossibleTaskHead:
            ring.store(PoolRing.Offset.taskHead, ring.load(PoolRing.Offset.taskTail) &+ 1)
        case .garbage(let count):
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            var bytes: [UInt8] = []
            for _ in 0..<count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                bytes.append(UInt8(truncatingIfNeeded: state >> 56))
            }
            _ = bytes.withUnsafeBytes { ring.produce(.answers, $0, tail: &tail) }
        }
        PoolWake.poke(fd)
        return true
    }
}
