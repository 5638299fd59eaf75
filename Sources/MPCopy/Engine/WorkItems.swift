import CMultiprocessing
import SystemPackage
import MultiprocessingSystem

// The units of work a worker (thread or child process) performs, and what it reports back.
// All are Codable so that a batch can cross a pipe to a worker process unchanged.

/// What the engine keeps of a source's `statx`.
internal struct SourceStat: Codable, Sendable, Hashable {
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var nlink: UInt32
    var ino: UInt64
    var dev: UInt64
    var size: Int64
    var blocks: Int64
    var atime: Int64
    var atimeNanoseconds: UInt32
    var mtime: Int64
    var mtimeNanoseconds: UInt32
    /// The change time: with the inode number, size and modification time, what a copy compares
    /// once it is done, to find a source that changed since the scan (`checkUnchanged`).
    var ctime: Int64
    var ctimeNanoseconds: UInt32

    init(_ st: cmp_stat_t) {
        mode = st.mode
        uid = st.uid
        gid = st.gid
        nlink = st.nlink
        ino = st.ino
        dev = st.dev_major << 32 | st.dev_minor
        size = Int64(st.size)
        blocks = Int64(st.blocks)
        atime = st.atime_sec
        atimeNanoseconds = st.atime_nsec
        mtime = st.mtime_sec
        mtimeNanoseconds = st.mtime_nsec
        ctime = st.ctime_sec
        ctimeNanoseconds = st.ctime_nsec
    }

    /// The fourteen fields as numbers, in a fixed order: how a stat travels to a worker process.
    static let numberCount = 14

    var numbers: [Int64] {
        [Int64(mode), Int64(uid), Int64(gid), Int64(nlink), Int64(bitPattern: ino), Int64(bitPattern: dev),
         size, blocks, atime, Int64(atimeNanoseconds), mtime, Int64(mtimeNanoseconds), ctime, Int64(ctimeNanoseconds)]
    }

    /// From `numberCount` numbers in the order of ``numbers``.
    init(numbers v: ArraySlice<Int64>) {
        let i = v.startIndex
        mode = UInt32(truncatingIfNeeded: v[i]); uid = UInt32(truncatingIfNeeded: v[i + 1]); gid = UInt32(truncatingIfNeeded: v[i + 2])
        nlink = UInt32(truncatingIfNeeded: v[i + 3]); ino = UInt64(bitPattern: v[i + 4]); dev = UInt64(bitPattern: v[i + 5])
        size = v[i + 6]; blocks = v[i + 7]; atime = v[i + 8]; atimeNanoseconds = UInt32(truncatingIfNeeded: v[i + 9])
        mtime = v[i + 10]; mtimeNanoseconds = UInt32(truncatingIfNeeded: v[i + 11])
        ctime = v[i + 12]; ctimeNanoseconds = UInt32(truncatingIfNeeded: v[i + 13])
    }

    // Coded as one array of numbers: an array of fixed-width integers is one copy on the wire
    // instead of fourteen keyed fields.
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let v = try container.decode([Int64].self)
        guard v.count == SourceStat.numberCount else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "a SourceStat has \(SourceStat.numberCount) numbers, not \(v.count)")
        }
        self.init(numbers: v[...])
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(numbers)
    }

    var fileType: UInt32 { mode & modeTypeMask }
    var isDirectory: Bool { fileType == modeDirectory }
    var isRegular: Bool { fileType == modeRegular }
    var isSymlink: Bool { fileType == modeSymlink }
    /// Fewer blocks than bytes: the file has holes worth keeping.
    var isSparse: Bool { size > 0 && blocks * 512 < size }
}

/// One extended attribute: name (no NUL) and value, as bytes.
internal struct ExtendedAttribute: Codable, Sendable {
    var name: [UInt8]
    var value: [UInt8]
}

/// A regular file found by a scan.
internal struct FileEntry: Codable, Sendable {
    var name: FilePath.Component
    /// The name in the destination when it differs (a single-file operand copied to a new name).
    var destinationName: FilePath.Component?
    var stat: SourceStat

    var targetName: FilePath.Component { destinationName ?? name }
}

extension FileEntry {
    private enum CodingKeys: String, CodingKey { case n, d, s }

    // Names travel as raw bytes (one array copy), never as decoded text.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try FileEntry.component(container.decode([UInt8].self, forKey: .n), container, .n)
        let target = try container.decodeIfPresent([UInt8].self, forKey: .d)
        destinationName = try target.map { try FileEntry.component($0, container, .d) }
        stat = try container.decode(SourceStat.self, forKey: .s)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(FileEntry.bytes(name), forKey: .n)
        try container.encodeIfPresent(destinationName.map(FileEntry.bytes), forKey: .d)
        try container.encode(stat, forKey: .s)
    }

    /// The name's bytes, for coding.
    static func bytes(_ component: FilePath.Component) -> [UInt8] {
        component.withPlatformString { p in
            var out: [UInt8] = []
            var i = 0
            while p[i] != 0 { out.append(UInt8(bitPattern: p[i])); i += 1 }
            return out
        }
    }

    private static func component(_ bytes: [UInt8], _ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> FilePath.Component {
        guard let component = component(bytes[...]) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not a file name")
        }
        return component
    }

    /// The file name `bytes` spell, or nil for no name: empty, with a NUL or a slash, or `.` or
    /// `..` (which would lead a worker out of its directory).
    static func component(_ bytes: ArraySlice<UInt8>) -> FilePath.Component? {
        guard !bytes.contains(0), !bytes.contains(0x2F) else { return nil }
        let cString = bytes.map { CChar(bitPattern: $0) } + [0]
        let component = cString.withUnsafeBufferPointer { b in b.baseAddress.flatMap { FilePath.Component(platformString: $0) } }
        return component?.kind == .regular ? component : nil
    }

}

/// Codes a `[FileEntry]` as two flat arrays, which the wire codec copies whole: every name's
/// bytes one after another, and for each entry sixteen numbers (its name's length, its
/// destination name's length or -1, and its ``SourceStat/numbers``). A worker process receives
/// and sends tens of thousands of entries; coded one keyed container each, the runtime's generic
/// lookups while decoding them were most of the worker processes' CPU time.
@propertyWrapper
internal struct PackedEntries: Codable, Sendable {
    var wrappedValue: [FileEntry]

    init(wrappedValue: [FileEntry]) { self.wrappedValue = wrappedValue }

    private static let stride = 2 + SourceStat.numberCount

    func encode(to encoder: any Encoder) throws {
        var names: [UInt8] = []
        var numbers: [Int64] = []
        numbers.reserveCapacity(wrappedValue.count * PackedEntries.stride)
        for entry in wrappedValue {
            let name = FileEntry.bytes(entry.name)
            names += name
            numbers.append(Int64(name.count))
            if let target = entry.destinationName.map(FileEntry.bytes) {
                names += target
                numbers.append(Int64(target.count))
            } else {
                numbers.append(-1)
            }
            numbers += entry.stat.numbers
        }
        var container = encoder.unkeyedContainer()
        try container.encode(names)
        try container.encode(numbers)
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let names = try container.decode([UInt8].self)
        let numbers = try container.decode([Int64].self)
        func corrupted(_ why: String) -> DecodingError { .dataCorruptedError(in: container, debugDescription: why) }
        guard numbers.count % PackedEntries.stride == 0 else {
            throw corrupted("file entries come as \(PackedEntries.stride) numbers each, not \(numbers.count) in all")
        }
        var entries: [FileEntry] = []
        entries.reserveCapacity(numbers.count / PackedEntries.stride)
        var offset = 0
        func name(_ length: Int64) throws -> FilePath.Component {
            guard length > 0, length <= Int64(names.count - offset) else {
                throw corrupted("a file name of \(length) bytes at byte \(offset) of \(names.count)")
            }
            let end = offset + Int(length)
            guard let component = FileEntry.component(names[offset..<end]) else {
                throw corrupted("the bytes \(offset)..<\(end) are not a file name")
            }
            offset = end
            return component
        }
        for start in Swift.stride(from: 0, to: numbers.count, by: PackedEntries.stride) {
            let entryName = try name(numbers[start])
            let target = numbers[start + 1] < 0 ? nil : try name(numbers[start + 1])
            entries.append(FileEntry(name: entryName, destinationName: target, stat: SourceStat(numbers: numbers[(start + 2)..<(start + PackedEntries.stride)])))
        }
        guard offset == names.count else { throw corrupted("\(names.count - offset) bytes of names belong to no entry") }
        wrappedValue = entries
    }
}

internal struct ScanItem: Codable, Sendable {
    var node: Int
    var source: FilePath
    var destination: FilePath
    /// The path below the source operand, for `--exclude` patterns with a slash.
    var relative: FilePath
    /// True for an operand's top directory, which no parent scan has created.
    var createDestination: Bool
    /// The destination is inside a new tree that is built under a temporary name and renamed into
    /// place when the copy ends: entries are created under their own names directly.
    var staged: Bool
}

internal struct FileBatch: Codable, Sendable {
    var node: Int
    var sourceDirectory: FilePath
    var destinationDirectory: FilePath
    @PackedEntries var entries: [FileEntry]
    /// The destination directory is set-group-ID: new files take its group, not ours.
    var inheritsGroup: Bool
    /// Inside a staged tree (see ``ScanItem/staged``): files are written under their own names.
    var staged: Bool
}

internal struct ChunkItem: Codable, Sendable {
    var large: Int
    var source: FilePath
    var temporary: FilePath
    var offset: Int64
    var length: Int64
    var sparse: Bool
}

internal struct LargeFinishItem: Codable, Sendable {
    var large: Int
    var node: Int
    var sourceDirectory: FilePath
    var destinationDirectory: FilePath
    var entry: FileEntry
    var temporaryName: FilePath.Component
}

internal struct LinkItem: Codable, Sendable {
    var node: Int
    /// The destination of the first copy of this inode.
    var existing: FilePath
    var destinationDirectory: FilePath
    var name: FilePath.Component
    /// For reports.
    var source: FilePath
    /// Inside a staged tree (see ``ScanItem/staged``): linked under its own name directly.
    var staged: Bool
}

internal struct DirectoryFinishItem: Codable, Sendable {
    var node: Int
    var source: FilePath
    var destination: FilePath
    var stat: SourceStat
    var attributes: [ExtendedAttribute]
}

internal enum WorkItem: Codable, Sendable {
    case scan(ScanItem)
    case files(FileBatch)
    case chunk(ChunkItem)
    case finishLarge(LargeFinishItem)
    case link(LinkItem)
    case finishDirectory(DirectoryFinishItem)
}

/// What a worker reports for one item: counters, failures, and for a scan what it found.
internal struct WorkResult: Codable, Sendable {
    var files = 0
    var bytes: Int64 = 0
    var directories = 0
    var symlinks = 0
    var hardLinks = 0
    var skipped = 0
    var excluded = 0
    var failures: [CopyFailure] = []
    /// Source paths copied, for `-v`.
    var copied: [FilePath] = []
    /// For a batch: whether each entry reached its final name.
    var entryDone: [Bool] = []
    /// The worker saw the cancellation flag and stopped early.
    var cancelled = false

    // A scan's findings.
    var scanned = false
    var directoryStat: SourceStat?
    var directoryAttributes: [ExtendedAttribute] = []
    var subdirectories: [FilePath.Component] = []
    var destinationSetGID = false
    @PackedEntries var foundFiles: [FileEntry] = []
    /// Files skipped by `-u` that have other hard links, and their destinations' inode numbers:
    /// the scheduler links the inode's other names to them.
    @PackedEntries var upToDateLinks: [FileEntry] = []
    var upToDateInodes: [UInt64] = []
}

extension WorkItem {
    /// The source path an item is about, for a failure report (a worker process that died, an
    /// MPI rank's answer that cannot be decoded).
    var sourcePath: FilePath {
        switch self {
        case .scan(let s): s.source
        case .files(let b): b.sourceDirectory
        case .chunk(let c): c.source
        case .finishLarge(let f): f.sourceDirectory.appending(f.entry.name)
        case .link(let l): l.source
        case .finishDirectory(let d): d.source
        }
    }
}

/// The batches and chunks that workers hold, counted by directory node and by large file: the
/// Scheduler and an MPI rank's walk use it to hand out work that does not make a worker wait on
/// another in the kernel. A batch in a directory where another worker is creating files waits
/// for the directory's lock (and on ext4 the inode allocation under it is slow after many
/// deletions); a chunk of a file another worker is writing waits for its inode lock (a second
/// writer doubled the CPU time of a 1 GiB copy and saved no time, warm cache or cold).
struct WorkInFlight {
    private var batches: [Int: Int] = [:]
    private var chunks: [Int: Int] = [:]

    /// Counts `item` as held by a worker (scans and the rest are not counted).
    mutating func add(_ item: WorkItem) { count(item, 1) }

    /// Counts `item` as no longer held (done or given back).
    mutating func remove(_ item: WorkItem) { count(item, -1) }

    /// Whether `item` would wait on work in flight.
    func collides(_ item: WorkItem) -> Bool {
        switch item {
        case .files(let batch): batches[batch.node] != nil
        case .chunk(let chunk): chunks[chunk.large] != nil
        default: false
        }
    }

    /// Moves to `queue[head]` the first item among the next 256 that does not collide with the
    /// work in flight. When every one does (a lone big file, one huge directory), the head stays
    /// as it is: workers then share that file or directory.
    func preferWorkThatDoesNotCollide(in queue: inout [WorkItem], head: Int) {
        guard !batches.isEmpty || !chunks.isEmpty, collides(queue[head]) else { return }
        let end = min(queue.count, head + 256)
        var index = head + 1
        while index < end {
            if !collides(queue[index]) {
                queue.swapAt(head, index)
                return
            }
            index += 1
        }
    }

    private mutating func count(_ item: WorkItem, _ delta: Int) {
        func bump(_ table: inout [Int: Int], _ key: Int) {
            let n = (table[key] ?? 0) + delta
            table[key] = n > 0 ? n : nil
        }
        switch item {
        case .files(let batch): bump(&batches, batch.node)
        case .chunk(let chunk): bump(&chunks, chunk.large)
        default: break
        }
    }
}
