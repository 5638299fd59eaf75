public import SystemPackage

/// What a copy keeps of each source file besides its bytes, as in `cp --preserve=`.
public struct PreservedAttributes: OptionSet, Sendable, Hashable, Codable {
    /// The raw bits.
    public let rawValue: UInt8
    /// Creates a set from its raw bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Permission bits, including set-user-ID, set-group-ID and sticky.
    public static let mode = PreservedAttributes(rawValue: 1 << 0)
    /// Owner and group. Applied only when running as root, as `cp` does.
    public static let ownership = PreservedAttributes(rawValue: 1 << 1)
    /// Access and modification times, with nanoseconds.
    public static let timestamps = PreservedAttributes(rawValue: 1 << 2)
    /// Hard links: files that share an inode in the source share one in the copy.
    public static let links = PreservedAttributes(rawValue: 1 << 3)
    /// Extended attributes (`user.*`, and `security.*`/`trusted.*` where allowed).
    public static let xattr = PreservedAttributes(rawValue: 1 << 4)
    /// Everything above: what `-a` keeps.
    public static let all: PreservedAttributes = [.mode, .ownership, .timestamps, .links, .xattr]

    /// Parses a list such as `mode,ownership,timestamps,links,xattr` (`all` allowed).
    ///
    /// - Parameter list: comma-separated names.
    /// - Throws: ``MPCopyError`` with code ``MPCopyError/Code/usage`` naming an unknown attribute.
    public init(parsing list: String) throws(MPCopyError) {
        var set: PreservedAttributes = []
        for word in list.split(separator: ",", omittingEmptySubsequences: true) {
            switch word {
            case "mode": set.insert(.mode)
            case "ownership": set.insert(.ownership)
            case "timestamps": set.insert(.timestamps)
            case "links": set.insert(.links)
            case "xattr": set.insert(.xattr)
            case "all": set.formUnion(.all)
            default:
                throw MPCopyError(.usage, "unknown attribute '\(word)': use mode, ownership, timestamps, links, xattr or all")
            }
        }
        self = set
    }
}

/// Where the copying runs.
public enum WorkerKind: String, Sendable, Codable, CaseIterable {
    /// A pool of threads in this process.
    case threads
    /// A pool of child processes, each fed batches of work items.
    case processes
}

/// How a ``CopyJob`` copies: the engine's equivalent of the `mpcp` command line.
public struct CopyOptions: Sendable, Codable {
    /// Copy directories and everything under them (`-r`).
    public var recursive: Bool = false
    /// What to keep besides file contents (`-a`, `--preserve=`).
    public var preserve: PreservedAttributes = []
    /// Walk and report, but write nothing (`-n`).
    public var dryRun: Bool = false
    /// Skip a file whose destination is newer than the source, or has the same size and
    /// modification time (`-u`, as in `cp -u` and `rsync -u`). A newer edit in the destination
    /// is kept. In a staged tree left by a killed run, only a file with the source's exact size and
    /// modification time counts as done (a partial file there has a newer time, but is not done).
    public var update: Bool = false
    /// Decide by content, as `rsync -c` does: a destination file of the same size whose bytes are
    /// the source's (and, when times are kept, whose modification time is too) is skipped; any
    /// other is copied, even one of the same size and time. With ``update``, a newer destination
    /// file is still kept.
    public var checksum: Bool = false
    /// Read back each copied file and compare it with its source before it takes its final name
    /// (`--verify`).
    public var verify: Bool = false
    /// Never replace an existing destination name (`--no-clobber`, `cp -n`): whatever is there
    /// stays, and the source is counted as skipped.
    public var noClobber: Bool = false
    /// Shell patterns (`fnmatch(3)`) of names to leave out. A pattern with a `/` matches the path
    /// relative to the source operand; one without matches the last component.
    public var excludes: [String] = []
    /// More patterns as ``excludes``, as bytes: for a pattern that is not UTF-8 (a String would
    /// repair it, and it would match nothing).
    public var excludeBytes: [[UInt8]] = []
    /// How many workers copy at once.
    public var jobs: Int = 1
    /// Threads or processes.
    public var workers: WorkerKind = .threads
    /// Report every file copied through ``CopyEvent/copied(_:)``.
    public var verbose: Bool = false
    /// Files at least this large are split into chunks of this size, copied in parallel.
    public var chunkSize: Int64 = 64 << 20
    /// Small files are handed to workers in batches of at most this many.
    public var batchFiles: Int = 32
    /// ...and at most this many bytes.
    public var batchBytes: Int64 = 16 << 20
    /// Write each small file as an unnamed `O_TMPFILE` and link it into place (the default), rather
    /// than under a `.mpcp-tmp-*` name renamed into place. Both never show a partial file under
    /// its final name; the unnamed file also leaves nothing behind after SIGKILL, and is faster on
    /// ext4. The engine falls back to names by itself where O_TMPFILE is not supported.
    public var unnamedTemporaries: Bool = true
    /// Build a directory operand whose destination does not exist yet under a temporary name
    /// (`.mpcp-tmp-stage-*`) beside it, and rename it into place when the copy ends (the default).
    /// Inside it, files are written under their own names: no path under the final name exists
    /// before the copy is over, and each file costs the file system a plain create instead of an
    /// unnamed file plus a link. A run killed with SIGKILL leaves the tree under that name, and the
    /// next run to the same destination takes it over (with ``update``, keeping its complete
    /// files). Off, files appear under the final tree one by one as they complete.
    public var stageNewDirectories: Bool = true
    /// For `--workers processes`: the executable a worker child runs (it must link MPCopy, whose
    /// worker task the library runs before that program's `main`). Nil means this process's own
    /// executable. It is the workers' own configuration: the process-wide default is left alone.
    public var workerExecutable: FilePath? = nil

    /// Creates options with everything off, one job and thread workers.
    public init() {}
}

/// The error `mpcp`'s engine throws for a copy that cannot start: a usage error.
public struct MPCopyError: Error, Sendable, CustomStringConvertible {
    /// A stable kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        internal let rawValue: String
        internal init(_ rawValue: String) { self.rawValue = rawValue }
        /// The code's name.
        public var description: String { rawValue }
        /// The arguments are wrong: a missing source, a directory copied into itself, an unknown option value.
        public static let usage = Code("usage")
        /// Worker threads or processes could not be started.
        public static let workers = Code("workers")
    }
    /// What kind of failure this is.
    public var code: Code
    /// A sentence for a person: what is wrong and what to do.
    public var message: String
    /// The `errno` behind the failure, if a system call failed.
    public var underlyingErrno: Errno?

    /// Creates an error.
    /// - Parameters:
    ///   - code: the kind of failure.
    ///   - message: what happened, for a person.
    ///   - errno: the system's error, if any.
    public init(_ code: Code, _ message: String, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.underlyingErrno = errno
    }

    /// The message, followed by the system's error if there is one.
    public var description: String {
        if let underlyingErrno { return "\(message): \(underlyingErrno)" }
        return message
    }
}

/// One file or directory that could not be copied. The rest of the copy went on.
public struct CopyFailure: Sendable, Codable, CustomStringConvertible {
    /// The source path.
    public var path: FilePath
    /// What was being done, such as "open", "copy" or "rename".
    public var operation: String
    /// The system's error, if a system call failed.
    public var errno: Errno?
    /// More detail when there is no errno (a checksum mismatch, an omitted directory).
    public var detail: String?

    /// Creates a failure record.
    /// - Parameters:
    ///   - path: the source path.
    ///   - operation: the step that failed.
    ///   - errno: the system's error.
    ///   - detail: words for failures without an errno.
    public init(path: FilePath, operation: String, errno: Errno? = nil, detail: String? = nil) {
        self.path = path
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// `path: operation: why`, as `mpcp` prints it.
    public var description: String {
        let why = detail ?? errno.map { "\($0)" } ?? "failed"
        return "\(path): \(operation): \(why)"
    }
}

/// Something a running copy reports as it happens.
public enum CopyEvent: Sendable {
    /// A file, link or directory was copied (only with ``CopyOptions/verbose``). The path is the source's.
    case copied(FilePath)
    /// A file failed; the copy goes on.
    case failed(CopyFailure)
}

/// The totals of a finished (or interrupted) copy.
public struct CopyReport: Sendable, Codable {
    /// Regular files written (or, in a dry run, that would be).
    public var files: Int = 0
    /// Bytes of file contents copied.
    public var bytes: Int64 = 0
    /// Directories created or updated.
    public var directories: Int = 0
    /// Symbolic links created.
    public var symlinks: Int = 0
    /// Files created as hard links to an earlier copy.
    public var hardLinks: Int = 0
    /// Files skipped by `--update` because the destination was already up to date.
    public var skipped: Int = 0
    /// Names left out by `--exclude`.
    public var excluded: Int = 0
    /// Everything that failed.
    public var failures: [CopyFailure] = []
    /// Wall-clock seconds from start to end.
    public var seconds: Double = 0
    /// True when the copy was stopped by ``CopyJob/cancel()`` (SIGINT, SIGTERM or SIGHUP in `mpcp`).
    public var interrupted: Bool = false
    /// True for a dry run: nothing was written.
    public var dryRun: Bool = false

    /// Creates an empty report.
    public init() {}
}

/// A snapshot of a running copy's progress.
public struct CopyProgress: Sendable {
    /// Bytes copied so far.
    public var bytesDone: Int64
    /// Bytes found so far by the walk (grows while the walk runs).
    public var bytesFound: Int64
    /// Files finished so far.
    public var filesDone: Int
    /// Files found so far by the walk.
    public var filesFound: Int
    /// True once the walk has seen every directory, so the totals are final.
    public var walkFinished: Bool
    /// Seconds since the copy started.
    public var seconds: Double

    /// What one file costs, in bytes of data: the fixed work of a file (create, metadata, link)
    /// takes about as long as copying 128 KiB on the machines measured (50,000 small files in
    /// 4.6 s is 92 µs a file; 1 GiB in 0.64 s is 150 KB in 92 µs).
    public static let bytesPerFile: Int64 = 128 << 10

    /// How much of the copy is done, from 0 to 1, counting each file as ``bytesPerFile`` bytes of
    /// work on top of its data: a run with its big files done but most small files to go is not
    /// nearly finished.
    public var fractionDone: Double {
        let found = Double(max(bytesFound, 0)) + Double(filesFound) * Double(CopyProgress.bytesPerFile)
        guard found > 0 else { return walkFinished ? 1 : 0 }
        let done = Double(min(max(bytesDone, 0), max(bytesFound, 0))) + Double(min(filesDone, filesFound)) * Double(CopyProgress.bytesPerFile)
        return min(max(done / found, 0), 1)
    }

    /// Seconds left at the pace so far, from ``fractionDone``; nil while the walk still finds work
    /// or before anything is done.
    public var secondsLeft: Double? {
        let fraction = fractionDone
        guard walkFinished, fraction > 0, seconds > 0 else { return nil }
        return seconds * (1 - fraction) / fraction
    }
}
