import Foundation
import Testing
import TestHarness
import Multiprocessing
import SystemPackage
@testable @_spi(Fuzzing) import MultiprocessingManager
import MultiprocessingConnection
import ManagerTestSupport
import MultiprocessingSystem

// Issue 14, item 5: the manager protocol is typed. Every case of every kind's request enum, and
// every reply case, goes through its byte layout and back (and through WireEncoder, since the
// enums are Codable); a few frames are pinned byte for byte, since the layout is protocol
// version 1's; and a request of one kind sent to an object of another kind gets an error reply
// that names both kinds.

/// Distinct byte strings, so that two fields of one type swapped in a layout would show.
private let k: [UInt8] = [1, 2]
private let v: [UInt8] = [3]
private let e: [UInt8] = [4, 5, 6]
private let n: [UInt8] = [7]

/// Each request of a kind with a reply of the case that answers it.
private let dictionaryCases: [(DictionaryRequest, DictionaryReply)] = [
    (.get(key: k), .get(value: v)), (.get(key: k), .get(value: nil)),
    (.set(key: k, value: v), .set),
    (.removeValue(key: k), .removeValue(old: e)), (.removeValue(key: []), .removeValue(old: nil)),
    (.contains(key: k), .contains(true)), (.count, .count(12_345)),
    (.items, .items(keys: [k, e], values: [v, n])), (.items, .items(keys: [], values: [])),
    (.removeAll, .removeAll),
    (.setIfAbsent(key: k, value: v), .setIfAbsent(inserted: false, current: e)),
    (.compareAndSwap(key: k, expected: e, new: n), .compareAndSwap(swapped: true, current: n)),
    (.compareAndSwap(key: k, expected: nil, new: n), .compareAndSwap(swapped: false, current: nil)),
    (.compareAndDelete(key: k, expected: e), .compareAndDelete(deleted: true, current: nil)),
    (.compareAndDelete(key: k, expected: nil), .compareAndDelete(deleted: false, current: v)),
    (.increment(key: k, by: -5), .increment(.min)), (.increment(key: k, by: .max), .increment(3)),
    (.incrementDouble(key: k, by: 0.25), .incrementDouble(-.infinity)),
    (.append(key: k, single: e), .append(count: 9)),
    (.update(ifVersion: nil, keys: [k, e], values: [v, n]), .update(updated: true, version: 3)),
    (.update(ifVersion: .max, keys: [], values: []), .update(updated: false, version: 0)),
    (.getMany(keys: [k, e, []]), .getMany(version: 12, values: [v, nil, []])), (.getMany(keys: []), .getMany(version: 0, values: [])),
    (.popLast, .popLast(key: k, value: v)), (.popLast, .popLast(key: nil, value: [])),
]
private let listCases: [(ListRequest, ListReply)] = [
    (.append(element: v), .append(count: 1)), (.extend(elements: [k, v, e]), .extend(count: 4)),
    (.extend(elements: []), .extend(count: 0)),
    (.get(index: -1), .get(element: e)), (.set(index: 3, element: n), .set), (.count, .count(2)),
    (.snapshot, .snapshot(elements: [k, e])), (.remove(index: .min), .remove(element: v)),
    (.insert(element: e, index: 7), .insert), (.removeAll, .removeAll),
    (.countOf(element: e), .countOf(3)), (.indexOf(element: v, start: -2, end: nil), .indexOf(nil)),
    (.indexOf(element: k, start: 1, end: -1), .indexOf(4)), (.reverse, .reverse),
    (.versionedSnapshot, .versionedSnapshot(version: .max, elements: [k, v])),
    (.replace(version: 9, elements: [e, []]), .replace(replaced: true, version: 10)),
    (.replace(version: 0, elements: []), .replace(replaced: false, version: 5)),
]
private let valueCases: [(ValueRequest, ValueReply)] = [
    (.get, .get(value: e)), (.set(value: v), .set),
    (.compareAndSwap(expected: e, new: n), .compareAndSwap(swapped: false, current: k)),
    (.increment(by: 42), .increment(-42)), (.incrementDouble(by: -1.5), .incrementDouble(2.5)),
]
private let queueCases: [(QueueRequest, QueueReply)] = [
    (.put(item: e, timeout: nil), .put), (.put(item: v, timeout: 0), .put),
    (.get(timeout: 1_000_000), .get(item: k)), (.get(timeout: .max), .get(item: [])), (.count, .count(5)),
    (.info, .info(count: 3, maximumSize: 0, unfinished: .max)), (.taskDone, .taskDone),
    (.join(timeout: nil), .join(done: true)), (.join(timeout: 7), .join(done: false)),
    (.shutdown(immediate: false), .shutdown), (.shutdown(immediate: true), .shutdown),
]
private let lockCases: [(LockRequest, LockReply)] = [
    (.acquire(thread: 77, timeout: nil), .acquire(.acquired)), (.acquire(thread: .max, timeout: 5), .acquire(.timedOut)),
    (.acquire(thread: 0, timeout: 0), .acquire(.acquiredAfterOwnerDied)),
    (.release(thread: 123_456_789), .release), (.isLocked, .isLocked(true)), (.isLocked, .isLocked(false)),
]
private let semaphoreCases: [(SemaphoreRequest, SemaphoreReply)] = [
    (.acquire(timeout: nil), .acquire(acquired: true)), (.acquire(timeout: 9), .acquire(acquired: false)),
    (.release(count: 3), .release), (.value, .value(Int.max)),
    (.info, .info(value: 2, bound: nil)), (.info, .info(value: 0, bound: 5)),
]
private let eventCases: [(EventRequest, EventReply)] = [
    (.set, .set), (.clear, .clear), (.isSet, .isSet(true)), (.wait(timeout: nil), .wait(set: true)),
    (.wait(timeout: 10), .wait(set: false)),
]
private let conditionCases: [(ConditionRequest, ConditionReply)] = [
    (.wait(thread: 8, timeout: nil), .wait(notified: true)), (.wait(thread: 8, timeout: 100), .wait(notified: false)),
    (.notify(thread: 9, count: 2), .notify),
]
private let barrierCases: [(BarrierRequest, BarrierReply)] = [
    (.wait(timeout: nil), .wait(index: 0)), (.wait(timeout: 50), .wait(index: 3)), (.reset, .reset), (.abort, .abort),
    (.state, .state(parties: 4, waiting: 2, broken: true)),
]
private let arrayCases: [(ArrayRequest, ArrayReply)] = [
    (.get(index: -1), .get(element: e)), (.set(index: .min, element: v), .set), (.count, .count(3)),
    (.snapshot, .snapshot(elements: [k, [], e])), (.setSlice(start: 2, elements: [v, n]), .setSlice),
    (.setSlice(start: 0, elements: []), .setSlice), (.increment(index: 1, by: -7), .increment(.max)),
    (.incrementDouble(index: 0, by: 0.5), .incrementDouble(-2.25)),
]
private let actorCases: [(ActorRequest, ActorReply)] = [
    (.call(target: "$s4main7CounterC3add", genericSubstitutions: [], arguments: [k, e]), .call(result: v)),
    (.call(target: "t", genericSubstitutions: ["Si", "SS"], arguments: []), .call(result: [])),
    (.resolve, .resolve),
]

/// The request through its frame and the server's decoder, and through WireEncoder; the reply
/// through its layout and the client's decoder.
private func roundTrip<Request: ObjectRequest & Equatable>(_ cases: [(Request, Request.Reply)]) throws where Request.Reply: Equatable {
    for (request, reply) in cases {
        let envelope = request.envelope(object: 77)
        let body = ManagerWire.encodeRequest(envelope)
        #expect(try ManagerRequest(body: body) == envelope, "\(request)")
        #expect(try WireDecoder().decode(Request.self, from: try WireEncoder().encode(request)) == request)

        let frame = ManagerWire.replyFrame(reply)
        var reader = ByteReader(frame, at: ManagerPlatform.frameHeaderSize)
        #expect(try reader.byte() == ReplyStatus.ok.rawValue)
        #expect(try Request.Reply(&reader, answering: request) == reply, "\(request) → \(reply)")
        #expect(reader.isAtEnd, "\(reply) left bytes unread")
        #expect(try WireDecoder().decode(Request.Reply.self, from: try WireEncoder().encode(reply)) == reply)
    }
}

@Suite struct ManagerProtocolTests {
    @Test func everyDictionaryRequestAndReplyRoundTrips() throws { try roundTrip(dictionaryCases) }
    @Test func everyListRequestAndReplyRoundTrips() throws { try roundTrip(listCases) }
    @Test func everyValueRequestAndReplyRoundTrips() throws { try roundTrip(valueCases) }
    @Test func everyQueueRequestAndReplyRoundTrips() throws { try roundTrip(queueCases) }
    @Test func everyLockRequestAndReplyRoundTrips() throws { try roundTrip(lockCases) }
    @Test func everySemaphoreRequestAndReplyRoundTrips() throws { try roundTrip(semaphoreCases) }
    @Test func everyEventRequestAndReplyRoundTrips() throws { try roundTrip(eventCases) }
    @Test func everyConditionRequestAndReplyRoundTrips() throws { try roundTrip(conditionCases) }
    @Test func everyBarrierRequestAndReplyRoundTrips() throws { try roundTrip(barrierCases) }
    @Test func everyActorRequestAndReplyRoundTrips() throws { try roundTrip(actorCases) }
    @Test func everyArrayRequestAndReplyRoundTrips() throws { try roundTrip(arrayCases) }

    @Test func everyManagerRequestAndReplyRoundTrips() throws {
        let cases: [(ManagerRequest, ManagerReply)] = [
            (.ping, .pong), (.serverInfo, .serverInfo(objects: 3, clients: 2, connections: 5, residentBytes: 1 << 30, pid: 4242)),
            (.shutdown, .shuttingDown), (.waiters(object: 9), .waiters(4)), (.lookup(name: "n"), .found(kind: .barrier, object: 12)),
            (.destroy(object: 3), .destroyed),
            (.create(name: nil, .dictionary), .created(object: 1)), (.create(name: "d", .list), .created(object: 2)),
            (.create(name: nil, .value(initial: e)), .created(object: 3)), (.create(name: nil, .queue(maximumSize: 8)), .created(object: 4)),
            (.create(name: nil, .lock), .created(object: 5)), (.create(name: nil, .rLock), .created(object: 6)),
            (.create(name: nil, .semaphore(value: 2)), .created(object: 7)), (.create(name: nil, .event), .created(object: 8)),
            (.create(name: nil, .condition), .created(object: 9)), (.create(name: nil, .barrier(parties: 3)), .created(object: 10)),
            (.create(name: "a", .actor(typeName: "$s4main7CounterC")), .created(object: .max)),
            (.create(name: nil, .boundedSemaphore(value: 4)), .created(object: 11)),
            (.create(name: "arr", .array(elements: [k, [], e])), .created(object: 12)), (.create(name: nil, .array(elements: [])), .created(object: 13)),
        ]
        for (request, reply) in cases {
            #expect(try ManagerRequest(body: ManagerWire.encodeRequest(request)) == request, "\(request)")
            #expect(try WireDecoder().decode(ManagerRequest.self, from: try WireEncoder().encode(request)) == request)
            let frame = ManagerWire.replyFrame(reply)
            var reader = ByteReader(frame, at: ManagerPlatform.frameHeaderSize + 1)
            #expect(try ManagerReply(&reader, answering: request) == reply, "\(request) → \(reply)")
            #expect(reader.isAtEnd)
        }
    }

    @Test func theLayoutIsProtocolVersionOnes() throws {
        // Pinned bytes: a change here is a new protocol version (Handshake.version).
        #expect(Handshake.version == 1)
        #expect(ManagerWire.encodeRequest(.ping) == [5, 0])
        #expect(ManagerWire.encodeRequest(.dictionary(object: 1, .set(key: k, value: v))) == [11, 1, 2, 1, 2, 1, 3])
        #expect(ManagerWire.encodeRequest(.dictionary(object: 300, .compareAndSwap(key: [], expected: nil, new: n)))
                == [18, 0xAC, 0x02, 0, 0, 0, 1, 7])
        #expect(ManagerWire.encodeRequest(.lock(object: 2, .acquire(thread: 7, timeout: nil))) == [60, 2, 7, 0])
        #expect(ManagerWire.encodeRequest(.queue(object: 2, .get(timeout: 0))) == [51, 2, 1])
        #expect(ManagerWire.encodeRequest(.list(object: 4, .insert(element: v, index: -1))) == [46, 4, 1, 1, 3])
        #expect(ManagerWire.encodeRequest(.create(name: "q", .queue(maximumSize: 2))) == [1, 0, 4, 1, 0x71, 4, 0])
        #expect(ManagerWire.encodeRequest(.create(name: nil, .actor(typeName: "T"))) == [110, 0, 1, 0x54, 0])
        #expect(Array(ManagerWire.replyFrame(LockReply.acquire(.acquiredAfterOwnerDied)).dropFirst(16)) == [0, 2])
        #expect(Array(ManagerWire.replyFrame(DictionaryReply.get(value: v)).dropFirst(16)) == [0, 1, 1, 3])
    }

    @Test func bodiesThatEndEarlyAreMalformedAndUnknownOperationsAreNamed() throws {
        func code(_ body: [UInt8]) -> String? {
            do {
                _ = try ManagerRequest(body: body)
                return nil
            } catch let error as MultiprocessingError {
                return error.code.name
            } catch {
                return "\(error)"
            }
        }
        #expect(code([]) == "malformedFrame")
        #expect(code([11, 1, 5, 1]) == "malformedFrame")        // a key of 5 bytes, 1 there
        #expect(code([60, 2, 7]) == "malformedFrame")           // no timeout
        #expect(code([250, 0]) == "notFound")
        #expect(code([1, 0, 99, 0, 0, 0]) == "notFound")        // an unknown kind to create
        #expect(code([1, 0, 11, 0, 0, 0]) == "notFound")        // actors are not made by create
    }
}

extension ManagerTests {
    @Test func aRequestOfOneKindToAnObjectOfAnotherKindIsAnErrorNamingBoth() throws {
        let manager = Manager()
        manager.register(Counter.self)
        try manager.start()
        defer { try? manager.shutdown() }
        let counters = try manager.dictionary(String.self, Int.self, name: "c")
        let objects: [(ManagedKind, UInt64)] = [
            (.dictionary, counters.reference.id), (.list, try manager.list(Int.self).reference.id),
            (.value, try manager.value(0).reference.id), (.queue, try manager.queue(Int.self).reference.id),
            (.lock, try manager.lock().reference.id), (.rLock, try manager.rLock().reference.id),
            (.semaphore, try manager.semaphore().reference.id), (.event, try manager.event().reference.id),
            (.condition, try manager.condition().reference.id), (.barrier, try manager.barrier(parties: 2).reference.id),
            (.actor, try manager.create(Counter.self).id.id),
        ]
        let client = ManagerClient.shared(try #require(manager.address), key: manager.authKey)
        /// A harmless request of each kind, and the object kinds that take it.
        func send(_ id: UInt64, _ index: Int) throws -> (name: String, kinds: Set<ManagedKind>) {
            switch index {
            case 0: _ = try client.request(DictionaryRequest.count, object: id); return ("dictionary", [.dictionary])
            case 1: _ = try client.request(ListRequest.count, object: id); return ("list", [.list])
            case 2: _ = try client.request(ValueRequest.get, object: id); return ("value", [.value])
            case 3: _ = try client.request(QueueRequest.count, object: id); return ("queue", [.queue])
            case 4: _ = try client.request(LockRequest.isLocked, object: id); return ("lock", [.lock, .rLock, .condition])
            case 5: _ = try client.request(SemaphoreRequest.value, object: id); return ("semaphore", [.semaphore])
            case 6: _ = try client.request(EventRequest.isSet, object: id); return ("event", [.event])
            case 7: _ = try client.request(ConditionRequest.notify(thread: 1, count: 0), object: id); return ("condition", [.condition])
            case 8: _ = try client.request(BarrierRequest.state, object: id); return ("barrier", [.barrier])
            default: _ = try client.request(ActorRequest.resolve, object: id); return ("actor", [.actor])
            }
        }
        let kindNames = ["dictionary", "list", "value", "queue", "lock", "semaphore", "event", "condition", "barrier", "actor"]
        var refused = 0
        for (kind, id) in objects {
            for index in 0..<10 {
                let name = kindNames[index]
                let takes: Set<ManagedKind> = switch name {
                case "lock": [.lock, .rLock, .condition]
                default: [ManagedKind.allKinds.first { "\($0)" == name } ?? .actor]
                }
                do {
                    let answer = try send(id, index)
                    #expect(answer.kinds == takes)
                    // Only a condition request without the condition's lock may fail on a condition.
                    #expect(takes.contains(kind), "a \(name) request to a \(kind) was served")
                } catch let error as MultiprocessingError {
                    if takes.contains(kind) {
                        // The condition's notify needs its lock: that error is the condition's own.
                        #expect(kind == .condition && error.code == .misuse, "\(error)")
                        continue
                    }
                    refused += 1
                    #expect(error.code == .notFound, "\(error)")
                    #expect(error.message.contains("is \(kind.withArticle),") && error.message.contains("not \(withIndefiniteArticle(name)):"), "\(error.message)")
                    #expect(error.message.contains("\(id)"), "\(error.message)")
                }
            }
        }
        // 11 objects × 10 request kinds, less the 12 pairings that are served.
        #expect(refused == 110 - 12)
        try stillServes(manager, counters)
    }
}

@Suite struct ManagerFuzzingEntryPointTests {
    @Test func theLibFuzzerEntryPointStartsAndServesEveryKind() throws {
        // Fuzz/'s target builds on this: a server with one object of every kind (ids 1 to 10).
        let fuzzing = try ManagerFuzzing()
        var input: [UInt8] = []
        for id in UInt64(1)...10 {
            let body = ManagerWire.encodeRequest(.waiters(object: id))
            input += [UInt8(body.count), 0] + body
        }
        input.withUnsafeBytes { fuzzing.serve($0) }
    }
}
