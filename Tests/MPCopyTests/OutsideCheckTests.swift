import Foundation
import Testing

/// Cases an outside check found after the security, resume and command-line work were merged:
/// each runs the built binary as a person would, on a shape no earlier test had.
@Suite(.serialized) struct MPCopyOutsideCheckTests {
    /// `mpcp -a SRC/. DEST` where DEST is a symlink to a directory copies SRC's contents into
    /// that directory, as `cp -a SRC/. DEST` does (it failed: the operand itself was resolved as a
    /// name that must not be a symlink), with either worker kind, and the link stays a link.
    @Test(arguments: ["threads", "processes"])
    func contentsIntoASymlinkedDestination(workers: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p s/d real && echo a > s/f && echo b > s/d/g && ln -s real link
        "$MPCP" -a --workers \#(workers) s/. link; echo "status=$?"
        diff -r s real && echo "same"
        [ -L link ] && echo "still a link"
        # Again, merging into what is there now, with -u.
        echo c > s/d/h
        "$MPCP" -a -u --workers \#(workers) s/. link; echo "again=$?"
        diff -r s real && echo "same again"
        ls -A | grep -c mpcp-tmp
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\nsame\nstill a link\nagain=0\nsame again\n0\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// A name with a newline and bytes that are not UTF-8 is quoted in every failure message,
    /// also where the message names the destination as well (it was printed raw, and in --json
    /// as U+FFFD).
    @Test func destinationNamesInFailuresAreQuoted() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        n=$'b\xff\nn'
        mkdir -p "$n/x" d && echo 1 > "$n/x/f" && : > "d/$n"
        "$MPCP" -a "$n" d/; echo "status=$?"
        "$MPCP" -a --json "$n" d/ 2>/dev/null
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout.hasPrefix("status=1\n{"), "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains(#"mpcp: 'b'$'\377\n''n': create directory 'd/b'$'\377\n''n': "#), "\(run.stderr)")
        #expect(run.stderr.split(separator: "\n").count == 2, "one line per message: \(run.stderr)")
        #expect(!run.stdout.contains("\u{FFFD}") && !run.stderr.contains("\u{FFFD}"), "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.split(separator: "\n").count == 2, "one line of JSON: \(run.stdout)")
    }

    /// After Ctrl-C of a `--no-clobber` copy, the command the message prints finishes it (it
    /// added -u, which --no-clobber refuses, so the advised command was a usage error).
    @Test func adviceAfterANoClobberCopyRuns() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + #"""
        mkdir -p src && yes abcdefghijklmnop | head -c 512M > src/big && for i in 1 2 3; do echo $i > src/f$i; done
        hold '*/src/big'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a --no-clobber -j 1 src dst 2> err & pid=$!
        wait_held $pid
        kill -INT $pid; wait $pid; echo "first=$?"
        command=$(sed -n 's/^mpcp: interrupted: .*to finish the copy, run: //p' err)
        echo "advice: $command"
        [ -n "$command" ] || exit 0
        eval "$command"; echo "resumed=$?"
        diff -r src dst && echo "same"
        ls -A | grep -c mpcp-tmp
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout.hasPrefix("first=130\nadvice: "), "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.hasSuffix("resumed=0\nsame\n0\n"), "\(run.stdout)\n\(run.stderr)")
    }

    /// On a full disk, a large file copied in chunks by two workers fails once: one message, one
    /// failed file in the count and in --json (each chunk that met ENOSPC reported it again), and
    /// nothing is left under its name or as a temporary.
    @Test(arguments: ["threads", "processes"])
    func aLargeFileThatFailsIsReportedOnce(workers: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src tiny && head -c 300M /dev/zero | tr '\0' x > src/big
        mount -t tmpfs -o size=8m tmpfs tiny || { echo "cannot mount tmpfs"; exit 3; }
        trap 'umount tiny' EXIT
        "$MPCP" -a -j 2 --workers \#(workers) src tiny/d; echo "status=$?"
        "$MPCP" -a -j 2 --workers \#(workers) --json src tiny/e 2>/dev/null | grep -o '"failed":[0-9]*'
        find tiny -mindepth 1 ! -type d
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=1\n\"failed\":1\n", "\(run.stdout)\n\(run.stderr)")
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("mpcp: src/big: ") && lines[0].hasSuffix("No space left on device")
                && lines[1] == "mpcp: 1 file(s) failed", "\(run.stderr)")
    }

    /// `--checksum` into a tree whose files have the source's sizes and times but other bytes:
    /// when the worker process copying a batch is killed, the files it had not copied are
    /// reported, never counted as copied because their old copies have the source's size and
    /// time (that was exit 0 with wrong content), and the advised rerun finishes the copy.
    @Test func aDeadWorkersUncopiedFilesAreReportedUnderChecksum() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + #"""
        mkdir -p src dst/src
        for i in $(seq 1 200); do
          head -c 1000000 /dev/zero | tr '\0' a > src/f$i
          head -c 1000000 /dev/zero | tr '\0' b > dst/src/f$i && touch -r src/f$i dst/src/f$i
        done
        # A worker writing an unnamed temporary file in dst/src is copying a batch: it is held there
        # and killed.
        hold '*/dst/src/#*'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a --checksum -j 2 --workers processes src dst/ 2> err & pid=$!
        wait_held $pid
        [ $held_pid != $pid ] && kill -9 $held_pid && echo "killed"
        release_hold
        wait $pid; status=$?
        wrong=$(for i in $(seq 1 200); do cmp -s src/f$i dst/src/f$i || echo f$i; done | wc -l)
        echo "status=$status wrong=$wrong"
        [ $wrong = 0 ] || grep -c 'the worker process died' err
        "$MPCP" -a -u --checksum src dst/; echo "rerun=$?"
        for i in $(seq 1 200); do cmp -s src/f$i dst/src/f$i || echo "still wrong: f$i"; done
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout.hasPrefix("killed\n"), "\(run.stdout)\n\(run.stderr)")
        // The file the worker was held in was never linked in, so at least that one keeps its old
        // bytes; files left so are reported, so the exit status says so.
        let status = run.stdout.split(separator: "\n").first { $0.hasPrefix("status=") } ?? ""
        #expect(status.hasPrefix("status=1 ") && !status.hasSuffix(" wrong=0"), "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.hasSuffix("rerun=0\n"), "\(run.stdout)\n\(run.stderr)")
    }

    /// Operands and `--exclude` patterns that are not UTF-8 keep their bytes: an operand is not
    /// mistaken for an option's value that repairs to the same String (mpcp copied `\xfe`, the
    /// pattern, instead of the operand `\xff`), and such a pattern matches (it matched nothing),
    /// also as `--exclude=PATTERN` and in worker processes.
    @Test(arguments: ["threads", "processes"])
    func argumentsThatAreNotUTF8KeepTheirBytes(workers: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p $'\xff' $'\xfe' d e && echo 1 > $'\xff/x' && echo 2 > $'\xfe/y' && echo 3 > $'\xff/b\xe9d' && echo 4 > $'\xff/ok'
        "$MPCP" -a --workers \#(workers) --exclude $'\xfe' $'\xff' d/; echo "status=$?"
        ls d | od -An -c | tr -s ' '
        "$MPCP" -a --workers \#(workers) --exclude $'b\xe9d' $'\xff' e/ && ls e/* | od -An -c | tr -s ' '
        rm -rf e/* && "$MPCP" -a --workers \#(workers) --exclude=$'*\xe9*' $'\xff' e/ && ls e/* | od -An -c | tr -s ' '
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\n 377 \\n\n o k \\n x \\n\n o k \\n x \\n\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Whatever someone put under the resume marker's name beside a new destination (a FIFO, or
    /// a hard link to another file) is neither waited on nor written through: the copy runs
    /// (it hung on the FIFO, and one SIGTERM did not stop it) and the other file keeps its bytes
    /// (the marker was opened with O_TRUNC and written).
    @Test(arguments: ["", "--no-staging"])
    func whateverHoldsTheResumeMarkersNameIsLeftAlone(staging: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        m=$(python3 -c "
        h = 0xcbf29ce484222325
        for b in b'dst': h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        print('.mpcp-tmp-resume-%016x' % h)")
        mkdir -p src && echo x > src/f && mkfifo "$m"
        timeout -s KILL 20 "$MPCP" -a \#(staging) src dst; echo "fifo=$?"
        diff -r src dst && echo "copied"
        rm -rf dst "$m" && echo precious > other && ln other "$m"
        timeout -s KILL 20 "$MPCP" -a \#(staging) src dst; echo "link=$?"
        cat other
        ls -A | grep -c mpcp-tmp
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout.hasPrefix("fifo=0\ncopied\nlink=0\nprecious\n"), "\(run.stdout)\n\(run.stderr)")
    }

    /// A large file replaced (renamed over) by another of the same size and time while its
    /// chunks are copied by two workers: the copy would mix the two files' bytes, so it is
    /// reported and not published (it was published, exit 0, because the size and time checked
    /// at the end were the same).
    @Test(arguments: ["threads", "processes"])
    func aLargeFileReplacedMidwayIsReported(workers: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + #"""
        mkdir -p src dst && yes abcdefghijklmnop | head -c 512M > src/big && yes ABCDEFGHIJKLMNOP | head -c 512M > alt
        touch -r src/big alt && cp --reflink=never src/big before
        hold '*/src/big'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a -j 2 --workers \#(workers) src dst & pid=$!
        wait_held $pid
        mv alt src/big
        release_hold
        wait $pid; status=$?
        find dst -name '.mpcp-tmp*' | sed 's/^/temporary left: /'
        if [ $status = 1 ] && [ ! -e dst/src/big ]; then echo "outcome=reported"
        else echo "outcome=wrong status=$status"; fi
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "outcome=reported\n", "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("src/big: copy: the file changed while it was copied (it was replaced)"), "\(run.stderr)")
    }

    /// A dry run lists a FIFO inside a tree as it lists every other file it counts (it counted
    /// it and left it out of the list), and writes nothing.
    @Test func aDryRunListsFifos() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let run = try await sh(#"mkdir -p s/d && echo x > s/d/f && mkfifo s/p && "$MPCP" -n -a s newd; echo "status=$?"; ls -A | grep -v '^\.std'"#,
                         in: scratch.path)
        #expect(run.stdout.split(separator: "\n").sorted() == ["s", "s", "s/d", "s/d/f", "s/p", "status=0"], "\(run.stdout)\n\(run.stderr)")
    }
}
