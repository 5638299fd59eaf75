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

// MARK: robust process-shared mutex
/// Initialises a robust (PTHREAD_MUTEX_ROBUST), process-shared mutex in place: error-checking
/// (relocking from the owner gives EDEADLK) or recursive. 0 or -errno.
int cmp_robust_mutex_init(pthread_mutex_t *mutex, bool recursive);
/// The kernel-visible futex word of a glibc mutex (`__data.__lock`): owner TID | FUTEX_WAITERS | FUTEX_OWNER_DIED.
uint32_t *cmp_mutex_lock_word(pthread_mutex_t *mutex);
/// The recursion count of a mutex (`__data.__count`); read only by its owner.
static inline uint32_t cmp_mutex_count(pthread_mutex_t *mutex) { return (uint32_t)mutex->__data.__count; }
uint32_t cmp_futex_waiters_bit(void);     // FUTEX_WAITERS
uint32_t cmp_futex_owner_died_bit(void);  // FUTEX_OWNER_DIED
uint32_t cmp_futex_tid_mask(void);        // FUTEX_TID_MASK

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
/// Registers `handler` with atexit(3). 0 or -1.
int cmp_atexit(void (*handler)(void));

#endif
