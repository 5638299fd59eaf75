import CMultiprocessing
import SystemPackage
import MultiprocessingSystem

/// The shared-memory ring buffer behind ``Queue``, ``SimpleQueue`` and ``JoinableQueue``.
///
/// One memfd holds a 4 KiB header page and then the ring's data area. Every process that has
/// the queue maps the same memfd, so `put` is a copy into shared memory under a lock: once it
/// returns, the item is in the queue and the producer owes nothing more (no feeder thread, no
/// pipe to flush). That is why joining a producer before draining its queue cannot deadlock.
///
/// Header page (byte offsets), declared in C as `cmp_queue_header` (`include/cmp_queue.h`), whose
/// static asserts pin each offset below; ``QueueStorage/layoutMatchesTheFormat`` checks that Swift
/// sees the same layout. The offsets are the format that every process mapping a queue reads:
///
///     0    robust, process-shared lock (``RobustMutex``), guards everything below
///     64   magic "MPQ2", flags (bit 0: joinable)
///     72   capacity: bytes in the data area
///     80   maxsize: items, 0 for no limit
///     88   maximumMessageSize
///     96   gets completed (what a paced put waits for), and its value when pacing last gave up
///     128  the ring (see ``Ring``): head, tail, count, unfinished, live bytes, wrap point
///     176  closed word: bit 0 closed (``Queue/close()``), bit 1 shut down (``Queue/shutdown(immediate:)``)
///     184  high-water mark: the end of the highest byte written since memory was last given back
///     192  journal: valid, then a copy of the ring
///     256  notEmpty: sequence word, waiter count
///     320  notFull: sequence word, waiter count
///     384  allDone (JoinableQueue.join): sequence word, waiter count
///
/// A record is an 8-byte little-endian word (bits 0...55 the length, bits 56...63 the kind: raw
/// bytes or Codable) and then the body, contiguous in the data area. Records go upwards from the
/// tail; when the next one would pass the soft end (below) and fits below the head, the writer
/// notes the wrap point and continues at offset 0 (a bip buffer). So the live records are either
/// `[head, tail)`, or `[head, wrap) + [0, tail)`.
///
/// Crash safety: the data is copied first, and the record becomes visible (or, for a get, is
/// removed) only at the commit, which writes the new ring into the journal, marks it valid,
/// applies it, and clears it. When a process dies holding the mutex the next locker learns it from
/// the robust mutex (`EOWNERDEAD`) and replays a valid journal: so a producer that dies mid-copy
/// leaves no trace, and a consumer that dies mid-copy leaves its item in the queue for the next
/// consumer. Items are never torn or duplicated.
///
/// Memory: the data area can hold the largest message (`maximumMessageSize` + 8) but is virtual:
/// a memfd page costs memory only once written. The writer wraps early, at a soft end of
/// max(16 MiB, 2 × the live bytes), so the ring cycles through as much memory as its backlog needs
/// and no more, and stays warm (no page faults) at a steady backlog. When the queue empties, or the
/// reader wraps, the pages above what the backlog needs are given back (fallocate `PUNCH_HOLE`).
/// So a queue holds about max(16 MiB, 2 × its live items), however much passes through it.
internal final class QueueStorage: @unchecked Sendable {
    // @unchecked: all mutable state is in the shared mapping, guarded by the robust mutex or
    // accessed with atomics; the Swift object itself is immutable.

    internal static let headerSize = 4096
    internal static let recordHeaderSize = 8
    /// The largest `maximumMessageSize` a queue takes: 2^46 bytes.
    internal static let largestMessageSize = 1 << 46
    internal static let magic: UInt32 = 0x4D50_5132  // "MPQ2"
    internal static let granule = 4 << 20
    /// Memory a queue keeps even when idle, and the least it cycles through: 16 MiB.
    internal static let hotBytes = 16 << 20
    /// The wrap point when the ring has not wrapped.
    internal static let noWrap = UInt64.max
    internal static let spinLimit = 100
    /// Past this backlog a blocking put is paced: 8 MiB, so that the ring cycles within its
    /// 16 MiB hot area, which stays in the processor's cache (see ``putLocked(kind:body:block:context:)``).
    internal static let pacedBacklog = hotBytes / 2
    /// The longest a paced put waits for a get: 1 ms.
    internal static let pacingWait: Duration = .milliseconds(1)

    internal typealias Kind = FrameHeader.Kind

    internal let region: SharedRegion
    internal let mutex: RobustMutex
    internal let capacity: Int
    internal let maxsize: Int
    internal let maximumMessageSize: Int
    internal let joinable: Bool

    // MARK: layout

    // Internal rather than private where the crash tests (Tests/MultiprocessingTests/
    // QueueCrashSimulation.swift) take the same low-level steps as a put or a get and die halfway.

    internal let header: Header
    internal var data: UnsafeMutableRawPointer { region.base + QueueStorage.headerSize }

    /// The header page (`cmp_queue_header`), and the words in it that are used atomically: read
    /// without the mutex, or waited on.
    internal struct Header {
        internal let fields: UnsafeMutablePointer<cmp_queue_header>
        internal let closed: SharedWord
        internal let journalValid: SharedWord64
        internal let ringCount: SharedWord64, ringUnfinished: SharedWord64
        internal let journalCount: SharedWord64, journalUnfinished: SharedWord64
        internal let notEmpty: SharedWord, notEmptyWaiters: SharedWord
        internal let notFull: SharedWord, notFullWaiters: SharedWord
        internal let allDone: SharedWord, allDoneWaiters: SharedWord

        internal init(_ base: UnsafeMutableRawPointer) {
            fields = base.assumingMemoryBound(to: cmp_queue_header.self)
            func at(_ field: PartialKeyPath<cmp_queue_header>) -> UnsafeMutableRawPointer {
                base + QueueStorage.offset(of: field)
            }
            closed = SharedWord(at(\.closed))
            journalValid = SharedWord64(at(\.journal_valid))
            ringCount = SharedWord64(at(\.ring.count))
            ringUnfinished = SharedWord64(at(\.ring.unfinished))
            journalCount = SharedWord64(at(\.journal.count))
            journalUnfinished = SharedWord64(at(\.journal.unfinished))
            notEmpty = SharedWord(at(\.not_empty.sequence))
            notEmptyWaiters = SharedWord(at(\.not_empty.waiters))
            notFull = SharedWord(at(\.not_full.sequence))
            notFullWaiters = SharedWord(at(\.not_full.waiters))
            allDone = SharedWord(at(\.all_done.sequence))
            allDoneWaiters = SharedWord(at(\.all_done.waiters))
        }
    }

    /// A field's offset in the header, as Swift imports the C declaration.
    internal static func offset(of field: PartialKeyPath<cmp_queue_header>) -> Int {
        guard let offset = MemoryLayout<cmp_queue_header>.offset(of: field) else {
            preconditionFailure("cmp_queue_header's fields are stored properties")
        }
        return offset
    }

    /// Whether Swift sees the header as the format (and C's static asserts) lays it out: a check
    /// that the C declaration is the one this file was written against, as ``RobustMutex`` checks
    /// glibc's robust-list layout.
    internal static let layoutMatchesTheFormat: Bool = {
        let expected: [(PartialKeyPath<cmp_queue_header>, Int)] = [
            (\.lock, 0), (\.magic, 64), (\.flags, 68), (\.capacity, 72), (\.maxsize, 80),
            (\.maximum_message_size, 88), (\.gets, 96), (\.unpaced_at, 104), (\.ring, 128), (\.ring.count, 144), (\.ring.unfinished, 152),
            (\.closed, 176), (\.high_water, 184), (\.journal_valid, 192), (\.journal, 200),
            (\.not_empty, 256), (\.not_empty.waiters, 260), (\.not_full, 320), (\.all_done, 384),
        ]
        return RobustMutex.size <= 64 && MemoryLayout<cmp_queue_header>.size <= QueueStorage.headerSize
            && expected.allSatisfy { QueueStorage.offset(of: $0.0) == $0.1 }
    }()

    /// The ring's state: where the live records are, and the counts.
    internal typealias Ring = cmp_queue_ring

    /// Which of the header's two rings: the ring itself, or the journal's copy a commit applies.
    internal enum RingCopy { case live, journal }

    internal func loadRing(_ copy: RingCopy) -> Ring {
        switch copy {
        case .live: header.fields.pointee.ring
        case .journal: header.fields.pointee.journal
        }
    }

    internal func storeRing(_ ring: Ring, in copy: RingCopy) {
        let fields = header.fields
        // Atomic stores for count and unfinished: qsize and friends read them without the mutex.
        switch copy {
        case .live:
            fields.pointee.ring.head = ring.head
            fields.pointee.ring.tail = ring.tail
            header.ringCount.store(ring.count)
            header.ringUnfinished.store(ring.unfinished)
            fields.pointee.ring.live = ring.live
            fields.pointee.ring.wrap = ring.wrap
        case .journal:
            fields.pointee.journal.head = ring.head
            fields.pointee.journal.tail = ring.tail
            header.journalCount.store(ring.count)
            header.journalUnfinished.store(ring.unfinished)
            fields.pointee.journal.live = ring.live
            fields.pointee.journal.wrap = ring.wrap
        }
    }

    internal var ring: Ring { loadRing(.live) }

    /// Whether `ring` could have been left by this library's own puts and gets: every offset
    /// inside the data area, the live records where the wrap state says, a count the live bytes
    /// can hold (each record is at least its 8-byte header). Any process that maps the queue can
    /// write the header, and a ring that breaks these would make the arithmetic below overflow
    /// (a trap) or read outside the mapping.
    internal func isConsistent(_ ring: Ring) -> Bool {
        let capacity = UInt64(self.capacity)
        guard ring.head <= capacity, ring.tail <= capacity, ring.live <= capacity,
              ring.count <= ring.live / UInt64(QueueStorage.recordHeaderSize),
              ring.count > 0 || ring.live == 0,
              ring.unfinished <= UInt64(Int.max) else { return false }
        if ring.wrap == QueueStorage.noWrap { return ring.head <= ring.tail }
        return ring.wrap <= capacity && ring.tail <= ring.head && ring.head <= ring.wrap
    }

    /// The live ring, under the mutex. One that is not consistent (see ``isConsistent(_:)``) is
    /// replaced by an empty ring, the mutex released, and `.malformedFrame` thrown.
    private func checkedRing(_ operation: StaticString) throws -> Ring {
        let current = ring
        if isConsistent(current) { return current }
        let unfinished = current.unfinished <= UInt64(Int.max) ? current.unfinished : 0
        commit(Ring(head: 0, tail: 0, count: 0, unfinished: unfinished, live: 0, wrap: QueueStorage.noWrap))
        header.fields.pointee.high_water = UInt64(capacity)  // everything may have been written
        giveBackMemory(above: QueueStorage.hotBytes)
        unlock(operation)
        throw MultiprocessingError(.malformedFrame, "\(operation): the queue's shared memory holds an impossible ring (head \(current.head), tail \(current.tail), wrap \(current.wrap), \(current.count) items in \(current.live) bytes, \(current.unfinished) unfinished, for a data area of \(capacity) bytes): another process wrote into it. The queue was emptied.")
    }

    private var closedWord: SharedWord { header.closed }
    private var journalValid: SharedWord64 { header.journalValid }
    private var notEmpty: SharedWord { header.notEmpty }
    internal var notEmptyWaiters: SharedWord { header.notEmptyWaiters }
    private var notFull: SharedWord { header.notFull }
    private var notFullWaiters: SharedWord { header.notFullWaiters }
    private var allDone: SharedWord { header.allDone }
    private var allDoneWaiters: SharedWord { header.allDoneWaiters }

    // MARK: creation and adoption

    /// Creates a new, empty queue in a new memfd.
    internal init(maxsize: Int, maximumMessageSize: Int, joinable: Bool) throws {
        // The buffer must hold one item and its record header; past 2^46 bytes (64 TiB, half the
        // address space of x86-64) it cannot be mapped, and near Int.max its size would overflow.
        guard maximumMessageSize > 0, maximumMessageSize <= QueueStorage.largestMessageSize else {
            throw MultiprocessingError.misuse("Queue: maximumMessageSize must be between 1 and \(QueueStorage.largestMessageSize) bytes (it was \(maximumMessageSize)).")
        }
        let pageSize = 4096
        let minimum = 64 << 20
        let needed = max(minimum, maximumMessageSize + QueueStorage.recordHeaderSize)
        let capacity = (needed + pageSize - 1) / pageSize * pageSize
        precondition(QueueStorage.layoutMatchesTheFormat, "cmp_queue_header is not laid out as the queue's format")
        let region = try SharedRegion.create(size: QueueStorage.headerSize + capacity, name: "mp-queue")
        let header = Header(region.base)
        self.region = region
        self.header = header
        self.mutex = RobustMutex(UnsafeMutableRawPointer(header.fields) + QueueStorage.offset(of: \.lock))
        self.capacity = capacity
        self.maxsize = max(0, maxsize)
        self.maximumMessageSize = maximumMessageSize
        self.joinable = joinable
        try mutex.initialize(recursive: false)
        header.fields.pointee.magic = QueueStorage.magic
        header.fields.pointee.flags = joinable ? 1 : 0
        header.fields.pointee.capacity = UInt64(capacity)
        header.fields.pointee.maxsize = UInt64(self.maxsize)
        header.fields.pointee.maximum_message_size = UInt64(maximumMessageSize)
        storeRing(Ring(head: 0, tail: 0, count: 0, unfinished: 0, live: 0, wrap: QueueStorage.noWrap), in: .live)
    }

    /// Maps a queue's memfd that arrived from another process. `expectJoinable` nil accepts both
    /// kinds (a ``JoinableQueue`` is a ``Queue``); true refuses a plain queue.
    internal init(adopting fd: CInt, expectJoinable: Bool?, codingPath: [any CodingKey]) throws {
        precondition(QueueStorage.layoutMatchesTheFormat, "cmp_queue_header is not laid out as the queue's format")
        let region = try SharedRegion.adopt(fd: fd)
        let header = Header(region.base)
        guard region.size > QueueStorage.headerSize,
              header.fields.pointee.magic == QueueStorage.magic else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "The shared memory sent as a queue is not a queue's memory."))
        }
        let joinable = header.fields.pointee.flags & 1 != 0
        if let expectJoinable, joinable != expectJoinable {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "A \(joinable ? "JoinableQueue" : "Queue") was decoded as a \(expectJoinable ? "JoinableQueue" : "Queue")."))
        }
        let capacity = Int(exactly: header.fields.pointee.capacity) ?? 0
        guard capacity > 0, capacity <= region.size - QueueStorage.headerSize else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "A queue's shared memory is smaller than its header says."))
        }
        self.region = region
        self.header = header
        self.mutex = RobustMutex(UnsafeMutableRawPointer(header.fields) + QueueStorage.offset(of: \.lock))
        self.capacity = capacity
        guard let maxsize = Int(exactly: header.fields.pointee.maxsize),
              let maximumMessageSize = Int(exactly: header.fields.pointee.maximum_message_size),
              maximumMessageSize > 0, maximumMessageSize <= QueueStorage.largestMessageSize else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "A queue's shared memory names a maxsize (\(header.fields.pointee.maxsize)) or maximumMessageSize (\(header.fields.pointee.maximum_message_size)) no queue has."))
        }
        self.maxsize = maxsize
        self.maximumMessageSize = maximumMessageSize
        self.joinable = joinable
    }

    // MARK: locking

    /// Takes the mutex; after an owner's death, repairs the queue before anything reads it.
    private func lock(_ context: WaitContext) throws {
        if try mutex.lock(context) == .afterOwnerDied {
            recover()
        }
    }

    /// Takes the mutex only if it is free now.
    private func tryLock(_ operation: StaticString) throws -> Bool {
        guard let acquired = try mutex.tryLock(operation) else { return false }
        if acquired == .afterOwnerDied { recover() }
        return true
    }

    private func unlock(_ operation: StaticString) {
        // Only the thread that locked calls this, so unlock cannot fail with EPERM.
        try? mutex.unlock(operation)
    }

    /// Brings the header back to a committed state after a process died holding the mutex.
    private func recover() {
        if journalValid.load() != 0 {
            // The dead owner had decided its commit: finish it.
            storeRing(loadRing(.journal), in: .live)
            journalValid.store(0)
        }
        // Otherwise nothing it did is visible: a half-copied put lies in free space, and a
        // half-copied get did not move the head. Anyone it was about to wake may sleep on: wake all.
        notEmpty.add(1)
        notEmpty.wakeAll()
        notFull.add(1)
        notFull.wakeAll()
    }

    /// Makes a put or get visible, in a way a crash cannot leave half done.
    private func commit(_ ring: Ring) {
        storeRing(ring, in: .journal)
        journalValid.store(1)
        storeRing(ring, in: .live)
        journalValid.store(0)
    }

    // MARK: waiting

    /// Waits on a condition word, releasing the mutex meanwhile, and takes it again.
    /// A waiter that gives up (timeout, cancellation) passes a possible wake-up on.
    private func wait(on word: SharedWord, waiters: SharedWord, _ context: WaitContext) throws {
        let sequence = word.load()
        waiters.add(1)
        unlock(context.operation)
        // A short spin first: a producer on another core often signals within a microsecond or
        // two, and catching that here saves both sides a system call and a context switch.
        var spins = QueueStorage.spinLimit
        while spins > 0 && word.load() == sequence {
            system_cpuRelax()
            spins -= 1
        }
        var failure: (any Error)?
        do {
            if word.load() == sequence {
                try context.wait(on: word, expected: sequence)
            }
        } catch {
            failure = error
        }
        waiters.subtract(1)
        if let failure {
            word.wake(1)
            throw failure
        }
        try lock(context)
    }

    private func signal(_ word: SharedWord, waiters: SharedWord, all: Bool) {
        word.add(1)
        if waiters.load() != 0 { word.wake(all ? Int32.max : 1) }
    }

    // MARK: placing records

    private func roundUpToGranule(_ x: Int) -> Int {
        (x + QueueStorage.granule - 1) / QueueStorage.granule * QueueStorage.granule
    }

    /// Where the writer stops going up and wraps, if it can: enough for twice the backlog.
    private func softEnd(live: Int) -> Int {
        min(capacity, roundUpToGranule(max(QueueStorage.hotBytes, 2 * live)))
    }

    /// Where a record of `size` bytes goes, and the ring after it; nil when it does not fit now.
    internal func place(_ size: Int, in ring: Ring) -> (offset: Int, ring: Ring)? {
        var next = ring
        next.count += 1
        next.live += UInt64(size)
        let head = Int(ring.head), tail = Int(ring.tail)
        let offset: Int
        if ring.count == 0 {
            guard size <= capacity else { return nil }
            offset = 0
            next.head = 0
            next.wrap = QueueStorage.noWrap
        } else if ring.wrap == QueueStorage.noWrap {
            // Live records are [head, tail); free space is [tail, capacity) and [0, head).
            if tail + size <= softEnd(live: Int(next.live)) {
                offset = tail
            } else if size <= head {
                offset = 0
                next.wrap = UInt64(tail)
            } else if tail + size <= capacity {
                offset = tail
            } else {
                return nil
            }
        } else {
            // Live records are [head, wrap) and [0, tail); free space is [tail, head).
            guard tail + size <= head else { return nil }
            offset = tail
        }
        next.tail = UInt64(offset + size)
        return (offset, next)
    }

    // MARK: operations

    /// Appends one record. Waits for room when `block`, else throws `.full`.
    internal func put(kind: Kind, body: UnsafeRawBufferPointer, block: Bool, context: WaitContext) throws {
        guard body.count <= maximumMessageSize else {
            throw MultiprocessingError.misuse("An item of \(body.count) bytes is larger than this queue's maximumMessageSize (\(maximumMessageSize) bytes).")
        }
        try lock(context)
        try putLocked(kind: kind, body: body, block: block, context: context)
    }

    /// ``put(kind:body:block:context:)`` that never waits, not even for the mutex: false when the
    /// mutex is busy or the queue is full, so that an async caller can go off the pool.
    internal func putIfRoom(kind: Kind, body: UnsafeRawBufferPointer, _ operation: StaticString) throws -> Bool {
        guard body.count <= maximumMessageSize else {
            throw MultiprocessingError.misuse("An item of \(body.count) bytes is larger than this queue's maximumMessageSize (\(maximumMessageSize) bytes).")
        }
        if isFull { return false }
        guard try tryLock(operation) else { return false }
        let current = try checkedRing(operation)
        let recordSize = QueueStorage.recordHeaderSize + body.count
        // A put that pacing would make wait goes off the pool, as one that waits for room.
        if closedWord.load() == 0 && !(maxsize > 0 && current.count >= UInt64(maxsize))
            && place(recordSize, in: current) != nil
            && !shouldPace(current, recordSize, .uncancellable(operation)) {
            try putLocked(kind: kind, body: body, block: false, context: .uncancellable(operation))
            return true
        }
        unlock(operation)
        return false
    }

    private func putLocked(kind: Kind, body: UnsafeRawBufferPointer, block: Bool, context: WaitContext) throws {
        let recordSize = QueueStorage.recordHeaderSize + body.count
        var placement: (offset: Int, ring: Ring)?
        while true {
            if closedWord.load() != 0 {
                unlock(context.operation)
                throw refusal(context.operation, getting: false)
            }
            let current = try checkedRing(context.operation)
            let itemsFull = maxsize > 0 && current.count >= UInt64(maxsize)
            if !itemsFull {
                placement = place(recordSize, in: current)
                if placement != nil {
                    if block && shouldPace(current, recordSize, context) {
                        try pace(context)
                        continue
                    }
                    break
                }
            }
            if !block {
                unlock(context.operation)
                throw MultiprocessingError(.full, itemsFull
                    ? "\(context.operation): the queue holds its maxsize of \(maxsize) items."
                    : "\(context.operation): the queue's buffer has no room for \(recordSize) more bytes.")
            }
            try wait(on: notFull, waiters: notFullWaiters, context)
        }
        guard let (offset, next) = placement else { preconditionFailure("the loop exits with a placement") }
        // Raised before the copy, so that a crash mid-copy still leaves those pages accounted for.
        let end = UInt64(offset + recordSize)
        if end > header.fields.pointee.high_water { header.fields.pointee.high_water = end }
        let target = data + offset
        target.storeBytes(of: (UInt64(body.count) | (UInt64(kind.rawValue) << 56)).littleEndian, as: UInt64.self)
        if let source = body.baseAddress, body.count > 0 {
            (target + QueueStorage.recordHeaderSize).copyMemory(from: source, byteCount: body.count)
        }
        var committed = next
        committed.unfinished += joinable ? 1 : 0
        commit(committed)
        unlock(context.operation)
        signal(notEmpty, waiters: notEmptyWaiters, all: false)
    }

    // MARK: pacing

    /// Whether a put should wait for a get before it adds `recordSize` bytes to `ring`.
    ///
    /// Pacing: a put that would take the backlog past ``pacedBacklog`` waits (at most
    /// ``pacingWait``) until a consumer takes an item, then looks again. While consumers keep up
    /// on average, that keeps the backlog, and so the memory the ring cycles through, small enough
    /// to stay in cache: a producer that outran them would otherwise write into fresh pages (a page
    /// fault and 4 KiB of zeroing each) and they would read from main memory, both several times
    /// slower than a copy between warm caches, so everyone would go slower (issue 18: 64 KiB items
    /// through an unbounded queue ran at 28% of a pipe, against 98% with `maxsize: 128`). When no
    /// get comes within ``pacingWait``, the put goes ahead and puts stop waiting until the next get:
    /// a queue with no consumer taking items (a producer that fills it before any consumer starts)
    /// waits once, 1 ms, and never again. So a put on an unbounded queue still never waits longer
    /// than that. `putNowait` and the async twin's first try never wait; a restartable async put
    /// that runs in slices does not pace (it could not tell a slow consumer from none).
    private func shouldPace(_ ring: Ring, _ recordSize: Int, _ context: WaitContext) -> Bool {
        Int(ring.live) + recordSize > QueueStorage.pacedBacklog
            && header.fields.pointee.gets != header.fields.pointee.unpaced_at
            && !context.cancellation.neverSleeps
    }

    /// Waits, with the mutex released, for one get or ``pacingWait``, whichever comes first, and
    /// takes the mutex again. When no get came, pacing stops until one does.
    private func pace(_ context: WaitContext) throws {
        let seen = header.fields.pointee.gets
        let pacing = WaitContext(deadline: Deadline.earlier(context.deadline, Deadline(after: QueueStorage.pacingWait)),
                                 timeout: context.timeout, cancellation: context.cancellation, operation: context.operation)
        do {
            try wait(on: notFull, waiters: notFullWaiters, pacing)
        } catch let error as MultiprocessingError where error.code == .timedOut {
            // Room is there: a put does not time out for pacing, it goes ahead.
            try lock(context)
        }
        if header.fields.pointee.gets == seen { header.fields.pointee.unpaced_at = seen }
    }

    /// Removes the oldest record. Waits for one when `block`, else throws `.empty`; on a closed,
    /// drained queue throws `.closed`.
    internal func get(block: Bool, context: WaitContext) throws -> (Kind, [UInt8]) {
        try lock(context)
        return try getLocked(block: block, context: context)
    }

    /// ``get(block:context:)`` that never waits, not even for the mutex: nil when the mutex is
    /// busy or the queue is empty (and open), so that an async caller can go off the pool.
    internal func getIfReady(_ operation: StaticString) throws -> (Kind, [UInt8])? {
        // Cheap checks first: no lock when there is plainly nothing to take.
        if relaxedCount == 0 && closedWord.load() == 0 { return nil }
        guard try tryLock(operation) else { return nil }
        if try checkedRing(operation).count == 0 && closedWord.load() == 0 {
            unlock(operation)
            return nil
        }
        return try getLocked(block: false, context: .uncancellable(operation))
    }

    private func getLocked(block: Bool, context: WaitContext) throws -> (Kind, [UInt8]) {
        var current = try checkedRing(context.operation)
        while current.count == 0 {
            if closedWord.load() != 0 {
                unlock(context.operation)
                throw refusal(context.operation, getting: true)
            }
            if !block {
                unlock(context.operation)
                throw MultiprocessingError(.empty, "\(context.operation): the queue is empty.")
            }
            try wait(on: notEmpty, waiters: notEmptyWaiters, context)
            current = try checkedRing(context.operation)
        }
        let head = Int(current.head)
        let header = UInt64(littleEndian: (data + head).loadUnaligned(as: UInt64.self))
        let length = Int(header & 0x00FF_FFFF_FFFF_FFFF)
        let recordSize = QueueStorage.recordHeaderSize + length
        let limit = current.wrap == QueueStorage.noWrap ? Int(current.tail) : Int(current.wrap)
        guard let kind = Kind(rawValue: UInt8(header >> 56)), head + recordSize <= limit,
              UInt64(recordSize) <= current.live else {
            // Only a process writing into the mapping by hand can cause this; drop everything
            // rather than hand out garbage.
            commit(Ring(head: 0, tail: 0, count: 0, unfinished: current.unfinished, live: 0, wrap: QueueStorage.noWrap))
            unlock(context.operation)
            throw MultiprocessingError(.malformedFrame, "\(context.operation): the queue's shared memory holds an invalid record at offset \(head) (length \(length)); the queue was emptied.")
        }
        let body = [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
            if let destination = buffer.baseAddress, length > 0 {
                UnsafeMutableRawPointer(destination).copyMemory(from: data + head + QueueStorage.recordHeaderSize, byteCount: length)
            }
            initialized = length
        }
        var next = current
        next.count -= 1
        next.live -= UInt64(recordSize)
        self.header.fields.pointee.gets &+= 1
        next.head = UInt64(head + recordSize)
        var readerWrapped = false
        if next.count == 0 {
            // Empty: start again at offset 0, on warm pages.
            next.head = 0
            next.tail = 0
            next.wrap = QueueStorage.noWrap
        } else if next.wrap != QueueStorage.noWrap && next.head == next.wrap {
            next.head = 0
            next.wrap = QueueStorage.noWrap
            readerWrapped = true
        }
        commit(next)
        if next.count == 0 || readerWrapped {
            giveBackMemory(above: next.count == 0 ? QueueStorage.hotBytes
                           : max(softEnd(live: Int(next.live)), roundUpToGranule(Int(next.tail))))
        }
        unlock(context.operation)
        signal(notFull, waiters: notFullWaiters, all: true)
        return (kind, body)
    }

    /// Frees the pages from `keep` (a granule boundary above every live record) to the high-water
    /// mark, and lowers the mark. Called with the mutex held.
    private func giveBackMemory(above keep: Int) {
        // Written by every process that maps the queue: at most the data area's end.
        let top = Int(min(header.fields.pointee.high_water, UInt64(capacity)))
        guard top > keep else { return }
        // Best effort: if the kernel refuses, the pages simply stay.
        try? system_punchHole(region.fd, offset: QueueStorage.headerSize + keep, length: roundUpToGranule(top) - keep)
        header.fields.pointee.high_water = UInt64(keep)
    }

    // MARK: state

    /// The item count without the lock, as Python's `qsize()`: exact when nothing runs at once.
    internal var relaxedCount: Int {
        Int(clamping: header.ringCount.load())
    }

    internal var isClosed: Bool { closedWord.load() & QueueStorage.closedBit != 0 }

    /// Calls waiting for an item, in every process (tests wait for a consumer to be waiting).
    internal var waitingConsumers: Int { Int(notEmptyWaiters.load()) }

    internal var isFull: Bool {
        maxsize > 0 && relaxedCount >= maxsize
    }

    /// The error of a put on a closed or shut-down queue, or of a get that found it so and empty.
    private func refusal(_ operation: StaticString, getting: Bool) -> MultiprocessingError {
        if closedWord.load() & QueueStorage.shutDownBit != 0 {
            return MultiprocessingError(.shutDown, getting
                ? "\(operation): the queue was shut down and is empty."
                : "\(operation): the queue was shut down, so it takes no more items.")
        }
        return MultiprocessingError(.closed, getting ? "\(operation): the queue is closed and empty." : "\(operation): the queue is closed.")
    }

    internal static let closedBit: UInt32 = 1
    internal static let shutDownBit: UInt32 = 2

    internal var isShutDown: Bool { closedWord.load() & QueueStorage.shutDownBit != 0 }

    /// Calls waiting for room, in every process (tests wait for a producer to be waiting).
    internal var waitingProducers: Int { Int(notFullWaiters.load()) }

    /// Calls waiting in ``join(context:)``, in every process.
    internal var waitingJoiners: Int { Int(allDoneWaiters.load()) }

    /// Shuts the queue down for every process, as Python 3.13's `Queue.shutdown`: puts are refused
    /// with `.shutDown`, gets take what is left and then get `.shutDown`. `immediate` drops what is
    /// left (and counts each dropped item of a joinable queue as done, so that `join` returns once
    /// the items already taken are done). Every waiter, in every process, wakes.
    internal func shutdown(immediate: Bool) {
        // Under the mutex, as close(): a waiter cannot check the word, miss this store, and then
        // sleep past the wake-ups below.
        let locked = (try? lock(.uncancellable("Queue.shutdown"))) != nil
        closedWord.or(QueueStorage.shutDownBit)
        if immediate && locked {
            let current = ring
            if current.count > 0 || !isConsistent(current) {
                var unfinished = joinable ? current.unfinished - min(current.unfinished, current.count) : current.unfinished
                if unfinished > UInt64(Int.max) { unfinished = 0 }
                commit(Ring(head: 0, tail: 0, count: 0, unfinished: unfinished, live: 0, wrap: QueueStorage.noWrap))
                giveBackMemory(above: QueueStorage.hotBytes)
            }
        }
        if locked { unlock("Queue.shutdown") }
        signal(notEmpty, waiters: notEmptyWaiters, all: true)
        signal(notFull, waiters: notFullWaiters, all: true)
        signal(allDone, waiters: allDoneWaiters, all: true)
    }

    /// Marks the queue closed for every process and wakes every waiter.
    internal func close() {
        // Under the mutex, so that a waiter cannot check `closed`, miss this store, and then sleep
        // past the wake-up below.
        let locked = (try? lock(.uncancellable("Queue.close"))) != nil
        closedWord.or(QueueStorage.closedBit)
        if locked { unlock("Queue.close") }
        signal(notEmpty, waiters: notEmptyWaiters, all: true)
        signal(notFull, waiters: notFullWaiters, all: true)
    }

    // MARK: JoinableQueue

    internal func taskDone(context: WaitContext) throws {
        try lock(context)
        var current = try checkedRing(context.operation)
        guard current.unfinished > 0 else {
            unlock(context.operation)
            throw MultiprocessingError.misuse("\(context.operation): called more times than there were items put in the queue.")
        }
        current.unfinished -= 1
        commit(current)
        unlock(context.operation)
        if current.unfinished == 0 { signal(allDone, waiters: allDoneWaiters, all: true) }
    }

    internal func join(context: WaitContext) throws {
        try lock(context)
        while ring.unfinished > 0 {
            try wait(on: allDone, waiters: allDoneWaiters, context)
        }
        unlock(context.operation)
    }

    internal var unfinishedTasks: Int { Int(clamping: header.ringUnfinished.load()) }

    // MARK: Codable

    internal func encodeDescriptor(to container: inout KeyedEncodingContainer<QueueCodingKeys>) throws {
        try container.encode(SharedDescriptor(FileDescriptor(rawValue: region.fd)), forKey: .memory)
    }
}

internal enum QueueCodingKeys: String, CodingKey {
    case memory
}
