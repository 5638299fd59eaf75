import Foundation
import Testing

/// Interrupted copies finish when the same command runs again (issue 13, items 3 to 8): the
/// built `mpcp` stopped by real signals midway, then run again.
@Suite(.serialized) struct MPCopyResumeTests {
    /// A tree whose copy takes long enough to be interrupted: 200 small files, then a 400 MiB file.
    static let makeSource = #"""
    mkdir -p src/d && for i in $(seq 1 200); do printf "small $i" > src/d/s$i; done
    ln -s d/s1 src/link
    head -c 400M /dev/zero > src/zero

    """#

    /// Item 3: after SIGINT, SIGTERM, SIGHUP or SIGKILL, the same command, run again, finishes the
    /// copy into the destination it names (not into a directory inside it), staged or not, and
    /// leaves nothing else beside it.
    @Test(arguments: ["INT", "TERM", "HUP", "KILL"], ["", "--no-staging"])
    func sameCommandFinishesAfterAnySignal(signal: String, staging: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        // The big file's path while it is written: a name inside the staged tree, or an unnamed
        // O_TMPFILE in newdst ("newdst/#123 (deleted)").
        let writing = staging.isEmpty ? "*/.mpcp-tmp-stage-*/zero" : "*/newdst/#*"
        let script = holdFunctions + MPCopyResumeTests.makeSource + #"""
        hold '\#(writing)'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 1 \#(staging) src newdst & pid=$!
        wait_held $pid
        kill -\#(signal) $pid
        wait $pid; echo "status=$?"
        "$MPCP" -a -j 1 \#(staging) src newdst; echo "second=$?"
        ls -A | grep -v '^\.std' | tr '\n' ' '; echo
        [ -e newdst/src ] && echo "copied into newdst/src"
        rsync -ani --checksum src/ newdst/
        """#
        let run = try await sh(script, in: scratch.path)
        let status = ["INT": 130, "TERM": 143, "HUP": 129, "KILL": 137][signal] ?? 0
        #expect(run.stdout == "status=\(status)\nsecond=0\nnewdst src \n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 3: the command the interruption message prints finishes the copy, with names that need
    /// quoting (a quote, a space, invalid UTF-8, a newline) and with every kind of worker.
    @Test(arguments: ["INT", "TERM", "HUP"], ["threads", "processes"])
    func printedCommandFinishesTheCopy(signal: String, workers: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + MPCopyResumeTests.makeSource + #"""
        mv src "it's src"
        dst=$'new dst\xff\nx'
        hold '*/.mpcp-tmp-stage-*/zero'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 1 --workers \#(workers) "it's src" "$dst" 2> err & pid=$!
        wait_held $pid
        kill -\#(signal) $pid
        wait $pid; echo "status=$?"
        grep -c 'to finish the copy, run: ' err
        command=$(sed -n 's/^mpcp: interrupted: .*to finish the copy, run: //p' err)
        eval "$command"; echo "second=$?"
        [ -d "$dst" ] && [ ! -e "$dst/it's src" ] && echo "finished in place"
        ls -A | grep -c '^\.mpcp-tmp'
        rsync -ani --checksum "it's src/" "$dst/"
        """#
        let run = try await sh(script, in: scratch.path)
        let status = ["INT": 130, "TERM": 143, "HUP": 129][signal] ?? 0
        #expect(run.stdout == "status=\(status)\n1\nsecond=0\nfinished in place\n0\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 4: -u links a file whose hard link the destination lost to the copy of its inode, as
    /// `cp -a -u` and `rsync -aH` do: the issue's recipe, the same with the first name lost, and two
    /// up-to-date names that are separate copies.
    @Test(arguments: ["rm d/s/b/g", "rm d/s/a/f", "rm d/s/b/g && cp -a d/s/a/f d/s/b/g"], ["threads", "processes"])
    func updateRepairsHardLinks(breakLink: String, workers: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p s/a s/b d; echo x > s/a/f; ln s/a/f s/b/g; echo y > s/a/other
        "$MPCP" -a s d/ || exit 3
        \#(breakLink)
        "$MPCP" -a -u --workers \#(workers) s d/; echo "status=$?"
        stat -c %h d/s/a/f d/s/b/g
        [ "$(stat -c %i d/s/a/f)" = "$(stat -c %i d/s/b/g)" ] && echo "linked"
        rsync -aniH --checksum s/ d/s/
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\n2\n2\nlinked\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 4: a run interrupted after the first name of an inode was copied and before its other
    /// name was linked (the state is made by removing that link from the tree the killed run left):
    /// the run that takes the staged tree over with -u links it again.
    @Test func resumeAfterSigkillRestoresHardLinks() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + MPCopyResumeTests.makeSource + #"""
        ln src/d/s1 src/hard
        hold '*/.mpcp-tmp-stage-*/zero'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 1 src newdst & pid=$!
        wait_held $pid
        kill -KILL $pid; wait $pid; echo "status=$?"
        # The state of a kill between the two: the first name complete, the second not there.
        staged=$(ls -d .mpcp-tmp-stage-*)
        rm -f "$staged/hard" "$staged/d/s1" && cp -a src/d/s1 "$staged/d/s1"
        "$MPCP" -a -u -j 1 src newdst; echo "second=$?"
        [ "$(stat -c %i newdst/d/s1)" = "$(stat -c %i newdst/hard)" ] && echo "linked"
        rsync -aniH --checksum src/ newdst/
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=137\nsecond=0\nlinked\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 5: a run killed with SIGKILL while it writes a large file's chunks into an existing
    /// directory (or a new one with --no-staging) leaves that file's `.mpcp-tmp-<pid>-…`
    /// temporary; the next run removes it.
    @Test(arguments: ["mkdir -p dst/src", "mkdir dst && staging=--no-staging"])
    func laterRunRemovesTheKilledRunsTemporaries(setup: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + MPCopyResumeTests.makeSource + #"""
        staging=""; \#(setup)
        hold '*/dst/src/.mpcp-tmp-*'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 2 $staging src dst & pid=$!
        wait_held $pid
        kill -KILL $pid; wait $pid; echo "status=$?"
        find dst -name '.mpcp-tmp-[0-9a-f]*' | grep -c .
        "$MPCP" -a -u $staging src dst; echo "second=$?"
        find dst -name '.mpcp-tmp*'
        rsync -ani --checksum src/ dst/src/
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=137\n1\nsecond=0\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 5: what tells a killed run's temporary from a live one's is the pid and the start
    /// time in its name: one of a live process stays; one whose pid is alive but started later
    /// (the pid was reused) goes, and so does one of a pid that does not exist.
    @Test func temporariesOfLiveProcessesStay() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src dst/src && echo x > src/f
        # This shell is the live process; 4194304 is above the largest pid Linux allows.
        live=$$
        start=$(sed 's/.*) //' /proc/$live/stat | cut -d' ' -f20)
        hex() { printf '%x' "$1"; }
        live_name=".mpcp-tmp-$(hex $live)-$(hex $start)-1"
        reused_name=".mpcp-tmp-$(hex $live)-$(hex $((start + 1)))-1"
        gone_name=".mpcp-tmp-$(hex 4194304)-$(hex $start)-2"
        for n in "$live_name" "$reused_name" "$gone_name"; do echo partial > "dst/src/$n"; done
        "$MPCP" -a -u src dst; echo "status=$?"
        ls -A dst/src | sed "s/^$live_name\$/live kept/; s/^$reused_name\$/reused kept/; s/^$gone_name\$/gone kept/" | sort
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\nf\nlive kept\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 6: a symlink whose times were not set (the state a run killed between creating the
    /// link and setting its times leaves, made by changing them in the killed run's staged tree)
    /// is repaired by the next run with -u; so is one in an existing tree.
    @Test func updateRepairsSymlinkTimes() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + MPCopyResumeTests.makeSource + #"""
        touch -h -d '2003-04-05 06:07:08.5' src/link
        hold '*/.mpcp-tmp-stage-*/zero'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 1 src newdst & pid=$!
        wait_held $pid
        kill -KILL $pid; wait $pid; echo "status=$?"
        touch -h .mpcp-tmp-stage-*/link
        "$MPCP" -a -u src newdst; echo "second=$?"
        [ "$(stat -c %y src/link)" = "$(stat -c %y newdst/link)" ] && echo "staged repaired"
        # An existing tree, merged into in place.
        mkdir merge && mv newdst merge/src && touch -h merge/src/link
        "$MPCP" -a -u src merge; echo "third=$?"
        [ "$(stat -c %y src/link)" = "$(stat -c %y merge/src/link)" ] && echo "in place repaired"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=137\nsecond=0\nstaged repaired\nthird=0\nin place repaired\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 7: mpcp killed with SIGKILL while its worker processes copy: none of them is left,
    /// over several runs.
    @Test func noWorkerProcessOutlivesMpcp() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + MPCopyResumeTests.makeSource + #"""
        # Alive and not a zombie (a zombie has ended; only its parent's reaping is left).
        running() { for w in "$@"; do [ -r /proc/$w/stat ] && [ "$(sed 's/.*) //' /proc/$w/stat | cut -c1)" != Z ] && echo $w; done; }
        left=0
        for run in 1 2 3 4 5; do
          rm -rf dst .mpcp-tmp-*; mkdir dst
          hold '*/dst/.mpcp-tmp-stage-*/.mpcp-tmp-*'
          LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 2 --workers processes src dst & pid=$!
          wait_held $pid
          workers=$(pgrep -P $pid)
          kill -KILL $pid; wait $pid
          # They go at once (a parent-death signal); ten seconds is the bound for a busy machine.
          for i in $(seq 1 1000); do [ -z "$(running $workers)" ] && break; sleep 0.01; done
          still=$(running $workers)
          [ -n "$still" ] && { left=$((left + $(echo $still | wc -w))); kill -KILL $still; }
          echo "workers=$(echo $workers | wc -w)"
        done
        echo "left=$left"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == String(repeating: "workers=2\n", count: 5) + "left=0\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Item 8: a worker process that dies after handing back its result (killed while idle, with
    /// mpcp stopped so that the result waits for it) loses no work: the item mpcp gives it next,
    /// which it never takes, goes to the other worker; nothing is reported failed and the copy
    /// is complete.
    @Test func workerThatDiesAfterItsResultLosesNothing() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + stopFully + MPCopyResumeTests.makeSource + #"""
        mkdir dst
        hold '*/dst/.mpcp-tmp-stage-*/.mpcp-tmp-*'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 2 --workers processes src dst & pid=$!
        # A worker is held in a chunk, so the copy is midway when mpcp stops; then the workers
        # finish what they hold and hand it back (to a stopped mpcp), and go idle.
        wait_held $pid
        stop_fully $pid
        release_hold
        victim=$(pgrep -P $pid | head -1)
        # Idle: no file of the copy open, and waiting on its request queue (a futex). Bounded (a
        # minute) so that a surprise fails the test instead of hanging it.
        give_up() { echo "$1"; kill -KILL $pid; kill -CONT $pid; exit 3; }
        for i in $(seq 1 6000); do ! ls -l /proc/$victim/fd | grep -q 'dst/' && grep -q futex /proc/$victim/wchan && break; sleep 0.01; done
        [ $i = 6000 ] && give_up "the worker never went idle"
        kill -KILL $victim
        for i in $(seq 1 6000); do [ "$(sed 's/.*) //' /proc/$victim/stat | cut -c1)" = Z ] && break; sleep 0.01; done
        [ $i = 6000 ] && give_up "the worker did not die"
        kill -CONT $pid
        wait $pid; echo "status=$?"
        cmp src/zero dst/src/zero && echo "complete"
        rsync -ani --checksum src/ dst/src/
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\ncomplete\n", "\(run.stdout)\n\(run.stderr)")
        #expect(!run.stderr.contains("died"), "\(run.stderr)")
    }

    /// Item 8: a worker process killed in the middle of a batch, after it finished some of the
    /// batch's files: those stay and count as copied; only the file it was writing (and any it had
    /// not reached) is reported, each by its own name, not the whole directory.
    @Test func workerThatDiesMidBatchKeepsTheFilesItFinished() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + stopFully + #"""
        mkdir -p src/d && for i in $(seq 1 20); do printf "small $i" > src/d/s$i; done
        head -c 400M /dev/zero > src/d/big
        mkdir dst
        # One worker: the 400 MiB file is not split, so it is one file of a batch of the directory.
        # The worker is held in the middle of it.
        hold '*/dst/.mpcp-tmp-stage-*/d/big'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 1 --workers processes src dst 2> err & pid=$!
        wait_held $pid
        victim=$held_pid
        [ $victim != $pid ] || { echo "mpcp itself was held, not its worker"; kill -KILL $pid; exit 3; }
        # mpcp stopped while its worker dies, so that what the worker finished can be listed first.
        stop_fully $pid; kill -KILL $victim
        for i in $(seq 1 6000); do [ "$(sed 's/.*) //' /proc/$victim/stat | cut -c1)" = Z ] && break; sleep 0.01; done
        [ $i = 6000 ] && { echo "the worker did not die"; kill -KILL $pid; kill -CONT $pid; exit 3; }
        finished=$(cd dst/.mpcp-tmp-stage-*/d && ls | grep '^s')
        release_hold
        kill -CONT $pid
        wait $pid; echo "status=$?"
        for f in $finished; do cmp -s src/d/$f dst/src/d/$f || echo "finished file lost: $f"; done
        for i in $(seq 1 20); do
          cmp -s src/d/s$i dst/src/d/s$i || grep -q "^mpcp: src/d/s$i: copy: the worker process died" err || echo "s$i neither copied nor reported"
        done
        grep -c "^mpcp: src/d/big: copy: the worker process died" err
        grep -c "^mpcp: src/d: " err
        [ -e dst/src/d/big ] && echo "big present"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=1\n1\n0\n", "\(run.stdout)\n\(run.stderr)")
    }
}
