#if MPI
import MultiprocessingSystem
import CMPI
import CMPIShim

/// How many threads may call MPI: `MPI_THREAD_SINGLE` ... `MPI_THREAD_MULTIPLE`.
public enum MPIThreadLevel: Int, Sendable, Comparable, CustomStringConvertible {
    /// One thread, and no other thread in the process.
    case single = 0
    /// Only the thread that initialized MPI calls it. MPIPool needs this: one thread makes every call.
    case funneled = 1
    /// Any thread, one at a time.
    case serialized = 2
    /// Any thread at any time.
    case multiple = 3

    var mpiValue: Int32 {
        switch self {
        case .single: return cmpi_thread_single()
        case .funneled: return cmpi_thread_funneled()
        case .serialized: return cmpi_thread_serialized()
        case .multiple: return cmpi_thread_multiple()
        }
    }

    init(mpiValue: Int32) {
        switch mpiValue {
        case cmpi_thread_multiple(): self = .multiple
        case cmpi_thread_serialized(): self = .serialized
        case cmpi_thread_funneled(): self = .funneled
        default: self = .single
        }
    }

    public static func < (a: MPIThreadLevel, b: MPIThreadLevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .single: return "MPI_THREAD_SINGLE"
        case .funneled: return "MPI_THREAD_FUNNELED"
        case .serialized: return "MPI_THREAD_SERIALIZED"
        case .multiple: return "MPI_THREAD_MULTIPLE"
        }
    }
}

/// MPI's environment: `MPI_Init_thread` and `MPI_Finalize`, once per process.
///
/// MPI starts threads of its own in `MPI_Init_thread` (Open MPI two, MPICH one), so a process that
/// forks children must start its fork server first: ``MPIPool`` starts its rank's local
/// `ProcessPool` (and so the fork server) before it initializes MPI.
public enum MPIEnvironment {
    /// Initializes MPI (`MPI_Init_thread`), asking for `threadLevel`. Works under `mpirun`/`mpiexec`,
    /// `srun`, and alone (a singleton: one rank). Errors of the world communicator then return to
    /// the caller (`MPI_ERRORS_RETURN`) instead of aborting the job.
    /// - Returns: The thread level MPI provides.
    /// - Throws: ``MPIError`` (``MPIError/Code/misuse``) when MPI was initialized (or finalized)
    ///   before, or provides less than `minimum`; ``MPIError/Code/call`` when the call fails.
    @discardableResult
    public static func initialize(threadLevel: MPIThreadLevel = .funneled, minimum: MPIThreadLevel? = nil) throws -> MPIThreadLevel {
        if isInitialized { throw MPIError(.misuse, "MPI is initialized already: MPIEnvironment.initialize runs once per process.") }
        if isFinalized { throw MPIError(.misuse, "MPI was finalized in this process and cannot be initialized again.") }
        var provided: Int32 = 0
        try check(cmpi_init_thread(threadLevel.mpiValue, &provided), "MPI_Init_thread")
        let level = MPIThreadLevel(mpiValue: provided)
        _ = cmpi_errors_return(cmpi_comm_world())
        if let minimum, level < minimum {
            throw MPIError(.misuse, "MPI provides \(level), less than the \(minimum) asked for.")
        }
        return level
    }

    /// Finalizes MPI (`MPI_Finalize`). Call it on the thread that initialized MPI, after every
    /// message has been received.
    public static func finalize() throws {
        guard isInitialized, !isFinalized else { return }
        try check(cmpi_finalize(), "MPI_Finalize")
    }

    /// Whether `MPI_Init_thread` has run in this process.
    public static var isInitialized: Bool {
        var flag: Int32 = 0
        _ = cmpi_initialized(&flag)
        return flag != 0
    }

    /// Whether `MPI_Finalize` has run in this process.
    public static var isFinalized: Bool {
        var flag: Int32 = 0
        _ = cmpi_finalized(&flag)
        return flag != 0
    }

    /// Ends every rank of the job (`MPI_Abort` on the world communicator).
    public static func abort(code: Int32 = 1) -> Never {
        _ = cmpi_abort(cmpi_comm_world(), code)
        system_exit(code)
    }

    /// The MPI library's own version text (`MPI_Get_library_version`): "Open MPI v4.1.4 ..." or "MPICH Version: 4.0.2 ...".
    public static var libraryVersion: String {
        text(capacity: 8192) { cmpi_library_version($0, $1) }
    }

    /// This rank's host name as MPI sees it (`MPI_Get_processor_name`).
    public static var processorName: String {
        text(capacity: 1024) { cmpi_processor_name($0, $1) }
    }

    /// Seconds on MPI's clock (`MPI_Wtime`).
    public static var time: Double { cmpi_wtime() }

    static func text(capacity: Int, _ fill: (UnsafeMutablePointer<CChar>, Int32) -> Void) -> String {
        var buffer = [CChar](repeating: 0, count: capacity)
        buffer.withUnsafeMutableBufferPointer { pointer in
            if let base = pointer.baseAddress { fill(base, Int32(capacity)) }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func check(_ code: Int32, _ function: String) throws {
        guard code != 0 else { return }
        let text = text(capacity: 1024) { cmpi_error_string(code, $0, $1) }
        throw MPIError(.call, "\(function) failed: \(text) (error \(code)).", mpiErrorCode: code)
    }
}
#endif
