// Tasks for the worker-start suite (Tests/MultiprocessingTests/PoolStartTests.swift).
import Glibc
public import Multiprocessing

/// The file an exit handler registered in a pool worker would create.
nonisolated(unsafe) private var atExitMarkerPath: [CChar] = []

/// A pool initializer that registers a C exit handler, which would create `path`.
public struct RegisterExitMarker: ProcessTask {
    public var path: String
    public init(path: String) { self.path = path }
    public func run() {
        atExitMarkerPath = Array(path.utf8CString)
        atexit {
            atExitMarkerPath.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                let fd = open(base, O_CREAT | O_WRONLY, 0o644)
                if fd >= 0 { close(fd) }
            }
        }
    }
}

/// A pool initializer that carries `size` bytes, more than fit in a new socket's buffer at once
/// comfortably, and checks them.
public struct LargeInitializer: ProcessTask {
    public var bytes: [UInt8]
    public init(size: Int) { bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) } }
    public struct Mismatch: Error, Codable {}
    public func run() throws {
        for (i, byte) in bytes.enumerated() where byte != UInt8(truncatingIfNeeded: i &* 7) { throw Mismatch() }
    }
}

/// x → the worker's pid.
public struct PoolWhoAmI: PoolFunction {
    public init() {}
    public func run(_ x: Int) -> Int32 { getpid() }
}
