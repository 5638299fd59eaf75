// The pool rows docs/python-to-swift.md adds for apply, map_async and ordered imap, written as the
// guide writes them, run once each against a real ProcessPool.
import Multiprocessing
import Testing

@Suite("Python names: apply, map_async, imap")
struct PythonNamesMoreTests {
    /// pool.apply(os.getpid): submit and wait, from blocking code.
    @Test func apply() throws {
        let pool = try ProcessPool(workers: 1)
        let pid = try pool.submit(PythonNamesWorkerPID()).get()
        #expect(pid != CurrentProcess.pid)
        pool.close()
        try pool.join()
    }

    @Test func mapAsyncAndOrderedImap() async throws {
        try await ProcessPool.with(workers: 2) { pool in
            // pool.map_async(square, xs).get(): a Task around the async map.
            let pending = Task { try await pool.map(PythonNamesSquare(), over: [1, 2, 3]) }
            #expect(try await pending.value == [1, 4, 9])
            // pool.imap(square, xs) in order: mapUnordered, sorted by index.
            var pairs: [(Int, Int)] = []
            for try await (index, result) in try pool.mapUnordered(PythonNamesSquare(), over: (0..<6).lazy) {
                pairs.append((index, try result.get()))
            }
            #expect(pairs.sorted { $0.0 < $1.0 }.map(\.1) == [0, 1, 4, 9, 16, 25])
        }
    }
}
