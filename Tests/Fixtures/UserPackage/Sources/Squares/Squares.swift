import Multiprocessing

/// The library's own task: squares a number in a child process.
public struct Square: ProcessTask {
    public var x: Int
    public init(x: Int) { self.x = x }
    public func run() -> Int { x * x }
}

/// Sums the squares of `numbers`, one child process per number.
public func sumOfSquares(_ numbers: [Int], startMethod: StartMethod = .spawn) throws -> Int {
    let configuration = ChildProcessConfiguration(startMethod: startMethod)
    let children = numbers.map { ChildProcess(Square(x: $0), configuration: configuration) }
    for child in children { try child.start() }
    return try children.reduce(0) { $0 + (try $1.value(timeout: .seconds(120))) }
}
