// Pool functions for the fork server's rehearsal suite
// (Tests/MultiprocessingTests/ForkServerRehearsalTests.swift): two functions, so that a pool
// rehearses more than one name, and one with a String output (not a fixed-width element).
public import Multiprocessing

/// x * x.
public struct RehearsedSquare: PoolFunction {
    public init() {}
    public func run(_ x: Int) -> Int { x * x }
}

/// "<prefix><x>": a function with state of its own and an output that is encoded, not copied.
public struct RehearsedLabel: PoolFunction {
    public var prefix: String
    public init(prefix: String) { self.prefix = prefix }
    public func run(_ x: Int) -> String { "\(prefix)\(x)" }
}
