import SystemPackage

/// `jobs` worker child processes. Each child performs the items its feeder thread sends it and
/// sends back the results; the scheduler stays in this process.
internal struct ProcessPool: WorkerPool {
    let jobs: Int
    let options: CopyOptions
    let performer: Performer

    func run(_ scheduler: Scheduler) throws(MPCopyError) {
        throw MPCopyError(.workers, "--workers processes is not available in this build yet: use --workers threads")
    }
}
