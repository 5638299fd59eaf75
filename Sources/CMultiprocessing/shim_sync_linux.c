#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_sync.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif

// MARK: robust lock

__thread struct cmp_robust_head *cmp_robust_thread_head;
__thread uint32_t cmp_robust_thread_tid;
static pthread_once_t cmp_atfork_once = PTHREAD_ONCE_INIT;

_Static_assert(FUTEX_TID_MASK == 0x3fffffff && FUTEX_WAITERS == 0x80000000u && EPERM == 1 && ENOSYS == 38,
               "the inline lock paths in cmp_sync.h spell these constants out");

/// The forked child's one thread has a new TID; its robust head is at the same address, but ask again.
static void cmp_robust_forget(void) { cmp_robust_thread_head = NULL; cmp_robust_thread_tid = 0; }
static void cmp_robust_install_atfork(void) { pthread_atfork(NULL, NULL, cmp_robust_forget); }

struct cmp_robust_head *cmp_robust_head_slow(void) {
    pthread_once(&cmp_atfork_once, cmp_robust_install_atfork);
    void *head = NULL;
    size_t len = 0;
    if (syscall(SYS_get_robust_list, 0, &head, &len) != 0 || head == NULL) return NULL;
    struct cmp_robust_head *h = head;
    // glibc's list expects the futex word at this offset from each node's `next` field.
    if (h->futex_offset != (long)offsetof(cmp_robust_lock, word) - (long)offsetof(cmp_robust_lock, next)) return NULL;
    cmp_robust_thread_tid = (uint32_t)syscall(SYS_gettid);
    cmp_robust_thread_head = h;
    return h;
}

uint32_t cmp_robust_tid(void) {
    if (cmp_robust_thread_head == NULL && cmp_robust_head_slow() == NULL) return (uint32_t)syscall(SYS_gettid);
    return cmp_robust_thread_tid;
}

int cmp_robust_lock_init(cmp_robust_lock *lock, bool recursive) {
    if (cmp_robust_thread_head == NULL && cmp_robust_head_slow() == NULL) return -ENOSYS;
    memset(lock, 0, sizeof(*lock));
    lock->recursive = recursive ? 1 : 0;
    return 0;
}

int cmp_robust_trylock_contended(struct cmp_robust_head *h, cmp_robust_lock *m, uint32_t tid, uint32_t old) {
    for (;;) {
        if ((old & FUTEX_TID_MASK) == tid) {
            h->list_op_pending = NULL;
            if (m->recursive) { m->count++; return 0; }
            return EDEADLK;
        }
        if ((old & FUTEX_TID_MASK) == 0) {
            // Free, or its owner died (the kernel cleared the TID and set FUTEX_OWNER_DIED).
            uint32_t desired = tid | (old & FUTEX_WAITERS);
            if (__atomic_compare_exchange_n(&m->word, &old, desired, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                cmp_robust_enqueue(h, m);
                CMP_COMPILER_BARRIER();
                h->list_op_pending = NULL;
                m->count = 1;
                return (old & FUTEX_OWNER_DIED) ? EOWNERDEAD : 0;
            }
            continue;
        }
        h->list_op_pending = NULL;
        return EBUSY;
    }
}

void cmp_robust_wake(cmp_robust_lock *m) {
    // Shared (not private): waiters may be in other processes, and the kernel's owner-death
    // wake-up is a shared one too.
    syscall(SYS_futex, &m->word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

uint32_t cmp_futex_waiters_bit(void) { return FUTEX_WAITERS; }
uint32_t cmp_futex_owner_died_bit(void) { return FUTEX_OWNER_DIED; }
uint32_t cmp_futex_tid_mask(void) { return FUTEX_TID_MASK; }

struct cmp_futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

int cmp_futex_wait2(uint32_t *word, uint32_t expected, bool shared, uint32_t *cancel_word, int64_t deadline_ns) {
    struct cmp_futex_waitv waiters[2] = {
        { .val = expected, .uaddr = (uintptr_t)word, .flags = FUTEX_32 | (shared ? 0 : FUTEX_PRIVATE_FLAG) },
        { .val = 0, .uaddr = (uintptr_t)cancel_word, .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG },
    };
    struct timespec ts, *tsp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
        ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
        tsp = &ts;
    }
    long r = syscall(SYS_futex_waitv, waiters, 2, 0, tsp, CLOCK_MONOTONIC);
    if (r >= 0) return 0;
    if (errno == EAGAIN) return 0;
    return -errno;
}

int cmp_thread_create(pthread_t *thread, size_t stack_size, void *(*start)(void *), void *arg) {
    pthread_attr_t attr;
    int r = pthread_attr_init(&attr);
    if (r != 0) return r;
    if (stack_size > 0) {
        r = pthread_attr_setstacksize(&attr, stack_size);
        if (r != 0) { pthread_attr_destroy(&attr); return r; }
    }
    r = pthread_create(thread, &attr, start, arg);
    pthread_attr_destroy(&attr);
    return r;
}

static pthread_t cmp_main_thread_id;
__attribute__((constructor)) static void cmp_record_main_thread(void) { cmp_main_thread_id = pthread_self(); }
pthread_t cmp_main_thread(void) { return cmp_main_thread_id; }

#endif
