import Foundation
import Testing

/// What a cp -a / rsync user meets first: a directory where a file goes, a FIFO where an older
/// copy left a file. Each test runs the built binary beside GNU cp, which is the reference.
@Suite(.serialized) struct NewUserCLITests {
    /// A file (small, large, a symlink, a FIFO) whose destination name holds a directory is
    /// refused in cp's words, naming the directory ("cannot overwrite directory 'd/x' with
    /// non-directory"), exit 1, and nothing is left beside it. It said "link into place: Is a
    /// directory" (or "finish: Is a directory"), naming neither the destination nor the problem.
    @Test(arguments: ["", "--workers processes"])
    func aDirectoryInTheWayIsNamedAsCpNamesIt(workers: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir -p src d/small d/big d/link d/fifo && echo hi > src/small && head -c 3000000 /dev/zero > src/big
        ln -s small src/link && mkfifo src/fifo
        "$MPCP" \#(workers) -a src/. d; echo "status=$?"
        ls -A d | grep -c mpcp-tmp
        [ -d d/small ] && [ -d d/big ] && [ -d d/link ] && [ -d d/fifo ] && echo "directories kept"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=1\n0\ndirectories kept\n", "\(run.stdout)\n\(run.stderr)")
        for name in ["small", "big", "link", "fifo"] {
            #expect(run.stderr.contains("cannot overwrite directory 'd/\(name)' with non-directory"), "\(name): \(run.stderr)")
        }
        #expect(run.stderr.contains("Is a directory") == false, "\(run.stderr)")
    }

    /// A FIFO in the source where the destination has a regular file (the earlier copy of a file
    /// since replaced by a FIFO) replaces it, as `cp -a` and rsync do. It was counted as copied
    /// while the regular file stayed, with the FIFO's times set on it.
    @Test func aFifoReplacesAnOlderFile() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir src && echo data > src/x && "$MPCP" -a src dst && cp -a src ref
        rm src/x && mkfifo src/x && touch -d '2001-02-03 04:05:06' src/x
        "$MPCP" -a src/. dst; echo "status=$?"; cp -a src/. ref
        [ -p dst/x ] && echo "dst/x is a fifo"; [ -p ref/x ] && echo "ref/x is a fifo"
        [ "$(stat -c '%a %Y' src/x)" = "$(stat -c '%a %Y' dst/x)" ] && echo "same mode and time"
        ls -A dst | grep -c mpcp-tmp
        rsync -ani -HAX src/ dst/ | grep -v '^\.d' | wc -l
        "$MPCP" -a -u src/. dst; echo "update=$?"; [ -p dst/x ] && echo "still a fifo"
        """#
        let run = try await sh(script, in: scratch.path)
        #expect(run.stdout == "status=0\ndst/x is a fifo\nref/x is a fifo\nsame mode and time\n0\n0\nupdate=0\nstill a fifo\n",
                "\(run.stdout)\n\(run.stderr)")
    }
}
