#if MPI
import CMPI
import CMPIShim

/// An MPI communicator: a group of ranks that exchange messages. ``world`` holds every rank of the job.
///
/// `MPI_Comm` is a pointer in Open MPI and an `Int32` in MPICH; this type holds its Fortran handle
/// (an integer in both), so the same source builds against both.
public struct MPICommunicator: Sendable, Hashable {
    let handle: Int32

    /// `MPI_COMM_WORLD`: every rank of the job. Use it after ``MPIEnvironment/initialize(threadLevel:minimum:)``.
    public static var world: MPICommunicator { MPICommunicator(handle: cmpi_comm_world()) }

    /// This process's rank in the communicator, 0 ..< ``size()``.
    public func rank() throws -> Int {
        var value: Int32 = 0
        try MPIEnvironment.check(cmpi_comm_rank(handle, &value), "MPI_Comm_rank")
        return Int(value)
    }

    /// How many ranks the communicator holds.
    public func size() throws -> Int {
        var value: Int32 = 0
        try MPIEnvironment.check(cmpi_comm_size(handle, &value), "MPI_Comm_size")
        return Int(value)
    }

    /// A copy with a context of its own (`MPI_Comm_dup`), so that its messages never meet the
    /// original's. Collective: every rank calls it.
    public func duplicate() throws -> MPICommunicator {
        var out: Int32 = 0
        try MPIEnvironment.check(cmpi_comm_dup(handle, &out), "MPI_Comm_dup")
        return MPICommunicator(handle: out)
    }
}

/// One received message: who sent it, its tag and its bytes.
public struct MPIMessage: Sendable {
    /// The sender's rank.
    public var source: Int
    /// The tag the sender gave.
    public var tag: Int
    /// The whole message (reassembled when it was sent in parts).
    public var bytes: [UInt8]
}

/// Byte messages of any size between the ranks of a communicator, without blocking: sends are
/// `MPI_Isend`s completed by ``progress()``, and receives find a message with a matched probe
/// (`MPI_Improbe`, then `MPI_Mrecv` of exactly its size), so messages of any length need no size
/// agreed in advance and no other thread can take the probed message.
///
/// MPI counts in `Int32`, so a message longer than `Int32.max` bytes travels in parts: every part but
/// the last has an odd MPI tag (`2 × tag + 1`), the last an even one (`2 × tag`), and MPI's
/// non-overtaking rule keeps one sender's parts in order. The receiver joins them.
///
/// Not thread-safe: one thread makes every call (MPIPool's rule), which is also what
/// `MPI_THREAD_FUNNELED` allows.
public final class MPIMessenger {
    /// The communicator the messages travel on.
    public let communicator: MPICommunicator
    /// The largest part sent in one MPI message; `Int32.max` unless a test makes it smaller.
    public let partLimit: Int
    /// The largest tag a caller may use: half MPI's upper bound (`MPI_TAG_UB`), less one.
    public let maximumTag: Int

    private struct Pending {
        var request: UnsafeMutableRawPointer
        var buffer: UnsafeMutableRawBufferPointer
    }
    /// Storage for the message a probe matched.
    private let matched: UnsafeMutableRawPointer
    private var pending: [Pending] = []
    /// Parts received so far of a message still being sent, by sender.
    private var partial: [Int: [UInt8]] = [:]

    /// A messenger on `communicator`.
    /// - Parameters:
    ///   - communicator: The ranks the messages travel between; the world by default.
    ///   - partLimit: The largest part of a message sent as one MPI message, at most `Int32.max`.
    /// - Throws: ``MPIError`` for a part limit out of range.
    public init(communicator: MPICommunicator = .world, partLimit: Int = Int(Int32.max)) throws {
        guard partLimit >= 1, partLimit <= Int(Int32.max) else {
            throw MPIError(.misuse, "A message part limit must be 1 ... \(Int32.max) bytes; \(partLimit) was given.")
        }
        self.communicator = communicator
        self.partLimit = partLimit
        self.maximumTag = Int(cmpi_tag_upper_bound()) / 2 - 1
        guard let storage = cmpi_message_new() else { throw MPIError(.misuse, "Out of memory for an MPI message handle.") }
        self.matched = storage
    }

    deinit {
        // Requests still in flight at teardown: the job is ending; cancel them and free the memory.
        for item in pending {
            _ = cmpi_cancel(item.request)
            cmpi_storage_free(item.request)
            item.buffer.deallocate()
        }
        cmpi_storage_free(matched)
    }

    /// How many sends have not completed yet.
    public var pendingSends: Int { pending.count }

    /// Starts sending `bytes` to `destination` with `tag`; returns at once (the bytes are copied).
    /// Call ``progress()`` (``receive()`` does) until ``pendingSends`` is 0 before finalizing.
    /// - Throws: ``MPIError`` for a tag out of range or a failed `MPI_Isend`.
    public func send(_ bytes: [UInt8], to destination: Int, tag: Int) throws {
        guard tag >= 0, tag <= maximumTag else { throw MPIError(.misuse, "MPI message tag \(tag) is outside 0 ... \(maximumTag).") }
        var offset = 0
        repeat {
            let length = min(partLimit, bytes.count - offset)
            let last = offset + length == bytes.count
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 16)
            if length > 0 {
                bytes.withUnsafeBytes { source in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + length)]))
                }
            }
            guard let request = cmpi_request_new() else {
                buffer.deallocate()
                throw MPIError(.misuse, "Out of memory for an MPI request handle.")
            }
            let code = cmpi_isend_bytes(buffer.baseAddress, Int32(length), Int32(destination), Int32(tag * 2 + (last ? 0 : 1)), communicator.handle, request)
            if code != 0 {
                cmpi_storage_free(request)
                buffer.deallocate()
                try MPIEnvironment.check(code, "MPI_Isend to rank \(destination)")
            }
            pending.append(Pending(request: request, buffer: buffer))
            offset += length
        } while offset < bytes.count
    }

    /// Completes the sends that can complete (`MPI_Test`), freeing their copies.
    public func progress() throws {
        var index = 0
        while index < pending.count {
            var done: Int32 = 0
            try MPIEnvironment.check(cmpi_test(pending[index].request, &done), "MPI_Test")
            if done != 0 {
                let item = pending.remove(at: index)
                cmpi_storage_free(item.request)
                item.buffer.deallocate()
            } else {
                index += 1
            }
        }
    }

    /// A whole message from any rank, if one has arrived; nil at once otherwise (never blocks).
    /// Drives pending sends too.
    public func receive() throws -> MPIMessage? {
        if !pending.isEmpty { try progress() }
        while true {
            var found: Int32 = 0
            var source: Int32 = 0
            var tag: Int32 = 0
            var count: Int32 = 0
            try MPIEnvironment.check(cmpi_improbe_bytes(cmpi_any_source(), cmpi_any_tag(), communicator.handle, &found, matched, &source, &tag, &count), "MPI_Improbe")
            guard found != 0 else { return nil }
            var bytes = [UInt8](repeating: 0, count: Int(count))
            let code = bytes.withUnsafeMutableBytes { cmpi_mrecv_bytes($0.baseAddress, count, matched) }
            try MPIEnvironment.check(code, "MPI_Mrecv from rank \(source)")
            let sender = Int(source)
            if tag % 2 == 1 {
                partial[sender, default: []].append(contentsOf: bytes)
                continue
            }
            if var head = partial.removeValue(forKey: sender) {
                head.append(contentsOf: bytes)
                bytes = head
            }
            return MPIMessage(source: sender, tag: Int(tag / 2), bytes: bytes)
        }
    }
}
#endif
