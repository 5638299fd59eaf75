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
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Bash: `wait_until_writing PID PATTERN` returns once PID or one of its children has a descriptor
/// open on a path that matches the grep pattern (the copy is midway); if PID ends first, the script
/// prints why and exits 3.
let waitUntilWriting = #"""
wait_until_writing() {
  until for p in "$1" $(pgrep -P "$1"); do ls -l /proc/$p/fd 2>/dev/null; done | grep -q "$2"; do
    kill -0 "$1" 2>/dev/null || { echo "finished before it could be interrupted"; exit 3; }
    sleep 0.001
  done
}

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
