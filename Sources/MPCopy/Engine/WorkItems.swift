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

internal struct ScanItem: Codable, Sendable {
    var node: Int
    var source: FilePath
    var destination: FilePath
    /// The path below the source operand, for `--exclude` patterns with a slash.
    var relative: FilePath
    /// True for an operand's top directory, which no parent scan has created.
    var createDestination: Bool
}

internal struct FileBatch: Codable, Sendable {
    var node: Int
    var sourceDirectory: FilePath
    var destinationDirectory: FilePath
    var entries: [FileEntry]
    /// The destination directory is set-group-ID: new files take its group, not ours.
    var inheritsGroup: Bool
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
