import Glibc
import Testing
import MultiprocessingSystem

/// `system_processStartTime` tells mpcp's leftover sweep whether the process that named a
/// temporary still runs. A zombie (ended, not yet reaped: its parent is slow, or it was reparented
/// to a PID 1 that does not reap at once) still has its /proc entry and its start time; it was
/// counted as alive, so its temporary was kept. mpcp-mpi-tests saw this once in CI: after SIGINT
/// to mpirun, a killed rank's temporary outlived the rerun ("temporaries left").
@Suite("Process start time")
struct ProcessStartTimeTests {
    @Test func aRunningProcessHasOneAndAZombieHasNone() throws {
        let me = try #require(try system_processStartTime(getpid()))
        #expect(me > 0)
        let child = fork()
        if child == 0 { _exit(0) }
        try #require(child > 0)
        defer { var status: Int32 = 0; _ = waitpid(child, &status, 0) }
        // Until it has ended: waitid with WNOWAIT sees the end and leaves the zombie in place.
        var info = siginfo_t()
        #expect(waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) == 0)
        #expect(try system_processStartTime(child) == nil, "a zombie counted as running")
    }
}
