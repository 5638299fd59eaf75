#if MPI
@testable import MPCopy
import SystemPackage
import Testing

/// An MPI rank's walk queue (`RankWalk`), driven directly: which item a worker gets next.
@Suite struct MPIWalkQueueTests {
    static func chunk(large: Int, offset: Int64) -> WorkItem {
        .chunk(ChunkItem(large: large, source: FilePath("/s/big\(large)"), temporary: FilePath("/d/.big\(large).tmp"),
                         offset: offset, length: 1 << 20, sparse: false))
    }

    static func large(_ item: WorkItem?) -> Int? {
        if case .chunk(let chunk) = item { chunk.large } else { nil }
    }

    /// A chunk given back (a worker that could not run it) goes to `local`; taken again from
    /// there, it must count as in flight once more, or a second chunk of the same file looks
    /// free and is handed out beside it (a collision the queue exists to avoid).
    @Test func anItemTakenAgainAfterAGiveBackCountsAsInFlight() throws {
        let walk = try RankWalk(rank: 0, size: 1, performer: Performer(options: CopyOptions()))
        walk.take([Self.chunk(large: 7, offset: 0)])
        let first = walk.next()
        #expect(Self.large(first) == 7)
        walk.giveBack(try #require(first))
        let again = walk.next() // from `local`
        #expect(Self.large(again) == 7)
        // Another chunk of file 7 ahead of one of file 8: while 7's first chunk is held, the
        // queue hands out 8's.
        walk.take([Self.chunk(large: 7, offset: 1 << 20), Self.chunk(large: 8, offset: 0)])
        #expect(Self.large(walk.next()) == 8)
        #expect(Self.large(walk.next()) == 7)
    }
}
#endif
