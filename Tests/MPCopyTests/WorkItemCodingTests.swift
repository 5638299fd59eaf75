@testable import MPCopy
import Multiprocessing
import SystemPackage
import Testing

/// How a batch of file entries crosses to a worker process: packed into two arrays, and checked
/// when it is unpacked.
@Suite struct WorkItemCodingTests {
    /// Two flat arrays as `PackedEntries` reads them, written by hand.
    struct Packed: Encodable {
        var names: [UInt8]
        var numbers: [Int64]
        func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(names)
            try container.encode(numbers)
        }
    }

    static func stat(size: Int64) -> [Int64] { [0o100644, 0, 0, 1, 42, 7, size, 8, 1_000, 5, 2_000, 6, 3_000, 7] }

    @Test func entriesSurviveTheRoundTripByteForByte() throws {
        let raw: [CChar] = [0x62, 0x61, -1, 0x0A, 0x78, 0] // "ba\xff\nx": not UTF-8, with a newline
        let odd = try #require(raw.withUnsafeBufferPointer { $0.baseAddress.flatMap(FilePath.Component.init(platformString:)) })
        let stat = SourceStat(numbers: Self.stat(size: 12_345)[...])
        let entries = [
            FileEntry(name: odd, destinationName: nil, stat: stat),
            FileEntry(name: "plain", destinationName: "renamed", stat: stat),
        ]
        let batch = FileBatch(node: 3, sourceDirectory: "/s", destinationDirectory: "/d", entries: entries, inheritsGroup: true, staged: true)
        let back = try WireDecoder().decode(FileBatch.self, from: WireEncoder().encode(batch))
        #expect(back.entries.map(\.name) == [odd, "plain"])
        #expect(back.entries.map(\.destinationName) == [nil, "renamed"])
        #expect(back.entries.map(\.stat) == [stat, stat])
        #expect(back.node == 3 && back.staged && back.inheritsGroup)
    }

    @Test(arguments: [
        (Packed(names: Array("ab".utf8), numbers: [2, -1] + stat(size: 1) + [9]), "16 numbers each"),
        (Packed(names: Array("ab".utf8), numbers: [3, -1] + stat(size: 1)), "a file name of 3 bytes"),
        (Packed(names: Array("..".utf8), numbers: [2, -1] + stat(size: 1)), "are not a file name"),
        (Packed(names: Array("a/b".utf8), numbers: [3, -1] + stat(size: 1)), "are not a file name"),
        (Packed(names: Array("abc".utf8), numbers: [2, -1] + stat(size: 1)), "belong to no entry"),
        (Packed(names: [], numbers: [0, -1] + stat(size: 1)), "a file name of 0 bytes"),
    ])
    func malformedEntriesAreRefusedWithTheReason(packed: Packed, reason: String) throws {
        let bytes = try WireEncoder().encode(packed)
        do {
            _ = try WireDecoder().decode(PackedEntries.self, from: bytes)
            Issue.record("decoded a malformed batch")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.debugDescription.contains(reason), "\(context.debugDescription)")
        }
    }
}
