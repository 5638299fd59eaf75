#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_pool_linux.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

// The pool's SIGINT handler. Installed only while a pool call waits (counted by `users`), so a
// library never keeps the process's SIGINT; the previous action is kept and called after ours.

static pthread_mutex_t cmp_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static int cmp_pool_users = 0;
static struct sigaction cmp_pool_previous;
static atomic_int cmp_pool_fd = -1;
static atomic_ulong cmp_pool_seen = 0;

static void cmp_pool_on_sigint(int signo, siginfo_t *info, void *context) {
    int saved = errno;
    atomic_fetch_add(&cmp_pool_seen, 1);
    int fd = atomic_load(&cmp_pool_fd);
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t ignored = write(fd, &one, sizeof one);
        (void)ignored;
    }
    // Chain: a handler the program had installed still sees its SIGINT. `cmp_pool_previous` is
    // written only while this handler is not installed (the first acquire after a release), so it
    // is stable here, but for a SIGINT whose handler still runs on another thread across a release
    // and the next acquire: that one may chain to the newer previous action.
    struct sigaction previous = cmp_pool_previous;
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction != NULL) previous.sa_sigaction(signo, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != NULL) {
        previous.sa_handler(signo);
    }
    errno = saved;
}

static int cmp_pool_is_ours(const struct sigaction *action) {
    return (action->sa_flags & SA_SIGINFO) && action->sa_sigaction == cmp_pool_on_sigint;
}

int cmp_pool_sigint_acquire(int eventfd) {
    pthread_mutex_lock(&cmp_pool_lock);
    if (cmp_pool_users == 0) {
        struct sigaction current;
        if (sigaction(SIGINT, NULL, &current) != 0) {
            int error = errno;
            pthread_mutex_unlock(&cmp_pool_lock);
            return -error;
        }
        if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == SIG_IGN) {
            pthread_mutex_unlock(&cmp_pool_lock);
            return 0;
        }
        if (!cmp_pool_is_ours(&current)) cmp_pool_previous = current;
        atomic_store(&cmp_pool_fd, eventfd);
        struct sigaction ours;
        memset(&ours, 0, sizeof ours);
        ours.sa_sigaction = cmp_pool_on_sigint;
        ours.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&ours.sa_mask);
        if (sigaction(SIGINT, &ours, NULL) != 0) {
            int error = errno;
            pthread_mutex_unlock(&cmp_pool_lock);
            return -error;
        }
    }
    cmp_pool_users += 1;
    pthread_mutex_unlock(&cmp_pool_lock);
    return 1;
}

void cmp_pool_sigint_release(void) {
    pthread_mutex_lock(&cmp_pool_lock);
    if (cmp_pool_users > 0) {
        cmp_pool_users -= 1;
        if (cmp_pool_users == 0) {
            struct sigaction current;
            if (sigaction(SIGINT, NULL, &current) == 0 && cmp_pool_is_ours(&current)) {
                (void)sigaction(SIGINT, &cmp_pool_previous, NULL);
            }
        }
    }
    pthread_mutex_unlock(&cmp_pool_lock);
}

int cmp_pool_sigint_pass_on(void) {
    pthread_mutex_lock(&cmp_pool_lock);
    int raised = 0;
    if (!(cmp_pool_previous.sa_flags & SA_SIGINFO) && cmp_pool_previous.sa_handler == SIG_DFL) {
        struct sigaction current;
        if (sigaction(SIGINT, NULL, &current) == 0 && cmp_pool_is_ours(&current)) {
            (void)sigaction(SIGINT, &cmp_pool_previous, NULL);
            raised = 1;
        }
    }
    pthread_mutex_unlock(&cmp_pool_lock);
    if (raised) (void)kill(getpid(), SIGINT);
    return raised;
}

unsigned long cmp_pool_sigint_count(void) { return atomic_load(&cmp_pool_seen); }

// The CPU this thread runs on, for the direct round trip's spin: a spinner must not take the CPU
// of the thread it waits for. glibc answers from rseq or the vDSO, without a system call.
int cmp_pool_current_cpu(void) {
    int cpu = sched_getcpu();
    return cpu < 0 ? -errno : cpu;
}
#endif
