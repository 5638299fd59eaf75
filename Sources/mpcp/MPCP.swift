// mpcp: the command line of the MPCopy engine. Parsing and printing only; the engine does the copy.
import ArgumentParser
import Glibc
import MPCopy
import Multiprocessing
import Synchronization
import SystemPackage


/// The job that SIGINT, SIGTERM or SIGHUP cancels, and the signal that did it.
private let running = Mutex<(job: CopyJob?, signal: CInt)>((nil, 0))

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
        their final names only once complete, with their metadata set. SIGINT, SIGTERM or SIGHUP removes \
        partial files and puts the finished ones in place; run the same command again with -u to \
        finish. As with cp, a DEST that is an existing directory receives each SOURCE under its own \
        name. Exit status: 0 all copied, 1 some files failed, 2 usage error.
        """
    )

    @Flag(name: [.customShort("r"), .customShort("R"), .customLong("recursive")], help: "Copy directories recursively.")
    var recursive = false

    @Flag(name: [.customShort("a"), .customLong("archive")], help: "Archive: -r and --preserve=all.")
    var archive = false

    @Option(name: .customLong("preserve"), help: ArgumentHelp("Keep these attributes.", valueName: "mode,ownership,timestamps,links,xattr|all"))
    var preserve: String?

    @Flag(name: [.customShort("n"), .customLong("dry-run")], help: "Show what would be copied; write nothing.")
    var dryRun = false

    @Flag(name: [.customShort("u"), .customLong("update")], help: "Skip files whose destination has the same size and modification time.")
    var update = false

    @Flag(name: .customLong("checksum"), help: "Read back each copied file and compare it with its source.")
    var checksum = false

    @Option(name: .customLong("exclude"), help: ArgumentHelp("Leave out names matching this shell pattern (repeatable; a pattern with / matches the path below the source).", valueName: "glob"))
    var exclude: [String] = []

    @Option(name: [.customShort("j", allowingJoined: true), .customLong("jobs")], help: "Number of workers (default: the number of cores).")
    var jobs: Int?

    @Option(name: .customLong("workers"), help: ArgumentHelp("Run workers as threads or as child processes.", valueName: "threads|processes"))
    var workers: String = "threads"

    @Flag(name: .customLong("no-staging"), help: "Build a new destination directory in place, so that files appear one by one (each only once complete) rather than the whole tree at the end.")
    var noStaging = false

    @Flag(name: .customLong("progress"), help: "Show a live progress bar on a terminal (off when stderr is not a TTY).")
    var progress = false

    @Flag(name: .customLong("json"), help: "Print a JSON summary at the end.")
    var json = false

    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Print each path copied.")
    var verbose = false

    @Argument(help: ArgumentHelp("Sources, then the destination.", valueName: "path"))
    var paths: [String] = []

    func validate() throws {
        if paths.isEmpty { throw ValidationError("missing file operand") }
        if paths.count == 1 { throw ValidationError("missing destination file operand after '\(paths[0])'") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1, not \(jobs)") }
        if let preserve {
            do { _ = try PreservedAttributes(parsing: preserve) } catch { throw ValidationError(error.message) }
        }
        if WorkerKind(rawValue: workers) == nil {
            throw ValidationError("--workers must be 'threads' or 'processes', not '\(workers)'")
        }
    }

    /// Parses, runs, and maps ArgumentParser's usage exit (64) to mpcp's 2.
    static func main() {
        // In a worker child, this runs the worker's task and never returns.
        Multiprocessing.bootstrap()
        InterruptWatcher.start { signal in
            let job = running.withLock { state -> CopyJob? in
                state.signal = signal
                return state.job
            }
            job?.cancel()
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as MPCopyError {
            printError("mpcp: \(error)")
            Glibc.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                printError(fullMessage(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }

    mutating func run() throws {
        var options = CopyOptions()
        options.recursive = recursive || archive
        options.preserve = archive ? .all : []
        if let preserve { options.preserve.formUnion(try PreservedAttributes(parsing: preserve)) }
        options.dryRun = dryRun
        options.update = update
        options.checksum = checksum
        options.excludes = exclude
        options.jobs = jobs ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        options.workers = WorkerKind(rawValue: workers) ?? .threads
        options.verbose = verbose || dryRun
        options.stageNewDirectories = !noStaging

        let operands = rawOperands(paths)
        let job = try CopyJob(sources: Array(operands.dropLast()), destination: operands[operands.count - 1], options: options)
        running.withLock { $0.job = job }
        if running.withLock({ $0.signal }) != 0 { job.cancel() }

        let bar = progress && isatty(STDERR_FILENO) == 1
        let events: @Sendable (CopyEvent) -> Void = { event in
            switch event {
            case .copied(let path): writeAll(STDOUT_FILENO, rawBytes(path) + [0x0A])
            case .failed(let failure): printError("mpcp: \(failure)")
            }
        }
        let draw: @Sendable (CopyProgress) -> Void = { drawProgress($0) }
        let report = try job.run(events: events, onProgress: bar ? draw : nil)
        if bar { writeAll(STDERR_FILENO, Array("\n".utf8)) }

        if json { print(jsonSummary(report)) }
        if report.interrupted {
            printError("mpcp: interrupted: \(job.interruptionAdvice())")
            let signal = running.withLock { $0.signal }
            InterruptWatcher.exitBySignal(signal == 0 ? SIGINT : signal)
        }
        if !report.failures.isEmpty {
            if !json { printError("mpcp: \(report.failures.count) file(s) failed") }
            throw ExitCode(1)
        }
    }
}

/// The operands as the raw bytes of argv: ArgumentParser's Strings repair invalid UTF-8, and a
/// path must stay byte-exact.
private func rawOperands(_ parsed: [String]) -> [FilePath] {
    var raw: [FilePath] = []
    var index = 1
    let argc = Int(CommandLine.argc)
    for operand in parsed {
        var found: FilePath?
        while index < argc {
            defer { index += 1 }
            guard let p = CommandLine.unsafeArgv[index] else { continue }
            if String(cString: p) == operand { found = FilePath(platformString: p); break }
        }
        raw.append(found ?? FilePath(operand))
    }
    return raw
}

/// A path's bytes, unchanged (invalid UTF-8 and all).
private func rawBytes(_ path: FilePath) -> [UInt8] {
    path.withPlatformString { p -> [UInt8] in
        var bytes: [UInt8] = []
        var i = 0
        while p[i] != 0 { bytes.append(UInt8(bitPattern: p[i])); i += 1 }
        return bytes
    }
}

private func writeAll(_ fd: CInt, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { b in
        guard let base = b.baseAddress else { return }
        var offset = 0
        while offset < b.count {
            let n = write(fd, base + offset, b.count - offset)
            if n > 0 { offset += n } else if n == -1 && errno == EINTR { continue } else { return }
        }
    }
}

private func printError(_ message: String) { writeAll(STDERR_FILENO, Array((message + "\n").utf8)) }

private func human(_ bytes: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = bytes
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(Int(value)) B" : fixed(value, 1) + " " + units[unit]
}

private func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale)
    let fraction = String(abs(scaled) % Int(scale))
    return digits == 0 ? "\(whole)" : "\(whole)." + String(repeating: "0", count: digits - fraction.count) + fraction
}

private func drawProgress(_ p: CopyProgress) {
    let total = max(p.bytesFound, 1)
    let fraction = min(Double(p.bytesDone) / Double(total), 1)
    let width = 24
    let filled = Int(fraction * Double(width))
    let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
    let rate = p.seconds > 0 ? Double(p.bytesDone) / p.seconds : 0
    var eta = "--:--"
    if p.walkFinished && rate > 0 {
        let left = Int(Double(max(p.bytesFound - p.bytesDone, 0)) / rate)
        eta = "\(left / 60):" + (left % 60 < 10 ? "0" : "") + "\(left % 60)"
    }
    let line = "\r[\(bar)] \(fixed(fraction * 100, 0))%  \(human(Double(p.bytesDone)))/\(human(Double(p.bytesFound)))"
        + "  \(p.filesDone)/\(p.filesFound) files  \(human(rate))/s  ETA \(eta)\u{1B}[K"
    writeAll(STDERR_FILENO, Array(line.utf8))
}

private func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

private func jsonSummary(_ r: CopyReport) -> String {
    let failures = r.failures.map { f in
        "{\"path\":\(jsonString(f.path.description)),\"operation\":\(jsonString(f.operation)),"
            + "\"error\":\(jsonString(f.detail ?? f.errno.map { "\($0)" } ?? "failed"))}"
    }
    let rate = r.seconds > 0 ? Double(r.bytes) / r.seconds : 0
    return "{\"files\":\(r.files),\"bytes\":\(r.bytes),\"directories\":\(r.directories),\"symlinks\":\(r.symlinks),"
        + "\"hardLinks\":\(r.hardLinks),\"skipped\":\(r.skipped),\"excluded\":\(r.excluded),\"failed\":\(r.failures.count),"
        + "\"seconds\":\(fixed(r.seconds, 3)),\"bytesPerSecond\":\(Int(rate)),\"interrupted\":\(r.interrupted),"
        + "\"dryRun\":\(r.dryRun),\"failures\":[\(failures.joined(separator: ","))]}"
}
