import CMultiprocessing
import Synchronization
import SystemPackage
import MultiprocessingSystem

/// Does the work of one item: the system calls of the copy. One performer is shared by all the
/// worker threads of a process (a worker child has its own).
internal final class Performer: Sendable {
    let options: CopyOptions
    let umask: mode_t
    let isRoot: Bool
    let euid: UInt32
    let egid: UInt32
    /// Set by `cancel()`: workers stop at the next file or 16 MiB step and remove their temporaries.
    let cancelled = Atomic<Bool>(false)
    /// Bytes copied so far, for the progress bar (updated within large files too).
    let bytesDone = Atomic<Int64>(0)
    /// Turned off after the first EOPNOTSUPP-like answer, so that ext4 pays for one failed FICLONE only.
    let cloneWorks = Atomic<Bool>(true)
    let copyRangeWorks = Atomic<Bool>(true)
    let tmpfileWorks: Atomic<Bool>
    let emptyPathLinkWorks = Atomic<Bool>(true)
    let noAtimeWorks = Atomic<Bool>(true)
    private let sequence = Atomic<UInt64>(0)
    /// `.mpcp-tmp-<pid>-<start>-<where>-`, in hex, where `<start>` is when this process started
    /// and `<where>` the kernel boot and pid namespace the pid belongs to
    /// (``system_processNamespaceTag()``; both random where `/proc` is missing): unique per
    /// process, never the name of a source file. A later run removes such names whose process is
    /// gone (`LeftoverSweep` in CopyJob.swift), and only those of its own boot and namespace: in a
    /// tree that other hosts or containers write too, their pids mean nothing here.
    let temporaryPrefix: String
    /// This process's boot and pid namespace (``system_processNamespaceTag()``), the `<where>` of
    /// ``temporaryPrefix``; nil without `/proc`.
    let namespaceTag: UInt64?
    let excludes: [(pattern: [CChar], hasSlash: Bool)]
    let excludesNeedRelative: Bool
    /// Opens every path of a work item beneath its tree's root, never through a symlink.
    let resolver = Resolver()

    /// The size of one copy_file_range step: the granularity of progress and cancellation.
    static let step = 16 << 20

    init(options: CopyOptions) {
        self.options = options
        umask = system_readUmask()
        tmpfileWorks = Atomic(options.unnamedTemporaries)
        euid = system_geteuid()
        egid = system_getegid()
        isRoot = euid == 0
        let pid = String(system_getpid(), radix: 16)
        let start = (try? system_processStartTime(system_getpid())) ?? nil
        let salt = String(start ?? (system_randomUInt64() & 0xFFFF_FFFF), radix: 16)
        namespaceTag = system_processNamespaceTag()
        let place = String(namespaceTag ?? system_randomUInt64(), radix: 16)
        temporaryPrefix = ".mpcp-tmp-\(pid)-\(salt)-\(place)-"
        excludes = (options.excludes.map { Array($0.utf8) } + options.excludeBytes).map { pattern in
            (pattern.map { CChar(bitPattern: $0) } + [0], pattern.contains(UInt8(ascii: "/")))
        }
        excludesNeedRelative = excludes.contains { $0.hasSlash }
    }

    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    func nextTemporaryName() -> FilePath.Component {
        let n = sequence.add(1, ordering: .relaxed).newValue
        // The prefix is ASCII and has no slash, so the component is valid.
        guard let name = FilePath.Component(temporaryPrefix + String(n, radix: 16)) else {
            preconditionFailure("the temporary prefix is ASCII without a slash, so it is a valid name")
        }
        return name
    }

    func perform(_ item: WorkItem) -> WorkResult {
        var result = WorkResult()
        switch item {
        case .scan(let scan): self.scan(scan, &result)
        case .files(let batch): copyBatch(batch, &result)
        case .chunk(let chunk): copyChunk(chunk, &result)
        case .finishLarge(let finish): finishLarge(finish, &result)
        case .link(let link): makeLink(link, &result)
        case .finishDirectory(let finish): finishDirectory(finish, &result)
        }
        return result
    }

    /// A failure inside the copy of one file: which step, and why.
    struct StepError: Error {
        var operation: String
        var errno: Errno?
        var detail: String? = nil
    }
}
