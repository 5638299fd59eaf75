// Task types for SharedRawTests (issue 18): raw shared values and arrays, slices and the text view
// of a byte array, used from a child process.
public import Multiprocessing

/// What a child saw of the objects the parent filled, and the errors its bad calls got.
public struct SharedSliceReport: Codable, Sendable, Equatable {
    public var rawValue: Int
    public var rawArray: [Int32]
    public var rawText: String
    public var lockedSlice: [Int32]
    public var lockedText: String
    /// "code: message" of each bad call, in the order the task makes them.
    public var errors: [String]
}

/// Reads what the parent wrote, writes its own values (a raw value, slices of a raw and a locked
/// array, text into a raw and a locked byte array), and makes bad calls that must throw before
/// writing anything.
public struct SharedSliceWriter: ProcessTask {
    public var rawValue: RawSharedValue<Int>
    public var rawArray: RawSharedArray<Int32>
    public var rawText: RawSharedArray<UInt8>
    public var lockedArray: SharedArray<Int32>
    public var lockedText: SharedArray<UInt8>
    public init(rawValue: RawSharedValue<Int>, rawArray: RawSharedArray<Int32>, rawText: RawSharedArray<UInt8>,
                lockedArray: SharedArray<Int32>, lockedText: SharedArray<UInt8>) {
        self.rawValue = rawValue
        self.rawArray = rawArray
        self.rawText = rawText
        self.lockedArray = lockedArray
        self.lockedText = lockedText
    }

    public func run() throws -> SharedSliceReport {
        var report = SharedSliceReport(rawValue: rawValue.value, rawArray: rawArray.toArray(), rawText: rawText.string,
                                       lockedSlice: try lockedArray.load(1..<3, timeout: .seconds(60)),
                                       lockedText: lockedText.string, errors: [])
        rawValue.value = 42
        try rawArray.store([7, 8, 9], at: 1..<4)
        try rawText.store(string: "héllo")
        try lockedArray.store([5, 6], at: 3...)
        try lockedText.store(string: "child")
        let attempts: [() throws -> Void] = [
            { try self.lockedArray.store([1, 2, 3], at: 0..<2) },
            { _ = try self.rawArray.load(-1..<2) },
            { try self.lockedText.store(string: String(repeating: "x", count: self.lockedText.count + 1)) },
        ]
        for attempt in attempts {
            do {
                try attempt()
                report.errors.append("nothing thrown")
            } catch let error as MultiprocessingError {
                report.errors.append("\(error.code): \(error.message)")
            }
        }
        return report
    }
}
