import Foundation
import TestHarness
import Testing

/// What a shell script printed and how it ended.
struct ShellResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum TestError: Error { case setup(String) }

/// The built `mpcp`, next to the test bundle in the build directory.
func mpcpExecutable() throws -> String {
    guard let path = builtExecutable("mpcp") else { throw TestError.setup("mpcp is not built beside the test bundle") }
    return path
}

/// A scratch directory on the same file system as the build, removed by `cleanup()`.
struct Scratch {
    let path: String
    init() throws {
        path = "/tmp/mpcp-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // Tests that run mpcp as `nobody` need to get in.
        chmod(path, 0o755)
    }
    func cleanup() {
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: path + "-holds")
    }
}

// MARK: holding mpcp mid-file

// A test that interrupts, kills or changes a copy midway must find mpcp midway, on any machine: a
// test that waited for mpcp to be seen writing, and then signalled it, raced the copy and lost
// on a loaded machine ("finished before it could be interrupted", in CI). So mpcp is held there
// instead, by an LD_PRELOAD library, Tests/Fixtures/mpcp-hold/mpcp_hold.c (its comment has the
// details), which the tests build once with `cc -shared` beside the built mpcp:
//
// - `hold PATTERN [SKIP]` (shell, below) arms it. The next mpcp started as
//   `LD_PRELOAD=$MPCP_HOLD_LIB "$MPCP" ... & pid=$!` then holds every thread, of mpcp or of a
//   worker process, that moves data into or out of a file whose path matches the fnmatch(3)
//   PATTERN (`*` crosses `/`), after SKIP other matching files; each holds right after its first
//   step there (copy_file_range, up to 16 MiB; pwrite), so the file is open and partly written.
// - `wait_held $pid` returns once a process is held: `$held_pid` is that process (mpcp itself
//   with threads, a worker with --workers processes) and `$held_path` the matching path. It
//   waits on a FIFO the holding process writes to; if mpcp ends first, the script prints why and
//   exits 3, which fails the test: every held test must be held.
// - The hold ends by itself once the held process has taken its cancellation (mpcp's sigwait
//   thread handled SIGINT, SIGTERM or SIGHUP; a worker's cancel queue delivered), so a signal
//   always meets the copy midway and the copy cannot end before it is cancelled. `release_hold`
//   ends it for every process of the copy, for a test that changed the source or killed a
//   worker. SIGKILL needs neither: a held thread dies as a thread in copy_file_range does.
// Signals reach mpcp as they would unheld: it blocks them in every thread but its sigwait thread,
// and the held thread returns the real result of its call, after which the copy meets the
// cancellation flag at its next step, as it would have between two steps.

/// The built hold library (see above), compiled on first use into the build directory, under a
/// name that holds its source's hash.
func holdLibrary() throws -> String {
    try builtHoldLibrary.get()
}

private let builtHoldLibrary: Result<String, any Error> = Result {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/mpcp-hold/mpcp_hold.c").path
    guard let text = FileManager.default.contents(atPath: source) else { throw TestError.setup("cannot read \(source)") }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let directory = URL(fileURLWithPath: try mpcpExecutable()).deletingLastPathComponent().path
    let library = "\(directory)/mpcp-hold-\(String(hash, radix: 16)).so"
    if FileManager.default.fileExists(atPath: library) { return library }
    // Built under a name of its own, then renamed: another test process may build it at once.
    let partial = "\(library).\(getpid())"
    let compiler = Process()
    compiler.executableURL = URL(fileURLWithPath: "/bin/sh")
    compiler.arguments = ["-c", #"cc=$(command -v cc || command -v clang) && "$cc" -std=gnu11 -Wall -Wextra -Werror -O2 -shared -fPIC -o "$1" "$2" -ldl"#,
                          "sh", partial, source]
    try compiler.run()
    compiler.waitUntilExit()
    guard compiler.terminationStatus == 0 else { throw TestError.setup("cannot build \(source) (cc or clang is needed)") }
    guard rename(partial, library) == 0 else { throw TestError.setup("cannot rename \(partial) to \(library)") }
    return library
}

/// Bash functions of the hold (see above): `hold PATTERN [SKIP]`, `wait_held PID`, `release_hold`.
/// The hold's FIFOs are on descriptors 9 (held) and 8 (release), and its directories are beside
/// the scratch directory (so that a test's listing of the scratch directory does not see them).
let holdFunctions = #"""
hold() {
  hold_count=$((${hold_count:-0} + 1))
  export MPCP_HOLD_DIR="$MPCP_HOLD_BASE/$hold_count" MPCP_HOLD_PATTERN="$1" MPCP_HOLD_SKIP="${2:-0}"
  mkdir -p "$MPCP_HOLD_DIR" && mkfifo "$MPCP_HOLD_DIR/held" "$MPCP_HOLD_DIR/release" || exit 3
  # Read and write, so that opening them waits for no writer and the held process's opens never
  # fail; the release FIFO stays open to the end, so the byte release_hold writes stays in it.
  exec 9<>"$MPCP_HOLD_DIR/held" 8<>"$MPCP_HOLD_DIR/release"
}
wait_held() {
  until read -t 1 -u 9 held_pid held_path; do
    case "$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -c1)" in
      ""|Z) echo "mpcp ended before it was held (nothing matched '$MPCP_HOLD_PATTERN')"; exit 3;;
    esac
  done
}
release_hold() { printf x >&8; }

"""#

/// Shell function `stop_fully PID`: sends SIGSTOP and returns once every thread of PID is
/// stopped. kill(2) returns before the stop takes hold, and until it does a thread of mpcp blocked
/// in a wait can still reap a worker that a test kills next. Gives up after a minute (exit 3).
let stopFully = #"""
stop_fully() {
  kill -STOP "$1"
  for i in $(seq 1 6000); do
    running=$(for t in /proc/$1/task/*/stat; do sed 's/.*) //' $t | cut -c1; done | grep -vc T)
    [ "$running" = 0 ] && return 0
    sleep 0.01
  done
  echo "$1 did not stop"; kill -KILL "$1"; kill -CONT "$1"; exit 3
}

"""#

/// Runs `script` with bash in `directory`, with `$MPCP` set to the built binary.
@discardableResult
func sh(_ script: String, in directory: String) async throws -> ShellResult {
    try await offThePool { try shBlocking(script, in: directory) }
}

/// The blocking body of ``sh(_:in:)``, which runs it on a thread of its own: not on one of the
/// cooperative pool's two threads, which the async tests of every suite need meanwhile (a copy
/// can take minutes on a loaded machine).
private func shBlocking(_ script: String, in directory: String) throws -> ShellResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    var environment = ProcessInfo.processInfo.environment
    environment["MPCP"] = try mpcpExecutable()
    environment["MPCP_HOLD_LIB"] = try holdLibrary()
    environment["MPCP_HOLD_BASE"] = directory + "-holds"
    environment["LC_ALL"] = "C"
    process.environment = environment
    let out = directory + "/.stdout", err = directory + "/.stderr"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
    try process.run()
    process.waitUntilExit()
    let stdout = String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self)
    let stderr = String(decoding: FileManager.default.contents(atPath: err) ?? Data(), as: UTF8.self)
    try? FileManager.default.removeItem(atPath: out)
    try? FileManager.default.removeItem(atPath: err)
    return ShellResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
}

/// Builds a tree with every case mpcp must keep: invalid UTF-8, newlines and spaces in names,
/// empty files, sparse files, a file above the 64 MiB chunk threshold, symlinks (one dangling),
/// hard links, nested empty directories, odd modes, nanosecond times, xattrs, a FIFO.
let makeTrickyTree = #"""
set -e
mkdir -p src && cd src
mkdir -p a/b/c/empty1/empty2 'sp ace/in ner' 'empty dir' $'dir\xfe\xff'
printf 'hello' > f1
: > empty
printf 'x' > $'bad\xffname'
printf 'z' > $'dir\xfe\xff/in\xffside'
printf 'nl' > $'new\nline'
printf 'two words' > 'sp ace/in ner/with space'
head -c 70000000 /dev/urandom > big
truncate -s 20M sparse
printf 'data' | dd of=sparse bs=1 seek=5000000 conv=notrunc status=none
printf 'end' | dd of=sparse bs=1 seek=15000000 conv=notrunc status=none
truncate -s 150M bigsparse
printf 'middle' | dd of=bigsparse bs=1 seek=70000000 conv=notrunc status=none
head -c 3000000 /dev/urandom | dd of=bigsparse bs=1M seek=100 conv=notrunc status=none
for i in $(seq 1 150); do printf "file $i" > "a/b/c/f$i"; done
ln -s f1 link
ln -s nowhere dangling
ln -s ../f1 a/uplink
ln f1 hard1
ln f1 a/b/hard2
ln big a/bighard
mkfifo fifo
chmod 640 f1
chmod 600 empty
chmod 4751 a/b/c/f1
chmod 1777 'empty dir'
chmod 2750 a/b
setfattr -n user.test -v hi f1
setfattr -n user.binary -v 0x00ff00fe big
setfattr -n user.dir -v d a
touch -d '2001-02-03 04:05:06.123456789' empty
touch -h -d '2002-03-04 05:06:07.987654321' dangling
touch -d '1999-12-31 23:59:59.111111111' a/b/c/empty1/empty2 a/b/c/empty1 a/b
"""#

/// Prints nothing when `dst` is an exact copy of `src`: rsync's checksum dry run (contents,
/// modes, owners, times, hard links, xattrs), `cmp` of the large files, and `stat` of what rsync
/// does not compare (sparseness, nanosecond times, link counts).
let compareTrees = #"""
src="$1"; dst="$2"
rsync -ani --checksum -HAX "$src/" "$dst/"
for f in big sparse bigsparse f1 $'bad\xffname' $'new\nline' $'dir\xfe\xff/in\xffside'; do cmp "$src/$f" "$dst/$f" || echo "cmp differs: $f"; done
for f in empty a/b a/b/c/empty1/empty2 dangling a/b/c/f1 'empty dir'; do
  [ "$(stat -c '%y %a %s %F' "$src/$f")" = "$(stat -c '%y %a %s %F' "$dst/$f")" ] || echo "stat differs: $f"
done
[ "$(stat -c %i "$dst/f1")" = "$(stat -c %i "$dst/hard1")" ] || echo "hard link lost: hard1"
[ "$(stat -c %i "$dst/f1")" = "$(stat -c %i "$dst/a/b/hard2")" ] || echo "hard link lost: a/b/hard2"
[ "$(stat -c %i "$dst/big")" = "$(stat -c %i "$dst/a/bighard")" ] || echo "hard link lost: a/bighard"
[ "$(stat -c %x "$src/empty")" = "$(stat -c %x "$dst/empty")" ] || echo "atime differs: empty"
[ "$(stat -c %b "$dst/sparse")" -le $(( $(stat -c %b "$src/sparse") + 16 )) ] || echo "holes filled: sparse"
[ "$(stat -c %b "$dst/bigsparse")" -le $(( $(stat -c %b "$src/bigsparse") + 16 )) ] || echo "holes filled: bigsparse"
[ "$(getfattr --only-values -n user.binary "$dst/big" | od -An -tx1 | tr -d ' ')" = "00ff00fe" ] || echo "xattr lost: big"
[ -p "$dst/fifo" ] || echo "fifo missing"
[ "$(readlink "$dst/dangling")" = nowhere ] || echo "dangling symlink differs"
find "$dst" -mindepth 1 -name '.mpcp-tmp*' | sed 's/^/temporary left: /'
true
"""#
