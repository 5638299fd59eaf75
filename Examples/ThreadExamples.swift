// The tutorial's threads: threading.Thread, args, daemon threads, execution order, forced stop, and
// one the seed gets wrong for Swift: threads do use every core.
import ArgumentParser
import Multiprocessing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Python's `repr(threading.current_thread())`: `<Thread(Thread-1, started 1403...)>`.
func threadDescription(_ thread: OSThread) -> String {
    "<OSThread(\(thread.name), started \(thread.ident))>"
}

/// `def sing(num): for i in range(num): print('sing'); time.sleep(1)`
func sing(_ num: Int, interval: Double) {
    for _ in 0..<num {
        say("sing")
        pause(seconds: interval)
    }
}

/// `def dance(num): for i in range(num): print('dance'); time.sleep(1)`
func dance(num: Int, interval: Double) {
    for _ in 0..<num {
        say("dance")
        pause(seconds: interval)
    }
}

struct ThreadStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-start",
        abstract: "sing and dance in two threads")
    @Option(help: "Seconds to sleep between lines (the seed sleeps 1).")
    var interval: Double = 0.5

    func run() throws {
        let interval = interval
        // sing_thread = threading.Thread(target=sing)
        let singThread = OSThread { sing(5, interval: interval) }
        let danceThread = OSThread { dance(num: 5, interval: interval) }
        try singThread.start()
        try danceThread.start()
        // As in Python, the process waits for its non-daemon threads at exit; join makes it explicit.
        try singThread.join()
        try danceThread.join()
    }
}

struct ThreadArgs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-args",
        abstract: "a thread's arguments: args (by position) and kwargs (by name)")
    @Option(help: "Seconds to sleep between lines (the seed sleeps 1).")
    var interval: Double = 0.5

    func run() throws {
        let interval = interval
        // threading.Thread(target=sing, args=(3,)): the closure calls the function by position.
        let singThread = OSThread { sing(3, interval: interval) }
        // threading.Thread(target=dance, kwargs={"num": 3}): by name (a Swift argument label).
        let danceThread = OSThread { dance(num: 3, interval: interval) }
        try singThread.start()
        try danceThread.start()
        try singThread.join()
        try danceThread.join()
    }
}

struct ThreadDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-daemon",
        abstract: "a daemon thread ends with the main thread")
    @Option(help: "Seconds to sleep between lines (the seed sleeps 1).")
    var interval: Double = 0.5
    @Option(help: "Seconds the main thread runs before it ends (the seed sleeps 1).")
    var wait: Double = 1.2

    func run() throws {
        let interval = interval
        // threading.Thread(target=sing, daemon=True), or sing_thread.setDaemon(True) before start().
        let singThread = OSThread(daemon: true) { sing(5, interval: interval) }
        try singThread.start()
        pause(seconds: wait)
        say("主线程结束 (main thread ends)")
        // Returning from main exits the process: a daemon thread is not waited for, so the remaining
        // "sing" lines never print. A non-daemon thread would keep the process alive, as in Python.
    }
}

struct ThreadOrder: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-order",
        abstract: "the order of threads is up to the scheduler")
    @Option(help: "Seconds each thread sleeps before it prints (the seed sleeps 1).")
    var interval: Double = 1

    func run() throws {
        let interval = interval
        var threads: [OSThread] = []
        for _ in 0..<5 {
            let th = OSThread {
                pause(seconds: interval)
                say(threadDescription(OSThread.current))
            }
            try th.start()
            threads.append(th)
        }
        for th in threads { try th.join() }
    }
}

// MARK: thread-stop

/// The seed's `print_time`: six lines, forever.
func printTime() {
    say([111111111111, 222222222222, 333333333333, 444444444444, 555555555555, 666666666666]
        .map(String.init).joined(separator: "\n"))
}

/// `print_time` in a child process, which never checks for cancellation: only a signal stops it.
struct PrintTimeTask: ProcessTask {
    var interval: Double
    func run() {
        while true {
            printTime()
            pause(seconds: interval)
        }
    }
}

struct ThreadStop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-stop",
        abstract: "the seed's forced stop, done safely: cancellation, or a child process")
    @Option(help: "Seconds between rounds of print_time (the seed does not sleep).")
    var interval: Double = 0.05
    @Option(help: "Seconds the work runs before it is stopped.")
    var after: Double = 0.2

    func run() throws {
        let interval = interval
        // 1. Cooperative: the seed raises SystemExit inside the thread with ctypes. Swift cannot
        // inject an error into another thread: a thread stopped at an arbitrary instruction would
        // leave locks held and memory half-written. Instead the thread is asked to stop, and checks.
        let rounds = Atomic<Int>(0)
        let t = OSThread(name: "print_time") {
            while true {
                try OSThread.checkCancellation()     // throws once cancel() was called
                printTime()
                rounds.add(1, ordering: .relaxed)
                pause(seconds: interval)
            }
        }
        try t.start()
        pause(seconds: after)
        while rounds.load(ordering: .relaxed) == 0 { usleep(1000) }   // at least one round, on a busy machine
        t.cancel()                                   // stop_thread(t)
        try t.join()
        say("stopped: thread \(t.name) ended by cancellation after \(rounds.load(ordering: .relaxed)) rounds (\(t.error.map { "\($0)" } ?? "no error"))")

        // 2. Hard stop: code that never checks runs in a child process, which can be killed safely:
        // the kernel frees everything it held.
        let child = ChildProcess(PrintTimeTask(interval: interval), name: "print_time-process")
        try child.start()
        pause(seconds: after)
        try child.terminate()
        try child.join()
        say("stopped: process \(child.name) terminated, exit code \(child.exitCode.map(String.init) ?? "?")")
    }
}

// MARK: thread-cores

/// A CPU-bound job with no memory traffic: a linear congruential walk, `rounds` steps.
@inline(never)
func spin(_ rounds: Int, seed: UInt64) -> UInt64 {
    var x = seed
    for _ in 0..<rounds {
        x = x &* 6364136223846793005 &+ 1442695040888963407
        x ^= x >> 29
    }
    return x
}

struct ThreadCores: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-cores",
        abstract: "not in the seed: Swift threads run on every core (Python's GIL forbids it)")
    @Option(help: "Millions of steps per job; there are two jobs.")
    var millions: Int = 60

    func run() throws {
        let steps = millions * 1_000_000
        say("cores: \(cpuCount())")

        // Two jobs, one after the other, on one thread.
        var start = ContinuousClock.now
        var cpuStart = processCPUSeconds()
        let one = OSThread { [spin(steps, seed: 1), spin(steps, seed: 2)] }
        try one.start()
        try one.join()
        let serial = elapsedSeconds(since: start)
        let serialCPU = processCPUSeconds() - cpuStart
        let serialResults = try one.result(as: [UInt64].self)
        say("1 thread : 2 jobs in \(format(serial)) s (CPU time \(format(serialCPU)) s: \(format(serialCPU / serial)) cores busy)")

        // The same two jobs on two threads at once.
        start = ContinuousClock.now
        cpuStart = processCPUSeconds()
        let a = OSThread { spin(steps, seed: 1) }
        let b = OSThread { spin(steps, seed: 2) }
        try a.start()
        try b.start()
        try a.join()
        try b.join()
        let parallel = elapsedSeconds(since: start)
        let parallelCPU = processCPUSeconds() - cpuStart
        let parallelResults = [try a.result(as: UInt64.self), try b.result(as: UInt64.self)]
        // CPU time over wall time is how many cores ran this process's threads at once: with a
        // global interpreter lock it stays at 1 or below, however many cores are free.
        say("2 threads: 2 jobs in \(format(parallel)) s (CPU time \(format(parallelCPU)) s: \(format(parallelCPU / parallel)) cores busy)")

        say("same results: \(serialResults == parallelResults)")
        say("speed-up: \(format(serial / parallel))x (Python threads: about 1.0x and 1 core busy, because of the GIL)")
        if cpuCount() >= 2 && parallelCPU / parallel < 1.5 {
            // Other programs had the cores: the threads could not run at once, through no lock of ours.
            say("note: the machine is busy (fewer than 2 cores were free); on an idle machine expect about 2x")
        }
    }

    /// CPU time used by every thread of this process so far (`CLOCK_PROCESS_CPUTIME_ID`).
    func processCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
