#include "pool_floor.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long cpu_ns(int who) {
    struct rusage u;
    getrusage(who, &u);
    return ((long long)u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000LL
        + ((long long)u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000LL;
}

long long pool_fork_floor(int count, long long *cpu_nanoseconds) {
    long long cpu0 = cpu_ns(RUSAGE_SELF) + cpu_ns(RUSAGE_CHILDREN);
    long long start = now_ns();
    for (int i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid < 0) return -errno;
        if (pid == 0) _exit(0);
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) return -errno;
        }
    }
    long long elapsed = now_ns() - start;
    if (cpu_nanoseconds) *cpu_nanoseconds = cpu_ns(RUSAGE_SELF) + cpu_ns(RUSAGE_CHILDREN) - cpu0;
    return elapsed;
}
