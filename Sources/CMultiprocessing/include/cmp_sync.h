// Synchronisation support for Sync/ and Threads/: atomics on shared memory, the robust
// process-shared mutex, futex_waitv and pthread helpers.
#ifndef CMP_SYNC_H
#define CMP_SYNC_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <pthread.h>

// MARK: atomics on raw (shared) memory
// Swift's `Atomic` cannot be laid over memory another process mapped, so the primitives use these.
// They are `static inline`: Clang compiles them into the Swift module and they inline to one instruction.
// The package's one family of atomics on raw memory (the futex words of OneShot, the blocking
// bridge, the manager's waits go through system_atomicLoad/Store/Add over these). All are
// sequentially consistent: a superset of the acquire/release pairs a futex flag needs (set the
// word, then wake; the waiter loads it, then reads what the setter wrote), and on x86-64 a load
// costs a plain move either way; only a store becomes an xchg.
static inline uint32_t cmp_atomic_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void cmp_atomic_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t cmp_atomic_add32(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t cmp_atomic_sub32(uint32_t *p, uint32_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t cmp_atomic_or32(uint32_t *p, uint32_t v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t cmp_atomic_exchange32(uint32_t *p, uint32_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
/// Returns true when `*p` held `*expected` and now holds `desired`; otherwise `*expected` gets the current value.
static inline bool cmp_atomic_cas32(uint32_t *p, uint32_t *expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint64_t cmp_atomic_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void cmp_atomic_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t cmp_atomic_add64(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t cmp_atomic_exchange64(uint64_t *p, uint64_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline bool cmp_atomic_cas64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint16_t cmp_atomic_load16(const uint16_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void cmp_atomic_store16(uint16_t *p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint16_t cmp_atomic_exchange16(uint16_t *p, uint16_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline bool cmp_atomic_cas16(uint16_t *p, uint16_t *expected, uint16_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint8_t cmp_atomic_load8(const uint8_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void cmp_atomic_store8(uint8_t *p, uint8_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint8_t cmp_atomic_exchange8(uint8_t *p, uint8_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline bool cmp_atomic_cas8(uint8_t *p, uint8_t *expected, uint8_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

// MARK: robust lock
/// A robust lock word in shared memory, registered in the kernel's robust-futex list of the thread
/// that holds it, so that the kernel marks it (FUTEX_OWNER_DIED) and wakes a waiter when that thread
/// dies. It speaks glibc's robust-list protocol (the list is glibc's per-thread list, shared with
/// glibc's own robust mutexes), laid out like glibc's `pthread_mutex_t` where that protocol looks:
/// the futex word first and the `{prev, next}` list node at the same offset as `__data.__list`.
/// Unlike `pthread_mutex_trylock`, the uncontended path is a handful of instructions.
typedef struct {
    uint32_t word;       // owner TID | FUTEX_WAITERS | FUTEX_OWNER_DIED
    uint32_t count;      // recursion depth, read and written by the owner only
    uint32_t recursive;  // 1 for a re-entrant lock
    uint32_t unused[3];
    void *prev;          // robust-list node: same place as pthread_mutex_t.__data.__list
    void *next;
    uint64_t reserved;
} cmp_robust_lock;

/// Initialises a lock in place (zeroed memory is an unlocked, non-recursive lock). 0 or -errno
/// (-ENOSYS when this thread has no robust list, -ENOTSUP when glibc's list layout differs).
int cmp_robust_lock_init(cmp_robust_lock *lock, bool recursive);
/// The calling thread's kernel TID (cached per thread, reset in a forked child).
uint32_t cmp_robust_tid(void);
uint32_t cmp_futex_waiters_bit(void);     // FUTEX_WAITERS
uint32_t cmp_futex_owner_died_bit(void);  // FUTEX_OWNER_DIED
uint32_t cmp_futex_tid_mask(void);        // FUTEX_TID_MASK

/// The kernel's robust-list head (robust_list_head in linux/futex.h), which glibc keeps per thread.
struct cmp_robust_head {
    void *list;
    long futex_offset;
    void *list_op_pending;
};

/// This thread's robust-list head and TID, set on first use (and forgotten in a forked child).
extern __thread struct cmp_robust_head *cmp_robust_thread_head;
extern __thread uint32_t cmp_robust_thread_tid;
struct cmp_robust_head *cmp_robust_head_slow(void);
int cmp_robust_trylock_contended(struct cmp_robust_head *h, cmp_robust_lock *m, uint32_t tid, uint32_t old);
void cmp_robust_wake(cmp_robust_lock *m);

#define CMP_COMPILER_BARRIER() __asm__ __volatile__("" ::: "memory")

/// Inserts the lock at the front of this thread's robust list (glibc's ENQUEUE_MUTEX).
static inline void cmp_robust_enqueue(struct cmp_robust_head *h, cmp_robust_lock *m) {
    char *first = (char *)((uintptr_t)h->list & ~(uintptr_t)1);
    ((cmp_robust_lock *)(first - offsetof(cmp_robust_lock, next)))->prev = &m->next;
    m->next = h->list;
    m->prev = &h->list;
    CMP_COMPILER_BARRIER();
    h->list = &m->next;
}

/// Unlinks the lock from this thread's robust list (glibc's DEQUEUE_MUTEX).
static inline void cmp_robust_dequeue(cmp_robust_lock *m) {
    char *next = (char *)((uintptr_t)m->next & ~(uintptr_t)1);
    char *prev = (char *)((uintptr_t)m->prev & ~(uintptr_t)1);
    // The node's struct starts one pointer before `next`, at `prev` (glibc's QUEUE_PTR_ADJUST).
    *(void **)(next - (offsetof(cmp_robust_lock, next) - offsetof(cmp_robust_lock, prev))) = m->prev;
    *(void **)prev = m->next;
    CMP_COMPILER_BARRIER();
    m->prev = NULL;
    m->next = NULL;
}

/// Takes the lock without waiting: 0, EBUSY, EOWNERDEAD (taken; the previous owner died), EDEADLK
/// (already held by the caller, not recursive), or ENOSYS. Inline: the uncontended path is a
/// compare-and-swap and a few stores.
static inline int cmp_robust_trylock(cmp_robust_lock *m) {
    struct cmp_robust_head *h = cmp_robust_thread_head;
    if (__builtin_expect(h == NULL, 0)) {
        h = cmp_robust_head_slow();
        if (h == NULL) return 38; // ENOSYS
    }
    uint32_t tid = cmp_robust_thread_tid;
    // Announce the operation first: if this thread dies between the CAS and the enqueue, the
    // kernel still finds the lock through list_op_pending.
    h->list_op_pending = &m->next;
    CMP_COMPILER_BARRIER();
    uint32_t old = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(&m->word, &old, tid, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 1)) {
        cmp_robust_enqueue(h, m);
        CMP_COMPILER_BARRIER();
        h->list_op_pending = NULL;
        m->count = 1;
        return 0;
    }
    return cmp_robust_trylock_contended(h, m, tid, old);
}

/// Releases one level: 0, or EPERM when the caller does not hold it. Wakes one waiter if any.
static inline int cmp_robust_unlock(cmp_robust_lock *m) {
    struct cmp_robust_head *h = cmp_robust_thread_head;
    uint32_t word = __atomic_load_n(&m->word, __ATOMIC_RELAXED);
    if (__builtin_expect(h == NULL || (word & 0x3fffffffu) != cmp_robust_thread_tid, 0)) return 1; // EPERM
    if (m->count > 1) { m->count--; return 0; }
    m->count = 0;
    h->list_op_pending = &m->next;
    CMP_COMPILER_BARRIER();
    cmp_robust_dequeue(m);
    CMP_COMPILER_BARRIER();
    uint32_t old = __atomic_exchange_n(&m->word, 0, __ATOMIC_RELEASE);
    CMP_COMPILER_BARRIER();
    h->list_op_pending = NULL;
    if (__builtin_expect((old & 0x80000000u) != 0, 0)) cmp_robust_wake(m);   // FUTEX_WAITERS
    return 0;
}

/// A pause for spin-waits (x86 `pause`, arm `yield`).
static inline void cmp_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// MARK: futex_waitv (Linux 5.16)
/// Waits on `word` (while it holds `expected`; `shared` selects a process-shared futex) and on the
/// private `cancel_word` (while it holds 0) at once. `deadline_ns < 0` waits forever; otherwise it is an
/// absolute CLOCK_MONOTONIC time. Returns 0 (woken, or a value differed), or -errno (ETIMEDOUT, EINTR).
int cmp_futex_wait2(uint32_t *word, uint32_t expected, bool shared, uint32_t *cancel_word, int64_t deadline_ns);

// MARK: threads
/// pthread_create with a C entry point; `stack_size` 0 keeps the default. 0 or the error number.
int cmp_thread_create(pthread_t *thread, size_t stack_size, void *(*start)(void *), void *arg);
/// The pthread of the main thread, recorded by a load-time constructor.
pthread_t cmp_main_thread(void);

#endif
