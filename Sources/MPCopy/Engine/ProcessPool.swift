import Glibc
import Multiprocessing
import Synchronization
import SystemPackage

// Worker processes: each is a ChildProcess running `CopyWorkerTask`, a loop that reads a work item
// from a pipe, performs it with its own Performer and writes the result back. The scheduler stays
// in the parent, with one feeder thread per child; so a worker process is exactly what a worker
// thread is — something that takes work items and reports results.

/// One frame: a 4-byte little-endian length, then the wire-encoded value.
private func writeFrame<T: Encodable>(_ fd: CInt, _ value: T) throws {
    let body = try WireEncoder().encode(value)
    var length = UInt32(body.count).littleEndian
    var frame = [UInt8](repeating: 0, count: 4)
    withUnsafeBytes(of: &length) { frame.replaceSubrange(0..<4, with: $0) }
    frame += body
    try frame.withUnsafeBytes { b in try system_writeFully(fd, b) }
}

/// Reads one frame; nil at end of file (the other side closed or died).
private func readFrame<T: Decodable>(_ fd: CInt, as type: T.Type) throws -> T? {
    var header = [UInt8](repeating: 0, count: 4)
    let got = try header.withUnsafeMutableBytes { b in try system_readFully(fd, b) }
    if got < 4 { return nil }
    let length = Int(UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24)
    var body = [UInt8](repeating: 0, count: length)
    let n = try body.withUnsafeMutableBytes { b in try system_readFully(fd, b) }
    if n < length { return nil }
    return try WireDecoder().decode(T.self, from: body)
}

/// The task a worker child runs: perform items until the parent closes the request pipe.
/// A byte (or end of file) on the cancel pipe makes it stop the current file and remove its
/// temporary, as a worker thread does when the job is cancelled.
internal struct CopyWorkerTask: ProcessTask {
    var options: CopyOptions
    var requests: SharedDescriptor
    var responses: SharedDescriptor
    var cancel: SharedDescriptor

    func run() throws {
        // The terminal's Ctrl-C reaches the whole process group: the parent decides what stops,
        // and tells this child through the cancel pipe.
        system_ignoreSignal(SIGINT)
        system_ignoreSigpipe()
        let performer = Performer(options: options)
        let cancelFD = cancel.fileDescriptor.rawValue
        _ = try? system_threadStart {
            var byte: UInt8 = 0
            _ = try? withUnsafeMutableBytes(of: &byte) { b in try system_readFully(cancelFD, b) }
            performer.cancelled.store(true, ordering: .relaxed)
        }
        let input = requests.fileDescriptor.rawValue
        let output = responses.fileDescriptor.rawValue
        while let item = try readFrame(input, as: WorkItem.self) {
            try writeFrame(output, performer.perform(item))
        }
    }
}

/// `jobs` worker child processes fed by one thread each.
internal final class ProcessPool: WorkerPool, Sendable {
    let jobs: Int
    let options: CopyOptions
    let performer: Performer
    private let children = Mutex<[ChildProcess<Void>]>([])
    /// The write ends of the children's cancel pipes.
    private let cancelPipes = Mutex<[CInt]>([])

    init(jobs: Int, options: CopyOptions, performer: Performer) {
        self.jobs = jobs
        self.options = options
        self.performer = performer
    }

    /// Tells every child to stop its current file; the feeders then stop asking for work.
    func cancel() {
        cancelPipes.withLock { pipes in
            var byte: UInt8 = 1
            for fd in pipes { withUnsafeBytes(of: &byte) { b in try? system_writeFully(fd, b) } }
        }
    }

    func run(_ scheduler: Scheduler) throws(MPCopyError) {
        system_ignoreSigpipe()
        if let executable = options.workerExecutable { ChildProcessConfiguration.setExecutable(executable) }
        var started: [(child: ChildProcess<Void>, requests: CInt, responses: CInt)] = []
        var firstError: (any Error)?
        for index in 0..<jobs {
            do {
                let requests = try system_pipe()
                let responses = try system_pipe()
                let cancel = try system_pipe()
                let task = CopyWorkerTask(options: options,
                                          requests: SharedDescriptor(FileDescriptor(rawValue: requests.read)),
                                          responses: SharedDescriptor(FileDescriptor(rawValue: responses.write)),
                                          cancel: SharedDescriptor(FileDescriptor(rawValue: cancel.read)))
                let child = ChildProcess(task, name: "mpcp-worker-\(index)")
                do { try child.start() } catch {
                    for fd in [requests.read, requests.write, responses.read, responses.write, cancel.read, cancel.write] { system_close(fd) }
                    throw error
                }
                // The child has its own copies now.
                system_close(requests.read)
                system_close(responses.write)
                system_close(cancel.read)
                cancelPipes.withLock { $0.append(cancel.write) }
                children.withLock { $0.append(child) }
                started.append((child, requests.write, responses.read))
            } catch {
                firstError = firstError ?? error
                break
            }
        }
        if started.isEmpty {
            throw MPCopyError(.workers, "cannot start a worker process: \(firstError.map { "\($0)" } ?? "unknown error")")
        }
        if performer.isCancelled { cancel() }

        var threads: [pthread_t] = []
        for worker in started {
            let performer = self.performer
            if let thread = try? system_threadStart({
                feed(scheduler: scheduler, performer: performer, requests: worker.requests, responses: worker.responses)
            }) {
                threads.append(thread)
            } else {
                feed(scheduler: scheduler, performer: performer, requests: worker.requests, responses: worker.responses)
            }
        }
        for thread in threads { system_threadJoin(thread) }
        for worker in started { try? worker.child.join() }
        cancelPipes.withLock { pipes in
            for fd in pipes { system_close(fd) }
            pipes.removeAll()
        }
        // If every child died, finish what is left in this process rather than drop it.
        if !performer.isCancelled {
            try ThreadPool(jobs: 1, performer: performer).run(scheduler)
        }
    }
}

/// Sends the scheduler's items to one child and hands back its results, until there is no more
/// work or the child dies.
private func feed(scheduler: Scheduler, performer: Performer, requests: CInt, responses: CInt) {
    defer {
        system_close(requests) // end of file: the child's loop ends and it exits
        system_close(responses)
    }
    while let item = scheduler.next() {
        let result: WorkResult?
        do {
            try writeFrame(requests, item)
            result = try readFrame(responses, as: WorkResult.self)
        } catch {
            result = nil
        }
        guard let result else {
            // The child died with this item: report it and let the other workers go on.
            var failed = WorkResult()
            failed.failures = [CopyFailure(path: itemPath(item), operation: "copy", detail: "the worker process died")]
            scheduler.complete(item, failed)
            return
        }
        performer.bytesDone.add(result.bytes, ordering: .relaxed)
        scheduler.complete(item, result)
    }
}

private func itemPath(_ item: WorkItem) -> FilePath {
    switch item {
    case .scan(let s): return s.source
    case .files(let b): return b.sourceDirectory
    case .chunk(let c): return c.source
    case .finishLarge(let f): return f.sourceDirectory.appending(f.entry.name)
    case .link(let l): return l.source
    case .finishDirectory(let d): return d.source
    }
}
