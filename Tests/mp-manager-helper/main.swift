// The manager tests' helper: as a child it runs a task (bootstrap never returns); as a parent it
// runs a scenario that needs a process of its own.
#if canImport(Glibc)
import Glibc
#endif
import Multiprocessing
import MultiprocessingManager
import ManagerTestSupport

Multiprocessing.bootstrap()

func say(_ text: String) {
    print(text)
    fflush(nil)
}

let arguments = CommandLine.arguments
if arguments.count > 2 && arguments[1] == "scenario" {
    do {
        switch arguments[2] {
        case "serve-tcp":
            // serve-tcp PORT KEYTEXT: a standalone server on loopback.
            let port = Int(arguments[3]) ?? 0
            try Manager.serveForever(address: .tcp(host: "127.0.0.1", port: port), authKey: AuthKey(arguments[4]),
                                     actorTypes: [Counter.self]) { address in
                say("ready \(address)")
            }
        case "parent-with-manager":
            // Starts a manager and waits to be killed: its server must die with it.
            let manager = Manager()
            try manager.start()
            let counters = try manager.dictionary(String.self, Int.self)
            try counters.increment("x")
            say("server \(manager.serverPID ?? -1)")
            while true { pause() }
        default:
            say("unknown scenario")
            exit(64)
        }
    } catch {
        say("scenario failed: \(error)")
        exit(1)
    }
} else {
    say("mp-manager-helper: run by the manager tests")
}
