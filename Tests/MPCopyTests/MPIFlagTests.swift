import Foundation
import Testing

/// `--mpi` in the default build (no MPI trait): a usage error at once that says how to build with
/// MPI, and nothing copied. The trait build's behaviour is tested under real mpirun by
/// scripts/mpcp-mpi-tests.sh (CI's MPI section); in `swift test --traits MPI` (where SwiftPM
/// defines `MPI` in every target) this suite is not compiled, since that mpcp takes `--mpi`.
#if !MPI
@Suite struct MPCopyMPIFlagTests {
    @Test func mpiWithoutTheTraitIsAUsageErrorThatSaysHowToBuild() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src && echo x > src/f
        "$MPCP" --mpi -a src dst; echo "status=$?"
        [ -e dst ] || echo "nothing copied"
        ls -A | grep -c mpcp-tmp
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=2\nnothing copied\n0\n", "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr == "mpcp: --mpi: this mpcp was built without MPI; build it with the MPI trait: swift build -c release --traits MPI (see docs/distributed.md)\n",
                "\(run.stderr)")
    }

    @Test func helpNamesTheMPIFlag() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let run = try await sh(#""$MPCP" --help"#, in: scratch.path)
        #expect(run.stdout.contains("--mpi"), "\(run.stdout)")
        #expect(run.stdout.contains("--traits MPI"), "\(run.stdout)")
    }
}
#endif
