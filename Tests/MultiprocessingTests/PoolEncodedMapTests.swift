// ProcessPool.mapEncoded (Pool/PoolEncodedMap.swift), the bytes-in, bytes-out map that the MPI
// pool's serving ranks run chunks with: real workers, a real SIGKILL.
import Multiprocessing
import TestSupport
import Testing

/// Runs `function` over `inputs` through `mapEncoded`, from its type name and wire bytes, as a
/// serving rank does; the outcome `done` was given.
private func encodedMap<F: PoolFunction>(_ pool: ProcessPool, _ function: F, _ inputs: [F.Input], chunking: Chunking = .adaptive) async throws -> PoolEncodedOutcome {
    let name = try #require(_mangledTypeName(F.self))
    let bytes = try WireEncoder().encode(function)
    let encoded = try PoolEncodedValues.encode(inputs)
    return try await withCheckedThrowingContinuation { continuation in
        do {
            try pool.mapEncoded(functionName: name, functionBytes: bytes, inputs: encoded, chunking: chunking) { continuation.resume(returning: $0) }
        } catch {
            continuation.resume(throwing: error)
        }
    }
}

@Suite("ProcessPool.mapEncoded", .serialized)
struct PoolEncodedMapTests {
    @Test func theWorkersEncodedOutputsComeBackInOrder() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        // Raw inputs and outputs (Int), adaptive and fixed chunks.
        for chunking in [Chunking.adaptive, .fixed(7), .fixed(1)] {
            let outcome = try await encodedMap(pool, PoolSquare(), Array(0..<5000), chunking: chunking)
            #expect(outcome.failures.isEmpty)
            let outputs = try outcome.outputs.withUnsafeBytes { try PoolEncodedValues.decode(Int.self, count: 5000, from: $0) }
            #expect(outputs == (0..<5000).map { $0 * $0 })
        }
        // Wire-encoded inputs (strings of every length, the empty one too), raw outputs.
        let texts = (0..<3000).map { String(repeating: "é", count: $0 % 37) }
        let lengths = try await encodedMap(pool, PoolLength(), texts)
        #expect(try lengths.outputs.withUnsafeBytes { try PoolEncodedValues.decode(Int.self, count: texts.count, from: $0) } == texts.map { $0.utf8.count })
        // Wire-encoded outputs (a struct), back to back.
        let answers = try await encodedMap(pool, PoolSleepThenTell(milliseconds: 0), Array(0..<2000))
        let decoded = try answers.outputs.withUnsafeBytes { try PoolEncodedValues.decode(PoolSleepThenTell.Answer.self, count: 2000, from: $0) }
        #expect(decoded.map(\.input) == Array(0..<2000))
        #expect(Set(decoded.map(\.pid)).isSubset(of: Set(pool.workerPIDs)))
        // Nothing to run: done at once.
        let empty = try await encodedMap(pool, PoolSquare(), [])
        #expect(empty.outputs.isEmpty && empty.failures.isEmpty)
    }

    @Test func aThrownErrorFailsThatTaskAloneWithItsTypeAndMessage() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let outcome = try await encodedMap(pool, PoolEvenOnly(), Array(0..<100))
        #expect(outcome.failures.map(\.index) == Array(stride(from: 1, to: 100, by: 2)))
        for (index, error) in outcome.failures {
            #expect(error.code == .childFailed)
            #expect(error.indices == [index])
            #expect(error.remoteTypeName?.hasSuffix("PoolOddError") == true)
            #expect(error.message.contains("\(index) is odd"))
            #expect(error.remoteError as? PoolOddError == PoolOddError(value: index))
        }
        let outputs = try outcome.outputs.withUnsafeBytes { try PoolEncodedValues.decode(Int.self, count: 50, from: $0) }
        #expect(outputs == stride(from: 0, to: 100, by: 2).map { $0 / 2 })
    }

    @Test func aWorkerKilledDuringAnEncodedMapFailsOnlyItsTasks() async throws {
        let pool = try ProcessPool(workers: 2)
        defer { pool.terminate() }
        let outcome = try await encodedMap(pool, PoolCrashOn(poison: 500), Array(0..<1000), chunking: .fixed(10))
        let failed = outcome.failures.map(\.index)
        #expect(failed.contains(500))
        #expect(failed.count <= 10, "only the chunk the worker ran fails")
        for (_, error) in outcome.failures {
            #expect(error.code == .childDied)
            #expect(error.exitStatus == .signaled(.kill))
        }
        let outputs = try outcome.outputs.withUnsafeBytes { try PoolEncodedValues.decode(Int.self, count: 1000 - failed.count, from: $0) }
        #expect(outputs == (0..<1000).filter { !failed.contains($0) })
        // The pool replaced the worker and goes on.
        let next = try await encodedMap(pool, PoolSquare(), Array(0..<100))
        #expect(try next.outputs.withUnsafeBytes { try PoolEncodedValues.decode(Int.self, count: 100, from: $0) } == (0..<100).map { $0 * $0 })
    }

    @Test func anUnknownFunctionFailsEveryTask() async throws {
        let pool = try ProcessPool(workers: 1)
        defer { pool.terminate() }
        let encoded = try PoolEncodedValues.encode([1, 2, 3])
        let outcome: PoolEncodedOutcome = try await withCheckedThrowingContinuation { continuation in
            do {
                try pool.mapEncoded(functionName: "no such type", functionBytes: [], inputs: encoded, chunking: .adaptive) { continuation.resume(returning: $0) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
        #expect(outcome.failures.map(\.index) == [0, 1, 2])
        #expect(outcome.failures.allSatisfy { $0.error.code == .childStartFailed })
        #expect(outcome.outputs.isEmpty)
    }

    @Test func malformedValuesAreRefusedWithWhatIsWrong() throws {
        // Ends that fall short of the bytes, ends that go down, raw bytes that are not whole values.
        #expect(throws: MultiprocessingError.self) { try PoolEncodedValues(bytes: [1, 2, 3], count: 1, stride: nil, ends: [2]) }
        #expect(throws: MultiprocessingError.self) { try PoolEncodedValues(bytes: [1, 2, 3], count: 2, stride: nil, ends: [3, 1]) }
        #expect(throws: MultiprocessingError.self) { try PoolEncodedValues(bytes: [1, 2, 3], count: 1, stride: 8, ends: []) }
        do {
            _ = try PoolEncodedValues(bytes: [1, 2, 3], count: 1, stride: 8, ends: [])
        } catch let error as MultiprocessingError {
            #expect(error.code == .malformedFrame)
            #expect(error.message.contains("3 bytes are not 1 values of 8 bytes"))
        }
        // And a good one: two wire values, their ends rising to the last byte.
        let good = try PoolEncodedValues(bytes: [1, 2, 3], count: 2, stride: nil, ends: [1, 3])
        #expect(good.byteRange(1..<2) == 1..<3)
    }
}
