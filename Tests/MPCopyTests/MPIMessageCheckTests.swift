#if MPI
@testable import MPCopy
import Multiprocessing
import SystemPackage
import Testing

/// The messages of mpcp --mpi's distributed walk, fed to their decoders as byte buffers: every
/// malformed one is refused with an error that names the message and the problem, and none traps.
@Suite struct MPIMessageCheckTests {
    static let roots = TreeRoots(sources: [TreeRoot(path: "/s", device: 1, inode: 2, followsSymlink: false)],
                                 destinations: [TreeRoot(path: "/d", device: 1, inode: 3, followsSymlink: true)])
    static let chunkSize: Int64 = 64 << 20

    static func inbound(rank: Int = 0, size: Int = 2, roots: TreeRoots = roots) -> MPIInbound {
        MPIInbound(rank: rank, size: size, roots: roots, chunkSize: chunkSize)
    }

    static func stat(size: Int64 = 10, nlink: Int64 = 1, ino: Int64 = 42) -> SourceStat {
        SourceStat(numbers: [0o100644, 0, 0, nlink, ino, 7, size, 8, 1_000, 5, 2_000, 6, 3_000, 7][...])
    }

    static func entry(_ name: FilePath.Component = "f", size: Int64 = 10, nlink: Int64 = 1, ino: Int64 = 42) -> FileEntry {
        FileEntry(name: name, destinationName: nil, stat: stat(size: size, nlink: nlink, ino: ino))
    }

    static func scan(source: FilePath = "/s/a", destination: FilePath = "/d/a", relative: FilePath = "a") -> WorkItem {
        .scan(ScanItem(node: 0, source: source, destination: destination, relative: relative, createDestination: false, staged: false))
    }

    static func chunk(large: Int = 1 << 16, source: FilePath = "/s/big", temporary: FilePath = "/d/.mpcp-tmp-1-2-3",
                      offset: Int64 = 0, length: Int64 = 1 << 20) -> WorkItem {
        .chunk(ChunkItem(large: large, source: source, temporary: temporary, offset: offset, length: length, sparse: false))
    }

    static func batch(source: FilePath = "/s/a", destination: FilePath = "/d/a", entries: [FileEntry] = [entry()]) -> WorkItem {
        .files(FileBatch(node: 1, sourceDirectory: source, destinationDirectory: destination, entries: entries, inheritsGroup: false, staged: false))
    }

    /// The error a decoder throws, or nil when it accepted the bytes.
    static func refusal<T>(_ body: () throws -> T) -> String? {
        do {
            _ = try body()
            return nil
        } catch let error as MPIMessageError {
            return error.description
        } catch {
            return "not an MPIMessageError: \(error)"
        }
    }

    static func bytes(_ value: some Encodable) throws -> [UInt8] { try WireEncoder().encode(value) }

    static func int64(_ value: Int64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> Int64(8 * $0)) } }

    // MARK: what the walk makes passes

    /// What a rank's walk gives away (a scan, a large file's chunks, a batch) passes the checks of
    /// the rank that stole it: the checks refuse nothing the protocol sends.
    @Test func workAsTheWalkMakesItPasses() throws {
        var options = CopyOptions()
        options.chunkSize = Self.chunkSize
        let walk = try RankWalk(rank: 1, size: 2, performer: Performer(options: options))
        walk.add(.directory(source: "/s", destination: "/d", staged: true, createDestination: true))
        walk.add(.file(sourceDirectory: "/s", destinationDirectory: "/d", entry: Self.entry("big", size: 150 << 20)))
        let given = walk.split()
        #expect(given.count == 2)
        #expect(given.contains { if case .chunk = $0 { true } else { false } })
        let items = try Self.inbound(rank: 0).work(Self.bytes(given), from: 1)
        #expect(items.count == 2)
        #expect(Self.refusal { try Self.inbound(rank: 0).work(Self.bytes([Self.batch(), Self.scan(source: "/s", destination: "/d", relative: "")]), from: 1) } == nil)
    }

    // MARK: work

    @Test(arguments: [
        (scan(source: "/etc"), "the scan's source '/etc': it lies beneath none of the job's source roots"),
        (scan(source: "/s/../../etc"), "the scan's source '/s/../../etc': it has a '..' component"),
        (scan(destination: "/d/./x"), "the scan's destination '/d/./x': it has a '.' component"),
        (scan(relative: "/a"), "the scan's relative path '/a' is absolute"),
        (scan(relative: "a/../../b"), "the scan's relative path 'a/../../b' has a '..' component"),
        (batch(source: "/elsewhere"), "the batch's source directory '/elsewhere': it lies beneath none of the job's source roots"),
        (batch(destination: "/d/../etc"), "the batch's destination directory '/d/../etc': it has a '..' component"),
        (batch(entries: []), "a batch of no files"),
        (batch(entries: [entry(size: -5)]), "has a size of -5 bytes"),
        (chunk(large: 5 << 16 | 5), "belongs to rank 5, out of range for a job of 2 ranks"),
        (chunk(large: -1), "out of range for a job of 2 ranks"),
        (chunk(source: "/s"), "the chunk's source '/s' is a root, not a file beneath one"),
        (chunk(source: "/etc/shadow"), "the chunk's source '/etc/shadow': it lies beneath none of the job's source roots"),
        (chunk(temporary: "/d/final-name"), "the chunk's temporary '/d/final-name' is not a temporary name (.mpcp-tmp-*)"),
        (chunk(temporary: "/d/../etc/.mpcp-tmp-1"), "the chunk's temporary '/d/../etc/.mpcp-tmp-1': it has a '..' component"),
        (chunk(temporary: "/tmp/.mpcp-tmp-1"), "the chunk's temporary '/tmp/.mpcp-tmp-1': it lies beneath none of the job's destination roots"),
        (chunk(offset: -(64 << 20)), "the chunk's offset -67108864 is not a multiple of the chunk size"),
        (chunk(offset: 3), "the chunk's offset 3 is not a multiple of the chunk size"),
        (chunk(offset: Int64.max - Int64.max % (64 << 20)), "is not a multiple of the chunk size 67108864 in range"),
        (chunk(length: 0), "the chunk's length 0 is out of range"),
        (chunk(length: (64 << 20) + 1), "the chunk's length 67108865 is out of range"),
        (.link(LinkItem(node: 0, existing: "/d/a", destinationDirectory: "/d", name: "b", source: "/s/b", staged: false)),
         "a link item, which only its owner rank performs and no rank gives away"),
        (.finishLarge(LargeFinishItem(large: 0, node: 0, sourceDirectory: "/s", destinationDirectory: "/d", entry: entry(), temporaryName: "t")),
         "a finishLarge item"),
        (.finishDirectory(DirectoryFinishItem(node: 0, source: "/s", destination: "/d", stat: stat(), attributes: [])),
         "a finishDirectory item"),
    ] as [(WorkItem, String)])
    func workOutsideTheProtocolIsRefused(item: WorkItem, problem: String) throws {
        let bytes = try Self.bytes([Self.scan(), item])
        let error = try #require(Self.refusal { try Self.inbound().work(bytes, from: 1) })
        #expect(error.hasPrefix("a `work` message (tag 10, \(bytes.count) bytes, from rank 1): item 1 of 2: "), "\(error)")
        #expect(error.contains(problem), "\(error)")
    }

    /// With a root that is the current directory (a relative operand such as `.`), an absolute
    /// path is not beneath it.
    @Test func anAbsolutePathIsNotBeneathTheCurrentDirectory() throws {
        let here = TreeRoots(sources: [TreeRoot(path: "", device: 1, inode: 2, followsSymlink: false)],
                             destinations: [TreeRoot(path: "copy", device: 1, inode: 3, followsSymlink: true)])
        let inbound = Self.inbound(roots: here)
        #expect(Self.refusal { try inbound.work(Self.bytes([Self.scan(source: "a/b", destination: "copy/b", relative: "b")]), from: 1) } == nil)
        let error = try #require(Self.refusal { try inbound.work(Self.bytes([Self.scan(source: "/etc", destination: "copy/b")]), from: 1) })
        #expect(error.contains("the scan's source '/etc': it is absolute"), "\(error)")
    }

    /// A NUL inside a path (the bytes of a real message, patched): the path's decoder refuses it.
    @Test func aNulInAPathIsRefused() throws {
        var bytes = try Self.bytes([Self.scan(source: "/s/aXb")])
        let x = try #require(bytes.firstIndex(of: UInt8(ascii: "X")))
        bytes[x] = 0
        let error = try #require(Self.refusal { try Self.inbound().work(bytes, from: 1) })
        #expect(error.contains("a `work` message") && error.contains("cannot be decoded"), "\(error)")
    }

    @Test func anEmptyListOfWorkIsRefused() throws {
        let error = try #require(Self.refusal { try Self.inbound().work(Self.bytes([WorkItem]()), from: 1) })
        #expect(error.contains("no work items"), "\(error)")
    }

    // MARK: bytes that are no message

    /// Garbage, and a real message cut short, for every message that carries a value: refused
    /// as undecodable, naming the message.
    @Test(arguments: ["work", "hardLink", "chunkDone", "progress", "final", "setup", "ready"])
    func garbageAndTruncatedMessagesAreRefused(kind: String) throws {
        let inbound = Self.inbound(rank: 0)
        let valid: [UInt8]
        let decode: ([UInt8]) -> String?
        switch kind {
        case "work":
            valid = try Self.bytes([Self.scan()])
            decode = { b in Self.refusal { try inbound.work(b, from: 1) } }
        case "hardLink":
            valid = try Self.bytes([HardLinkName(sourceDirectory: "/s", destinationDirectory: "/d", entry: Self.entry(nlink: 2, ino: Self.ino(ownedBy: 0, size: 2)),
                                                 inheritsGroup: false, staged: false, upToDateInode: nil)])
            decode = { b in Self.refusal { try inbound.hardLinks(b, from: 1) } }
        case "chunkDone":
            valid = try MPICopyWire.frame(UInt64(7 << 16), WorkResult())
            decode = { b in Self.refusal { try inbound.chunkDone(b, from: 1) } }
        case "progress":
            valid = try Self.bytes(RankProgress())
            decode = { b in Self.refusal { try inbound.progress(b, from: 1) } }
        case "final":
            valid = try Self.bytes(RankFinal(progress: RankProgress(), stats: RankStats()))
            decode = { b in Self.refusal { try inbound.final(b, from: 1) } }
        case "setup":
            valid = try Self.bytes(MPICopySetup(options: CopyOptions(), roots: Self.roots, host: "h", place: nil, sweeps: []))
            decode = { b in Self.refusal { try MPIInbound.setup(b, from: 0) } }
        default:
            valid = try Self.bytes(MPICopyReady(workers: 1, host: "h", problem: nil))
            decode = { b in Self.refusal { try MPIInbound.ready(b, from: 1) } }
        }
        #expect(decode(valid) == nil)
        let garbage: [UInt8] = Array(repeating: 0, count: 8) + [0xFF, 0xFE, 0x07, 0x80, 0x80]
        for bytes in [garbage, Array(valid.dropLast()), valid + [0]] {
            let error = try #require(decode(bytes), "\(kind): \(bytes) accepted")
            #expect(error.contains("`\(kind)` message") && error.contains("\(bytes.count) bytes"), "\(error)")
            #expect(error.contains("cannot be decoded"), "\(error)")
        }
    }

    // MARK: hard links

    static func ino(ownedBy owner: Int, size: Int) -> Int64 {
        var ino: Int64 = 1
        while RankWalk.owner(dev: 7, ino: UInt64(ino), size: size) != owner { ino += 1 }
        return ino
    }

    @Test func hardLinkNamesAreCheckedForTheirOwnerAndPaths() throws {
        let mine = Self.ino(ownedBy: 0, size: 2)
        let theirs = Self.ino(ownedBy: 1, size: 2)
        func name(_ entry: FileEntry, source: FilePath = "/s/x") -> HardLinkName {
            HardLinkName(sourceDirectory: source, destinationDirectory: "/d/x", entry: entry, inheritsGroup: false, staged: false, upToDateInode: nil)
        }
        let inbound = Self.inbound(rank: 0)
        #expect(Self.refusal { try inbound.hardLinks(Self.bytes([name(Self.entry(nlink: 3, ino: mine))]), from: 1) } == nil)
        for (bad, problem) in [
            (name(Self.entry(nlink: 3, ino: theirs)), "name 0 of 1: the inode of 'f' belongs to rank 1, not to this rank 0"),
            (name(Self.entry(nlink: 1, ino: mine)), "the file 'f' has one link"),
            (name(Self.entry(nlink: 2, ino: mine), source: "/s/../x"), "the source directory '/s/../x': it has a '..' component"),
            (name(Self.entry(size: -1, nlink: 2, ino: mine)), "has a size of -1 bytes"),
        ] {
            let error = try #require(Self.refusal { try inbound.hardLinks(Self.bytes([bad]), from: 1) })
            #expect(error.hasPrefix("a `hardLink` message (tag 12,") && error.contains(problem), "\(error)")
        }
        #expect(Self.refusal { try inbound.hardLinks(Self.bytes([HardLinkName]()), from: 1) }?.contains("no names") == true)
    }

    // MARK: chunk results

    @Test func chunkResultsAreForAFileThisRankOwns() throws {
        let inbound = Self.inbound(rank: 0)
        let ok = try #require(try? inbound.chunkDone(MPICopyWire.frame(UInt64(3 << 16), WorkResult()), from: 1))
        #expect(ok.large == 3 << 16)
        let other = try #require(Self.refusal { try inbound.chunkDone(MPICopyWire.frame(UInt64(3 << 16 | 1), WorkResult()), from: 1) })
        #expect(other.contains("the large file 196609 belongs to rank 1, not to this rank 0"), "\(other)")
        let short = try #require(Self.refusal { try inbound.chunkDone([1, 2, 3, 4, 5], from: 1) })
        #expect(short.hasPrefix("a `chunkDone` message (tag 13, 5 bytes, from rank 1): the message is truncated"), "\(short)")
        let huge = try #require(Self.refusal { try inbound.chunkDone(Self.int64(-1 << 16) + [0], from: 1) })
        #expect(huge.contains("out of range"), "\(huge)")
    }

    /// The walk tells the driver when a chunk's result names a large file it has no record of.
    @Test func aChunkResultForAnUnknownFileIsToldApart() throws {
        let walk = try RankWalk(rank: 0, size: 2, performer: Performer(options: CopyOptions()))
        #expect(walk.acceptChunk(large: 5 << 16, WorkResult()) == false)
        walk.add(.file(sourceDirectory: "/s", destinationDirectory: "/d", entry: Self.entry("big", size: 100 << 20)))
        #expect(walk.acceptChunk(large: 0, WorkResult()) == true)
    }

    // MARK: token, levels

    @Test func tokensAreNineBytesOfABoundedCountAndAColour() {
        let inbound = Self.inbound(rank: 1, size: 3)
        #expect(Self.refusal { try inbound.token(Self.int64(-4) + [1], from: 0) } == nil)
        #expect((try? inbound.token(Self.int64(-4) + [1], from: 0))?.count == -4)
        for (bytes, problem) in [
            (Self.int64(0), "a token is 9 bytes (its count and its colour), not 8"),
            (Self.int64(0) + [0, 0], "not 10"),
            (Self.int64(0) + [2], "the token's colour is 2, not 0 (white) or 1 (black)"),
            (Self.int64(1 << 62) + [0], "the token's count 4611686018427387904 is out of range"),
            (Self.int64(Int64.min) + [0], "is out of range"),
        ] {
            let error = Self.refusal { try inbound.token(bytes, from: 0) }
            #expect(error?.hasPrefix("a `token` message (tag 14, \(bytes.count) bytes, from rank 0): ") == true && error?.contains(problem) == true, "\(error ?? "accepted")")
        }
    }

    @Test func levelsAreEightBytesInRange() {
        let root = Self.inbound(rank: 0)
        let serving = Self.inbound(rank: 1)
        #expect((try? root.depth(Self.int64(-1), from: 1)) == -1)
        #expect((try? root.levelDone(Self.int64(3), from: 1)) == 3)
        #expect((try? serving.level(Self.int64(0), from: 0)) == 0)
        #expect(Self.refusal { try root.depth(Self.int64(-2), from: 1) }?.contains("the level -2 is out of range (-1 to 4096)") == true)
        #expect(Self.refusal { try root.depth(Self.int64(1 << 40), from: 1) }?.contains("the level 1099511627776 is out of range") == true)
        #expect(Self.refusal { try serving.level(Self.int64(-1), from: 0) }?.contains("a `level` message (tag 18, 8 bytes, from rank 0): the level -1 is out of range (0 to 4096)") == true)
        #expect(Self.refusal { try root.levelDone([1, 2, 3], from: 1) }?.contains("the message is 8 bytes (a level), not 3") == true)
    }

    // MARK: tags

    @Test(arguments: [
        (0, 2, 99, 1, 0, "a message of unknown tag 99 (0 bytes, from rank 1): mpcp's protocol has no such message"),
        (2, 3, MPICopyTag.setup.rawValue, 1, 40, "a `setup` message (tag 1, 40 bytes, from rank 1): only rank 0 sends this message"),
        (1, 3, MPICopyTag.stop.rawValue, 2, 0, "only rank 0 sends this message"),
        (1, 2, MPICopyTag.progress.rawValue, 0, 12, "only rank 0 receives this message, and this is rank 1"),
        (1, 2, MPICopyTag.final.rawValue, 0, 12, "only rank 0 receives this message"),
        (2, 3, MPICopyTag.token.rawValue, 0, 9, "the token comes from the previous rank in the ring, rank 1"),
        (0, 3, MPICopyTag.token.rawValue, 1, 9, "the token comes from the previous rank in the ring, rank 2"),
        (0, 2, MPICopyTag.steal.rawValue, 1, 3, "a `steal` message (tag 9, 3 bytes, from rank 1): the message is empty, not 3 bytes"),
        (1, 2, MPICopyTag.cleanup.rawValue, 0, 1, "the message is empty, not 1 bytes"),
        (0, 2, MPICopyTag.item.rawValue, 1, 20, "this message is no longer part of mpcp's protocol"),
        (0, 2, MPICopyTag.work.rawValue, 0, 20, "the sender is not another rank of this job of 2 (this is rank 0)"),
        (0, 2, MPICopyTag.work.rawValue, 5, 20, "the sender is not another rank"),
        (0, 2, MPICopyTag.work.rawValue, 1, 0, "a `work` message (tag 10, 0 bytes, from rank 1): the message is empty"),
        (0, 2, MPICopyTag.depth.rawValue, 1, 9, "the message is 8 bytes (a level), not 9"),
        (0, 2, MPICopyTag.chunkDone.rawValue, 1, 8, "the message is truncated"),
    ] as [(Int, Int, Int, Int, Int, String)])
    func tagsAreCheckedForSenderAndSize(c: (rank: Int, size: Int, tag: Int, source: Int, count: Int, problem: String)) {
        let (rank, size, tag, source, count, problem) = c
        let error = Self.refusal { try Self.inbound(rank: rank, size: size).tag(tag, from: source, byteCount: count) }
        #expect(error?.contains(problem) == true, "\(error ?? "accepted")")
    }

    @Test func everyTagThatIsStillSentPassesBetweenTheRightRanks() throws {
        let root = Self.inbound(rank: 0, size: 3)
        let serving = Self.inbound(rank: 1, size: 3)
        #expect(try root.tag(MPICopyTag.token.rawValue, from: 2, byteCount: 9) == .token)
        #expect(try serving.tag(MPICopyTag.token.rawValue, from: 0, byteCount: 9) == .token)
        for tag in [MPICopyTag.ready, .progress, .final, .fatal] { #expect(try root.tag(tag.rawValue, from: 2, byteCount: 5) == tag) }
        for tag in [MPICopyTag.bye, .drained] { #expect(try root.tag(tag.rawValue, from: 2, byteCount: 0) == tag) }
        for tag in [MPICopyTag.depth, .levelDone] { #expect(try root.tag(tag.rawValue, from: 1, byteCount: 8) == tag) }
        #expect(try serving.tag(MPICopyTag.level.rawValue, from: 0, byteCount: 8) == .level)
        for tag in [MPICopyTag.stop, .walkDone, .cleanup] { #expect(try serving.tag(tag.rawValue, from: 0, byteCount: 0) == tag) }
        for tag in [MPICopyTag.steal, .noWork, .cancel] { #expect(try serving.tag(tag.rawValue, from: 2, byteCount: 0) == tag) }
        for tag in [MPICopyTag.work, .hardLink] { #expect(try serving.tag(tag.rawValue, from: 2, byteCount: 30) == tag) }
        #expect(try serving.tag(MPICopyTag.chunkDone.rawValue, from: 2, byteCount: 9) == .chunkDone)
    }

    // MARK: totals

    @Test func progressCountsThatWouldOverflowRank0AreRefused() throws {
        let inbound = Self.inbound(rank: 0)
        var huge = RankProgress()
        huge.filesDone = Int.max
        let error = try #require(Self.refusal { try inbound.progress(Self.bytes(huge), from: 1) })
        #expect(error.hasPrefix("a `progress` message (tag 15,") && error.contains("a count of 9223372036854775807 is out of range"), "\(error)")
        var findings = RankProgress()
        findings.result.subdirectories = ["x"]
        #expect(Self.refusal { try inbound.progress(Self.bytes(findings), from: 1) }?.contains("carries a scan's findings") == true)
        var copied = RankProgress()
        copied.result.copied = ["/etc/passwd"]
        #expect(Self.refusal { try inbound.final(Self.bytes(RankFinal(progress: copied, stats: RankStats())), from: 1) }?
            .contains("the copied path '/etc/passwd': it lies beneath none of the job's source roots") == true)

        // Each report in range, but together past what rank 0's totals hold.
        var big = RankProgress()
        big.bytesDone = 1 << 59
        var totals = MPIInbound.Totals()
        #expect(Self.refusal { try totals.add(big, tag: .progress, from: 1, byteCount: 20) } == nil)
        #expect(Self.refusal { try totals.add(big, tag: .progress, from: 1, byteCount: 20) } == nil)
        #expect(Self.refusal { try totals.add(big, tag: .final, from: 1, byteCount: 20) }?
            .contains("a `final` message (tag 22, 20 bytes, from rank 1): its counts take the job's totals past 2^60") == true)
    }

    // MARK: setup

    @Test func aSetupOutOfRangeIsRefused() throws {
        func setup(_ change: (inout MPICopySetup) -> Void) throws -> [UInt8] {
            var s = MPICopySetup(options: CopyOptions(), roots: Self.roots, host: "h", place: nil, sweeps: [])
            change(&s)
            return try Self.bytes(s)
        }
        #expect(Self.refusal { try MPIInbound.setup(setup { _ in }, from: 0) } == nil)
        for (bytes, problem) in [
            (try setup { $0.options.chunkSize = 0 }, "the chunk size 0 is out of range (1 MiB to 256 TiB)"),
            (try setup { $0.options.chunkSize = .max }, "the chunk size 9223372036854775807 is out of range"),
            (try setup { $0.options.batchFiles = 0 }, "a batch of at most 0 files is out of range"),
            (try setup { $0.options.batchBytes = -1 }, "a batch of at most -1 bytes is out of range"),
            (try setup { $0.roots.destinations = [] }, "the setup names no source or no destination root"),
        ] {
            let error = Self.refusal { try MPIInbound.setup(bytes, from: 0) }
            #expect(error?.hasPrefix("a `setup` message (tag 1, \(bytes.count) bytes, from rank 0): ") == true && error?.contains(problem) == true,
                    "\(error ?? "accepted")")
        }
        #expect(Self.refusal { try MPIInbound.setup(setup { _ in }, from: 1) }?.contains("only rank 0 sends this message") == true)
        let zero = try Self.bytes(MPICopyReady(workers: 0, host: "h", problem: nil))
        #expect(Self.refusal { try MPIInbound.ready(zero, from: 1) }?.contains("0 workers is out of range") == true)
    }

    /// scripts/mpcp-mpi/fake-rank.c answers the setup with these bytes (a ready of one worker on
    /// host "fake"); if the wire format changes, change them there too.
    @Test func theFakeRanksReadyIsAReady() throws {
        let bytes: [UInt8] = [0x15, 0x07] + Array("workers".utf8) + [0x02, 0x02, 0x04] + Array("host".utf8) + [0x06, 0x04] + Array("fake".utf8)
        #expect(try Self.bytes(MPICopyReady(workers: 1, host: "fake", problem: nil)) == bytes)
        let ready = try MPIInbound.ready(bytes, from: 1)
        #expect(ready.workers == 1 && ready.host == "fake" && ready.problem == nil)
    }
}
#endif
