#if os(Linux)
// What MultiprocessingMPI's one-task-in-flight path needs beyond the shared wrappers.
public import Glibc

/// `sched_yield(2)`: lets another runnable thread on this CPU run (a thread that spins for the MPI
/// role while its holder was preempted gives the holder the CPU back).
@inlinable package func system_schedYield() {
    _ = Glibc.sched_yield()
}
#endif
