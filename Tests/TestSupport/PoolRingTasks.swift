// Tasks for the suite of the pool's shared-memory rings (Tests/MultiprocessingTests/PoolRingTests.swift):
// a worker that dies halfway through an answer, or writes garbage into the memory it shares with
// the driver, and answers larger than a ring.
import Glibc
public import Multiprocessing

/// A submitted task that damages its worker's rings (``PoolRingTesting``), then either SIGKILLs its
/// worker or sleeps 60 s (which the test never waits for: the driver must find the damage first).
/// When `marker` is set, it writes that file once the damage is done.
public struct PoolRingDamageTask: ProcessTask {
    public enum Kind: String, Codable, Sendable {
        case unpublishedPartialFrame, publishedPartialFrame, largePartialFrame, impossibleTail, impossibleTaskHead, garbage
    }
    public var kind: Kind
    public var thenDie: Bool
    public var marker: String?

    public init(_ kind: Kind, thenDie: Bool, marker: String? = nil) {
        self.kind = kind
        self.thenDie = thenDie
        self.marker = marker
    }

    public func run() -> Int32 {
        let damage: PoolRingTesting.Damage = switch kind {
        case .unpublishedPartialFrame: .unpublishedPartialFrame(bytes: 12)
        case .publishedPartialFrame: .publishedPartialFrame(length: 64, published: 10)
        case .largePartialFrame: .publishedPartialFrame(length: 1 << 20, published: 100_000)
        case .impossibleTail: .impossibleTail(ahead: 1 << 40)
        case .impossibleTaskHead: .impossibleTaskHead
        case .garbage: .garbage(count: 4096)
        }
        guard PoolRingTesting.damage(damage) else { return -1 }
        if let marker {
            let fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            if fd >= 0 { close(fd) }
        }
        if thenDie { kill(getpid(), SIGKILL) }
        sleep(60)
        return getpid()
    }
}

/// n → n bytes (each its index modulo 251): answers of any size, larger than a ring.
public struct PoolBigAnswer: PoolFunction {
    public init() {}
    public func run(_ n: Int) -> [UInt8] { (0..<n).map { UInt8($0 % 251) } }
}

/// bytes → their count and sum: inputs of any size.
public struct PoolBigInput: PoolFunction {
    public init() {}
    public func run(_ bytes: [UInt8]) -> [Int] { [bytes.count, bytes.reduce(0) { $0 + Int($1) }] }
}

/// A submitted task whose answer is `count` bytes.
public struct PoolBigAnswerTask: ProcessTask {
    public var count: Int
    public init(count: Int) { self.count = count }
    public func run() -> [UInt8] { (0..<count).map { UInt8($0 % 251) } }
}
