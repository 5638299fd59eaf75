#if MPI
import MultiprocessingMPI
import MultiprocessingSystem

/// mpcp across the ranks of an MPI job (`mpirun -n N mpcp --mpi SRC DST`); only with the `MPI`
/// trait. See docs/distributed.md.
///
/// Every rank calls ``initialize()`` first. Rank 0 then runs the copy's front end as on one host,
/// with a ``CopyJob`` that ``CopyJob/distributeOverMPI()`` spreads over the ranks; ranks 1 … N-1
/// call ``serve(jobs:workers:)``, which takes part in the distributed walk (every rank scans and
/// copies, stealing work from the others) until rank 0 says stop. Every rank calls ``finish()``
/// before it exits.
public enum MPICopy {
    /// Initializes MPI (`MPI_Init_thread`, funneled: only this thread calls MPI) and returns this
    /// process's rank and the job's size. Call it on the main thread, after signals are blocked
    /// and before any other thread starts: MPI starts threads of its own.
    ///
    /// - Throws: ``MPCopyError`` with code ``MPCopyError/Code/workers`` if MPI cannot start.
    public static func initialize() throws(MPCopyError) -> (rank: Int, size: Int) {
        preferSharedMemoryOnOneHost()
        MPICopyState.mark("MPI_Init_thread")
        do {
            try MPIEnvironment.initialize(threadLevel: .funneled, minimum: .funneled)
            let communicator = try MPICommunicator.world.duplicate()
            MPICopyState.rank = try communicator.rank()
            MPICopyState.size = try communicator.size()
            MPICopyState.host = MPIEnvironment.processorName
            MPICopyState.messenger = try MPIMessenger(communicator: communicator)
        } catch {
            throw MPCopyError(.workers, "--mpi: MPI could not start: \(error)")
        }
        MPICopyState.mark("MPI ready")
        return (MPICopyState.rank, MPICopyState.size)
    }

    /// When Open MPI started every rank of the job on this host and nobody chose a PML (no
    /// `--mca pml`, no `OMPI_MCA_pml`), chooses `ob1`, Open MPI's shared-memory path (its `vader`
    /// BTL), before `MPI_Init_thread`. Left to itself, Open MPI also opens the `cm` PML and with it
    /// the MTLs for Omni-Path and TrueScale fabrics (`psm`, `psm2`), whose probing took 200-250 ms
    /// of each rank's `MPI_Init_thread` here (350 ms in all, 100-140 ms with `ob1`), where no such
    /// fabric is. mpcp's messages are small and its data goes through the file system, so on one
    /// host nothing is lost. Across hosts (or under MPICH, which reads no `OMPI_` variable) the
    /// choice stays the site's.
    static func preferSharedMemoryOnOneHost() {
        guard system_getenv("OMPI_MCA_pml") == nil,
              let world = system_getenv("OMPI_COMM_WORLD_SIZE").flatMap({ Int($0) }),
              let local = system_getenv("OMPI_COMM_WORLD_LOCAL_SIZE").flatMap({ Int($0) }),
              world > 1, local == world else { return }
        system_setenv("OMPI_MCA_pml", "ob1")
    }

    /// A serving rank (1 … N-1): takes part in the distributed walk on `jobs` local workers of
    /// kind `workers`, until rank 0 says stop. Never prints but for errors.
    ///
    /// - Returns: the rank's exit status: 0 when rank 0 stopped it.
    public static func serve(jobs: Int, workers: WorkerKind) -> Int32 {
        MPICopyRank.serve(jobs: max(1, jobs), workers: workers)
    }

    /// A signal reached this process: a serving rank cancels the copy (and tells rank 0). Safe
    /// from any thread.
    public static func interrupt() {
        MPICopyState.interrupted.store(true, ordering: .relaxed)
    }

    /// Ends MPI in this process. On rank 0 it first stops the serving ranks if the copy never ran
    /// (a usage error) and waits for their goodbyes; if that fails the job is aborted.
    public static func finish() {
        guard let messenger = MPICopyState.messenger else { return }
        if MPICopyState.rank == 0 && MPICopyState.size > 1 {
            do { try MPICopyRank.release(messenger) } catch { MPIEnvironment.abort(code: 1) }
        }
        MPICopyState.messenger = nil
        MPICopyState.mark("MPI_Finalize")
        try? MPIEnvironment.finalize()
        MPICopyState.mark("finalized")
        MPICopyState.printTimeline()
    }

    /// Ends every rank of the job now (`MPI_Abort`), after a failure that leaves rank 0 unable to
    /// tell the others to stop.
    public static func abort(code: Int32) -> Never {
        MPIEnvironment.abort(code: code)
    }
}

extension CopyJob {
    /// Makes ``run(events:progressInterval:onProgress:)`` spread the copy's walk over the ranks
    /// of the MPI job (after ``MPICopy/initialize()`` on rank 0). With one rank, the copy
    /// runs on this process's workers as without it.
    public func distributeOverMPI() {
        overMPI.store(true, ordering: .relaxed)
    }
}
#endif
