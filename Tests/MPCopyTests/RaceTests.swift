import CMultiprocessing
import Foundation
import Glibc
import Synchronization
import Testing

// The symlink races of issue 13, run on the built mpcp as root: while mpcp copies, a thread of
// this process keeps swapping a directory of one of the trees for a symlink to an outside
// directory of root-only files (`renameat2(RENAME_EXCHANGE)`, atomic, as a user who owns that
// directory can do). Each shape runs 100 times; across all of them mpcp must read nothing and
// write nothing outside the trees, which three things check:
// - inotify on the outside directories: no open, read, write, create, delete, attribute or link
//   change (O_PATH lookups make no event; anything that touches a file or lists a directory does);
// - `find -printf` of the outside tree before and after (inode, mode, owner, links, size, mtime,
//   ctime), equal;
// - no file of the copy holds an outside file's contents or is a hard link to one.
// The shapes are those of rsync's CVE-2024-12087 (a symlink where a directory of the same name is
// then written through; a hard link whose first name is outside) and CVE-2024-12088 (a symlink
// whose target runs through another symlink), as a local copier meets them.
//
// `MPCP_RACE_BINARY` runs the races against another mpcp binary (an older build, to see them fail).

/// Keeps exchanging two names in one directory (a directory and a symlink) until stopped.
private final class Swapper: @unchecked Sendable {
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private(set) var swaps = 0
    private let directory: String, first: String, second: String

    init(in directory: String, _ first: String, _ second: String) {
        self.directory = directory
        self.first = first
        self.second = second
    }

    func start() {
        let thread = Thread { [self] in
            let dirfd = open(directory, cmp_o_path() | O_DIRECTORY | O_CLOEXEC)
            defer { close(dirfd); done.signal() }
            while !stopped.load(ordering: .relaxed) {
                if cmp_renameat2(dirfd, first, dirfd, second, cmp_rename_exchange()) == 0 { swaps += 1 }
            }
            // Leave the directory under its own name for the checks.
            if swaps % 2 == 1 { _ = cmp_renameat2(dirfd, first, dirfd, second, cmp_rename_exchange()) }
        }
        thread.start()
    }

    /// Stops swapping and returns once the names are back in their first places.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        done.wait()
    }
}

/// Counts every inotify event on some directories (and the files in them).
private final class Watch {
    private let fd: CInt
    private var names: [CInt: String] = [:]

    init(_ directories: [String]) throws {
        fd = inotify_init1(CInt(O_NONBLOCK | O_CLOEXEC))
        guard fd >= 0 else { throw TestError.setup("inotify_init1: errno \(errno)") }
        for directory in directories {
            let wd = inotify_add_watch(fd, directory, 0x0000_0fff /* IN_ALL_EVENTS */)
            guard wd >= 0 else { throw TestError.setup("inotify_add_watch \(directory): errno \(errno)") }
            names[wd] = directory
        }
    }

    deinit { close(fd) }

    /// The events since the last call, as `directory/name: mask`.
    func drain() -> [String] {
        var events: [String] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return events }
            var offset = 0
            while offset < n {
                // struct inotify_event: int wd; uint32_t mask, cookie, len; char name[len].
                let (wd, mask, length) = buffer.withUnsafeBytes { b in
                    (b.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                     b.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                     Int(b.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                let nameBytes = buffer[(offset + 16)..<(offset + 16 + length)].prefix { $0 != 0 }
                events.append("\(names[wd] ?? "?")/\(String(decoding: nameBytes, as: UTF8.self)): mask 0x\(String(mask, radix: 16))")
                offset += 16 + length
            }
        }
    }
}

/// One shape of race: how to build the trees of an attempt, which two names to swap, and the
/// mpcp command.
struct RaceShape: CustomTestStringConvertible, Sendable {
    var name: String
    /// Bash, run in the attempt's directory, with `$OUT` the outside directory.
    var setup: String
    /// The directory whose two entries are exchanged, relative to the attempt's directory, and
    /// the two names; nil for a shape without a race.
    var swap: (directory: String, String, String)?
    /// Arguments after `mpcp -a`.
    var command: String
    /// A shape without a race that mpcp must refuse (status 1) every time.
    var alwaysRefused = false
    var testDescription: String { name }
}

/// The outside: root-only (0700) directories of files whose contents say where they come from.
private let makeOutside = #"""
set -e
mkdir -m 700 "$OUT" "$OUT/e"
for i in $(seq 1 40); do printf "OUTSIDE-SECRET-$i" > "$OUT/f$i"; chmod 600 "$OUT/f$i"; done
for i in $(seq 1 5); do printf "OUTSIDE-SECRET-e$i" > "$OUT/e/g$i"; chmod 600 "$OUT/e/g$i"; done
printf "OUTSIDE-SECRET-big" > "$OUT/big"
"""#

/// A directory `d` of 40 small files (two batches), a subdirectory and a 65 MiB sparse file
/// (above the chunk size: copied in chunks by -j2); the names match the outside's.
private let makeSourceDirectory = #"""
mkdir -p "$1/d/e"
for i in $(seq 1 40); do printf "inside $i" > "$1/d/f$i"; done
for i in $(seq 1 5); do printf "inside e$i" > "$1/d/e/g$i"; done
truncate -s 65M "$1/d/big"
chown -R nobody "$1"

"""#

let raceShapes: [RaceShape] = [
    // Issue 13 item 1: the owner of src/d swaps it for a symlink to the outside while root copies
    // src into a new destination. Batches and chunks that reopened src/d by its path read the
    // outside's files and copied them into dst.
    RaceShape(name: "source directory swapped", setup: "set -e; set -- src\n" + makeSourceDirectory + #"ln -s "$OUT" src/evil"#,
              swap: ("src", "d", "evil"), command: "-j2 src dst"),
    // The same with the source operand itself, in a directory its owner can write: it is opened
    // once by its name, and must stay the directory it was when the copy started.
    RaceShape(name: "source operand swapped",
              setup: "set -e; set -- src\n" + makeSourceDirectory
                + #"for i in $(seq 1 40); do printf "inside $i" > src/f$i; done; ln -s "$OUT" evil"#,
              swap: (".", "src", "evil"), command: "-j2 src dst"),
    // Issue 13 item 2: merging into an existing destination whose directory dst/src/d the user
    // can rename; swapped for a symlink, writes, chown and chmod went through it.
    RaceShape(name: "destination directory swapped",
              setup: "set -e; set -- src\n" + makeSourceDirectory
                + #"mkdir -p dst/src/d/e && chown -R nobody dst/src && ln -s "$OUT" dst/src/evil"#,
              swap: ("dst/src", "d", "evil"), command: "-j2 src dst/"),
    // CVE-2024-12087's shape, hard links: the first copy of an inode is linked to by the others
    // by its destination path; with its directory swapped for a symlink the link would take a
    // file from the outside (f1..f40 have the same names) into the copy.
    RaceShape(name: "hard link leader's directory swapped",
              setup: #"""
              set -e
              mkdir -p src/a src/b
              for i in $(seq 1 40); do printf "inside $i" > src/a/f$i; ln src/a/f$i src/b/f$i; done
              mkdir -p dst/src/a dst/src/b && chown -R nobody src dst/src && ln -s "$OUT" dst/src/evil
              """#,
              swap: ("dst/src", "a", "evil"), command: "-j2 src dst/"),
    // CVE-2024-12087's other half: a symlink to the outside that an earlier copy made where the
    // source now has a directory of the same name. Nothing may be written through it.
    RaceShape(name: "symlink where the source has a directory",
              setup: "set -e; set -- src\n" + makeSourceDirectory + #"mkdir -p dst/src && ln -s "$OUT" dst/src/d"#,
              swap: nil, command: "-j2 src dst/", alwaysRefused: true),
    // The same at the top: the destination already has a symlink under the source's name.
    // `cp -a` refuses ("cannot overwrite non-directory"); mpcp wrote through it.
    RaceShape(name: "symlink where the copy of the operand goes",
              setup: "set -e; set -- src\n" + makeSourceDirectory + #"mkdir dst && ln -s "$OUT" dst/src"#,
              swap: nil, command: "-j2 src dst/", alwaysRefused: true),
    // CVE-2024-12088's shape: symlinks whose targets run through other symlinks to the outside
    // (rsync's --safe-links checked only the first). They are copied as links, never followed.
    RaceShape(name: "symlink through a symlink",
              setup: #"""
              set -e
              mkdir -p src/sub
              ln -s "$OUT" src/out
              ln -s out/f1 src/s1
              ln -s ../s1 src/sub/s2
              ln -s sub/../out/e src/s3
              printf "inside" > src/sub/file
              """#,
              swap: nil, command: "-j2 src dst"),
]

@Suite(.serialized) struct MPCopyRaceTests {
    static let attempts = 100

    /// 100 attempts of each shape, half with worker threads and half with worker processes, with
    /// openat2 and with the one-component-at-a-time fallback.
    @Test(arguments: raceShapes, ["openat2", "by component"])
    func nothingOutsideTheTreesIsReadOrWritten(shape: RaceShape, resolution: String) async throws {
        let binary = try ProcessInfo.processInfo.environment["MPCP_RACE_BINARY"] ?? mpcpExecutable()
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let outside = scratch.path + "/outside"
        try await sh("OUT=\(outside)\n" + makeOutside, in: scratch.path).expectSuccess()
        let snapshot = "find \(outside) -printf '%p %i %m %U %G %n %s %T@ %C@\\n' | sort"
        let before = try await sh(snapshot, in: scratch.path).stdout
        let watch = try Watch([outside, outside + "/e"])
        let fallback = resolution == "by component" ? "MPCP_RESOLVE_BY_COMPONENT=1 " : ""
        var touches: [String] = []
        var leaks: [String] = []
        var swaps = 0
        var refusals = 0
        var attemptsThatTouched = Set<Int>()
        for attempt in 0..<MPCopyRaceTests.attempts {
            let directory = scratch.path + "/\(attempt)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            try await sh("OUT=\(outside)\n" + shape.setup, in: directory).expectSuccess()
            _ = watch.drain()
            let workers = attempt % 2 == 0 ? "threads" : "processes"
            let swapper = shape.swap.map { Swapper(in: directory + "/" + $0.directory, $0.1, $0.2) }
            swapper?.start()
            let run = try await sh("\(fallback)'\(binary)' -a --workers \(workers) \(shape.command)", in: directory)
            swapper?.stop()
            swaps += swapper?.swaps ?? 0
            let events = watch.drain()
            touches += events.map { "attempt \(attempt) (\(workers)): \($0)" }
            // mpcp reports what it refused and carries on: 0 or 1, never a crash or a hang.
            #expect(run.status == 0 || run.status == 1, "attempt \(attempt): status \(run.status), \(run.stderr)")
            if run.status == 1 { refusals += 1 }
            let leaked = try await sh(#"""
                # Not grep -r: it follows a symlink named on its command line (dst itself is one
                # when mpcp copied a swapped-in symlink operand as a symlink, correctly).
                find dst -type f -exec grep -l OUTSIDE-SECRET {} + 2>/dev/null | sed 's/^/outside contents in: /'
                inodes=$(find "$OUT" -type f -printf '%i\n' | sort)
                find dst -type f -printf '%i %p\n' | while read -r ino path; do
                  printf '%s\n' "$inodes" | grep -qx "$ino" && echo "hard link to an outside file: $path"
                done
                true
                """#.replacingOccurrences(of: "$OUT", with: outside), in: directory)
            leaks += leaked.stdout.split(separator: "\n").map { "attempt \(attempt) (\(workers)): \($0)" }
            if !events.isEmpty || !leaked.stdout.isEmpty { attemptsThatTouched.insert(attempt) }
            _ = watch.drain() // the find above reads the outside itself
            try FileManager.default.removeItem(atPath: directory)
        }
        let after = try await sh(snapshot, in: scratch.path).stdout
        print("\(shape.name), \(resolution): \(swaps) swaps, \(refusals) of \(MPCopyRaceTests.attempts) runs reported failures")
        #expect(attemptsThatTouched.isEmpty, "\(attemptsThatTouched.count) of \(MPCopyRaceTests.attempts) attempts read or wrote outside")
        #expect(touches.isEmpty, "mpcp touched the outside \(touches.count) times:\n\(touches.prefix(20).joined(separator: "\n"))")
        #expect(leaks.isEmpty, "\(leaks.count) leaks:\n\(leaks.prefix(20).joined(separator: "\n"))")
        #expect(before == after, "the outside changed:\n\(before)\n---\n\(after)")
        if shape.swap != nil { #expect(swaps > 0, "the swapper never ran") }
        // The static shapes must be refused every time (the symlink in the way), or copied cleanly.
        if shape.alwaysRefused { #expect(refusals == MPCopyRaceTests.attempts) }
    }

    /// The shapes without a race, once, checked for what the copy holds: the directory behind a
    /// symlink is refused with a message that names it, and symlinks are copied as symlinks.
    @Test func staticShapesAreCopiedAsLinksOrRefused() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        let outside = scratch.path + "/outside"
        try await sh("OUT=\(outside)\n" + makeOutside, in: scratch.path).expectSuccess()
        func shape(_ name: String) async throws -> RaceShape {
            guard let shape = raceShapes.first(where: { $0.name == name }) else { throw TestError.setup("no shape \(name)") }
            return shape
        }
        for (name, message) in [("symlink where the source has a directory", "src/d: create directory"),
                                ("symlink where the copy of the operand goes", "src: create directory 'dst/src'")] {
            let refused = try await sh("OUT=\(outside)\n" + shape(name).setup + "\n" + #""$MPCP" -a src dst/"#, in: scratch.path)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains(message), "\(refused.stderr)")
            try FileManager.default.removeItem(atPath: scratch.path + "/src")
            try FileManager.default.removeItem(atPath: scratch.path + "/dst")
        }
        let links = try await sh("OUT=\(outside)\n" + shape("symlink through a symlink").setup + #"""

            "$MPCP" -a src dst || exit 1
            for l in out s1 sub/s2 s3; do [ "$(readlink src/$l)" = "$(readlink dst/$l)" ] && [ -L dst/$l ] || echo "differs: $l"; done
            """#, in: scratch.path)
        #expect(links.status == 0, "\(links.stderr)")
        #expect(links.stdout.isEmpty, "\(links.stdout)")
    }
}
