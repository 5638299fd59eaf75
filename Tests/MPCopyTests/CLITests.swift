import Foundation
import Testing

/// mpcp's command line as a person meets it: bad operands, cp's and rsync's habits, names in
/// messages, progress, --stats and --json. Each test runs the built binary.
@Suite(.serialized) struct MPCopyCLITests {
    // MARK: bad input

    /// A FIFO operand is recreated as a FIFO with -a or -r (as `cp -a` does), never opened, so
    /// nothing waits for a writer; without -r it is refused with a reason, not waited on. Inside
    /// a tree FIFOs are recreated too.
    @Test func fifoOperandIsRecreatedNotRead() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkfifo f && chmod 640 f && touch -d '2001-02-03 04:05:06.5' f && mkdir -p t/sub && mkfifo t/sub/g
        timeout -s KILL 20 "$MPCP" -a f g; echo "a=$?"
        [ -p g ] && echo "g is a fifo"
        [ "$(stat -c '%a %y' f)" = "$(stat -c '%a %y' g)" ] && echo "same mode and time"
        echo old > h && timeout -s KILL 20 "$MPCP" -r f h; echo "r=$?"; [ -p h ] && echo "h replaced"
        timeout -s KILL 20 "$MPCP" f plain; echo "plain=$?"; [ -e plain ] || echo "plain not created"
        timeout -s KILL 20 "$MPCP" -a t t2; echo "tree=$?"; [ -p t2/sub/g ] && echo "fifo in tree"
        ls -A | grep -c mpcp-tmp
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "a=0\ng is a fifo\nsame mode and time\nr=0\nh replaced\nplain=1\nplain not created\ntree=0\nfifo in tree\n0\n",
                "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("mpcp: f: copy: it is a FIFO (use -r or -a to create a FIFO in its place)"), "\(run.stderr)")
    }

    /// A file that shrinks, grows or is rewritten while it is copied is reported for that file,
    /// exit 1, and its copy never takes the final name; with -j 2 a 512 MiB file is copied in
    /// chunks by both workers, with -j 1 whole. A chmod changes only the change time (the copy
    /// would get the old mode): seen through the scan's statx, which crosses to a worker process
    /// packed (the chunked case went unreported before the change time was in it).
    ///
    /// The change is made while mpcp (or its worker) is held in the middle of the file, after its
    /// first step: the copy cannot end before it. (It was made once mpcp was seen with the file
    /// open, and the copy could win that race; the test tried five times then.)
    @Test(arguments: [
        ("-j 2", "truncate -s 100M src/big"),
        ("-j 1", "truncate -s 100M src/big"),
        ("-j 2", "head -c 1M /dev/urandom >> src/big"),
        ("-j 1", "printf XYZ | dd of=src/big bs=1 seek=1000 conv=notrunc status=none"),
        ("-j 2", "chmod 600 src/big"),
        ("-j 1 --workers processes", "chmod 600 src/big"),
    ])
    func aFileThatChangesWhileCopiedIsReportedAndNotPublished(jobs: String, change: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + #"""
        mkdir -p src && yes abcdefghijklmnop | head -c 512M > src/big && echo small > src/small
        cp --reflink=never src/big before
        mkdir dst
        hold '*/src/big'
        LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" -a \#(jobs) src dst & pid=$!
        wait_held $pid
        \#(change)
        release_hold
        wait $pid; status=$?
        find dst -name '.mpcp-tmp*' | sed 's/^/temporary left: /'
        [ -e dst/src/small ] || echo "small missing"
        if [ $status = 1 ] && [ ! -e dst/src/big ]; then echo "outcome=reported"
        else echo "outcome=wrong status=$status size=$(stat -c %s dst/src/big 2>&1)"; fi
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "outcome=reported\n", "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("src/big: copy: the file changed while it was copied"), "\(run.stderr)")
    }

    /// A large file replaced by a FIFO while its chunks are copied (-j 2): the chunks that open the
    /// new name meet a FIFO and are not left waiting for a writer; the file is reported, exit 1,
    /// and a single SIGTERM was never needed.
    @Test func aFileReplacedByAFifoMidwayDoesNotHang() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = holdFunctions + #"""
        mkdir -p src && head -c 512M /dev/zero > src/big && echo small > src/small
        mkdir dst
        hold '*/src/big'
        LD_PRELOAD=$MPCP_HOLD_LIB timeout -s KILL 60 "$MPCP" -a -j 2 src dst & pid=$!
        wait_held $pid
        mv src/big src/old && mkfifo src/big
        release_hold
        wait $pid; echo "status=$?"
        [ -e dst/src/big ] && echo "big published"
        find dst -name '.mpcp-tmp*' | sed 's/^/temporary left: /'
        cat dst/src/small
        """#
        let run = try await sh(script, in: scratch.path)
        // The chunks already open finish from the old inode; the file still fails as a whole,
        // since its name no longer holds what was scanned.
        #expect(run.stdout == "status=1\nsmall\n", "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("src/big: "), "\(run.stderr)")
    }

    // MARK: cp and rsync habits

    /// -u keeps a destination file that is newer than its source (cp -u, rsync -u), for files in
    /// a tree and for a file operand; an older one, or one of another size with the same time, is
    /// replaced.
    @Test func updateKeepsANewerDestination() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src dst && for f in newer older size; do echo "source $f" > src/$f; done
        touch -d '2020-01-01' src/*
        "$MPCP" -a src dst
        echo "edited in the destination" > dst/src/newer
        touch -d '2019-01-01' dst/src/older
        echo "longer, same time........" > dst/src/size && touch -d '2020-01-01' dst/src/size
        "$MPCP" -a -u src dst; echo "tree=$?"
        cat dst/src/newer dst/src/older dst/src/size
        echo "edited again" > dst/src/newer
        "$MPCP" -a -u src/newer dst/src/newer; echo "file=$?"
        cat dst/src/newer
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "tree=0\nedited in the destination\nsource older\nsource size\nfile=0\nedited again\n",
                "\(run.stdout)\n\(run.stderr)")
    }

    /// --checksum decides by content, as rsync -c: a destination of the same size and time but
    /// other bytes is copied over; one with the same bytes is skipped. --verify reads copies back.
    @Test func checksumDecidesByContent() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src dst && echo aaaa > src/diff && echo same > src/same
        "$MPCP" -a src dst
        echo bbbb > dst/src/diff && touch -r src/diff dst/src/diff
        "$MPCP" -a -u --checksum --json src dst > out.json; echo "status=$?"
        cat dst/src/diff
        python3 -c 'import json; d = json.load(open("out.json")); print(d["files"], d["skipped"])'
        echo cccc > dst/src/diff && touch -r src/diff dst/src/diff
        "$MPCP" -a --checksum src/diff dst/src/diff; echo "file=$?"; cat dst/src/diff
        "$MPCP" --verify src/same verified; echo "verify=$?"; cmp src/same verified && echo "verified ok"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\naaaa\n1 1\nfile=0\naaaa\nverify=0\nverified ok\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// `SRC/.` copies the contents of SRC, into an existing directory or to a new one, as cp -a.
    @Test func dotCopiesTheContents() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src/a existing cpexisting && echo x > src/a/f && echo y > src/top
        "$MPCP" -a src/. existing; echo "existing=$?"
        cp -a src/. cpexisting
        "$MPCP" -a src/. new; echo "new=$?"
        cp -a src/. cpnew
        (cd existing && find . | sort) > mine; (cd cpexisting && find . | sort) > theirs; cmp mine theirs && echo "into existing as cp"
        (cd new && find . | sort) > mine; (cd cpnew && find . | sort) > theirs; cmp mine theirs && echo "to new as cp"
        [ -e existing/src ] && echo "made existing/src"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "existing=0\nnew=0\ninto existing as cp\nto new as cp\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// Names in -v output and in errors are quoted as GNU ls --quoting-style=shell-escape quotes
    /// them, in a UTF-8 locale and in the C locale: spaces, quotes, control characters, a
    /// newline, bytes that are not UTF-8, `'` alone and with other specials.
    @Test(arguments: ["C.UTF-8", "C"])
    func namesAreQuotedAsLsQuotesThem(locale: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        export LC_ALL=\#(locale)
        mkdir src && cd src
        for n in plain 'sp ace' "it's" $'tab\there' $'bad\377\nname' 'dq"x' $'\xc3\xa9t\xc3\xa9' 'a$b' '~home' 'x~' \
                 '#h' $'\x01c' 'a\b' "it's#x" "#it's" $'cut\xc3' 'q?' "'" $'\x7f' '@x' 'a=b'; do printf x > "$n"; done
        cd ..
        "$MPCP" -rv src dst | sort > mine
        find src -print0 | xargs -0 -n1 ls -d --quoting-style=shell-escape | sort > theirs
        diff mine theirs && echo "same as ls"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "same as ls\n", "\(run.stdout)\n\(run.stderr)")
    }

    /// An error about a file whose name has a byte that is not UTF-8 and a newline shows it quoted,
    /// not as U+FFFD and not split over two lines; so does a usage error about an operand. Runs
    /// as `nobody`, since root reads everything.
    @Test func errorsQuoteNames() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src out && printf x > $'src/bad\377\nname' && chmod 000 $'src/bad\377\nname' && chmod 777 out
        setpriv --reuid=65534 --regid=65534 --clear-groups "$MPCP" -r src out/dst; echo "status=$?"
        "$MPCP" -r $'no\377 here' out; echo "status=$?"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=1\nstatus=2\n", "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains(#"mpcp: 'src/bad'$'\377\n''name': open: Permission denied"#), "\(run.stderr)")
        // In a sentence a name is always quoted, as cp's messages quote it.
        #expect(run.stderr.contains(#"mpcp: cannot stat 'no'$'\377'' here': No such file or directory"#), "\(run.stderr)")
    }

    /// --version; -p keeps mode, owner and times but not xattrs (cp -p); -n is the dry run and
    /// --no-clobber keeps every existing file; --help says which -n is which.
    @Test func versionPreserveAndNoClobber() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        "$MPCP" --version
        echo data > f && chmod 4751 f && chown 12:34 f && touch -d '2001-02-03 04:05:06.123456789' f && setfattr -n user.x -v 1 f
        "$MPCP" -p f g; echo "p=$?"
        [ "$(stat -c '%a %u %g %y' f)" = "$(stat -c '%a %u %g %y' g)" ] && echo "mode owner times kept"
        getfattr -n user.x g >/dev/null 2>&1 || echo "no xattr"
        mkdir -p src dst/src && echo new > src/a && echo new > src/b && echo old > dst/src/a
        "$MPCP" -r -n src dst > dry; echo "n=$?"; cat dst/src/a; [ -e dst/src/b ] || echo "dry run wrote nothing"
        "$MPCP" -r --no-clobber src dst; echo "noclobber=$?"; cat dst/src/a dst/src/b
        "$MPCP" --help | tr -s ' \n' ' ' | grep -o "cp's -n is --no-clobber" | head -1
        """#
        let run = try await sh(script, in: scratch.path)
        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first?.hasPrefix("mpcp ") == true, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.hasSuffix("p=0\nmode owner times kept\nno xattr\nn=0\nold\ndry run wrote nothing\nnoclobber=0\nold\nnew\ncp's -n is --no-clobber\n"),
                "\(run.stdout)\n\(run.stderr)")
    }

    // MARK: progress and reports

    /// With the big file done and small files to go, the percentage counts the files still to
    /// copy and the ETA is not 0:00. One worker copies the big file at the top first (the root's
    /// files are queued before the subdirectory's scan finds the 20,000 small ones).
    @Test func progressCountsFilesAsWellAsBytes() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src/d && head -c 300M /dev/zero > src/big
        for i in $(seq 1 20000); do printf "$i" > src/d/s$i; done
        script -qec "$MPCP -r -j 1 --progress src dst" /dev/null > tty.out; echo "status=$?"
        tr '\r' '\n' < tty.out | grep -a ' files ' > lines
        cat lines
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout.hasPrefix("status=0\n"), "\(run.stdout.prefix(500))\n\(run.stderr)")
        // Lines look like "[###---] 45%  300.0 MiB/300.1 MiB  5166/20001 files  12.3 MiB/s  ETA 0:05".
        var midway = 0
        for line in run.stdout.split(separator: "\n").dropFirst() {
            let words = line.split(separator: " ")
            guard let filesIndex = words.firstIndex(of: "files"), filesIndex > 0,
                  let percentWord = words.first(where: { $0.hasSuffix("%") }), let percent = Int(percentWord.dropLast()) else { continue }
            let counts = words[filesIndex - 1].split(separator: "/").compactMap { Int($0) }
            // The small-file phase, until nine files in ten are done: most of the phase, several
            // ticks of 200 ms even on a fast machine.
            guard counts.count == 2, counts[1] == 20001, counts[0] > 1, counts[0] * 10 < counts[1] * 9 else { continue }
            midway += 1
            // 300 MiB and 20,001 files at 128 KiB each: with under 90% of the files done, the run
            // is under 92% done; counting bytes alone, it showed 100%.
            let expected = (300.0 * 1024 + Double(counts[0]) * 128) / (300.0 * 1024 + 20001 * 128) * 100
            #expect(Double(percent) <= expected.rounded(.up) + 1 && percent < 95, "\(line)")
            #expect(!line.contains("ETA 0:00"), "\(line)")
        }
        #expect(midway > 0, "no progress line while the small files were copied:\n\(run.stdout.suffix(2000))")
    }

    /// Without a terminal, --progress writes whole lines (at least the last one, at 100%);
    /// --stats prints the summary on stdout.
    @Test func progressLinesWithoutATerminalAndStats() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src && head -c 5000000 /dev/urandom > src/f && echo x > src/g
        "$MPCP" -r --progress --stats src dst 2> err > out; echo "status=$?"
        tail -1 err
        cat out
        """#
        let run = try await sh(script, in: scratch.path)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "status=0", "\(run.stdout)\n\(run.stderr)")
        #expect(lines.count > 1 && lines[1].hasPrefix("mpcp: progress: 100%  4.8 MiB/4.8 MiB  2/2 files  "), "\(run.stdout)")
        for word in ["Files copied: 2 ", "Bytes copied: 5,000,002 (4.8 MiB)", "Time: ", "Rate: ", "Errors: 0"] {
            #expect(run.stdout.contains(word), "\(word) missing from \(run.stdout)")
        }
    }

    /// --json writes one JSON document and nothing else on stdout, even with -v and --stats; a
    /// name that is not UTF-8 comes back byte for byte from `path_b64`; failures are listed.
    @Test func jsonIsOneLosslessDocument() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src && printf x > $'src/bad\377name' && printf y > 'src/été' && mkfifo src/p
        python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("src/sock")'
        "$MPCP" -r -v --stats --json src dst > out.json 2> err; echo "status=$?"
        python3 - <<'EOF'
        import base64, json
        raw = open("out.json", "rb").read()
        doc = json.loads(raw)
        assert "\ufffd" not in raw.decode("utf-8"), "U+FFFD in the output"
        names = sorted(base64.b64decode(c["path_b64"]) if "path_b64" in c else c["path"].encode() for c in doc["copied"])
        print(names)
        print(doc["files"], doc["failed"], [f.get("path") for f in doc["failures"]], doc["schema"])
        EOF
        grep -c 'Files copied' err
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=1\n[b'src', b'src/bad\\xffname', b'src/p', b'src/\\xc3\\xa9t\\xc3\\xa9']\n3 1 ['src/sock'] 1\n1\n",
                "\(run.stdout)\n\(run.stderr)")
    }
}
