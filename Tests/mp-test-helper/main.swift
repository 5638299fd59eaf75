// The helper binary for the tests. As a child, the library runs the task the parent sent before
// main starts. As a parent, it runs a scenario that needs a process of its own: a clean, single-threaded main (fork),
// its own exit (non-daemon children), or a parent that a test can SIGKILL.
#if canImport(Glibc)
import Glibc
#endif
import Multiprocessing
import TestSupport

let arguments = CommandLine.arguments
if arguments.count > 1 && arguments[1] == "no-bootstrap" {
    // A program that never calls bootstrap(): its children must run their task and nothing of
    // main. A child that ran main would have the same arguments, and print this line again.
    print("main ran in \(getpid())")
    fflush(nil)
    do {
        let child = ChildProcess(Square(x: 2), startMethod: arguments.count > 2 && arguments[2] == "forkserver" ? .forkServer : .spawn)
        try child.start()
        print("value \(try child.value(timeout: .seconds(120)))")
    } catch {
        print("failed: \(error)")
    }
    exit(0)
}

Multiprocessing.bootstrap()

/// Lets a closure reach a handle created after it.
final class HandleBox: @unchecked Sendable {
    nonisolated(unsafe) var handle: (any ProcessHandle)?
}

func say(_ text: String) {
    print(text)
    fflush(nil)
}

func scenario(_ name: String, _ rest: ArraySlice<String>) throws {
    switch name {
    case "daemon-orphan":
        // Start a long daemon child and a long non-daemon child, print their pids, then wait to be killed.
        let daemon = ChildProcess(SleepBlocking(milliseconds: 60_000), daemon: true)
        try daemon.start()
        let method: StartMethod = rest.first == "forkserver" ? .forkServer : .spawn
        let viaMethod = ChildProcess(SleepBlocking(milliseconds: 60_000), daemon: true, startMethod: method)
        try viaMethod.start()
        say("pids \(daemon.pid ?? -1) \(viaMethod.pid ?? -1)")
        while true { pause() }

    case "nondaemon-exit":
        // main returns at once; the program's exit must still wait for its non-daemon child, which
        // creates the marker file only after a pause, and must stop its daemon child.
        guard let marker = rest.first else { say("usage: nondaemon-exit MARKER"); exit(64) }
        let child = ChildProcess(WriteMarker(path: marker, delayMilliseconds: 300), name: "late")
        try child.start()
        let daemon = ChildProcess(SleepBlocking(milliseconds: 60_000), daemon: true)
        try daemon.start()
        say("main done daemon=\(daemon.pid ?? -1)")

    case "fork":
        let child = ChildProcess<Int>(name: "forked") { 6 * 7 }
        try child.start()
        say("fork value \(try child.value()) name \(child.name)")
        let task = ChildProcess(Square(x: 9), startMethod: .fork)
        try task.start()
        say("fork task \(try task.value())")
        let failing = ChildProcess<Int>(forking: { throw TaskFailure(reason: "in fork") })
        try failing.start()
        do {
            _ = try failing.value()
        } catch let error as MultiprocessingError {
            say("fork error \(error.code) \(error.remoteTypeName ?? "-")")
        }
        // A forked child holds a copy of its own handle: joining it from there is refused, not a hang.
        let holder = HandleBox()
        let selfJoin = ChildProcess<String>(forking: {
            do {
                try holder.handle?.join(timeout: .seconds(5))
                return "joined"
            } catch let error as MultiprocessingError {
                return "\(error.code)"
            }
        })
        holder.handle = selfJoin
        try selfJoin.start()
        say("fork self-join \(try selfJoin.value())")
        let identity = ChildProcess(Describe(words: ["a"], options: [:]), name: "who", daemon: true, startMethod: .fork)
        try identity.start()
        let report = try identity.value()
        say("fork identity \(report.processName) \(report.parentPID == CurrentProcess.pid) \(report.isDaemon)")

    case "fork-threads":
        // After this process has started another thread, fork must be refused.
        var thread = pthread_t()
        pthread_create(&thread, nil, { _ in
            while true { pause() }
        }, nil)
        let child = ChildProcess<Int>(forking: { 1 })
        do {
            try child.start()
            say("forked anyway")
        } catch let error as MultiprocessingError {
            say("refused \(error.code)")
        }

    case "forkserver":
        var children: [ChildProcess<Int>] = []
        for x in 1...5 {
            let child = ChildProcess(Square(x: x), startMethod: .forkServer)
            try child.start()
            children.append(child)
        }
        say("forkserver values \(try children.map { try $0.value() })")
        let crash = ChildProcess(Crash(kind: .exit3), startMethod: .forkServer)
        try crash.start()
        try crash.join()
        say("forkserver exit \(crash.exitCode ?? 99)")
        let sleeper = ChildProcess(SleepBlocking(milliseconds: 30_000), startMethod: .forkServer)
        try sleeper.start()
        try sleeper.terminate()
        try sleeper.join()
        say("forkserver terminated \(sleeper.exitCode ?? 99)")

    default:
        if try runProcessCorrectnessScenario(name, rest) { return }
        if try runOutsideCheckScenario(name, rest) { return }
        if try runProcessLeftoverScenario(name, rest) { return }
        if try runPoolBehaviourScenario(name, rest) { return }
        if try runPoolMemoryScenario(name, rest) { return }
        if try runPoolCallbackScenario(name, rest) { return }
        if try runForkServerSignalScenario(name, rest) { return }
        if try runConnectionScenario(name, rest) { return }
        if try runCrashReportScenario(name, rest) { return }
        say("unknown scenario \(name)")
        exit(64)
    }
}

if arguments.count > 2 && arguments[1] == "scenario" {
    do {
        try scenario(arguments[2], arguments.dropFirst(3))
    } catch {
        say("scenario failed: \(error)")
        exit(1)
    }
} else if arguments.count == 1 {
    say("mp-test-helper: run by the tests (as a child, or with `scenario NAME`)")
}
