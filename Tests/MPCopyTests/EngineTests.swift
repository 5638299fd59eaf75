import Foundation
import MPCopy
import SystemPackage
import Testing

/// `-a` with `jobs` workers.
private func archiveOptions(jobs: Int) -> CopyOptions {
    var options = CopyOptions()
    options.recursive = true
    options.preserve = .all
    options.jobs = jobs
    return options
}

/// The engine's public API, in-process: what the CLI builds on.
@Suite struct MPCopyEngineTests {
    /// Files above the chunk size are split into chunks copied by several workers; holes stay
    /// holes, and the result is byte-identical.
    @Test func chunkedCopyOfSparseAndDenseFiles() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        try await sh(#"""
        mkdir -p src && head -c 9500000 /dev/urandom > src/dense
        truncate -s 12M src/holes && head -c 1500000 /dev/urandom | dd of=src/holes bs=1M seek=5 conv=notrunc status=none
        """#, in: scratch.path).expectSuccess()
        var options = archiveOptions(jobs: 3)
        options.chunkSize = 1 << 20
        let job = try CopyJob(sources: [FilePath(scratch.path + "/src")], destination: FilePath(scratch.path + "/dst"), options: options)
        let report = try job.run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.files == 2)
        // Only the data of the sparse file is copied (rounded up to whole 4 KiB blocks), not its 12 MiB.
        #expect(report.bytes >= 11_000_000 && report.bytes < 11_000_000 + 8192, "\(report.bytes)")
        let check = try await sh(#"""
        cmp src/dense dst/dense && cmp src/holes dst/holes && echo same
        [ "$(stat -c %b dst/holes)" -le $(( $(stat -c %b src/holes) + 16 )) ] && echo sparse
        find dst -name '.mpcp-tmp*'
        """#, in: scratch.path)
        #expect(check.stdout == "same\nsparse\n", "\(check.stdout) \(check.stderr)")
        let progress = job.progress()
        #expect(progress.filesDone == 2 && progress.bytesDone == report.bytes && progress.walkFinished)
    }

    /// The named-temporary path (for file systems without O_TMPFILE) copies the tricky tree exactly too.
    @Test func namedTemporariesCopyExactly() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        try await sh(makeTrickyTree, in: scratch.path).expectSuccess()
        var options = archiveOptions(jobs: 2)
        options.unnamedTemporaries = false
        // In place: a staged tree would write its files under their own names, not temporaries.
        options.stageNewDirectories = false
        let job = try CopyJob(sources: [FilePath(scratch.path + "/src")], destination: FilePath(scratch.path + "/dst"), options: options)
        let report = try job.run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        let diff = try await sh("set -- src dst\n" + compareTrees, in: scratch.path)
        #expect(diff.stdout.isEmpty && diff.stderr.isEmpty, "\(diff.stdout)\(diff.stderr)")
    }

    /// A staged tree is renamed into place without replacing anything: when the destination
    /// appears while the copy runs, the copy is reported and kept, whole, under its staged name.
    @Test func destinationThatAppearsDuringTheCopyIsNotReplaced() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        try await sh(makeTrickyTree, in: scratch.path).expectSuccess()
        var options = archiveOptions(jobs: 2)
        options.verbose = true
        let target = scratch.path + "/dst"
        let job = try CopyJob(sources: [FilePath(scratch.path + "/src")], destination: FilePath(target), options: options)
        // Someone else creates the destination while the copy runs (at its first copied entry).
        let report = try job.run { event in
            if case .copied = event { mkdir(target, 0o755) }
        }
        #expect(report.failures.count == 1, "\(report.failures)")
        let failure = try #require(report.failures.first)
        #expect(failure.operation == "move into place" && failure.errno == .fileExists, "\(failure)")
        #expect(failure.description.contains("appeared while the copy ran"), "\(failure)")
        let check = try await sh("ls -A dst | wc -l\nset -- src .mpcp-tmp-*\n" + compareTrees, in: scratch.path)
        #expect(check.stdout == "0\n" && check.stderr.isEmpty, "the copy is whole under its staged name: \(check.stdout)\(check.stderr)")
    }

    /// A job cancelled before it runs copies nothing, leaves no temporaries and says so.
    @Test func cancelBeforeRun() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        try await sh("mkdir -p src/a && head -c 3000000 /dev/urandom > src/a/f", in: scratch.path).expectSuccess()
        var options = CopyOptions()
        options.recursive = true
        options.jobs = 2
        options.chunkSize = 1 << 20
        let job = try CopyJob(sources: [FilePath(scratch.path + "/src")], destination: FilePath(scratch.path + "/dst"), options: options)
        job.cancel()
        let report = try job.run()
        #expect(report.interrupted)
        #expect(report.files == 0)
        let left = try await sh("find dst -name '.mpcp-tmp*' 2>/dev/null; [ -e dst/a/f ] && echo copied; true", in: scratch.path)
        #expect(left.stdout.isEmpty, "\(left.stdout)")
    }

    /// Usage errors are thrown before anything is written.
    @Test func planningRefusesBadArguments() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanup() }
        try await sh("mkdir -p src/x", in: scratch.path).expectSuccess()
        var options = CopyOptions()
        options.recursive = true
        #expect(throws: MPCopyError.self) {
            _ = try CopyJob(sources: [FilePath(scratch.path + "/src")], destination: FilePath(scratch.path + "/src/x/y"), options: options)
        }
        #expect(throws: MPCopyError.self) {
            _ = try CopyJob(sources: [FilePath(scratch.path + "/none")], destination: FilePath(scratch.path + "/d"), options: options)
        }
        #expect(throws: MPCopyError.self) { _ = try PreservedAttributes(parsing: "mode,colour") }
        #expect(try PreservedAttributes(parsing: "mode,ownership,timestamps,links,xattr") == .all)
    }
}
