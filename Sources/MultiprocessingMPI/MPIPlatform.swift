#if MPI
import MultiprocessingSystem

// MultiprocessingMPI reaches libc only through MultiprocessingSystem's system_ wrappers.

/// Writes `text` to standard error, unbuffered (a serving rank's last words before MPI_Abort).
func writeError(_ text: String) {
    let bytes = Array(text.utf8)
    bytes.withUnsafeBytes { try? system_writeAll(2, $0) }
}

/// A monotonic clock in nanoseconds.
func monotonicNanoseconds() -> UInt64 { UInt64(clamping: system_clockMonotonicNanoseconds()) }
#endif
