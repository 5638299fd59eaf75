import SystemPackage
import MultiprocessingSystem

// Operands that are neither regular files, directories nor symlinks.

extension Performer {
    /// Copies a FIFO named on the command line as `cp -a` and `cp -r` do: a new FIFO with the
    /// source's mode, owner (as root) and times takes the target's name, replacing a file there.
    /// The FIFO is never opened for its data, so nothing waits for a writer.
    ///
    /// - Parameters:
    ///   - source: the FIFO.
    ///   - target: the name to create.
    ///   - stat: the source's stat.
    func copyFifoOperand(source: FilePath, target: FilePath, stat: SourceStat) -> WorkResult {
        var result = WorkResult()
        if options.dryRun {
            result.files = 1
            if options.verbose { result.copied.append(source) }
            return result
        }
        guard let name = target.lastComponent else { return result }
        let directory = target.removingLastComponent()
        do throws(Errno) {
            let dirfd = try (directory.isEmpty ? "." : directory).withCName { p throws(Errno) in
                try system_openat(systemATFDCWD, p, systemOPath | systemODirectory)
            }
            defer { system_close(dirfd) }
            let existing = try? name.withCName { n throws(Errno) in try system_statx(dirfd, n, follow: false) }
            if let existing, options.noClobber || (options.update && existing.mode & modeTypeMask == stat.fileType) {
                result.skipped = 1
                return result
            }
            try nextTemporaryName().withCName { tmp throws(Errno) in
                try system_mkfifoat(dirfd, tmp, 0o600)
                do throws(Errno) {
                    // O_NONBLOCK: a FIFO opened for reading without a writer does not wait.
                    let fd = try system_openat(dirfd, tmp, systemORdOnly | systemONonBlock | systemONoFollow)
                    defer { system_close(fd) }
                    do throws(StepError) { try applyMetadata(fd, stat, from: nil) } catch { throw error.errno ?? Errno.ioError }
                    try name.withCName { n throws(Errno) in try system_renameat(dirfd, tmp, dirfd, n) }
                } catch {
                    try? system_unlinkat(dirfd, tmp)
                    throw error
                }
            }
            result.files = 1
            if options.verbose { result.copied.append(source) }
        } catch {
            result.failures.append(CopyFailure(path: source, operation: "create fifo", errno: error,
                                               detail: Resolver.explain(error, destination: target)))
        }
        return result
    }
}
