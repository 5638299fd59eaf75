// Task types shared by the test binary (whose children are the test binary itself) and mp-test-helper
// (a parent in scenarios, or another program for children to run in).
// They must be public, non-private and top-level or nested so that a child finds them by name.
#if canImport(Glibc)
import Glibc
#endif
public import Multiprocessing

public struct Square: ProcessTask {
    public var x: Int
    public init(x: Int) { self.x = x }
    public func run() -> Int { x * x }
}

/// Positional and named arguments together, and a structured result.
public struct Describe: ProcessTask {
    public struct Report: Codable, Sendable, Equatable {
        public var text: String
        public var total: Int
        public var processName: String
        public var pid: Int32
        public var parentPID: Int32
        public var isDaemon: Bool
    }
    public var words: [String]
    public var options: [String: Int]
    public init(words: [String], options: [String: Int]) {
        self.words = words
        self.options = options
    }
    public func run() async throws -> Report {
        try await Task.sleep(for: .milliseconds(1)) // an async task body
        return Report(text: words.joined(separator: " "), total: options.values.reduce(0, +),
                      processName: CurrentProcess.name, pid: CurrentProcess.pid,
                      parentPID: CurrentProcess.parentPID, isDaemon: CurrentProcess.isDaemon)
    }
}

public struct Generic<Value: Codable & Sendable>: ProcessTask {
    public var value: Value
    public init(value: Value) { self.value = value }
    public func run() -> [Value] { [value, value] }
}

public struct TaskFailure: Error, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "TaskFailure: \(reason)" }
}

public struct Fail: ProcessTask {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public func run() throws -> Int { throw TaskFailure(reason: reason) }
}

public struct Sleep: ProcessTask {
    public var milliseconds: Int
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    public func run() async throws {
        try await Task.sleep(for: .milliseconds(milliseconds))
    }
}

/// Blocks SIGTERM's default action away? No: sleeps in a plain syscall so that signals act at once.
public struct SleepBlocking: ProcessTask {
    public var milliseconds: Int
    public init(milliseconds: Int) { self.milliseconds = milliseconds }
    public func run() {
        usleep(UInt32(milliseconds) * 1000)
    }
}

public struct Crash: ProcessTask {
    public enum Kind: String, Codable, Sendable { case fatalError, indexOutOfRange, segfault, exit3 }
    public var kind: Kind
    public init(kind: Kind) { self.kind = kind }
    public func run() -> Int {
        switch kind {
        case .fatalError:
            fatalError("deliberate crash")
        case .indexOutOfRange:
            let array = [1, 2, 3]
            let index = Int(getpid()) > 0 ? 7 : 0 // not constant-folded
            return array[index]
        case .segfault:
            // A real invalid access (raise(SIGSEGV) would be caught and resumed by the backtracer).
            let address = UnsafeMutablePointer<Int>(bitPattern: Int(getpid() > 0 ? 8 : 16))
            address?.pointee = 1
            return 0
        case .exit3:
            exit(3)
        }
    }
}

/// The descriptors open in the child, apart from the one used to list them, with what each refers to.
public struct ListDescriptors: ProcessTask {
    public init() {}
    public func run() -> [String] {
        guard let dir = opendir("/proc/self/fd") else { return [] }
        defer { closedir(dir) }
        let own = dirfd(dir)
        var result: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let fd = Int32(name), fd != own {
                var target = [CChar](repeating: 0, count: 4096)
                let n = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
                let path = n > 0 ? String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
                result.append("\(fd) \(path)")
            }
        }
        return result
    }
}

/// Reads one line from a descriptor that travelled in the task's arguments.
public struct ReadDescriptor: ProcessTask {
    public var source: SharedDescriptor
    public init(source: SharedDescriptor) { self.source = source }
    public func run() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(source.fileDescriptor.rawValue, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw TaskFailure(reason: "read failed: errno \(errno)") }
        return String(decoding: buffer.prefix(n), as: UTF8.self)
    }
}

/// Returns a big result, bigger than a socket buffer, so the parent must read while the child writes.
public struct BigResult: ProcessTask {
    public var count: Int
    public init(count: Int) { self.count = count }
    public func run() -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) } }
}

/// Prints a line and returns; used to check that a child's output reaches the parent's stdout.
public struct Say: ProcessTask {
    public var line: String
    public init(line: String) { self.line = line }
    public func run() { print(line) }
}

/// Sleeps, then creates a file: lets a test see whether a parent's exit waited for this child.
public struct WriteMarker: ProcessTask {
    public var path: String
    public var delayMilliseconds: Int
    public init(path: String, delayMilliseconds: Int) {
        self.path = path
        self.delayMilliseconds = delayMilliseconds
    }
    public func run() {
        usleep(UInt32(delayMilliseconds) * 1000)
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        if fd >= 0 { close(fd) }
    }
}

/// Reads an environment variable in the child.
public struct ReadEnvironment: ProcessTask {
    public var name: String
    public init(name: String) { self.name = name }
    public func run() -> String? { getenv(name).map { String(cString: $0) } }
}
