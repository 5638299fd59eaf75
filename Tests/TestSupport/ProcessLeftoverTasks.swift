// Helper-binary scenarios for the process defects found after issue 12: a fork server that dies
// between its clone of a child and the report of that child's pid, and what a `.fork` child
// inherits (its parent's end of the socket, the configuration's environment). They run in
// mp-test-helper as the parent: a single-threaded main (for `.fork`) whose children and
// descriptors the scenario can count.
#if canImport(Glibc)
import Glibc
#endif
import Multiprocessing

/// The descriptors open in this process and what each points at (`socket:[123]`, `pipe:[45]`).
public func openDescriptorTargets() -> [Int32: String] {
    guard let dir = opendir("/proc/self/fd") else { return [:] }
    defer { closedir(dir) }
    let own = dirfd(dir)
    var result: [Int32: String] = [:]
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard let fd = Int32(name), fd != own else { continue }
        var target = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
        guard n > 0 else { continue }
        result[fd] = String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    return result
}

private func say(_ text: String) {
    print(text)
    fflush(nil)
}

/// Runs one of this file's scenarios in the helper binary. Returns false for an unknown name.
public func runProcessLeftoverScenario(_ name: String, _ rest: ArraySlice<String>) throws -> Bool {
    switch name {
    case "forkserver-dies-after-clone":
        // Prints the fork server's pid, waits for "go" on stdin (the test attaches strace to the
        // server, to kill it with SIGKILL at its next close(), the one right after its clone of
        // the next child), then starts a child through it. Prints how the start ended and which
        // children of this process are left once everything settled.
        let me = getpid()
        let warm = ChildProcess(Square(x: 1), startMethod: .forkServer)
        try warm.start()
        _ = try warm.value(timeout: .seconds(120))
        let servers = childPIDs(of: me)
        say("server \(servers.map { "\($0)" }.joined(separator: " "))")
        guard servers.count == 1, Swift.readLine() == "go" else { say("no single server, or no go"); return true }
        let server = servers[0]
        let child = ChildProcess(Square(x: 7), startMethod: .forkServer)
        do {
            try child.start()
            say("value \(try child.value(timeout: .seconds(120)))")
        } catch {
            say("start error \(error)")
        }
        say("server reaped \(pollUntil(seconds: 60) { procStatFields(server) == nil })")
        // A zombie nobody reaps stays: give a leftover the time to exit, then list what is left.
        _ = pollUntil(seconds: 30) { childPIDs(of: me).isEmpty }
        say("leftover [\(childPIDs(of: me).map { "\($0) \(procStatFields($0)?.first ?? "?")" }.joined(separator: ", "))]")

    case "fork-descriptors":
        // The sockets this process opens to start a `.fork` child (the parent's end of the child's
        // socket, which the monitor keeps while the child runs) must not be in the child.
        let before = Set(openDescriptorTargets().values.filter { $0.hasPrefix("socket:") })
        var gate: [Int32] = [-1, -1]
        guard pipe(&gate) == 0 else { say("pipe failed"); return true }
        let gateRead = gate[0]
        let child = ChildProcess<[String]>(forking: {
            // Wait until the parent has listed its own descriptors.
            var byte: UInt8 = 0
            _ = read(gateRead, &byte, 1)
            return Array(openDescriptorTargets().values)
        })
        try child.start()
        let parentEnds = Set(openDescriptorTargets().values.filter { $0.hasPrefix("socket:") }).subtracting(before)
        var byte: UInt8 = 1
        _ = write(gate[1], &byte, 1)
        let seen = try child.value(timeout: .seconds(120))
        say("parent ends \(parentEnds.count)")
        say("inherited \(seen.filter { parentEnds.contains($0) }.sorted())")

    case "fork-environment":
        // A `.fork` child gets its configuration's environment; the parent's stays as it was.
        let configuration = ChildProcessConfiguration(startMethod: .fork, environment: ["MP_LEFTOVER_FORK_ENV": "configured", "HOME": "/configured-home"])
        let child = ChildProcess(ReadEnvironment(name: "MP_LEFTOVER_FORK_ENV"), configuration: configuration)
        try child.start()
        say("fork environment \(try child.value(timeout: .seconds(120)) ?? "unset")")
        let home = ChildProcess(ReadEnvironment(name: "HOME"), configuration: configuration)
        try home.start()
        say("fork home \(try home.value(timeout: .seconds(120)) ?? "unset")")
        say("parent environment \(getenv("MP_LEFTOVER_FORK_ENV").map { String(cString: $0) } ?? "unset")")

    default:
        return false
    }
    return true
}
