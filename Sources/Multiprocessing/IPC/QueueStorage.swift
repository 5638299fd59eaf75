import SystemPackage

/// The shared-memory ring buffer behind ``Queue``, ``SimpleQueue`` and ``JoinableQueue``.
///
/// One memfd holds a 4 KiB header page and then the ring's data area. Every process that has
/// the queue maps the same memfd, so `put` is a copy into shared memory under a lock: once it
/// returns, the item is in the queue and the producer owes nothing more (no feeder thread, no
/// pipe to flush). That is why joining a producer before draining its queue cannot deadlock.
///
/// Header page (byte offsets):
///
///     0    robust, process-shared lock (``RobustMutex``), guards everything below
///     64   magic "MPQ2", flags (bit 0: joinable)
///     72   capacity: bytes in the data area
///     80   maxsize: items, 0 for no limit
///     88   maximumMessageSize
///     128  the ring (see ``Ring``): head, tail, count, unfinished, live bytes, wrap point
///     176  closed flag
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

    internal typealias Kind = FrameHeader.Kind

    internal let region: SharedRegion
    private let mutex: RobustMutex
    internal let capacity: Int
    internal let maxsize: Int
    internal let maximumMessageSize: Int
    internal let joinable: Bool

    // MARK: layout

    private var base: UnsafeMutableRawPointer { region.base }
    private var data: UnsafeMutableRawPointer { region.base + QueueStorage.headerSize }

    private func field(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
        (region.base + offset).assumingMemoryBound(to: UInt64.self)
    }
    private var closedWord: SharedWord { SharedWord(region.base + 176) }
    private var highWater: UnsafeMutablePointer<UInt64> { field(184) }
    private var journalValid: SharedWord64 { SharedWord64(region.base + 192) }

    /// The ring's state: where the live records are, and the counts.
    internal struct Ring {
        var head: UInt64
        var tail: UInt64
        var count: UInt64
        var unfinished: UInt64
        var live: UInt64
        var wrap: UInt64
    }

    /// Reads the ring at `offset` (128 for the ring itself, 200 for the journal's copy).
    private func loadRing(at offset: Int) -> Ring {
        Ring(head: field(offset).pointee, tail: field(offset + 8).pointee, count: field(offset + 16).pointee,
             unfinished: field(offset + 24).pointee, live: field(offset + 32).pointee, wrap: field(offset + 40).pointee)
    }

    private func storeRing(_ ring: Ring, at offset: Int) {
        field(offset).pointee = ring.head
        field(offset + 8).pointee = ring.tail
        // Atomic stores: qsize and friends read count and unfinished without the mutex.
        SharedWord64(region.base + offset + 16).store(ring.count)
        SharedWord64(region.base + offset + 24).store(ring.unfinished)
        field(offset + 32).pointee = ring.live
        field(offset + 40).pointee = ring.wrap
    }

    private var ring: Ring { loadRing(at: 128) }

    private var notEmpty: SharedWord { SharedWord(region.base + 256) }
    internal var notEmptyWaiters: SharedWord { SharedWord(region.base + 260) }
    private var notFull: SharedWord { SharedWord(region.base + 320) }
    private var notFullWaiters: SharedWord { SharedWord(region.base + 324) }
    private var allDone: SharedWord { SharedWord(region.base + 384) }
    private var allDoneWaiters: SharedWord { SharedWord(region.base + 388) }

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
        precondition(RobustMutex.size <= 64, "the queue's header keeps 64 bytes for its mutex")
        let region = try SharedRegion.create(size: QueueStorage.headerSize + capacity, name: "mp-queue")
        self.region = region
        self.mutex = RobustMutex(region.base)
        self.capacity = capacity
        self.maxsize = max(0, maxsize)
        self.maximumMessageSize = maximumMessageSize
        self.joinable = joinable
        try mutex.initialize(recursive: false)
        SharedWord(region.base + 64).store(QueueStorage.magic)
        SharedWord(region.base + 68).store(joinable ? 1 : 0)
        field(72).pointee = UInt64(capacity)
        field(80).pointee = UInt64(self.maxsize)
        field(88).pointee = UInt64(maximumMessageSize)
        storeRing(Ring(head: 0, tail: 0, count: 0, unfinished: 0, live: 0, wrap: QueueStorage.noWrap), at: 128)
    }

    /// Maps a queue's memfd that arrived from another process. `expectJoinable` nil accepts both
    /// kinds (a ``JoinableQueue`` is a ``Queue``); true refuses a plain queue.
    internal init(adopting fd: CInt, expectJoinable: Bool?, codingPath: [any CodingKey]) throws {
        let region = try SharedRegion.adopt(fd: fd)
        guard region.size > QueueStorage.headerSize, SharedWord(region.base + 64).load() == QueueStorage.magic else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "The shared memory sent as a queue is not a queue's memory."))
        }
        let joinable = SharedWord(region.base + 68).load() & 1 != 0
        if let expectJoinable, joinable != expectJoinable {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "A \(joinable ? "JoinableQueue" : "Queue") was decoded as a \(expectJoinable ? "JoinableQueue" : "Queue")."))
        }
        let capacity = Int((region.base + 72).load(as: UInt64.self))
        guard capacity > 0, capacity <= region.size - QueueStorage.headerSize else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "A queue's shared memory is smaller than its header says."))
        }
        self.region = region
        self.mutex = RobustMutex(region.base)
        self.capacity = capacity
        self.maxsize = Int((region.base + 80).load(as: UInt64.self))
        self.maximumMessageSize = Int((region.base + 88).load(as: UInt64.self))
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
            storeRing(loadRing(at: 200), at: 128)
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
        storeRing(ring, at: 200)
        journalValid.store(1)
        storeRing(ring, at: 128)
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
    private func place(_ size: Int, in ring: Ring) -> (offset: Int, ring: Ring)? {
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
        let current = ring
        if closedWord.load() == 0 && !(maxsize > 0 && Int(current.count) >= maxsize)
            && place(QueueStorage.recordHeaderSize + body.count, in: current) != nil {
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
                throw MultiprocessingError(.closed, "\(context.operation): the queue is closed.")
            }
            let current = ring
            let itemsFull = maxsize > 0 && Int(current.count) >= maxsize
            if !itemsFull {
                placement = place(recordSize, in: current)
                if placement != nil { break }
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
        if end > highWater.pointee { highWater.pointee = end }
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
        if ring.count == 0 && closedWord.load() == 0 {
            unlock(operation)
            return nil
        }
        return try getLocked(block: false, context: .uncancellable(operation))
    }

    private func getLocked(block: Bool, context: WaitContext) throws -> (Kind, [UInt8]) {
        var current = ring
        while current.count == 0 {
            if closedWord.load() != 0 {
                unlock(context.operation)
                throw MultiprocessingError(.closed, "\(context.operation): the queue is closed and empty.")
            }
            if !block {
                unlock(context.operation)
                throw MultiprocessingError(.empty, "\(context.operation): the queue is empty.")
            }
            try wait(on: notEmpty, waiters: notEmptyWaiters, context)
            current = ring
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
        let top = Int(highWater.pointee)
        guard top > keep else { return }
        // Best effort: if the kernel refuses, the pages simply stay.
        try? system_punchHole(region.fd, offset: QueueStorage.headerSize + keep, length: roundUpToGranule(top) - keep)
        highWater.pointee = UInt64(keep)
    }

    // MARK: state

    /// The item count without the lock, as Python's `qsize()`: exact when nothing runs at once.
    internal var relaxedCount: Int {
        Int(SharedWord64(region.base + 144).load())
    }

    internal var isClosed: Bool { closedWord.load() != 0 }

    /// Calls waiting for an item, in every process (tests wait for a consumer to be waiting).
    internal var waitingConsumers: Int { Int(notEmptyWaiters.load()) }

    internal var isFull: Bool {
        maxsize > 0 && relaxedCount >= maxsize
    }

    /// Marks the queue closed for every process and wakes every waiter.
    internal func close() {
        // Under the mutex, so that a waiter cannot check `closed`, miss this store, and then sleep
        // past the wake-up below.
        let locked = (try? lock(.uncancellable("Queue.close"))) != nil
        closedWord.store(1)
        if locked { unlock("Queue.close") }
        signal(notEmpty, waiters: notEmptyWaiters, all: true)
        signal(notFull, waiters: notFullWaiters, all: true)
    }

    // MARK: JoinableQueue

    internal func taskDone(context: WaitContext) throws {
        try lock(context)
        var current = ring
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

    internal var unfinishedTasks: Int { Int(SharedWord64(region.base + 152).load()) }

    // MARK: Codable

    internal func encodeDescriptor(to container: inout KeyedEncodingContainer<QueueCodingKeys>) throws {
        try container.encode(SharedDescriptor(FileDescriptor(rawValue: region.fd)), forKey: .memory)
    }
}

internal enum QueueCodingKeys: String, CodingKey {
    case memory
}

// MARK: crash simulation (tests)

extension QueueStorage {
    /// Where ``crashWhileHolding(_:)`` dies.
    internal enum CrashPoint {
        /// Halfway through copying a new record in: nothing committed.
        case midPut
        /// Halfway through copying the oldest record out: nothing committed.
        case midGet
        /// After a get's journal is marked valid, before it is fully applied.
        case midGetCommit
    }

    /// Takes the mutex and ends the process at `point`, as a `SIGKILL` there would. For a forked
    /// test child: it allocates nothing and takes no other lock.
    internal func crashWhileHolding(_ point: CrashPoint) -> Never {
        _ = system_robustTryLock(mutex.mutex)
        let current = ring
        switch point {
        case .midPut:
            if let (offset, _) = place(100 + QueueStorage.recordHeaderSize, in: current) {
                let target = data + offset
                target.storeBytes(of: (UInt64(100) | (UInt64(1) << 56)).littleEndian, as: UInt64.self)
                (target + 8).storeBytes(of: UInt64(0xDEAD_BEEF), as: UInt64.self)
            }
        case .midGet:
            var scratch: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &scratch) { $0.copyMemory(from: UnsafeRawBufferPointer(start: data + Int(current.head), count: 16)) }
        case .midGetCommit:
            let header = UInt64(littleEndian: (data + Int(current.head)).loadUnaligned(as: UInt64.self))
            let recordSize = UInt64(QueueStorage.recordHeaderSize) + (header & 0x00FF_FFFF_FFFF_FFFF)
            var next = current
            next.count -= 1
            next.live -= recordSize
            next.head += recordSize
            if next.count == 0 { next.head = 0; next.tail = 0; next.wrap = QueueStorage.noWrap }
            storeRing(next, at: 200)
            journalValid.store(1)
            field(128).pointee = next.head  // applied in part: the rest is not
        }
        system__exit(9)
    }

    /// Bytes of memory the queue's memfd holds now (its allocated blocks).
    internal var residentBytes: Int {
        (try? system_allocatedBytes(region.fd)) ?? -1
    }
}
