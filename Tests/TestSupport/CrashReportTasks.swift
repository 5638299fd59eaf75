#if canImport(Glibc)
import Glibc
#endif
import Multiprocessing

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
    let child = ChildProcess(Crash(kind: .fatalError), startMethod: method)
    let clock = ContinuousClock()
    let started = clock.now
    try child.start()
    try child.join(timeout: .seconds(120))
    let elapsed = clock.now - started
    let status: String
    switch child.exitStatus {
    case .signaled?: status = "signaled"
    default: status = "\(String(describing: child.exitStatus))"
    }
    let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    print("crash \(status) \(milliseconds)")
    fflush(nil)
    return true
}
