// The seed tutorial's examples in Swift: `swift run examples` lists them, `swift run examples NAME`
// runs one. Each prints output of the same shape as the tutorial's Python.
import ArgumentParser
import Multiprocessing

@main
struct Examples: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "examples",
        abstract: "The Python processes-and-threads tutorial, example by example, in Swift.",
        subcommands: exampleCommands + managerExampleCommands)

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
        for command in exampleCommands + managerExampleCommands {
            let name = command.configuration.commandName ?? "\(command)"
            print("  \(name.padding(to: 18))\(command.configuration.abstract)")
        }
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
