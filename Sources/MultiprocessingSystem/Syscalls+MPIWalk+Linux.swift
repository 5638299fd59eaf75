#if os(Linux)
public import CMultiprocessing

/// The wall clock (`clock_gettime(CLOCK_REALTIME)`) in nanoseconds since the epoch: for timelines
/// that several processes (the ranks of an MPI job, and the shell that started it) write and that
/// are read side by side.
@inlinable package func system_clockRealtimeNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}
#endif
