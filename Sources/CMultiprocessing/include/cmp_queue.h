// The header page of a queue's shared memory (Swift: IPC/QueueStorage.swift), declared here so
// that its layout is one declaration with checked offsets, not numbers spread through the code.
// Every process that maps a queue reads this header, possibly built by another binary of the same
// library: the offsets are part of the format (magic "MPQ2") and must not move without a new magic.
#ifndef CMP_QUEUE_H
#define CMP_QUEUE_H

#include <stdint.h>
#include <stddef.h>
#include "cmp_sync.h"

/// Where the live records are, and the counts. The header holds two: the ring itself, and the
/// journal's copy of the ring a commit is about to apply (QueueStorage.commit).
typedef struct {
    uint64_t head;        // offset in the data area of the oldest record
    uint64_t tail;        // offset just past the newest record
    uint64_t count;       // items; read without the lock (qsize), so stored atomically
    uint64_t unfinished;  // JoinableQueue: items put and not yet taskDone; read without the lock too
    uint64_t live;        // bytes of live records, their 8-byte record headers included
    uint64_t wrap;        // where the records below the head end, or UINT64_MAX when not wrapped
} cmp_queue_ring;

/// A condition: a sequence word that a waiter sleeps on (futex) and a count of its sleepers, alone
/// on a cache line so that the three conditions don't share one.
typedef struct {
    uint32_t sequence;
    uint32_t waiters;
    uint8_t reserved[56];
} cmp_queue_condition;

/// The first bytes of the 4 KiB header page. Everything after `lock` is guarded by it, but for
/// the words that are read or waited on without it (closed, ring counts, the conditions).
typedef struct {
    cmp_robust_lock lock;
    uint8_t lock_reserved[64 - sizeof(cmp_robust_lock)];
    uint32_t magic;                 // "MPQ2"
    uint32_t flags;                 // bit 0: joinable
    uint64_t capacity;              // bytes in the data area, which starts at 4096
    uint64_t maxsize;               // items, 0 for no limit
    uint64_t maximum_message_size;
    uint64_t gets;                  // gets completed, ever: the progress a paced put waits for
    uint64_t unpaced_at;            // `gets` when a paced put last saw no get for the pacing wait
    uint8_t reserved0[16];
    cmp_queue_ring ring;
    uint32_t closed;
    uint32_t reserved1;
    uint64_t high_water;            // end of the highest byte written since memory was given back
    uint64_t journal_valid;         // 1 while `journal` holds a decided commit not yet applied
    cmp_queue_ring journal;
    uint64_t reserved2;
    cmp_queue_condition not_empty;
    cmp_queue_condition not_full;
    cmp_queue_condition all_done;   // JoinableQueue.join
} cmp_queue_header;

// The layout as docs/queues.md and QueueStorage.swift describe it; a change here changes the format.
_Static_assert(sizeof(cmp_robust_lock) <= 64, "the robust lock fits its 64 bytes");
_Static_assert(offsetof(cmp_queue_header, lock) == 0, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, magic) == 64, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, flags) == 68, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, capacity) == 72, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, maxsize) == 80, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, maximum_message_size) == 88, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, gets) == 96, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, unpaced_at) == 104, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, ring) == 128, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, ring.count) == 144, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, ring.unfinished) == 152, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, closed) == 176, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, high_water) == 184, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, journal_valid) == 192, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, journal) == 200, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, not_empty) == 256, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, not_empty.waiters) == 260, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, not_full) == 320, "queue header layout");
_Static_assert(offsetof(cmp_queue_header, all_done) == 384, "queue header layout");
_Static_assert(sizeof(cmp_queue_ring) == 48 && sizeof(cmp_queue_condition) == 64, "queue header layout");
_Static_assert(sizeof(cmp_queue_header) == 448, "the queue header fits its 4 KiB page");

#endif
