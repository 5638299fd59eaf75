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

    /// --progress on a terminal draws one line that fits the terminal: at 80 columns the bar and
    /// every figure, at 40 the figures that fit (no bar). The line was 85 characters whatever the
    /// width, so on an 80-column terminal it wrapped and every redraw left a line behind. The
    /// terminal is a real pty (`script`), its width set with `stty`.
    @Test(arguments: [(80, true), (40, false)])
    func theProgressBarFitsTheTerminal(columns: Int, bar: Bool) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let script = #"""
        mkdir src && for i in $(seq 1 2000); do echo $i > src/f$i; done
        script -qec "stty cols \#(columns) rows 24; \"$MPCP\" -a --progress src dst" /dev/null > out
        tr '\r' '\n' < out | sed 's/\x1b\[K//g' | grep -v '^$' > lines
        awk '{ if (length($0) > m) m = length($0) } END { print "widest " m }' lines
        grep -c '100%' lines | sed 's/^/final /'
        grep -c '^\[#' lines | sed 's/^/bars /'
        """#
        let run = try await sh(script, in: scratch.path)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let widest = try #require(lines.first { $0.hasPrefix("widest ") }.flatMap { Int($0.dropFirst(7)) }, "\(run.stdout)\n\(run.stderr)")
        #expect(widest <= columns - 1, "\(run.stdout)")
        // The last line says 100%; a redraw may say it too, once every byte is copied but before
        // the run ends (under load the ticker fires in between), so at least one, not exactly one.
        let finals = try #require(lines.first { $0.hasPrefix("final ") }.flatMap { Int($0.dropFirst(6)) }, "\(run.stdout)")
        #expect(finals >= 1, "\(run.stdout)")
        #expect(lines.contains { $0.hasPrefix("bars ") && ($0 != "bars 0") == bar }, "\(run.stdout)")
    }
}
