import Testing
import CMultiprocessing
@testable import Multiprocessing

@Suite("Queue header layout")
struct QueueHeaderLayoutTests {

    @Test("Swift sees cmp_queue_header as the format lays it out")
    func swiftSeesTheCLayout() {
        #expect(QueueStorage.layoutMatchesTheFormat)
        #expect(QueueStorage.offset(of: \.ring) == 128)
        #expect(QueueStorage.offset(of: \.journal) == 200)
        #expect(QueueStorage.offset(of: \.not_empty.waiters) == 260)
        #expect(MemoryLayout<cmp_queue_header>.size <= QueueStorage.headerSize)
    }

    @Test("a live queue's header holds its state at the documented byte offsets")
    func liveHeaderAtDocumentedOffsets() throws {
        let queue = try JoinableQueue<Int>(maxsize: 7)
        for i in 0..<3 { try queue.put(i) }
        let base = queue.storage.region.base
        #expect(base.load(fromByteOffset: 64, as: UInt32.self) == QueueStorage.magic)
        #expect(base.load(fromByteOffset: 68, as: UInt32.self) & 1 == 1)
        #expect(base.load(fromByteOffset: 72, as: UInt64.self) == UInt64(queue.storage.capacity))
        #expect(base.load(fromByteOffset: 80, as: UInt64.self) == 7)
        #expect(base.load(fromByteOffset: 144, as: UInt64.self) == 3)  // ring.count
        #expect(base.load(fromByteOffset: 152, as: UInt64.self) == 3)  // ring.unfinished
        #expect(base.load(fromByteOffset: 192, as: UInt64.self) == 0)  // no commit under way
        queue.close()
        #expect(base.load(fromByteOffset: 176, as: UInt32.self) == 1)
    }
}
