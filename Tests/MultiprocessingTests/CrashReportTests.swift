import Foundation
import Testing
import TestHarness
import Multiprocessing
import TestSupport

// Outside checks (red team): how long a crashing child takes to be seen dead by its parent.
// Swift's backtracer, on by default on Linux, symbolicates a crashing process's threads before
// it lets it die: about 8 s per crash here, during which the parent's join waits. Children run
// with it off unless the user set SWIFT_BACKTRACE.

@Suite("Crash reports of children")
struct CrashReportTests {
    /// A child that traps is joined in well under the backtracer's time. Before the fix a trap
    /// took 7.9–9.6 s from start to join here (the backtracer's symbolication); after it,
    /// 20–60 ms. The bound, 3 s, is 50× the second and a third of the first.
    @Test(arguments: [StartMethod.spawn, .forkServer])
    func aTrappingChildIsJoinedAtOnce(method: StartMethod) throws {
        let (status, elapsed) = try joinATrappingChild(method)
        guard case .signaled? = status else {
            Issue.record("expected a signal, got \(String(describing: status))")
            return
        }
        #expect(elapsed < .seconds(3), "start to join of a trapping child took \(elapsed)")
    }

    /// The switch is the library's own: a child does not see it in its environment (so a program
    /// it runs keeps its backtracer), and a SWIFT_BACKTRACE the user chose reaches the child as
    /// it was.
    @Test(arguments: [StartMethod.spawn, .forkServer])
    func theUsersSettingWinsAndOursIsNotInherited(method: StartMethod) throws {
        let plain = ChildProcess(ReadEnvironment(name: "SWIFT_BACKTRACE"), startMethod: method)
        try plain.start()
        #expect(try plain.value(timeout: .seconds(120)) == nil)
        let marker = ChildProcess(ReadEnvironment(name: "SWIFT_MULTIPROCESSING_BACKTRACE_OFF"), startMethod: method)
        try marker.start()
        #expect(try marker.value(timeout: .seconds(120)) == nil)

        var configuration = ChildProcessConfiguration(startMethod: method)
        configuration.environment["SWIFT_BACKTRACE"] = "enable=yes,interactive=no"
        let chosen = ChildProcess(ReadEnvironment(name: "SWIFT_BACKTRACE"), configuration: configuration)
        try chosen.start()
        #expect(try chosen.value(timeout: .seconds(120)) == "enable=yes,interactive=no")
    }

    /// No start method leaves the backtracer on in a child: its crash prints the runtime's one
    /// line (the fatal error's message), not the backtracer's report. Before the fix every method
    /// printed "Program crashed" and a backtrace (a `.fork` child too: it is a copy of a parent
    /// whose backtracer is installed, so its crash handlers are put back to the default).
    @Test(arguments: ["spawn", "forkserver", "fork"])
    func aCrashingChildPrintsNoBacktrace(method: String) async throws {
        let output = try await runProgram(helperPath, ["scenario", "crash-report", method])
        #expect(output.stdout.hasPrefix("crash signaled "), "\(output.stdout)\n\(output.stderr)")
        #expect(output.stderr.contains("deliberate crash"), "\(output.stderr)")
        #expect(!output.stderr.contains("Program crashed"), "\(output.stderr.prefix(2000))")
        #expect(!output.stderr.contains("Backtrac"), "\(output.stderr.prefix(2000))")
    }
}
