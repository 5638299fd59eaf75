import Foundation
import Testing
import MultiprocessingSystem

/// A destination that more than one kernel, or more than one pid namespace, writes into: a tree on
/// NFS or Lustre copied by ranks on several hosts (`mpcp --mpi`), or a volume shared by
/// containers. A pid in a temporary's name means something only where it was taken, so a run's
/// sweep of killed runs' temporaries must leave alone those named by another host or namespace:
/// before names carried where they came from, a run removed the live temporary of a run in
/// another pid namespace (its pid, 1 there, is init's here, with another start time), and that
/// run's copy failed at its rename.
@Suite(.serialized) struct SharedTreeTemporaryTests {
    /// A run in a pid namespace of its own (`unshare --pid`, as a container or another host would
    /// see it) is held mid-write in a large file's named temporary; a run here copies into the
    /// same tree meanwhile. The held run's temporary stays, and once let go it finishes, exact.
    /// Before, the run here removed it, the held run's next chunk made it anew (see
    /// ``aVanishedTemporaryFailsItsFile()``), and a file with holes was renamed into place.
    @Test func anotherNamespacesLiveTemporaryStays() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + #"""
        mkdir -p src/d dst/src && for i in $(seq 1 50); do printf "small $i" > src/d/s$i; done
        # Random bytes, so that a file with holes where chunks went cannot pass for the source.
        head -c 200M /dev/urandom > src/big
        hold '*/dst/src/.mpcp-tmp-*'
        LD_PRELOAD=$MPCP_HOLD_LIB unshare --pid --fork --mount-proc "$MPCP" -a -j 2 src dst & pid=$!
        wait_held $pid
        "$MPCP" -a -u src dst; echo "here=$?"
        find dst -name '.mpcp-tmp-[0-9a-f]*' | grep -c .
        release_hold
        wait $pid; echo "there=$?"
        find dst -name '.mpcp-tmp*'
        rsync -ani --checksum src/ dst/src/
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "here=0\n1\nthere=0\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Only names of this kernel boot and pid namespace are judged by their pid: one whose tag is
    /// another's stays even when its pid does not exist here; one with this namespace's tag and a
    /// pid that does not exist goes, and so does one of the older form without a tag.
    @Test func onlyThisNamespacesDeadTemporariesGo() async throws {
        let tag = try #require(system_processNamespaceTag(), "this machine has /proc")
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src dst/src && echo x > src/f
        start=$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f20)
        hex() { printf '%x' "$1"; }
        # 4194304 is above the largest pid Linux allows: no process has it, here or anywhere.
        ours=".mpcp-tmp-$(hex 4194304)-$(hex $start)-\#(String(tag, radix: 16))-1"
        other=".mpcp-tmp-$(hex 4194304)-$(hex $start)-\#(String(tag ^ 1, radix: 16))-2"
        older=".mpcp-tmp-$(hex 4194304)-$(hex $start)-3"
        for n in "$ours" "$other" "$older"; do echo partial > "dst/src/$n"; done
        "$MPCP" -a -u src dst; echo "status=$?"
        ls -A dst/src | sed "s/^$ours\$/ours kept/; s/^$other\$/other kept/; s/^$older\$/older kept/" | sort
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\nf\nother kept\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// A large file's temporary that vanishes while its chunks are copied (another run's sweep
    /// before the fix above, a user's `rm`, a cleaner): the file fails, and nothing is put under
    /// its name. Before, each chunk opened the temporary with O_CREAT, so the chunks after the
    /// removal made a new, empty one, the finish truncated it to the full size, and a file of
    /// the right size with zeros where the first chunks had been was renamed into place, exit 0.
    @Test func aVanishedTemporaryFailsItsFile() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + #"""
        mkdir -p src dst/src && head -c 200M /dev/urandom > src/big
        hold '*/dst/src/.mpcp-tmp-*'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 2 src dst 2> err & pid=$!
        wait_held $pid
        rm dst/src/.mpcp-tmp-*
        release_hold
        wait $pid; echo "status=$?"
        ls -A dst/src
        grep -c 'big' err
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=1\n1\n", "\(run.stdout)\n\(run.stderr)")
    }
}
