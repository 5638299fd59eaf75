import Testing
import Multiprocessing
@testable import MultiprocessingManager

// The manager's messages that name an object's kind ("object 3 is a list, not an array"): each
// kind takes its article ("a array" was printed before).
@Suite struct ManagerKindMessageTests {
    /// A request of one kind to an object of another, and a create under a name another kind
    /// holds: both messages read as English.
    @Test func aKindMismatchNamesBothKindsWithTheRightArticle() throws {
        let manager = Manager()
        try manager.start()
        defer { try? manager.shutdown() }
        let list = try manager.list(Int.self)
        let array = try manager.array([1, 2])
        _ = try manager.event(name: "kind-message-event")
        let client = ManagerClient.shared(try #require(manager.address), key: manager.authKey)
        do {
            _ = try client.request(ArrayRequest.count, object: list.reference.id)
            Issue.record("an array request to a list was served")
        } catch let error as MultiprocessingError {
            #expect(error.code == .notFound)
            #expect(error.message.contains("object \(list.reference.id) is a list, not an array: an array request"), "\(error.message)")
        }
        do {
            _ = try client.request(QueueRequest.join(timeout: 0), object: array.reference.id)
            Issue.record("a queue request to an array was served")
        } catch let error as MultiprocessingError {
            #expect(error.message.contains("is an array, not a queue: a queue request"), "\(error.message)")
        }
        do {
            _ = try manager.list(Int.self, name: "kind-message-event")
            Issue.record("a list was created under an event's name")
        } catch let error as MultiprocessingError {
            #expect(error.code == .misuse)
            #expect(error.message.contains("\"kind-message-event\" is an event, not a list."), "\(error.message)")
        }
        do {
            _ = try manager.event(name: "kind-message-rlock")
            _ = try manager.rLock(name: "kind-message-rlock")
            Issue.record("an RLock was created under an event's name")
        } catch let error as MultiprocessingError {
            #expect(error.message.contains("is an event, not an RLock."), "\(error.message)")
        }
    }
}

extension ManagerKindMessageTests {
    /// Every kind, and every request kind's name, with the article it takes.
    @Test func everyKindNameTakesItsArticle() {
        let expected: [ManagedKind: String] = [
            .dictionary: "a dictionary", .list: "a list", .value: "a value", .queue: "a queue", .lock: "a lock",
            .rLock: "an RLock", .semaphore: "a semaphore", .event: "an event", .condition: "a condition",
            .barrier: "a barrier", .actor: "an actor", .boundedSemaphore: "a bounded semaphore", .array: "an array",
        ]
        for kind in ManagedKind.allKinds { #expect(kind.withArticle == expected[kind], "\(kind)") }
        let requests: [String: String] = [
            DictionaryRequest.kindName: "a dictionary", ListRequest.kindName: "a list", ValueRequest.kindName: "a value",
            QueueRequest.kindName: "a queue", LockRequest.kindName: "a lock", SemaphoreRequest.kindName: "a semaphore",
            EventRequest.kindName: "an event", ConditionRequest.kindName: "a condition", BarrierRequest.kindName: "a barrier",
            ActorRequest.kindName: "an actor", ArrayRequest.kindName: "an array",
        ]
        for (name, phrase) in requests { #expect(withIndefiniteArticle(name) == phrase) }
    }
}
