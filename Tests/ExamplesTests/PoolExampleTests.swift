// `examples pool`: Python's Pool, map, starmap, apply_async, and a worker killed mid-map.
import Testing

@Suite("examples pool")
struct PoolExampleTests {
    @Test func poolExamplePrintsTheResultsAndSurvivesAKilledWorker() throws {
        let run = try runExample(["pool"])
        #expect(run.status == 0)
        #expect(run.lines == [
            "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
            "[32, 9]",
            "a worker's pid: one of the pool's",
            "task 0: 0", "task 1: 1", "task 2: 2",
            "task 3 failed: its worker was killed by SIGKILL",
            "task 4: 4", "task 5: 5",
            "the pool goes on: [0, 1, 4]",
            "pool closed",
        ])
    }
}
