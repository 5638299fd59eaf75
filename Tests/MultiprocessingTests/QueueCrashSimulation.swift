import Glibc
@testable import Multiprocessing
import MultiprocessingSystem

/// Where ``QueueStorage/dieWhileHolding(_:)`` kills its process.
enum QueueCrashPoint: CaseIterable, Sendable {
    /// Halfway through copying a new record in: nothing committed.
    case midPut
    /// Halfway through copying the oldest record out: nothing committed.
    case midGet
    /// After a get's journal is marked valid, before it is fully applied.
    case midGetCommit
}

// Test code, not the library's: the library has no hook that makes it crash. These take the same
// low-level steps as the library's put, get and commit (through @testable access to the storage),
// and stop halfway by SIGKILL, as a process killed there would.
extension QueueStorage {
    /// Takes the mutex, does part of a put or get, and kills this process with SIGKILL at `point`.
    /// For a forked test child: it allocates nothing and takes no other lock.
    func dieWhileHolding(_ point: QueueCrashPoint) -> Never {
        _ = system_robustTryLock(mutex.mutex)
        let current = ring
        switch point {
        case .midPut:
            // A record header and the first bytes of its body, past the tail; the ring not moved.
            if let (offset, _) = place(100 + QueueStorage.recordHeaderSize, in: current) {
                let target = data + offset
                target.storeBytes(of: (UInt64(100) | (UInt64(1) << 56)).littleEndian, as: UInt64.self)
                (target + 8).storeBytes(of: UInt64(0xDEAD_BEEF), as: UInt64.self)
            }
        case .midGet:
            // Part of the oldest record copied out; the head not moved.
            var scratch: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &scratch) {
                $0.copyMemory(from: UnsafeRawBufferPointer(start: data + Int(current.head), count: 16))
            }
        case .midGetCommit:
            // The get's new ring decided (journal valid) and applied in part: the head only.
            let header = UInt64(littleEndian: (data + Int(current.head)).loadUnaligned(as: UInt64.self))
            let recordSize = UInt64(QueueStorage.recordHeaderSize) + (header & 0x00FF_FFFF_FFFF_FFFF)
            var next = current
            next.count -= 1
            next.live -= recordSize
            next.head += recordSize
            if next.count == 0 { next.head = 0; next.tail = 0; next.wrap = QueueStorage.noWrap }
            storeRing(next, in: .journal)
            self.header.journalValid.store(1)
            self.header.fields.pointee.ring.head = next.head
        }
        // A real SIGKILL, as from `kill -9`: the kernel marks the robust mutex's owner dead.
        _ = kill(getpid(), SIGKILL)
        system__exit(1)  // not reached: the test expects death by signal 9
    }

    /// Bytes of memory the queue's memfd holds now (its allocated blocks).
    var residentBytes: Int {
        (try? system_allocatedBytes(region.fd)) ?? -1
    }
}
