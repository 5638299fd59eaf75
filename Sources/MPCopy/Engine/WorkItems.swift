import CMultiprocessing
import SystemPackage

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
    }

    // Coded as one array of numbers: a worker process receives tens of thousands of these, and
    // an array of fixed-width integers is one copy on the wire instead of twelve keyed fields.
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let v = try container.decode([Int64].self)
        guard v.count == 12 else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "a SourceStat has 12 numbers, not \(v.count)")
        }
        mode = UInt32(truncatingIfNeeded: v[0]); uid = UInt32(truncatingIfNeeded: v[1]); gid = UInt32(truncatingIfNeeded: v[2])
        nlink = UInt32(truncatingIfNeeded: v[3]); ino = UInt64(bitPattern: v[4]); dev = UInt64(bitPattern: v[5])
        size = v[6]; blocks = v[7]; atime = v[8]; atimeNanoseconds = UInt32(truncatingIfNeeded: v[9])
        mtime = v[10]; mtimeNanoseconds = UInt32(truncatingIfNeeded: v[11])
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode([Int64(mode), Int64(uid), Int64(gid), Int64(nlink), Int64(bitPattern: ino), Int64(bitPattern: dev),
                              size, blocks, atime, Int64(atimeNanoseconds), mtime, Int64(mtimeNanoseconds)])
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

    private static func bytes(_ component: FilePath.Component) -> [UInt8] {
        component.withPlatformString { p in
            var out: [UInt8] = []
            var i = 0
            while p[i] != 0 { out.append(UInt8(bitPattern: p[i])); i += 1 }
            return out
        }
    }

    private static func component(_ bytes: [UInt8], _ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> FilePath.Component {
        let cString = bytes.map { CChar(bitPattern: $0) } + [0]
        guard !bytes.contains(0), !bytes.contains(0x2F),
              let component = cString.withUnsafeBufferPointer({ b in b.baseAddress.flatMap { FilePath.Component(platformString: $0) } })
        else {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not a file name")
        }
        return component
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
    var entries: [FileEntry]
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
    var foundFiles: [FileEntry] = []
}
