// Placeholder until mpcp is merged.
import ArgumentParser

struct ProcessCopier: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-copier",
        abstract: "copy a folder, one process per file")
}

struct ThreadCopier: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thread-copier",
        abstract: "copy a folder, one thread per file")
}
