// The tutorial's two "实例": a folder copier with one process per file, then one thread per file.
// Both also run on mpcp's engine (`--engine`), which is how the job should be done.
import ArgumentParser
import MPCopy
import Multiprocessing
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failed file operation in the seed's naive copier.
struct CopierError: Error, CustomStringConvertible {
    var description: String
    init(_ operation: String, _ path: String) {
        description = "\(operation) \(path): \(String(cString: strerror(errno)))"
    }
}

/// The seed's `copy(file_name, source_dir, dest_dir)`: open both files and move 1024 bytes at a time.
/// Returns the number of bytes copied.
func copy(_ fileName: String, _ sourceDir: String, _ destDir: String) throws -> Int {
    let sourcePath = sourceDir + "/" + fileName        // 拼接源文件路径
    let destPath = destDir + "/" + fileName            // 拼接目标文件路径
    let source = open(sourcePath, O_RDONLY | O_CLOEXEC)
    guard source >= 0 else { throw CopierError("open", sourcePath) }
    defer { close(source) }
    let dest = open(destPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard dest >= 0 else { throw CopierError("open", destPath) }
    defer { close(dest) }
    var data = [UInt8](repeating: 0, count: 1024)
    var total = 0
    while true {
        let n = data.withUnsafeMutableBytes { read(source, $0.baseAddress, 1024) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw CopierError("read", sourcePath) }
        if n == 0 { break }                             // if data: ... else: break
        var written = 0
        while written < n {
            let w = data.withUnsafeBytes { write(dest, $0.baseAddress.map { $0 + written }, n - written) }
            if w < 0 && errno == EINTR { continue }
            guard w > 0 else { throw CopierError("write", destPath) }
            written += w
        }
        total += n
    }
    return total
}

/// `copy` as a process's target: `Process(target=copy, args=(file_name, source_dir, dest_dir))`.
struct CopyFileTask: ProcessTask {
    var fileName: String
    var sourceDir: String
    var destDir: String

    /// By position, as the seed's `args=(file_name, source_dir, dest_dir)`.
    init(_ fileName: String, _ sourceDir: String, _ destDir: String) {
        self.fileName = fileName
        self.sourceDir = sourceDir
        self.destDir = destDir
    }

    func run() throws {
        let bytes = try copy(fileName, sourceDir, destDir)
        say("copied \(fileName) (\(bytes) bytes) in process \(CurrentProcess.pid)")
    }
}

/// The options both copiers share.
struct CopierOptions: ParsableArguments {
    @Argument(help: "The folder to copy (default: a demo folder made in /tmp and removed afterwards).")
    var source: String?
    @Argument(help: "Where to copy it (default: beside the demo folder).")
    var dest: String?
    @Flag(help: "Copy with mpcp's engine (MPCopy) instead of one worker per file.")
    var engine = false
    @Option(help: "How many files the demo folder holds.")
    var files: Int = 8

    func validate() throws {
        if (source == nil) != (dest == nil) {
            throw ValidationError("Give both SOURCE and DEST, or neither for the demo folder.")
        }
        if files < 0 { throw ValidationError("--files must be 0 or more.") }
    }
}

/// What the engine does that one-worker-per-file does not; printed after an engine run.
let engineAdvantages = """
    what the engine does better than one worker per file:
      - a pool of one worker per core, not one process or thread per file (10,000 files: 10,000 workers)
      - copy_file_range in the kernel (a reflink where the file system can), not 1024-byte reads and writes
      - big files split into chunks copied in parallel; small files handed out in batches
      - each file written under a temporary name and renamed when complete: never a partial file
      - a failure is reported per file and the copy goes on; Ctrl-C removes the temporaries
    """

/// Runs one copier: prepares the folders (the seed's `os.mkdir` and `os.listdir`), runs `body` for
/// the naive copy or the engine, and checks the result.
func runCopier(_ options: CopierOptions, workers: WorkerKind,
               naive: (_ fileList: [String], _ sourceDir: String, _ destDir: String) throws -> Void) throws {
    var demoRoot: String? = nil
    let sourceDir: String, destDir: String
    if let source = options.source, let dest = options.dest {
        sourceDir = source
        destDir = dest
    } else {
        let root = try makeDemoFolder(files: options.files)
        demoRoot = root
        sourceDir = root + "/source"
        destDir = root + "/dest"
        say("demo: \(options.files) files in \(sourceDir)")
    }
    defer { if let demoRoot { removeDemoFolder(demoRoot) } }

    // try: os.mkdir(dest_dir) except: print('目标文件夹已存在')
    if mkdir(destDir, 0o755) != 0 {
        guard errno == EEXIST else { throw CopierError("mkdir", destDir) }
        say("目标文件夹已存在 (the destination folder exists)")
    }
    let fileList = try listDirectory(sourceDir)

    if options.engine {
        var copyOptions = CopyOptions()
        copyOptions.jobs = cpuCount()
        copyOptions.workers = workers
        let job = try CopyJob(sources: fileList.map { FilePath(sourceDir).appending($0) },
                              destination: FilePath(destDir), options: copyOptions)
        let report = try job.run { event in
            if case .failed(let failure) = event { say("failed: \(failure)") }
        }
        say("copied \(report.files) files, \(report.bytes) bytes with the MPCopy engine (\(copyOptions.jobs) worker \(workers == .threads ? "threads" : "processes"))")
        say(engineAdvantages)
    } else {
        try naive(fileList, sourceDir, destDir)
    }

    let same = fileList.filter { sameContents(sourceDir + "/" + $0, destDir + "/" + $0) }.count
    say("check: \(same) of \(fileList.count) files in the destination are identical to the source")
}

struct ProcessCopier: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-copier",
        abstract: "copy a folder, one process per file (or --engine)",
        discussion: engineAdvantages)
    @OptionGroup var options: CopierOptions

    func run() throws {
        try runCopier(options, workers: .processes) { fileList, sourceDir, destDir in
            var processes: [ChildProcess<Void>] = []
            for fileName in fileList {
                let process = ChildProcess(CopyFileTask(fileName, sourceDir, destDir))
                try process.start()
                processes.append(process)
            }
            // The seed does not join: its main process waits for the children at exit. We join to
            // check the copy, and value() turns a child's failure into an error here.
            for (fileName, process) in zip(fileList, processes) {
                do { try process.value() } catch { say("failed: \(fileName): \(error)") }
            }
            say("copied \(fileList.count) files with \(fileList.count) processes (one per file)")
        }
    }
}

struct ThreadCopier: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-copier",
        abstract: "copy a folder, one thread per file (or --engine)",
        discussion: engineAdvantages)
    @OptionGroup var options: CopierOptions

    func run() throws {
        try runCopier(options, workers: .threads) { fileList, sourceDir, destDir in
            var threads: [OSThread] = []
            for fileName in fileList {
                // threading.Thread(target=copy, args=(file_name, source_dir, dest_dir))
                let th = OSThread {
                    let bytes = try copy(fileName, sourceDir, destDir)
                    say("copied \(fileName) (\(bytes) bytes) in thread \(OSThread.current.name)")
                }
                try th.start()
                threads.append(th)
            }
            for (fileName, th) in zip(fileList, threads) {
                try th.join()
                if let error = th.error { say("failed: \(fileName): \(error)") }
            }
            say("copied \(fileList.count) files with \(fileList.count) threads (one per file)")
        }
    }
}

// MARK: folders

/// `os.listdir`: the names in a folder, sorted, without "." and "..".
func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw CopierError("opendir", path) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Makes `/tmp/examples-copier-XXXXXX/source` with `files` files of different sizes and contents.
func makeDemoFolder(files: Int) throws -> String {
    var template = Array("/tmp/examples-copier-XXXXXX".utf8CString)
    let root = template.withUnsafeMutableBufferPointer { buffer -> String? in
        guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
        return String(cString: base)
    }
    guard let root else { throw CopierError("mkdtemp", "/tmp") }
    guard mkdir(root + "/source", 0o755) == 0 else { throw CopierError("mkdir", root + "/source") }
    for i in 0..<files {
        let path = root + "/source/file-\(i).bin"
        let size = 17 + i * 7_001                      // crosses 1024-byte boundaries unevenly
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CopierError("open", path) }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == size else { throw CopierError("write", path) }
    }
    return root
}

/// Removes the demo folder (two flat folders of files).
func removeDemoFolder(_ root: String) {
    for sub in ["source", "dest"] {
        let dir = root + "/" + sub
        for name in (try? listDirectory(dir)) ?? [] { unlink(dir + "/" + name) }
        rmdir(dir)
    }
    rmdir(root)
}

/// Whether two files hold the same bytes.
func sameContents(_ a: String, _ b: String) -> Bool {
    guard let left = readWholeFile(a), let right = readWholeFile(b) else { return false }
    return left == right
}

func readWholeFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { return nil }
        if n == 0 { return result }
        result.append(contentsOf: buffer[0..<n])
    }
}
