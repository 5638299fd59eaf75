#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing

/// Starts a child that traps at once and joins it: its exit status and the time from start to join.
public func joinATrappingChild(_ method: StartMethod) throws -> (ExitStatus?, Duration) {
    let child = ChildProcess(Crash(kind: .fatalError), startMethod: method)
    let clock = ContinuousClock()
    let started = clock.now
    try child.start()
    try child.join(timeout: .seconds(120))
    return (child.exitStatus, clock.now - started)
}

/// `mp-test-helper scenario crash-report METHOD` (spawn, forkserver or fork; the helper's main is
/// single-threaded, so `.fork` is allowed): a child that traps at once, joined; prints
/// `crash <status> <milliseconds from start to join>`. Whatever the child's crash handler prints
/// goes to the helper's stderr, which the test reads.
public func runCrashReportScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    guard name == "crash-report" else { return false }
    let method: StartMethod
    switch rest.first {
    case "fork": method = .fork
    case "forkserver": method = .forkServer
    default: method = .spawn
    }
    let (exitStatus, elapsed) = try joinATrappingChild(method)
    let status: String
    switch exitStatus {
    case .signaled?: status = "signaled"
    default: status = "\(String(describing: exitStatus))"
    }
    let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    print("crash \(status) \(milliseconds)")
    fflush(nil)
    return true
}
