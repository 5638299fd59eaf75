// What every benchmark needs: a clock, a median, and a way to run its Python peer in the same run.
// No Foundation: StartBenchmark's spawned children load whatever the benchmark binary links.
#if canImport(Glibc)
import Glibc
#endif

/// Nanoseconds on the monotonic clock.
public func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The median of `values` (NaN when there are none).
public func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

/// The path of `name` in the folder of the calling source file: where each benchmark keeps its peer.
public func siblingPath(_ name: String, of file: String = #filePath) -> String {
    let folder = file.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    return folder + "/" + name
}

/// Runs `python3 script arguments...` and returns what it printed on standard output
/// (its standard error goes to ours). Empty when python3 cannot be started.
public func runPython(_ script: String, _ arguments: [String]) -> String {
    runProgram("python3", [script] + arguments)
}

/// Runs `program arguments...` (found on PATH unless it holds a slash, as `/proc/self/exe`
/// does) and returns what it printed on standard output (its standard error goes to ours).
/// Empty when it cannot be started.
public func runProgram(_ program: String, _ arguments: [String]) -> String {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return "" }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    let argv = ([program] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let started = posix_spawnp(&pid, program, &actions, nil, argv, environ) == 0
    close(fds[1])
    var output: [UInt8] = []
    if started {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n <= 0 { break }
            output += buffer[0..<n]
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
    close(fds[0])
    return String(decoding: output, as: UTF8.self)
}

/// Parses "name value" lines into a dictionary; other lines are ignored.
public func namedValues(_ output: String) -> [String: Double] {
    var result: [String: Double] = [:]
    for line in output.split(separator: "\n") {
        let parts = line.split(separator: " ")
        if parts.count == 2, let value = Double(parts[1]) { result[String(parts[0])] = value }
    }
    return result
}
