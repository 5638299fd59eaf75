public import SystemPackage
import Synchronization
import MultiprocessingSystem

/// A file descriptor that travels inside a value sent to another process.
///
/// Shared primitives, queues and connections hold descriptors (a memfd mapping, a pipe). When such a
/// value is encoded for a child's task or sent over a ``Connection``, each `SharedDescriptor` in it
/// is collected by the encoder and passed beside the bytes with `SCM_RIGHTS`; the receiving side's
/// decoder hands out the received descriptor in its place. Outside such a transfer, encoding fails
/// with a clear error rather than writing a number that means nothing in another process.
public struct SharedDescriptor: Codable, Sendable, Hashable {
    /// The descriptor in this process.
    public let fileDescriptor: FileDescriptor

    public init(_ fileDescriptor: FileDescriptor) {
        self.fileDescriptor = fileDescriptor
    }

    public func encode(to encoder: any Encoder) throws {
        guard let transfer = encoder.userInfo[.descriptorTransfer] as? DescriptorTransfer else {
            throw EncodingError.invalidValue(fileDescriptor.rawValue, .init(
                codingPath: encoder.codingPath,
                debugDescription: "A value holding a file descriptor (a lock, queue, connection or shared value) can only be sent to a child process or over a Connection, not encoded by another encoder."))
        }
        var container = encoder.singleValueContainer()
        try container.encode(transfer.add(fileDescriptor.rawValue))
    }

    public init(from decoder: any Decoder) throws {
        guard let transfer = decoder.userInfo[.descriptorTransfer] as? DescriptorTransfer else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "A file descriptor can only be decoded from a message received from another process."))
        }
        let index = try decoder.singleValueContainer().decode(UInt32.self)
        let fd = try transfer.claim(Int(index), codingPath: decoder.codingPath)
        self.fileDescriptor = FileDescriptor(rawValue: fd)
    }
}

extension CodingUserInfoKey {
    /// The `userInfo` key under which an encoder or decoder carries its ``DescriptorTransfer``.
    public static let descriptorTransfer: CodingUserInfoKey = {
        guard let key = CodingUserInfoKey(rawValue: "multiprocessing.descriptorTransfer") else {
            preconditionFailure("a constant, valid key")
        }
        return key
    }()
}

/// The descriptors that go with one message between processes.
///
/// On the sending side it collects descriptors (borrowed: the sender keeps them open until the
/// message is sent), each once however often it is encoded. On the receiving side it holds what
/// arrived: every claim of an index gets a duplicate of its own, so decoded values never share a
/// descriptor number and may close theirs whenever they like, and ``closeUnclaimed()`` closes the
/// received originals once decoding is over, whether it succeeded or not: nothing leaks.
public final class DescriptorTransfer: Sendable {
    private struct State {
        var descriptors: [CInt] = []
        var closed = false
    }
    private let state: Mutex<State>

    /// A transfer that collects descriptors while a value is encoded.
    public init() {
        state = Mutex(State())
    }

    /// A transfer that hands out descriptors that arrived with a message.
    public init(received: [CInt]) {
        state = Mutex(State(descriptors: received))
    }

    /// The descriptors collected so far, in index order.
    public var descriptors: [CInt] {
        state.withLock { $0.descriptors }
    }

    /// Adds `fd` (once, however often it is encoded) and returns its index in the message.
    internal func add(_ fd: CInt) -> UInt32 {
        state.withLock { state in
            if let index = state.descriptors.firstIndex(of: fd) { return UInt32(index) }
            state.descriptors.append(fd)
            return UInt32(state.descriptors.count - 1)
        }
    }

    /// A duplicate (close-on-exec) of the received descriptor at `index`, owned by the caller.
    internal func claim(_ index: Int, codingPath: [any CodingKey]) throws -> CInt {
        let result: Result<CInt, Errno>? = state.withLock { state in
            guard !state.closed, index < state.descriptors.count else { return nil }
            do throws(Errno) {
                return .success(try system_dupCloseOnExec(state.descriptors[index]))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .none:
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                debugDescription: "The message names file descriptor #\(index), but only \(descriptors.count) arrived with it."))
        case .success(let fd)?:
            return fd
        case .failure(let errno)?:
            throw MultiprocessingError.system("duplicating a received descriptor", errno)
        }
    }

    /// Closes the received descriptors. Call it once decoding is over: decoded values hold duplicates.
    public func closeUnclaimed() {
        state.withLock { state in
            guard !state.closed else { return }
            for fd in state.descriptors { system_close(fd) }
            state.closed = true
        }
    }
}
