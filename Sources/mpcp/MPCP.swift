// mpcp: the command line of the MPCopy engine. Parsing and printing only; the engine does the copy.
import ArgumentParser
import MPCopy
import Multiprocessing
import MultiprocessingSystem
import Synchronization
import SystemPackage


/// The job that SIGINT, SIGTERM or SIGHUP cancels, and the signal that did it.
private let running = Mutex<(job: CopyJob?, signal: CInt)>((nil, 0))

/// The paths `-v` or `-n` reports while `--json` keeps stdout for the document.
private let copiedPaths = Mutex<[FilePath]>([])

@main
struct MPCP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpcp",
        abstract: "Copy files and directories in parallel, never leaving a partial file under its final name.",
        usage: "mpcp [<options>] SOURCE... DEST",
        discussion: """
        A directory copied to a new destination is built under a .mpcp-tmp-stage-* name beside it and \
        renamed into place when the copy ends (after SIGKILL it stays there, and the next run to the \
        same destination takes it over). Files copied into an existing directory are written as \
        unnamed temporary files (or under .mpcp-tmp-* names where the file system cannot) and get \
        their final names only once complete, with their metadata set. A file that changes while it \
        is copied is reported and not copied. SIGINT, SIGTERM or SIGHUP removes \
        partial files and puts the finished ones in place; run the same command again with -u to \
        finish. As with cp, a DEST that is an existing directory receives each SOURCE under its own \
        name, and SOURCE/. copies the contents of SOURCE into DEST. -n is rsync's dry run (it writes \
        nothing, so a mistaken -n is harmless); cp's -n is --no-clobber. Names in messages are quoted \
        as GNU ls --quoting-style=shell-escape quotes them. Exit status: 0 all copied, 1 some files \
        failed, 2 usage error.
        """,
        version: "mpcp \(mpcpVersion) (swift-multiprocessing)"
    )

    @Flag(name: [.customShort("r"), .customShort("R"), .customLong("recursive")], help: "Copy directories recursively.")
    var recursive = false

    @Flag(name: [.customShort("a"), .customLong("archive")], help: "Archive: -r and --preserve=all.")
    var archive = false

    @Flag(name: .customShort("p"), help: "Same as --preserve=mode,ownership,timestamps (as cp -p).")
    var preserveBasic = false

    @Option(name: .customLong("preserve"), help: ArgumentHelp("Keep these attributes.", valueName: "mode,ownership,timestamps,links,xattr|all"))
    var preserve: String?

    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Dry run, as rsync -n: show what would be copied and write nothing. (cp's -n is --no-clobber.)")
    var dryRun = false

    @Flag(name: .customLong("no-clobber"), help: "Never replace an existing destination file, as cp -n.")
    var noClobber = false

    @Flag(name: [.customShort("u"), .customLong("update")], help: "Skip files whose destination is newer, or has the same size and modification time (cp -u, rsync -u).")
    var update = false

    @Flag(name: [.customShort("c"), .customLong("checksum")], help: "Decide by content, as rsync -c: skip a destination file with the same bytes (and, with times kept, the same time); copy one that differs even if its size and time match.")
    var checksum = false

    @Flag(name: .customLong("verify"), help: "Read back each copied file and compare it with its source before it takes its name.")
    var verify = false

    @Option(name: .customLong("exclude"), help: ArgumentHelp("Leave out names matching this shell pattern (repeatable; a pattern with / matches the path below the source).", valueName: "glob"))
    var exclude: [String] = []

    @Option(name: [.customShort("j", allowingJoined: true), .customLong("jobs")], help: "Number of workers (default: the number of cores; with --mpi, shared among the ranks on each host).")
    var jobs: Int?

    @Option(name: .customLong("workers"), help: ArgumentHelp("Run workers as threads or as child processes.", valueName: "threads|processes"))
    var workers: String = "threads"

    @Flag(name: .customLong("no-staging"), help: "Build a new destination directory in place, so that files appear one by one (each only once complete) rather than the whole tree at the end.")
    var noStaging = false

    @Flag(name: .customLong("progress"), help: "Show progress on stderr: a live bar on a terminal, else a line every second (as rsync --info=progress2). Percentage and ETA count files as well as bytes.")
    var progress = false

    @Flag(name: .customLong("stats"), help: "Print a summary at the end: files, bytes, time, rate, errors (on stdout; on stderr with --json).")
    var stats = false

    @Flag(name: .customLong("json"), help: "Print one JSON document on stdout at the end, and nothing else there (schema: docs/mpcp-json.md).")
    var json = false

    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Print each path copied (quoted as ls quotes names).")
    var verbose = false

    @Flag(name: .customLong("mpi"), help: "Spread the copy over the ranks of an MPI job: mpirun -n N mpcp --mpi SRC DST. Rank 0 plans and prints; every rank copies, with its own -j workers. All ranks must see SRC and DST on one shared file system. Needs mpcp built with the MPI trait (swift build -c release --traits MPI); see docs/distributed.md.")
    var mpi = false

    @Argument(help: ArgumentHelp("Sources, then the destination.", valueName: "path"))
    var paths: [String] = []

    func validate() throws {
        if paths.isEmpty { throw ValidationError("missing file operand") }
        if paths.count == 1 { throw ValidationError("missing destination file operand after \(shellQuoted(rawPath(paths[0]), always: true))") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1, not \(jobs)") }
        if let preserve {
            do { _ = try PreservedAttributes(parsing: preserve) } catch { throw ValidationError("--preserve: \(error.message)") }
        }
        if WorkerKind(rawValue: workers) == nil {
            throw ValidationError("--workers must be 'threads' or 'processes', not '\(workers)'")
        }
        if noClobber && update { throw ValidationError("--no-clobber and -u (--update) cannot be used together") }
    }

    /// Parses, runs, and maps ArgumentParser's usage exit (64) to mpcp's 2.
    static func main() {
        // In a worker child, this runs the worker's task and never returns.
        Multiprocessing.bootstrap()
        // Which bytes are printable characters, for quoting names, follows the locale, as GNU's.
        system_setCharacterLocaleFromEnvironment()
        InterruptWatcher.start { signal in
            let job = running.withLock { state -> CopyJob? in
                state.signal = signal
                return state.job
            }
            job?.cancel()
            #if MPI
            MPICopy.interrupt() // a serving rank has no job of its own: it cancels what it performs
            #endif
        }
        do {
            var command = try parseAsRoot(commandLine.arguments)
            try command.run()
            endMPI()
        } catch let error as MPCopyError {
            printError("mpcp: \(error)")
            endMPI()
            system_exit(2)
        } catch {
            endMPI()
            let code = exitCode(for: error)
            if code == .validationFailure {
                printError(fullMessage(for: error))
                system_exit(2)
            }
            exit(withError: error)
        }
    }

    /// The workers when `-j` is not given: the host's cores, shared among the ranks of an MPI job
    /// on this host (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`, MPICH's `MPI_LOCALNRANKS`), since
    /// with the distributed walk every rank copies.
    private var defaultJobs: Int {
        let cores = system_onlineProcessorCount()
        guard mpi else { return cores }
        let local = (system_getenv("OMPI_COMM_WORLD_LOCAL_SIZE") ?? system_getenv("MPI_LOCALNRANKS")).flatMap { Int($0) } ?? 1
        return max(1, cores / max(1, local))
    }

    /// `--mpi`: starts MPI. A serving rank (1 … N-1) then serves rank 0 and exits here; rank 0
    /// returns and runs the copy.
    private func startMPI() throws {
        #if MPI
        let (rank, _) = try MPICopy.initialize()
        if rank > 0 {
            let status = MPICopy.serve(jobs: jobs ?? defaultJobs, workers: WorkerKind(rawValue: workers) ?? .threads)
            MPICopy.finish()
            system_exit(status)
        }
        #else
        throw MPCopyError(.usage, "--mpi: this mpcp was built without MPI; build it with the MPI trait: swift build -c release --traits MPI (see docs/distributed.md)")
        #endif
    }

    mutating func run() throws {
        if mpi { try startMPI() }
        var options = CopyOptions()
        options.recursive = recursive || archive
        options.preserve = archive ? .all : []
        if preserveBasic { options.preserve.formUnion([.mode, .ownership, .timestamps]) }
        if let preserve { options.preserve.formUnion(try PreservedAttributes(parsing: preserve)) }
        options.dryRun = dryRun
        options.update = update
        options.checksum = checksum
        options.verify = verify
        options.noClobber = noClobber
        // A pattern that is not UTF-8 goes as its bytes.
        options.excludes = exclude.filter { commandLine.raw[$0] == nil }
        options.excludeBytes = exclude.compactMap { commandLine.raw[$0] }
        options.jobs = jobs ?? defaultJobs
        options.workers = WorkerKind(rawValue: workers) ?? .threads
        options.verbose = verbose || dryRun
        options.stageNewDirectories = !noStaging

        let operands = paths.map(rawPath)
        let job = try CopyJob(sources: Array(operands.dropLast()), destination: operands[operands.count - 1], options: options)
        #if MPI
        if mpi { job.distributeOverMPI() }
        #endif
        running.withLock { $0.job = job }
        if running.withLock({ $0.signal }) != 0 { job.cancel() }

        let terminal = system_isatty(systemStderr)
        let json = self.json
        let events: @Sendable (CopyEvent) -> Void = { event in
            switch event {
            case .copied(let path):
                if json { copiedPaths.withLock { $0.append(path) } } else { writeAll(systemStdout, shellQuoted(rawBytes(path)) + [0x0A]) }
            case .failed(let failure): writeAll(systemStderr, failureLine(failure))
            }
        }
        let draw: (@Sendable (CopyProgress) -> Void)?
        if !progress { draw = nil } else if terminal { draw = { @Sendable p in drawProgress(p) } } else { draw = { @Sendable p in printProgressLine(p) } }
        let report = try job.run(events: events, progressInterval: terminal ? .milliseconds(200) : .seconds(1), onProgress: draw)
        if progress && terminal { writeAll(systemStderr, Array("\n".utf8)) }

        if json {
            let copied = options.verbose ? copiedPaths.withLock { $0 } : nil
            writeAll(systemStdout, Array((jsonDocument(report, copied: copied) + "\n").utf8))
        }
        if stats { writeAll(json ? systemStderr : systemStdout, Array(statsText(report).utf8)) }
        if report.interrupted {
            printError("mpcp: interrupted: \(job.interruptionAdvice(resumeCommand: InterruptWatcher.resumeCommand()))")
            let signal = running.withLock { $0.signal }
            endMPI()
            InterruptWatcher.exitBySignal(signal == 0 ? systemSigInt : signal)
        }
        if !report.failures.isEmpty {
            if !json { printError("mpcp: \(report.failures.count) file(s) failed") }
            throw ExitCode(1)
        }
    }
}

/// Ends MPI before the process exits, if `--mpi` started it (nothing otherwise).
private func endMPI() {
    #if MPI
    MPICopy.finish()
    #endif
}

/// The command line for ArgumentParser, whose Strings would repair invalid UTF-8: each argument
/// that is not UTF-8 is replaced by a placeholder, and `rawPath` turns a placeholder back into
/// its bytes. (Matching parsed Strings against argv instead took an option's value, such as an
/// `--exclude` pattern that repairs to the same String, for an operand.)
private let commandLine: (arguments: [String], raw: [String: [UInt8]]) = {
    var arguments: [String] = []
    var raw: [String: [UInt8]] = [:]
    for index in 1..<max(1, Int(CommandLine.argc)) {
        guard let p = CommandLine.unsafeArgv[index] else { continue }
        let bytes = Array(UnsafeBufferPointer(start: p, count: system_strlen(p))).map { UInt8(bitPattern: $0) }
        if let text = String(validating: bytes, as: UTF8.self) { arguments.append(text); continue }
        // `--option=value`: the option stays an option, its value becomes the placeholder.
        var prefix: [UInt8] = []
        if bytes.first == UInt8(ascii: "-"), let equals = bytes.firstIndex(of: UInt8(ascii: "=")),
           String(validating: bytes[...equals], as: UTF8.self) != nil {
            prefix = Array(bytes[...equals])
        }
        let placeholder = "\u{FFFF}mpcp-argument-\(index)"
        raw[placeholder] = Array(bytes[prefix.count...])
        arguments.append(String(decoding: prefix, as: UTF8.self) + placeholder)
    }
    return (arguments, raw)
}()

/// A path operand as the bytes of argv (see `commandLine`).
private func rawPath(_ parsed: String) -> FilePath {
    guard let bytes = commandLine.raw[parsed] else { return FilePath(parsed) }
    let cString = bytes.map { CChar(bitPattern: $0) } + [0]
    return cString.withUnsafeBufferPointer { b in b.baseAddress.map { FilePath(platformString: $0) } ?? FilePath(parsed) }
}
