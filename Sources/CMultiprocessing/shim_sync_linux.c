#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_sync.h"

#include <errno.h>
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

int cmp_robust_mutex_init(pthread_mutex_t *mutex, bool recursive) {
    pthread_mutexattr_t attr;
    int r = pthread_mutexattr_init(&attr);
    if (r != 0) return -r;
    if ((r = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) == 0 &&
        (r = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) == 0 &&
        (r = pthread_mutexattr_settype(&attr, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK)) == 0) {
        r = pthread_mutex_init(mutex, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return -r;
}

uint32_t *cmp_mutex_lock_word(pthread_mutex_t *mutex) { return (uint32_t *)&mutex->__data.__lock; }
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

int cmp_atexit(void (*handler)(void)) { return atexit(handler); }
#endif
