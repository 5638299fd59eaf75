#if os(Linux)
public import CMultiprocessing

// A child's crash, seen by its parent at once.
//
// Swift's backtracer (on by default on Linux) catches a crashing process's signal and symbolicates
// every thread before letting it die: 4–10 s per crash of a test binary here, during which the
// parent's join waits and a pool's task is not failed. Children run with it off, unless the user
// chose SWIFT_BACKTRACE (in this process's environment or the configuration's): a spawned child and
// the fork server get SWIFT_BACKTRACE=enable=no, which the runtime reads as it loads, and remove it
// again before the task runs (so a program the task runs keeps its own default); a forked child
// puts the runtime's crash handlers back to the default action.
extension ChildEnvironment {
    /// The Swift runtime's backtracer setting.
    @usableFromInline package static let backtrace = "SWIFT_BACKTRACE"
    /// "1" when the library added SWIFT_BACKTRACE=enable=no: the child removes both at its entry.
    @usableFromInline package static let backtraceOffAdded = "SWIFT_MULTIPROCESSING_BACKTRACE_OFF"

    /// The entries that turn the backtracer off in a spawned child or fork server whose
    /// configuration adds `entries` ("NAME=value"), or none when the user chose a setting.
    package static func backtraceOff(besides entries: [String]) -> [String] {
        if system_getenv(backtrace) != nil || entries.contains(where: { $0.hasPrefix("\(backtrace)=") }) { return [] }
        return ["\(backtrace)=enable=no", "\(backtraceOffAdded)=1"]
    }

    /// In a child at its entry: removes what ``backtraceOff(besides:)`` added (the runtime read it
    /// already, as it loaded).
    package static func removeBacktraceOff() {
        guard system_getenv(backtraceOffAdded) != nil else { return }
        system_unsetenv(backtraceOffAdded)
        system_unsetenv(backtrace)
    }
}

/// In a child made by `fork()`, unless SWIFT_BACKTRACE is set: the default action for each crash
/// signal whose handler is still the Swift runtime's (installed as it loaded); the program's own
/// handlers stay. Returns how many were reset.
@discardableResult
@inlinable package func system_turnBacktracerOffAfterFork() -> Int {
    guard system_getenv(ChildEnvironment.backtrace) == nil else { return 0 }
    return Int(cmp_crash_handlers_reset_to_default())
}
#endif
