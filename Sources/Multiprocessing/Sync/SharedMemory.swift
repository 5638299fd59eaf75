import Synchronization
import SystemPackage
import MultiprocessingSystem

/// A memfd and its `MAP_SHARED` mapping: the memory that primitives share with other processes.
///
/// Every primitive keeps a strong reference to its region, so the mapping lives as long as any
/// object (in this process) refers to it, and is unmapped and closed when the last one goes. Other
/// processes hold their own mapping, made from the descriptor that traveled with the object.
internal final class SharedRegion: @unchecked Sendable {
    internal let fd: CInt
    internal let base: UnsafeMutableRawPointer
    internal let size: Int
    internal let identity: FileIdentity

    internal struct FileIdentity: Hashable, Sendable {
        let device: UInt64
        let inode: UInt64
    }

    private init(fd: CInt, base: UnsafeMutableRawPointer, size: Int, identity: FileIdentity) {
        self.fd = fd
        self.base = base
        self.size = size
        self.identity = identity
    }

    deinit {
        system_munmap(base, size: size)
        system_close(fd)
        SharedRegion.registry.withLock { map in
            if let entry = map[identity], entry.region == nil { map[identity] = nil }
        }
    }

    private struct WeakRegion {
        weak var region: SharedRegion?
    }

    /// One mapping per memfd in this process: decoding ten locks from one arena chunk maps it once.
    private static let registry = Mutex<[FileIdentity: WeakRegion]>([:])

    /// Creates a zero-filled region of `size` bytes (rounded up to whole pages).
    internal static func create(size: Int, name: String = "mp-shared") throws(MultiprocessingError) -> SharedRegion {
        let pageSize = 4096
        let rounded = (max(size, 1) + pageSize - 1) / pageSize * pageSize
        let fd: CInt
        do { fd = try system_memfdCreate(name) } catch { throw .system("memfd_create", error) }
        do {
            try system_ftruncate(fd, Int64(rounded))
            // Fixed from here on, for every process the descriptor reaches: none can shrink it
            // under another's mapping (a SIGBUS there), and receivers refuse an unsealed one.
            try system_sealSize(fd)
            let base = try system_mmapShared(fd, size: rounded)
            let id = try system_fileIdentity(fd)
            let region = SharedRegion(fd: fd, base: base, size: rounded,
                                      identity: FileIdentity(device: id.device, inode: id.inode))
            registry.withLock { $0[region.identity] = WeakRegion(region: region) }
            return region
        } catch {
            system_close(fd)
            throw .system("creating shared memory (ftruncate/seal/mmap)", error)
        }
    }

    /// Takes ownership of a memfd received from another process and maps it, or, when this process
    /// already maps that memfd, closes `fd` and returns the existing region. A descriptor whose
    /// size is not sealed (F_SEAL_SHRINK | F_SEAL_GROW, as ``create(size:name:)`` seals it) is
    /// closed and refused with `.coding`: a file that a holder can shrink makes a mapping fault.
    internal static func adopt(fd: CInt) throws(MultiprocessingError) -> SharedRegion {
        let id: (device: UInt64, inode: UInt64, size: Int)
        do { id = try system_fileIdentity(fd) } catch {
            system_close(fd)
            throw .system("fstat of a received shared-memory descriptor", error)
        }
        let identity = FileIdentity(device: id.device, inode: id.inode)
        let result: Result<SharedRegion, MultiprocessingError> = registry.withLock { map in
            if let existing = map[identity]?.region {
                system_close(fd)
                return .success(existing)
            }
            // Mapped only with a size no holder can change: the sender (or anyone it passed the
            // descriptor to) could otherwise ftruncate it and make this process fault (SIGBUS)
            // at its next access past the new end.
            switch system_sizeSeals(fd) {
            case .fixed: break
            case .resizable(let seals):
                system_close(fd)
                return .failure(MultiprocessingError(.coding, "A received shared-memory descriptor is not sealed against resizing (its seals are 0x\(String(seals, radix: 16)); F_SEAL_SHRINK | F_SEAL_GROW are required): its sender could shrink it under this process's mapping, so it was refused. Shared memory must come from this library."))
            case .notAMemfd(let error):
                system_close(fd)
                return .failure(MultiprocessingError(.coding, "A received shared-memory descriptor is not a sealed memfd (F_GET_SEALS: \(error)), so it was refused: a file whose size can change under a mapping makes it fault. Shared memory must come from this library."))
            }
            // The size read again now that it is sealed: a sender could have changed it between
            // the first fstat and its sealing.
            let size: Int
            do throws(Errno) { size = try system_fileIdentity(fd).size } catch {
                system_close(fd)
                return .failure(.system("fstat of a received shared-memory descriptor", error))
            }
            guard size > 0 else {
                system_close(fd)
                return .failure(MultiprocessingError(.coding, "A received shared-memory descriptor is empty: it is not a primitive's memory."))
            }
            do throws(Errno) {
                let base = try system_mmapShared(fd, size: size)
                let region = SharedRegion(fd: fd, base: base, size: size, identity: identity)
                map[identity] = WeakRegion(region: region)
                return .success(region)
            } catch {
                system_close(fd)
                return .failure(.system("mmap of a received shared-memory descriptor", error))
            }
        }
        return try result.get()
    }
}

/// Where shared primitives get their memory.
///
/// Decision: a process-wide arena of 64 KiB memfd chunks, not one memfd per primitive. Small objects
/// (a lock is 48 bytes) take a 64-byte, cache-line-aligned slot of the current chunk, so passing a
/// hundred locks to a child costs one descriptor (``DescriptorTransfer`` sends each fd once), and a
/// program with thousands of primitives does not run out of descriptors. Slots are bump-allocated
/// and never reused; a chunk is freed when the arena has moved on to a newer chunk and the last
/// object in it is gone. Objects larger than a quarter chunk get a memfd of their own.
internal enum SharedArena {
    internal static let chunkSize = 64 * 1024
    internal static let slotAlignment = 64

    private struct State {
        var chunk: SharedRegion?
        var next = 0
    }
    private static let state = Mutex(State())

    /// Zero-filled memory for one object.
    internal static func allocate(size: Int) throws(MultiprocessingError) -> SharedAllocation {
        let rounded = (size + slotAlignment - 1) / slotAlignment * slotAlignment
        if rounded > chunkSize / 4 {
            return SharedAllocation(region: try SharedRegion.create(size: rounded, name: "mp-shared-large"), offset: 0)
        }
        let result: Result<SharedAllocation, MultiprocessingError> = state.withLock { state in
            if state.chunk == nil || state.next + rounded > chunkSize {
                do throws(MultiprocessingError) {
                    state.chunk = try SharedRegion.create(size: chunkSize, name: "mp-shared-arena")
                    state.next = 0
                } catch {
                    return .failure(error)
                }
            }
            guard let chunk = state.chunk else {
                return .failure(MultiprocessingError(.systemCall, "The shared-memory arena has no chunk."))
            }
            let offset = state.next
            state.next += rounded
            return .success(SharedAllocation(region: chunk, offset: offset))
        }
        return try result.get()
    }
}

/// One object's memory: a region and an offset in it. It keeps the region alive.
internal struct SharedAllocation: @unchecked Sendable {
    internal let region: SharedRegion
    internal let offset: Int

    internal init(region: SharedRegion, offset: Int) {
        self.region = region
        self.offset = offset
    }

    @inline(__always)
    internal var base: UnsafeMutableRawPointer { region.base + offset }

    /// The magic number that starts every primitive's memory, checked when one is decoded.
    internal var kind: SharedWord { SharedWord(base) }
    /// A 32-bit parameter beside the kind (a bound, an element size...).
    internal var parameter: SharedWord { SharedWord(base + 4) }

    private enum CodingKeys: String, CodingKey { case memory, offset }

    /// Encodes the memfd and the offset. The memfd is added to the encoder's ``DescriptorTransfer``
    /// (once per message however many objects share it) and encoded as its index, exactly as a
    /// ``SharedDescriptor`` is, so it travels beside the bytes with SCM_RIGHTS.
    internal func encode(to encoder: any Encoder) throws {
        guard let transfer = encoder.userInfo[.descriptorTransfer] as? DescriptorTransfer else {
            throw EncodingError.invalidValue(region.fd, .init(codingPath: encoder.codingPath,
                debugDescription: "A lock, event, semaphore or shared value can only be sent to a child process or over a Connection, not encoded by another encoder."))
        }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(transfer.add(region.fd), forKey: .memory)
        try container.encode(offset, forKey: .offset)
    }

    /// Decodes and maps the memory of a primitive of `kind` that takes `size` bytes.
    internal init(from decoder: any Decoder, kind: UInt32, size: Int, typeName: StaticString) throws {
        guard let transfer = decoder.userInfo[.descriptorTransfer] as? DescriptorTransfer else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "A \(typeName) can only be decoded from a message received from another process."))
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let index = try container.decode(UInt32.self, forKey: .memory)
        let offset = try container.decode(Int.self, forKey: .offset)
        // Each claim is a duplicate of its own: adopting it closes it when this process maps the memory already.
        let region = try SharedRegion.adopt(fd: transfer.claim(Int(index), codingPath: decoder.codingPath))
        // Compared without adding first: the offset comes from the sender, and a forged one near
        // Int.max must be refused, not overflow (a trap in the receiver).
        guard offset >= 0, offset % 8 == 0, size <= region.size, offset <= region.size - size else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "A \(typeName) names \(size) bytes at offset \(offset) of a shared mapping of \(region.size) bytes."))
        }
        self.region = region
        self.offset = offset
        guard self.kind.load() == kind else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "The shared memory sent as a \(typeName) holds another kind of object."))
        }
    }
}

/// Magic numbers of the primitives, so that decoding a lock's memory as an event fails clearly.
internal enum SharedKind {
    static let lock: UInt32 = 0x4C4F_434B        // "LOCK"
    static let rlock: UInt32 = 0x524C_434B       // "RLCK"
    static let semaphore: UInt32 = 0x5345_4D41   // "SEMA"
    static let event: UInt32 = 0x4556_4E54       // "EVNT"
    static let condition: UInt32 = 0x434F_4E44   // "COND"
    static let barrier: UInt32 = 0x4241_5252     // "BARR"
    static let value: UInt32 = 0x5641_4C55       // "VALU"
    static let array: UInt32 = 0x4152_5259       // "ARRY"
    static let rawValue: UInt32 = 0x5256_414C    // "RVAL"
    static let rawArray: UInt32 = 0x5241_5252    // "RARR"
}
