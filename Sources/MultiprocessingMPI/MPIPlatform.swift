#if MPI
import MultiprocessingSystem
import Synchronization

// MultiprocessingMPI reaches libc only through MultiprocessingSystem's system_ wrappers.

/// Writes `text` to standard error, unbuffered (a serving rank's last words before MPI_Abort).
func writeError(_ text: String) {
    let bytes = Array(text.utf8)
    bytes.withUnsafeBytes { try? system_writeAll(2, $0) }
}

/// A monotonic clock in nanoseconds.
func monotonicNanoseconds() -> UInt64 { UInt64(clamping: system_clockMonotonicNanoseconds()) }

/// `MULTIPROCESSING_MPI_TRACE=2`: every chunk's way through rank 0 and its serving rank, one line
/// per step on standard error (`mpi-trace STEP CHUNK NANOSECONDS`, on the monotonic clock, which
/// ranks on one host share), to see where one task's time goes (docs/benchmarks.md).
let traceSteps = system_getenv("MULTIPROCESSING_MPI_TRACE") == "2"

/// One step of ``traceSteps``, at `nanoseconds` (now by default). Kept in memory until
/// ``flushTrace()`` (a write per step through the launcher's output forwarding would be a cost of
/// its own).
func traceStep(_ step: StaticString, _ chunk: UInt32, at nanoseconds: UInt64 = monotonicNanoseconds()) {
    let line = "mpi-trace \(step) \(chunk) \(nanoseconds)\n"
    traceBuffer.withLock { $0.append(contentsOf: line.utf8) }
}

/// Writes the steps ``traceStep(_:_:at:)`` kept to standard error.
func flushTrace() {
    guard traceSteps else { return }
    let bytes = traceBuffer.withLock { buffer -> [UInt8] in
        defer { buffer = [] }
        return buffer
    }
    bytes.withUnsafeBytes { try? system_writeAll(2, $0) }
}

private let traceBuffer = Mutex<[UInt8]>([])
#endif
