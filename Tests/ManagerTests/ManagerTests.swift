import Foundation
import Testing
import Multiprocessing
@testable import MultiprocessingManager
import ManagerTestSupport

/// Every manager test runs real server processes: one at a time, so that the 2-core machine's
/// timing stays predictable.
@Suite(.serialized)
struct ManagerTests {

    func started(_ limits: ManagerLimits = ManagerLimits()) throws -> Manager {
        let manager = Manager(limits: limits)
        try manager.start()
        return manager
    }

    @Test func everyBuiltInTypeIsSharedAcrossProcesses() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let proxies = Proxies(
            dictionary: try manager.dictionary(String.self, [Int].self),
            list: try manager.list(String.self),
            value: try manager.value(1.0),
            namespace: try manager.namespace(Settings(name: "wait", count: 0, tags: [])),
            queue: try manager.queue(String.self),
            replies: try manager.queue(String.self),
            lock: try manager.lock(),
            rLock: try manager.rLock(),
            semaphore: try manager.semaphore(value: 1),
            event: try manager.event(),
            condition: try manager.condition(),
            barrier: try manager.barrier(parties: 3))
        let children = (0..<2).map { ChildProcess(UseEveryType(proxies: proxies, index: $0)) }
        for child in children { try child.start() }
        try proxies.queue.put("hello")
        try proxies.queue.put("hello")
        let replies = [try proxies.replies.get(timeout: .seconds(10)), try proxies.replies.get(timeout: .seconds(10))]
        #expect(replies.sorted() == ["hello -> 0", "hello -> 1"])
        try proxies.event.set()
        try proxies.condition.acquire()
        try proxies.namespace.update { $0.name = "go" }
        try proxies.condition.notifyAll()
        try proxies.condition.release()
        let arrival = try proxies.barrier.wait(timeout: .seconds(10))
        #expect((0..<3).contains(arrival))
        let results = try children.map { try $0.value(timeout: .seconds(20)) }
        #expect(results.sorted() == ["ok 0 true", "ok 1 true"])
        #expect(try proxies.dictionary.get("seen")?.sorted() == [0, 1])
        #expect(try proxies.list.snapshot().sorted() == ["child 0", "child 1"])
        #expect(try proxies.value.get() == 2.0)
        let settings = try proxies.namespace.get()
        #expect(settings.count == 2 && settings.tags.sorted() == ["c0", "c1"])
        #expect(try proxies.namespace.name == "go")
        #expect(try proxies.lock.isLocked == false)
        #expect(try proxies.semaphore.value == 1)
        #expect(try proxies.barrier.state().broken == false)
    }

    @Test func fourProcessesIncrementingOneKeyEndAtExactly40000() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self)
        let children = (0..<4).map { _ in ChildProcess(IncrementTask(counters: counters, key: "k", times: 10_000)) }
        for child in children { try child.start() }
        let lasts = try children.map { try $0.value(timeout: .seconds(60)) }
        #expect(try counters.get("k") == 40_000)
        #expect(lasts.max() == 40_000)
    }

    @Test func readModifyWriteOperations() throws {
        let manager = try started()
        defer { try? manager.shutdown() }
        let d = try manager.dictionary(String.self, Int.self)
        #expect(try d.setIfAbsent("a", 1) == (true, 1))
        #expect(try d.setIfAbsent("a", 2) == (false, 1))
        #expect(try d.compareAndSwap("a", expected: 5, new: 6) == (false, 1))
        #expect(try d.compareAndSwap("a", expected: 1, new: 6) == (true, 6))
        #expect(try d.compareAndSwap("b", expected: nil, new: 7) == (true, 7))
        #expect(try d.increment("a", by: 10) == 16)
        #expect(try d.update("b") { $0 = ($0 ?? 0) * 3 } == 21)
        #expect(try d.snapshot() == ["a": 16, "b": 21])
        #expect(try d.removeValue(forKey: "a") == 16)
        #expect(try d.contains("a") == false)
        #expect(try d.count() == 1)
        try d.set("c", 3)
        #expect(try d["c"] == 3)

        // Appends to stored lists, both wire layouts: raw numbers and general elements.
        let lists = try manager.dictionary(String.self, [Int].self)
        for i in 0..<5 { try lists.append(i * 1000, to: "n") }
        #expect(try lists.get("n") == [0, 1000, 2000, 3000, 4000])
        let words = try manager.dictionary(String.self, [String].self)
        try words.set("w", ["x"])
        for w in ["alpha", String(repeating: "b", count: 300), "c"] { try words.append(w, to: "w") }
        #expect(try words.get("w") == ["x", "alpha", String(repeating: "b", count: 300), "c"])
        let doubles = try manager.dictionary(String.self, Double.self)
        #expect(try doubles.increment("x", by: 0.25) == 0.25)
        #expect(try doubles.increment("x", by: 0.5) == 0.75)

        // A type mismatch is an error reply, not a crash of the server.
        #expect(throws: MultiprocessingError.self) { try words.increment2("w") }
        #expect(try d.count() == 2)

        let list = try manager.list(Int.self)
        try list.append(contentsOf: [1, 2, 3])
        try list.insert(0, at: 0)
        try list.set(-1, 30)
        #expect(try list.snapshot() == [0, 1, 2, 30])
        #expect(try list.remove() == 30)
        #expect(try list.get(1) == 1)
        #expect(throws: MultiprocessingError.self) { try list.get(10) }

        let value = try manager.value(41)
        #expect(try value.increment() == 42)
        #expect(try value.compareAndSwap(expected: 1, new: 2).swapped == false)
        #expect(try value.update { $0 += 8 } == 50)

        // Names find the same object; a name of another kind is refused.
        let named = try manager.dictionary(String.self, Int.self, name: "shared")
        try named.set("z", 26)
        #expect(try manager.dictionary(String.self, Int.self, name: "shared").get("z") == 26)
        #expect(throws: MultiprocessingError.self) { try manager.list(Int.self, name: "shared") }
        try manager.destroy(named.reference)
        #expect { try named.get("z") } throws: { ($0 as? MultiprocessingError)?.code == .notFound }
    }

    @Test func blockingCallsTimeOutAndAsyncTwinsCancel() async throws {
        let manager = Manager()
        try await manager.start()
        let queue = try manager.queue(Int.self, maximumSize: 1)
        #expect { try queue.get(timeout: .milliseconds(50)) } throws: { ($0 as? MultiprocessingError)?.code == .timedOut }
        #expect { try queue.getNowait() } throws: { ($0 as? MultiprocessingError)?.code == .empty }
        try await queue.put(1)
        await #expect { try await queue.put(2, timeout: .zero) } throws: { ($0 as? MultiprocessingError)?.code == .timedOut }
        #expect { try queue.putNowait(2) } throws: { ($0 as? MultiprocessingError)?.code == .full }
        #expect(try await queue.get() == 1)
        let lock = try manager.lock()
        try await lock.acquire()
        #expect(try lock.tryAcquire() == false)
        let event = try manager.event()
        await #expect { try await event.wait(timeout: .milliseconds(20)) } throws: { ($0 as? MultiprocessingError)?.code == .timedOut }
        // A cancelled async get ends promptly with `cancelled`, and the server is unharmed.
        let waiting = Task { try await queue.get() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        await #expect { try await waiting.value } throws: { ($0 as? MultiprocessingError)?.code == .cancelled }
        try await queue.put(5)
        #expect(try await queue.get() == 5)
        try lock.release()
        try await manager.shutdown()
        #expect { try queue.qsize } throws: { ($0 as? MultiprocessingError)?.code == .endOfStream }
    }

    @Test func unixSocketIsPrivateAndRemovedOnShutdown() throws {
        let manager = try started()
        guard case .unix(let path)? = manager.address else {
            Issue.record("a default manager listens on a Unix socket")
            return
        }
        let directory = (path as NSString).deletingLastPathComponent
        let attributes = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        try manager.shutdown()
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(throws: MultiprocessingError.self) { try Manager(address: .tcp(host: "127.0.0.1", port: 0), authKey: AuthKey([])).start() }
        // TCP without a host binds loopback only.
        let tcp = Manager(address: ManagerAddress(":0"), authKey: AuthKey("k"))
        try tcp.start()
        defer { try? tcp.shutdown() }
        guard case .tcp(let host, let port)? = tcp.address else {
            Issue.record("not a TCP address")
            return
        }
        #expect(host == "127.0.0.1" && port > 0)
        #expect(try tcp.value(7).increment() == 8)
    }
}

extension ManagedDictionary where Value == [String] {
    /// Sends an integer increment to a key that holds a list of strings (a type mismatch).
    func increment2(_ key: Key) throws {
        let k = try ValueCoding.encode(key)
        _ = try reference.call(.dAddInt) {
            $0.blob(k)
            $0.signed(1)
        }
    }
}
