import Testing
import Distributed
import Multiprocessing
import MultiprocessingManager
import ManagerTestSupport

extension ManagerTests {
    @Test func distributedActorsRunOnTheServerAndAreCalledFromOtherProcesses() async throws {
        let manager = Manager()
        manager.register(Counter.self)
        try await manager.start()
        let counter = try manager.create(Counter.self, name: "counter")
        #expect(try await counter.add(5, note: "parent") == 5)
        // A child resolves the same actor from its id and calls it.
        let child = ChildProcess(CallCounter(id: counter.id, times: 10))
        try child.start()
        #expect(try await child.value(timeout: .seconds(20)) == 15)
        let notes = try await counter.notes()
        #expect(notes.count == 11 && notes.first == "parent")
        // The same name finds the same actor.
        let again = try manager.create(Counter.self, name: "counter")
        #expect(try await again.add(0, note: "again") == 15)
        // A method that throws: the error's type and description come back.
        await #expect { try await counter.fail("no") } throws: { error in
            let e = error as? MultiprocessingError
            return e?.remoteTypeName == "CounterError" && e?.message.contains("no") == true
        }
        try await manager.shutdown()
        await #expect { try await counter.add(1, note: "late") } throws: { ($0 as? MultiprocessingError)?.code == .endOfStream }
    }

    @Test func unregisteredActorTypesAreRefused() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        #expect { try manager.create(Counter.self) } throws: { ($0 as? MultiprocessingError)?.code == .notFound }
    }
}
