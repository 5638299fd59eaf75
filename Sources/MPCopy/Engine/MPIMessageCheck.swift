#if MPI
import Multiprocessing
import SystemPackage

// Every message a rank of mpcp --mpi receives is checked here before anything acts on it
// (issue 17): its tag against who may send it to whom and how long it must be, and what it
// decodes to against the job. A message that fails a check ends the job with an
// ``MPIMessageError`` that names the message, its sender, its size and the problem; it is never
// half used, and no path it carries is opened unless it lies beneath one of the job's roots in
// plain names. The wire decoder already refuses truncated or corrupt bytes without trapping; what
// it cannot know is checked here: a path that leaves the trees (`..`, `.`, absolute, beneath no
// root), a chunk written into a file that is not a temporary, a rank or a large file's owner out
// of range, counts that would overflow rank 0's totals, depths that would make it call billions
// of levels, a token of the wrong size or from the wrong neighbour, a work item no rank gives away.

/// A message from another rank that this rank cannot use: which message, from whom, and what is
/// wrong with it.
internal struct MPIMessageError: Error, Sendable, CustomStringConvertible {
    /// The message's tag (mpcp's, as ``MPICopyTag``).
    var tag: Int
    /// The rank that sent it.
    var source: Int
    /// Its size in bytes.
    var byteCount: Int
    /// What is wrong with it.
    var problem: String

    var description: String {
        let name = MPICopyTag(rawValue: tag).map { "a `\($0)` message (tag \(tag), " } ?? "a message of unknown tag \(tag) ("
        return name + "\(byteCount) bytes, from rank \(source)): \(problem)"
    }
}

/// Checks and decodes the messages one rank receives. See the top of this file.
internal struct MPIInbound: Sendable {
    /// This rank.
    let rank: Int
    /// The job's ranks.
    let size: Int
    /// The job's roots: every path a message names lies beneath one of them.
    let roots: TreeRoots
    /// The job's chunk size: every chunk of a large file starts at a multiple of it and is no longer.
    let chunkSize: Int64

    /// The deepest directory level a message may name: a path of `PATH_MAX` (4,096) bytes has at
    /// most 2,048 components, so this is generous. Rank 0 calls the levels one by one from the
    /// deepest any rank names, so a level of 2^60 would be a job that never ends.
    static let maximumDepth = 4_096

    /// The largest count (files, bytes) one message may carry, and the most all of a job's
    /// reports may add up to: rank 0 adds them into `Int` totals, which must not overflow.
    static let maximumCount: Int64 = 1 << 60

    init(rank: Int, size: Int, roots: TreeRoots, chunkSize: Int64) {
        self.rank = rank
        self.size = size
        self.roots = roots
        self.chunkSize = chunkSize
    }

    /// Tags only rank 0 sends (to a serving rank).
    private static let fromRank0: Set<MPICopyTag> = [.setup, .stop, .walkDone, .level, .cleanup]
    /// Tags only rank 0 receives.
    private static let toRank0: Set<MPICopyTag> = [.ready, .progress, .depth, .levelDone, .drained, .final, .bye, .fatal]
    /// Tags whose messages are empty.
    private static let empty: Set<MPICopyTag> = [.cancel, .stop, .bye, .steal, .noWork, .walkDone, .drained, .cleanup]

    private func error(_ tag: Int, _ source: Int, _ count: Int, _ problem: String) -> MPIMessageError {
        MPIMessageError(tag: tag, source: source, byteCount: count, problem: problem)
    }

    /// The tag of a message, checked: one of mpcp's, sent by a rank that may send it to this one,
    /// and of a size the message may have.
    func tag(_ raw: Int, from source: Int, byteCount count: Int) throws(MPIMessageError) -> MPICopyTag {
        guard let tag = MPICopyTag(rawValue: raw) else {
            throw error(raw, source, count, "mpcp's protocol has no such message (is every rank running the same mpcp?)")
        }
        func fail(_ problem: String) -> MPIMessageError { error(raw, source, count, problem) }
        guard (0..<size).contains(source), source != rank else {
            throw fail("the sender is not another rank of this job of \(size) (this is rank \(rank))")
        }
        if tag == .item || tag == .result {
            throw fail("this message is no longer part of mpcp's protocol (is every rank running the same mpcp?)")
        }
        if MPIInbound.fromRank0.contains(tag) && source != 0 { throw fail("only rank 0 sends this message") }
        if MPIInbound.toRank0.contains(tag) && rank != 0 { throw fail("only rank 0 receives this message, and this is rank \(rank)") }
        if tag == .token && source != (rank + size - 1) % size {
            throw fail("the token comes from the previous rank in the ring, rank \((rank + size - 1) % size)")
        }
        if MPIInbound.empty.contains(tag) && count != 0 { throw fail("the message is empty, not \(count) bytes") }
        switch tag {
        case .token where count != 9: throw fail("a token is 9 bytes (its count and its colour), not \(count)")
        case .depth, .level, .levelDone: if count != 8 { throw fail("the message is 8 bytes (a level), not \(count)") }
        case .chunkDone where count < 9: throw fail("the message is truncated: 8 bytes of a file id and a chunk's result, not \(count) bytes")
        case .setup, .ready, .work, .hardLink, .progress, .final:
            if count == 0 { throw fail("the message is empty") }
        default: break
        }
        return tag
    }

    // MARK: the walk's messages

    /// `work`: half a victim's queue. Only scans, batches and chunks, whose paths lie beneath the
    /// roots.
    func work(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> [WorkItem] {
        let tag = MPICopyTag.work.rawValue
        let items = try decode([WorkItem].self, bytes, tag, source)
        guard !items.isEmpty else { throw error(tag, source, bytes.count, "no work items (a rank with none answers `noWork`)") }
        for (index, item) in items.enumerated() {
            do throws(Problem) { try check(item) } catch {
                throw self.error(tag, source, bytes.count, "item \(index) of \(items.count): \(error.text)")
            }
        }
        return items
    }

    /// `hardLink`: names of multiply-linked files for the owner of their inode, which must be this rank.
    func hardLinks(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> [HardLinkName] {
        let tag = MPICopyTag.hardLink.rawValue
        let names = try decode([HardLinkName].self, bytes, tag, source)
        guard !names.isEmpty else { throw error(tag, source, bytes.count, "no names") }
        for (index, name) in names.enumerated() {
            do throws(Problem) {
                try beneath(name.sourceDirectory, .source, "source directory")
                try beneath(name.destinationDirectory, .destination, "destination directory")
                guard name.entry.stat.nlink > 1 else { throw Problem("the file \(shown(name.entry.name)) has one link, so no other name of it needs its inode's owner") }
                try check(name.entry)
                let owner = RankWalk.owner(dev: name.entry.stat.dev, ino: name.entry.stat.ino, size: size)
                guard owner == rank else { throw Problem("the inode of \(shown(name.entry.name)) belongs to rank \(owner), not to this rank \(rank)") }
            } catch {
                throw self.error(tag, source, bytes.count, "name \(index) of \(names.count): \(error.text)")
            }
        }
        return names
    }

    /// `chunkDone`: a large file's id, which this rank must own, and a chunk's result.
    func chunkDone(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> (large: Int, result: WorkResult) {
        let tag = MPICopyTag.chunkDone.rawValue
        guard let id = MPICopyWire.id(bytes), bytes.count > 8 else {
            throw error(tag, source, bytes.count, "the message is truncated: 8 bytes of a file id and a chunk's result")
        }
        guard id <= UInt64(Int.max) else { throw error(tag, source, bytes.count, "the large file id \(id) is out of range") }
        let owner = Int(id & 0xFFFF)
        guard owner == rank else {
            throw error(tag, source, bytes.count, "the large file \(id) belongs to rank \(owner), not to this rank \(rank)")
        }
        let result: WorkResult
        do { result = try MPICopyWire.body(WorkResult.self, bytes) } catch {
            throw self.error(tag, source, bytes.count, "a chunk's result cannot be decoded (is every rank running the same mpcp?): \(error)")
        }
        return (Int(id), result)
    }

    /// `token`: its count (bounded, so that adding ranks' counts cannot overflow) and its colour.
    func token(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> (count: Int64, black: Bool) {
        let tag = MPICopyTag.token.rawValue
        guard bytes.count == 9, let count = MPIInbound.int64(bytes) else {
            throw error(tag, source, bytes.count, "a token is 9 bytes (its count and its colour), not \(bytes.count)")
        }
        guard bytes[8] <= 1 else { throw error(tag, source, bytes.count, "the token's colour is \(bytes[8]), not 0 (white) or 1 (black)") }
        guard count.magnitude <= UInt64(MPIInbound.maximumCount) else {
            throw error(tag, source, bytes.count, "the token's count \(count) is out of range (at most 2^60 messages either way)")
        }
        return (count, bytes[8] == 1)
    }

    /// `depth`: a serving rank's deepest level of directories, -1 for none.
    func depth(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> Int {
        try level(bytes, source, .depth, lowest: -1)
    }

    /// `level`: rank 0 calls a level of directories.
    func level(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> Int {
        try level(bytes, source, .level, lowest: 0)
    }

    /// `levelDone`: a serving rank is done with a level.
    func levelDone(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> Int {
        try level(bytes, source, .levelDone, lowest: 0)
    }

    /// `progress`: a rank's totals since its last report.
    func progress(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> RankProgress {
        let tag = MPICopyTag.progress.rawValue
        let progress = try decode(RankProgress.self, bytes, tag, source)
        do throws(Problem) { try check(progress) } catch { throw self.error(tag, source, bytes.count, error.text) }
        return progress
    }

    /// `final`: a rank's last totals and what it did.
    func final(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> RankFinal {
        let tag = MPICopyTag.final.rawValue
        let final = try decode(RankFinal.self, bytes, tag, source)
        do throws(Problem) { try check(final.progress) } catch { throw self.error(tag, source, bytes.count, error.text) }
        return final
    }

    // MARK: the setup (before a rank knows the job)

    /// `setup`, on a serving rank: the job's options and roots from rank 0.
    static func setup(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> MPICopySetup {
        let tag = MPICopyTag.setup.rawValue
        func fail(_ problem: String) -> MPIMessageError { MPIMessageError(tag: tag, source: source, byteCount: bytes.count, problem: problem) }
        guard source == 0 else { throw fail("only rank 0 sends this message") }
        let setup: MPICopySetup
        do { setup = try WireDecoder().decode(MPICopySetup.self, from: bytes) } catch {
            throw fail("the setup from rank 0 cannot be decoded (is every rank running the same mpcp?): \(error)")
        }
        let options = setup.options
        guard options.chunkSize >= 1 << 20, options.chunkSize <= 1 << 48 else {
            throw fail("the chunk size \(options.chunkSize) is out of range (1 MiB to 256 TiB)")
        }
        guard options.batchFiles >= 1 else { throw fail("a batch of at most \(options.batchFiles) files is out of range (at least 1)") }
        guard options.batchBytes >= 1 else { throw fail("a batch of at most \(options.batchBytes) bytes is out of range (at least 1)") }
        guard !setup.roots.sources.isEmpty, !setup.roots.destinations.isEmpty else {
            throw fail("the setup names no source or no destination root")
        }
        return setup
    }

    /// `ready`, on rank 0: a serving rank's answer to the setup.
    static func ready(_ bytes: [UInt8], from source: Int) throws(MPIMessageError) -> MPICopyReady {
        let tag = MPICopyTag.ready.rawValue
        func fail(_ problem: String) -> MPIMessageError { MPIMessageError(tag: tag, source: source, byteCount: bytes.count, problem: problem) }
        let ready: MPICopyReady
        do { ready = try WireDecoder().decode(MPICopyReady.self, from: bytes) } catch {
            throw fail("rank \(source) answered the setup with a message that cannot be decoded: \(error)")
        }
        guard ready.workers >= 1, ready.workers <= 1 << 20 else { throw fail("\(ready.workers) workers is out of range (1 to 2^20)") }
        return ready
    }

    // MARK: totals

    /// Adds a report's counts to what rank 0 has been told so far, refusing one that would take
    /// the job's totals past ``maximumCount`` (rank 0's `Int` totals would overflow).
    struct Totals: Sendable {
        private var sum: UInt64 = 0

        mutating func add(_ progress: RankProgress, tag: MPICopyTag, from source: Int, byteCount: Int) throws(MPIMessageError) {
            var total = sum
            for value in MPIInbound.counts(progress) {
                total += value.magnitude
                guard total <= UInt64(MPIInbound.maximumCount) else {
                    throw MPIMessageError(tag: tag.rawValue, source: source, byteCount: byteCount,
                                          problem: "its counts take the job's totals past 2^60 (files and bytes reported by every rank)")
                }
            }
            sum = total
        }
    }

    // MARK: internals

    private struct Problem: Error {
        var text: String
        init(_ text: String) { self.text = text }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], _ tag: Int, _ source: Int) throws(MPIMessageError) -> T {
        do { return try WireDecoder().decode(T.self, from: bytes) } catch {
            throw self.error(tag, source, bytes.count, "it cannot be decoded (is every rank running the same mpcp?): \(error)")
        }
    }

    private func level(_ bytes: [UInt8], _ source: Int, _ tag: MPICopyTag, lowest: Int) throws(MPIMessageError) -> Int {
        guard bytes.count == 8, let value = MPIInbound.int64(bytes) else {
            throw error(tag.rawValue, source, bytes.count, "the message is 8 bytes (a level), not \(bytes.count)")
        }
        guard value >= Int64(lowest), value <= Int64(MPIInbound.maximumDepth) else {
            throw error(tag.rawValue, source, bytes.count, "the level \(value) is out of range (\(lowest) to \(MPIInbound.maximumDepth))")
        }
        return Int(value)
    }

    static func int64(_ bytes: [UInt8]) -> Int64? {
        guard bytes.count >= 8 else { return nil }
        var value: Int64 = 0
        for index in 0..<8 { value |= Int64(bytes[index]) << Int64(8 * index) }
        return value
    }

    private func shown(_ path: FilePath) -> String { shellQuoted(path, always: true) }
    private func shown(_ name: FilePath.Component) -> String { shellQuoted(FilePath(root: nil, [name]), always: true) }

    /// `path` is a root of `side` followed by plain names only: no `.`, `..` or empty component
    /// (a NUL cannot be in a FilePath: its decoder refuses one), and not absolute below a root
    /// that is the current directory. Returns the names below the root.
    @discardableResult
    private func beneath(_ path: FilePath, _ side: Resolver.Side, _ what: String) throws(Problem) -> FilePath {
        let list = side == .source ? roots.sources : roots.destinations
        var why = path.root != nil && list.allSatisfy({ $0.path.root == nil })
            ? "it is absolute, and the job's roots are relative"
            : "it lies beneath none of the job's \(side == .source ? "source" : "destination") roots"
        for root in list {
            var relative = path
            guard relative.removePrefix(root.path) else { continue }
            if relative.root != nil { why = "it is absolute"; continue }
            if let bad = relative.components.first(where: { $0.kind != .regular }) {
                why = "it has a \(shown(FilePath(root: nil, [bad]))) component"
                continue
            }
            return relative
        }
        throw Problem("the \(what) \(shown(path)): \(why)")
    }

    private func check(_ entry: FileEntry) throws(Problem) {
        guard entry.stat.size >= 0 else { throw Problem("the file \(shown(entry.name)) has a size of \(entry.stat.size) bytes") }
    }

    private func check(_ item: WorkItem) throws(Problem) {
        switch item {
        case .scan(let scan):
            try beneath(scan.source, .source, "scan's source")
            try beneath(scan.destination, .destination, "scan's destination")
            if scan.relative.root != nil { throw Problem("the scan's relative path \(shown(scan.relative)) is absolute") }
            if let bad = scan.relative.components.first(where: { $0.kind != .regular }) {
                throw Problem("the scan's relative path \(shown(scan.relative)) has a \(shown(FilePath(root: nil, [bad]))) component")
            }
        case .files(let batch):
            try beneath(batch.sourceDirectory, .source, "batch's source directory")
            try beneath(batch.destinationDirectory, .destination, "batch's destination directory")
            guard !batch.entries.isEmpty else { throw Problem("a batch of no files") }
            for entry in batch.entries { try check(entry) }
        case .chunk(let chunk):
            guard chunk.large >= 0, chunk.large & 0xFFFF < size else {
                throw Problem("the chunk's file \(chunk.large) belongs to rank \(chunk.large & 0xFFFF), out of range for a job of \(size) ranks")
            }
            guard try !beneath(chunk.source, .source, "chunk's source").isEmpty else {
                throw Problem("the chunk's source \(shown(chunk.source)) is a root, not a file beneath one")
            }
            let temporary = try beneath(chunk.temporary, .destination, "chunk's temporary")
            guard let name = temporary.lastComponent, name.string.hasPrefix(".mpcp-tmp-") else {
                throw Problem("the chunk's temporary \(shown(chunk.temporary)) is not a temporary name (.mpcp-tmp-*): a chunk is never written under a final name")
            }
            guard chunk.offset >= 0, chunk.offset % chunkSize == 0, chunk.offset <= Int64.max - chunkSize else {
                throw Problem("the chunk's offset \(chunk.offset) is not a multiple of the chunk size \(chunkSize) in range")
            }
            guard chunk.length >= 1, chunk.length <= chunkSize else {
                throw Problem("the chunk's length \(chunk.length) is out of range (1 to the chunk size \(chunkSize))")
            }
        case .finishLarge, .link, .finishDirectory:
            throw Problem("a \(item.kindName) item, which only its owner rank performs and no rank gives away")
        }
    }

    private func check(_ progress: RankProgress) throws(Problem) {
        for value in MPIInbound.counts(progress) where value.magnitude > UInt64(MPIInbound.maximumCount) {
            throw Problem("a count of \(value) is out of range (at most 2^60)")
        }
        let result = progress.result
        guard result.entryDone.isEmpty, result.subdirectories.isEmpty, result.foundFiles.isEmpty, result.upToDateLinks.isEmpty,
              result.upToDateInodes.isEmpty, result.directoryStat == nil, result.directoryAttributes.isEmpty else {
            throw Problem("a report of totals carries a scan's findings, which stay on the rank that scanned")
        }
        for path in result.copied { try beneath(path, .source, "copied path") }
    }

    fileprivate static func counts(_ p: RankProgress) -> [Int64] {
        let r = p.result
        return [Int64(p.filesDone), Int64(p.filesFound), p.bytesFound, p.bytesDone, Int64(r.files), r.bytes, Int64(r.directories),
                Int64(r.symlinks), Int64(r.hardLinks), Int64(r.skipped), Int64(r.excluded)]
    }
}

extension WorkItem {
    /// The item's kind, for messages.
    var kindName: String {
        switch self {
        case .scan: "scan"
        case .files: "batch"
        case .chunk: "chunk"
        case .finishLarge: "finishLarge"
        case .link: "link"
        case .finishDirectory: "finishDirectory"
        }
    }
}
#endif
