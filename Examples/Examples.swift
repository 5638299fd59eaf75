// The seed tutorial's examples in Swift: `swift run examples` lists them, `swift run examples NAME`
// runs one. Each prints output of the same shape as the tutorial's Python, and finishes by itself.
import ArgumentParser
import Multiprocessing
#if canImport(Glibc)
import Glibc
#endif

@main
struct Examples: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "examples",
        abstract: "The Python processes-and-threads tutorial, example by example, in Swift.",
        subcommands: exampleCommands)

    /// Children re-execute this program: bootstrap() must run before argument parsing, so that a
    /// child runs its task and exits instead of parsing the parent's command line.
    static func main() {
        Multiprocessing.bootstrap()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    func run() throws {
        print("Examples (run one with `swift run examples NAME`):")
        for command in exampleCommands {
            let name = command.configuration.commandName ?? "\(command)"
            print("  \(name.padding(to: 18))\(command.configuration.abstract)")
        }
    }
}

/// Every example, in the seed's order. `examples` with no argument lists them.
let exampleCommands: [any ParsableCommand.Type] = [
    // processes
    ProcessStart.self, ProcessArgs.self, ProcessIDs.self, ProcessDaemon.self, ProcessTerminate.self,
    ProcessCopier.self,
    // threads
    ThreadStart.self, ThreadArgs.self, ThreadDaemon.self, ThreadOrder.self,
    ThreadLock.self, ThreadRLock.self, ThreadSemaphore.self, ThreadEvent.self,
    ThreadCopier.self, ThreadStop.self, ThreadCores.self,
    // data between processes
    QueueExample.self, IPCPipe.self,
    // managers (Examples/ManagerExamples.swift)
    ManagerExample.self, ManagerServerCommand.self, ManagerClientCommand.self,
    // pools (Examples/PoolExamples.swift)
    PoolExample.self,
]

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

/// Python's `time.sleep(seconds)`. Flushes first, so that a child's output is out before it sleeps
/// (a child killed while sleeping loses nothing it printed).
func pause(seconds: Double) {
    fflush(nil)
    guard seconds > 0 else { return }
    usleep(UInt32(seconds * 1_000_000))
}

/// Python's `print(...)`. Threads and processes share one stdout, so each line goes out at once in
/// one `write`, unbuffered: lines reach a pipe in the order they were printed and never mix.
func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { buffer in
            write(1, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
        }
        if written > 0 {
            offset += written
        } else if written < 0 && errno == EINTR {
            continue
        } else {
            return              // stdout closed: nothing more to say
        }
    }
}

/// Seconds since `start`, for examples that time themselves.
func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
