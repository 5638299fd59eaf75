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
///     0    robust, process-shared pthread mutex (``RobustMutex``), guards everything below
///     64   magic "MPQ1", flags (bit 0: joinable)
///     72   capacity: bytes in the data area
///     80   maxsize: items, 0 for no limit
///     88   maximumMessageSize
///     128  head (offset of the oldest record), used (bytes of records), count (records),
///          unfinished (JoinableQueue: items put and not yet `taskDone`), closed
///     192  journal: valid, head, used, count, unfinished
///     256  notEmpty: sequence word, waiter count
///     320  notFull: sequence word, waiter count
///     384  allDone (JoinableQueue.join): sequence word, waiter count
///
/// A record is an 8-byte little-endian word (bits 0...55 the length, bits 56...63 the kind: raw
/// bytes or Codable) and then the body, wrapping around the end of the data area.
///
/// Crash safety: the data is copied first, and the record becomes visible (or, for a get, is
/// removed) only at the commit, which writes the new head/used/count/unfinished into the
/// journal, marks it valid, applies it, and clears it. When a process dies holding the mutex the
/// next locker learns it from the robust mutex (`EOWNERDEAD`) and replays a valid journal: so a
/// producer that dies mid-copy leaves no trace, and a consumer that dies mid-copy leaves its item
/// in the queue for the next consumer. Items are never torn or duplicated.
///
/// Memory: the data area is sized to hold the largest message (`maximumMessageSize` + 8) but is
/// virtual: a memfd page costs memory only once written. When the queue becomes empty the head
/// returns to offset 0, so a queue whose consumers keep up keeps touching the same first pages; and
/// the reader gives back (fallocate `PUNCH_HOLE`) every 4 MiB granule past the first 16 MiB that it
/// has left and that holds no live record. So the memory a queue holds is about its live items
/// plus 16 MiB at most, however much has passed through it.
internal final class QueueStorage: @unchecked Sendable {
    // @unchecked: all mutable state is in the shared mapping, guarded by the robust mutex or
    // accessed with atomics; the Swift object itself is immutable.

    internal static let headerSize = 4096
    internal static let recordHeaderSize = 8
    internal static let magic: UInt32 = 0x4D50_5131  // "MPQ1"
    internal static let granule = 4 << 20
    internal static let hotGranules = 4

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
    private var head: UnsafeMutablePointer<UInt64> { field(128) }
    private var used: UnsafeMutablePointer<UInt64> { field(136) }
    private var count: UnsafeMutablePointer<UInt64> { field(144) }
    private var unfinished: UnsafeMutablePointer<UInt64> { field(152) }
    private var closedWord: SharedWord { SharedWord(region.base + 160) }
    private var journalValid: UnsafeMutablePointer<UInt64> { field(192) }
    private var notEmpty: SharedWord { SharedWord(region.base + 256) }
    private var notEmptyWaiters: SharedWord { SharedWord(region.base + 260) }
    private var notFull: SharedWord { SharedWord(region.base + 320) }
    private var notFullWaiters: SharedWord { SharedWord(region.base + 324) }
    private var allDone: SharedWord { SharedWord(region.base + 384) }
    private var allDoneWaiters: SharedWord { SharedWord(region.base + 388) }

    // MARK: creation and adoption

    /// Creates a new, empty queue in a new memfd.
    internal init(maxsize: Int, maximumMessageSize: Int, joinable: Bool) throws {
        precondition(maximumMessageSize > 0, "maximumMessageSize must be positive")
        let pageSize = 4096
        let minimum = 64 << 20
        let needed = max(minimum, maximumMessageSize + QueueStorage.recordHeaderSize)
        let capacity = (needed + pageSize - 1) / pageSize * pageSize
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
    }

    /// Maps a queue's memfd that arrived from another process.
    internal init(adopting fd: CInt, expectJoinable: Bool, codingPath: [any CodingKey]) throws {
        let region = try SharedRegion.adopt(fd: fd)
        guard region.size > QueueStorage.headerSize, SharedWord(region.base + 64).load() == QueueStorage.magic else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "The shared memory sent as a queue is not a queue's memory."))
        }
        let joinable = SharedWord(region.base + 68).load() & 1 != 0
        guard joinable == expectJoinable else {
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
        if journalValid.pointee != 0 {
            // The dead owner had decided its commit: finish it.
            head.pointee = field(200).pointee
            used.pointee = field(208).pointee
            count.pointee = field(216).pointee
            unfinished.pointee = field(224).pointee
            journalValid.pointee = 0
        }
        // Otherwise nothing it did is visible: a half-copied put lies beyond `used`, and a
        // half-copied get did not move `head`. Anyone it was about to wake may sleep on: wake all.
        notEmpty.add(1)
        notEmpty.wakeAll()
        notFull.add(1)
        notFull.wakeAll()
    }

    /// Makes a put or get visible, in a way a crash cannot leave half done.
    private func commit(head newHead: UInt64, used newUsed: UInt64, count newCount: UInt64, unfinished newUnfinished: UInt64) {
        field(200).pointee = newHead
        field(208).pointee = newUsed
        field(216).pointee = newCount
        field(224).pointee = newUnfinished
        SharedWord64(region.base + 192).store(1)
        head.pointee = newHead
        used.pointee = newUsed
        count.pointee = newCount
        unfinished.pointee = newUnfinished
        SharedWord64(region.base + 192).store(0)
    }

    // MARK: waiting

    /// Waits on a condition word, releasing the mutex meanwhile, and takes it again.
    /// A waiter that gives up (timeout, cancellation) passes a possible wake-up on.
    private func wait(on word: SharedWord, waiters: SharedWord, _ context: WaitContext) throws {
        let sequence = word.load()
        waiters.add(1)
        unlock(context.operation)
        var failure: (any Error)?
        do {
            try context.wait(on: word, expected: sequence)
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

    // MARK: copying with wrap-around

    private func copyIn(at offset: Int, _ source: UnsafeRawBufferPointer) {
        guard let from = source.baseAddress, source.count > 0 else { return }
        let first = min(source.count, capacity - offset)
        (data + offset).copyMemory(from: from, byteCount: first)
        if first < source.count {
            data.copyMemory(from: from + first, byteCount: source.count - first)
        }
    }

    private func copyOut(at offset: Int, _ destination: UnsafeMutableRawBufferPointer) {
        guard let to = destination.baseAddress, destination.count > 0 else { return }
        let first = min(destination.count, capacity - offset)
        to.copyMemory(from: data + offset, byteCount: first)
        if first < destination.count {
            (to + first).copyMemory(from: data, byteCount: destination.count - first)
        }
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

    private func putLocked(kind: Kind, body: UnsafeRawBufferPointer, block: Bool, context: WaitContext) throws {
        let recordSize = QueueStorage.recordHeaderSize + body.count
        while true {
            if closedWord.load() != 0 {
                unlock(context.operation)
                throw MultiprocessingError(.closed, "\(context.operation): the queue is closed.")
            }
            let itemsFull = maxsize > 0 && Int(count.pointee) >= maxsize
            let bytesFull = capacity - Int(used.pointee) < recordSize
            if !itemsFull && !bytesFull { break }
            if !block {
                unlock(context.operation)
                throw MultiprocessingError(.full, itemsFull
                    ? "\(context.operation): the queue holds its maxsize of \(maxsize) items."
                    : "\(context.operation): the queue's buffer has no room for \(recordSize) more bytes.")
            }
            try wait(on: notFull, waiters: notFullWaiters, context)
        }
        let headValue = Int(head.pointee)
        let usedValue = Int(used.pointee)
        let tail = (headValue + usedValue) % capacity
        var header = UInt64(body.count) | (UInt64(kind.rawValue) << 56)
        header = header.littleEndian
        withUnsafeBytes(of: &header) { copyIn(at: tail, $0) }
        copyIn(at: (tail + QueueStorage.recordHeaderSize) % capacity, body)
        commit(head: UInt64(headValue), used: UInt64(usedValue + recordSize),
               count: count.pointee + 1, unfinished: unfinished.pointee + (joinable ? 1 : 0))
        unlock(context.operation)
        signal(notEmpty, waiters: notEmptyWaiters, all: false)
    }

    /// ``put(kind:body:block:context:)`` that never waits, not even for the mutex: false when the
    /// mutex is busy or the queue is full, so that an async caller can go off the pool.
    internal func putIfRoom(kind: Kind, body: UnsafeRawBufferPointer, _ operation: StaticString) throws -> Bool {
        guard body.count <= maximumMessageSize else {
            throw MultiprocessingError.misuse("An item of \(body.count) bytes is larger than this queue's maximumMessageSize (\(maximumMessageSize) bytes).")
        }
        if isFull { return false }
        guard try tryLock(operation) else { return false }
        let recordSize = QueueStorage.recordHeaderSize + body.count
        if closedWord.load() == 0 && !(maxsize > 0 && Int(count.pointee) >= maxsize) && capacity - Int(used.pointee) >= recordSize {
            try putLocked(kind: kind, body: body, block: false, context: .uncancellable(operation))
            return true
        }
        unlock(operation)
        return false
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
        if count.pointee == 0 && closedWord.load() == 0 {
            unlock(operation)
            return nil
        }
        return try getLocked(block: false, context: .uncancellable(operation))
    }

    private func getLocked(block: Bool, context: WaitContext) throws -> (Kind, [UInt8]) {
        while count.pointee == 0 {
            if closedWord.load() != 0 {
                unlock(context.operation)
                throw MultiprocessingError(.closed, "\(context.operation): the queue is closed and empty.")
            }
            if !block {
                unlock(context.operation)
                throw MultiprocessingError(.empty, "\(context.operation): the queue is empty.")
            }
            try wait(on: notEmpty, waiters: notEmptyWaiters, context)
        }
        let headValue = Int(head.pointee)
        let usedValue = Int(used.pointee)
        var header: UInt64 = 0
        withUnsafeMutableBytes(of: &header) { copyOut(at: headValue, $0) }
        header = UInt64(littleEndian: header)
        let length = Int(header & 0x00FF_FFFF_FFFF_FFFF)
        guard let kind = Kind(rawValue: UInt8(header >> 56)),
              length <= usedValue - QueueStorage.recordHeaderSize else {
            // Only a process writing into the mapping by hand can cause this; drop everything
            // rather than hand out garbage.
            commit(head: 0, used: 0, count: 0, unfinished: unfinished.pointee)
            unlock(context.operation)
            throw MultiprocessingError(.malformedFrame, "\(context.operation): the queue's shared memory holds an invalid record (length \(length), \(usedValue) bytes used); the queue was emptied.")
        }
        let body = [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
            copyOut(at: (headValue + QueueStorage.recordHeaderSize) % capacity, UnsafeMutableRawBufferPointer(buffer))
            initialized = length
        }
        let recordSize = QueueStorage.recordHeaderSize + length
        let newUsed = usedValue - recordSize
        // An empty queue starts again at offset 0, so that its next items reuse warm pages.
        let newHead = newUsed == 0 ? 0 : (headValue + recordSize) % capacity
        commit(head: UInt64(newHead), used: UInt64(newUsed), count: count.pointee - 1, unfinished: unfinished.pointee)
        releasePages(consumedFrom: headValue, length: recordSize, liveFrom: newHead, liveLength: newUsed)
        unlock(context.operation)
        signal(notFull, waiters: notFullWaiters, all: true)
        return (kind, body)
    }

    /// Gives back the memory of granules the reader has left, past the always-kept first ones.
    private func releasePages(consumedFrom start: Int, length: Int, liveFrom liveStart: Int, liveLength: Int) {
        let g = QueueStorage.granule
        let end = start + length
        guard end > QueueStorage.hotGranules * g || end > capacity else { return }
        var granule = start / g
        let lastGranule = (end - 1) / g
        while granule <= lastGranule {
            let physical = granule % ((capacity + g - 1) / g)
            let from = physical * g
            let to = min(from + g, capacity)
            if physical >= QueueStorage.hotGranules && !overlapsLive(from, to, liveStart, liveLength) {
                // Best effort: if the kernel refuses, the pages simply stay.
                try? system_punchHole(region.fd, offset: QueueStorage.headerSize + from, length: to - from)
            }
            granule += 1
        }
    }

    private func overlapsLive(_ from: Int, _ to: Int, _ liveStart: Int, _ liveLength: Int) -> Bool {
        guard liveLength > 0 else { return false }
        let liveEnd = liveStart + liveLength
        if liveEnd <= capacity {
            return from < liveEnd && liveStart < to
        }
        // The live records wrap: [liveStart, capacity) and [0, liveEnd - capacity).
        return (from < capacity && liveStart < to) || (from < liveEnd - capacity)
    }

    // MARK: state

    /// The item count without the lock, as Python's `qsize()`: exact when nothing runs at once.
    internal var relaxedCount: Int {
        Int(SharedWord64(region.base + 144).load())
    }

    internal var isClosed: Bool { closedWord.load() != 0 }

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
        let left = unfinished.pointee
        guard left > 0 else {
            unlock(context.operation)
            throw MultiprocessingError.misuse("\(context.operation): called more times than there were items put in the queue.")
        }
        commit(head: head.pointee, used: used.pointee, count: count.pointee, unfinished: left - 1)
        unlock(context.operation)
        if left == 1 { signal(allDone, waiters: allDoneWaiters, all: true) }
    }

    internal func join(context: WaitContext) throws {
        try lock(context)
        while unfinished.pointee > 0 {
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
        _ = system_mutexTryLock(mutex.mutex)
        let headValue = Int(head.pointee)
        let usedValue = Int(used.pointee)
        switch point {
        case .midPut:
            let tail = (headValue + usedValue) % capacity
            var header = (UInt64(100) | (UInt64(1) << 56)).littleEndian
            withUnsafeBytes(of: &header) { copyIn(at: tail, $0) }
            var junk: (UInt64, UInt64) = (0xDEAD_BEEF, 0xDEAD_BEEF)
            withUnsafeBytes(of: &junk) { copyIn(at: (tail + 8) % capacity, $0) }
        case .midGet:
            var scratch: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &scratch) { copyOut(at: headValue, $0) }
        case .midGetCommit:
            var header: UInt64 = 0
            withUnsafeMutableBytes(of: &header) { copyOut(at: headValue, $0) }
            let recordSize = QueueStorage.recordHeaderSize + Int(UInt64(littleEndian: header) & 0x00FF_FFFF_FFFF_FFFF)
            let newUsed = usedValue - recordSize
            field(200).pointee = UInt64(newUsed == 0 ? 0 : (headValue + recordSize) % capacity)
            field(208).pointee = UInt64(newUsed)
            field(216).pointee = count.pointee - 1
            field(224).pointee = unfinished.pointee
            SharedWord64(region.base + 192).store(1)
            head.pointee = field(200).pointee  // applied in part: used and count are not
        }
        system__exit(9)
    }

    /// Bytes of memory the queue's memfd holds now (its allocated blocks).
    internal var residentBytes: Int {
        (try? system_allocatedBytes(region.fd)) ?? -1
    }
}
