// Issue 18, "Synchronisation and shared values": raw shared values and arrays (Python's RawValue,
// RawArray, lock=False), slices of shared arrays (a[i:j], a[i:j] = values) and the text view of a
// byte array (Array('c').value and .raw), from threads and from child processes, with bad input.
import Testing
import TestHarness
@testable import Multiprocessing
import TestSupport

@Suite("SharedRaw")
struct SharedRawTests {

    @Test("RawSharedValue and RawSharedArray: plain reads and writes, seen by other threads; no lock")
    func threads() throws {
        let total = try RawSharedValue(0.0)
        let parts = try RawSharedArray<Int>(repeating: -1, count: 4 * 1000)
        // Each thread writes its own quarter: no lock is needed, and none is taken.
        let threads = (0..<4).map { n in
            OSThread {
                for i in 0..<1000 { parts[n * 1000 + i] = n }
                if n == 0 { total.value = 2.5 }
            }
        }
        for t in threads { try t.start() }
        for t in threads { try t.join(timeout: .seconds(60)) }
        #expect(total.value == 2.5)
        #expect(parts.count == 4000 && parts.reduce(0, +) == 1000 * (0 + 1 + 2 + 3))
        #expect(try parts.load(999..<1001) == [0, 1])
        try parts.store([9, 9, 9], at: ..<3)
        #expect(Array(parts.prefix(4)) == [9, 9, 9, 0])
        parts.withUnsafeMutableBufferPointer { $0.sort(by: >) }
        #expect(parts.first == 9 && parts.last == 0)
        // Smaller than the locked kinds: no 48-byte lock.
        #expect(RawSharedValue<Int>.size < SharedValue<Int>.size)
        #expect(RawSharedArray<Int>.elementsOffset < SharedArray<Int>.elementsOffset)
        // Any BitwiseCopyable T, aligned as it needs.
        struct Pair: BitwiseCopyable, Equatable { var a: Int8; var b: Double }
        let pairs = try RawSharedArray([Pair(a: 1, b: 2), Pair(a: 3, b: 4)])
        #expect(pairs[1] == Pair(a: 3, b: 4))
        #expect(Int(bitPattern: pairs.elements) % MemoryLayout<Pair>.alignment == 0)
        let empty = try RawSharedArray<Int>([])
        #expect(empty.isEmpty && empty.toArray().isEmpty)
        expectMisuse(["count", "-1"]) { _ = try RawSharedArray<Int>(repeating: 0, count: -1) }
    }

    @Test("raw objects travel as shared memory; decoding the wrong kind or element type fails", arguments: [0, 1])
    func wire(_ which: Int) throws {
        if which == 0 {
            let value = try RawSharedValue<Int64>(7)
            let (copy, _) = try throughTheWire(value)
            copy.value = 8
            #expect(value.value == 8)
            #expect(throws: DecodingError.self) { _ = try throughTheWireAs(value, RawSharedValue<Int8>.self) }
            #expect(throws: DecodingError.self) { _ = try throughTheWireAs(value, SharedValue<Int64>.self) }
            #expect(throws: DecodingError.self) { _ = try throughTheWireAs(try SharedValue<Int64>(1), RawSharedValue<Int64>.self) }
        } else {
            let array = try RawSharedArray<Int32>([1, 2, 3])
            let (copy, _) = try throughTheWire(array)
            copy[2] = 30
            #expect(array.toArray() == [1, 2, 30])
            #expect(throws: DecodingError.self) { _ = try throughTheWireAs(array, RawSharedArray<Int64>.self) }
            #expect(throws: DecodingError.self) { _ = try throughTheWireAs(array, SharedArray<Int32>.self) }
            #expect(throws: DecodingError.self) { _ = try throughTheWireAs(try SharedArray<Int32>([1]), RawSharedArray<Int32>.self) }
        }
    }

    @Test("a child process reads and writes raw values, slices and text; its bad calls throw .misuse",
          arguments: [StartMethod.spawn, .forkServer])
    func childProcess(_ method: StartMethod) throws {
        let rawValue = try RawSharedValue(5)
        let rawArray = try RawSharedArray<Int32>([0, 1, 2, 3, 4])
        let rawText = try RawSharedArray<UInt8>(repeating: 0, count: 16)
        let lockedArray = try SharedArray<Int32>([10, 11, 12, 13, 14])
        let lockedText = try SharedArray<UInt8>(repeating: 0, count: 8)
        try rawText.store(string: "parent")
        try lockedText.store(string: "p")
        let child = ChildProcess(SharedSliceWriter(rawValue: rawValue, rawArray: rawArray, rawText: rawText,
                                                   lockedArray: lockedArray, lockedText: lockedText),
                                 startMethod: method)
        try child.start()
        let report = try child.value(timeout: .seconds(60))
        #expect(report.rawValue == 5 && report.rawArray == [0, 1, 2, 3, 4] && report.rawText == "parent")
        #expect(report.lockedSlice == [11, 12] && report.lockedText == "p")
        #expect(rawValue.value == 42)
        #expect(rawArray.toArray() == [0, 7, 8, 9, 4])
        #expect(rawText.string == "héllo")
        #expect(lockedArray.toArray() == [10, 11, 12, 5, 6])
        #expect(lockedText.string == "child")
        // The child's bad calls were refused, and wrote nothing.
        #expect(report.errors.count == 3)
        #expect(report.errors.allSatisfy { $0.hasPrefix("misuse: ") }, "\(report.errors)")
        #expect(report.errors[0].contains("3 values cannot replace the 2 elements of 0..<2"), "\(report.errors[0])")
        #expect(report.errors[1].contains("negative index"), "\(report.errors[1])")
        #expect(report.errors[2].contains("9 UTF-8 bytes do not fit in this array of 8 bytes"), "\(report.errors[2])")
    }

    @Test("slices: a wrong count, a negative index or a range past the end is refused before anything is written")
    func badSlices() throws {
        let locked = try SharedArray<Int>([0, 1, 2, 3, 4])
        let raw = try RawSharedArray<Int>([0, 1, 2, 3, 4])
        let stores: [(String, ([Int], Range<Int>) throws -> Void)] = [
            ("SharedArray.store(_:at:)", { try locked.store($0, at: $1) }),
            ("RawSharedArray.store(_:at:)", { try raw.store($0, at: $1) }),
        ]
        for (name, store) in stores {
            expectMisuse([name, "3 values cannot replace the 2 elements of 1..<3", "same count"]) { try store([7, 7, 7], 1..<3) }
            expectMisuse([name, "1 values cannot replace the 2 elements"]) { try store([7], 1..<3) }
            expectMisuse([name, "-1..<1", "negative index", "a.count - k"]) { try store([7, 7], -1..<1) }
            expectMisuse([name, "4..<6", "past the array's 5 elements"]) { try store([7, 7], 4..<6) }
        }
        #expect(locked.toArray() == [0, 1, 2, 3, 4] && raw.toArray() == [0, 1, 2, 3, 4])
        // Every kind of range expression.
        #expect(try locked.load(3...) == [3, 4] && raw.load(..<2) == [0, 1] && raw.load(1...2) == [1, 2])
        #expect(try locked.load(5...) == [] && raw.load(2..<2) == [])
        expectMisuse(["6..<6", "past"]) { _ = try raw.load(6...) }
        expectMisuse(["negative"]) { _ = try locked.load((-2)...) }
        expectMisuse(["past"]) { _ = try locked.load(...5) }
        expectMisuse(["past"]) { _ = try raw.load(0...Int.max) }
        // Whole-array replacement, from any collection.
        try locked.store(40..<45, at: 0...)
        try raw.store([4, 3, 2, 1, 0].reversed(), at: ..<5)
        #expect(locked.toArray() == [40, 41, 42, 43, 44] && raw.toArray() == [0, 1, 2, 3, 4])
        // A store under the lock is one hold: another thread holding it makes a timed store time out.
        try locked.lock.acquire()
        let blocked = OSThread { try locked.store([1], at: 0..<1, timeout: .milliseconds(20)) }
        try blocked.start()
        try blocked.join(timeout: .seconds(60))
        #expect((blocked.error as? MultiprocessingError)?.code == .timedOut)
        try locked.lock.release()
        #expect(locked[0] == 40)
        expectCode(.misuse) { _ = try locked.load(0..<1, timeout: .seconds(-1)) }
    }

    @Test("byte arrays as text: Python's Array('c') .value (up to a NUL) and .raw (every byte)")
    func text() throws {
        for (locked, raw) in [(try SharedArray<UInt8>(repeating: 0x41, count: 8), try RawSharedArray<UInt8>(repeating: 0x41, count: 8))] {
            #expect(locked.string == "AAAAAAAA" && raw.string == "AAAAAAAA")   // no NUL: every byte
            try locked.store(string: "hi")
            try raw.store(string: "hi")
            // A NUL after the text; the bytes after it keep their values, as in Python.
            #expect(locked.string == "hi" && raw.string == "hi")
            #expect(locked.toArray() == [0x68, 0x69, 0, 0x41, 0x41, 0x41, 0x41, 0x41])
            #expect(raw.toArray() == locked.toArray())
            // Exactly the array's size: no room for a NUL, and none is needed.
            try locked.store(string: "12345678")
            try raw.store(string: "Ωmega!")   // 7 UTF-8 bytes
            #expect(locked.string == "12345678" && raw.string == "Ωmega!")
            expectMisuse(["SharedArray.store(string:)", "9 UTF-8 bytes do not fit in this array of 8 bytes", "too long"]) {
                try locked.store(string: "123456789")
            }
            expectMisuse(["RawSharedArray.store(string:)", "10 UTF-8 bytes"]) { try raw.store(string: "ΩΩΩΩΩ") }
            #expect(locked.string == "12345678" && raw.string == "Ωmega!")
            // .raw = bytes: a slice store, with no NUL added.
            try raw.store(Array("ab".utf8), at: 0..<2)
            #expect(raw.string == "abmega!")
            // Bytes that are not UTF-8 read as U+FFFD instead of failing.
            try locked.store([0xFF, 0x41, 0], at: 0..<3)
            #expect(locked.string == "\u{FFFD}A")
            try locked.store(string: "")
            #expect(locked.string == "" && locked[0] == 0)
        }
    }
}
