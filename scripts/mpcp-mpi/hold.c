// LD_PRELOAD for scripts/mpcp-mpi-tests.sh: a deterministic "midway" point in a copy. In the one
// MPI rank named by MPCP_HOLD_RANK (its OMPI_COMM_WORLD_RANK), the MPCP_HOLD_AFTER-th call of
// copy_file_range writes this process's pid to the file MPCP_HOLD_MARKER and stops the process
// (SIGSTOP) before it copies anything more; the test then disturbs the job (SIGINT to mpirun, or
// kill -9 of this rank). mpirun sends SIGCONT before SIGTERM, so a stopped rank still sees the
// signal; the held thread itself stays held after the SIGCONT (see below). Every other process,
// and this one's other calls, are untouched.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long calls;

ssize_t copy_file_range(int in, off64_t *off_in, int out, off64_t *off_out, size_t len, unsigned flags) {
    static ssize_t (*real)(int, off64_t *, int, off64_t *, size_t, unsigned);
    if (!real) real = (ssize_t (*)(int, off64_t *, int, off64_t *, size_t, unsigned))dlsym(RTLD_NEXT, "copy_file_range");
    const char *rank = getenv("OMPI_COMM_WORLD_RANK"), *want = getenv("MPCP_HOLD_RANK");
    const char *after = getenv("MPCP_HOLD_AFTER"), *marker = getenv("MPCP_HOLD_MARKER");
    if (rank && want && after && marker && strcmp(rank, want) == 0 && atomic_fetch_add(&calls, 1) + 1 == atol(after)) {
        char text[32];
        int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
        char temporary[4096];
        snprintf(temporary, sizeof temporary, "%s.tmp", marker);
        int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { (void)!write(fd, text, (size_t)n); close(fd); rename(temporary, marker); }
        raise(SIGSTOP);
        // mpirun sends SIGCONT before its SIGTERM (and, a second later by default, SIGKILL): a
        // rank resumed here must not go on copying meanwhile, or a small copy can finish before
        // the SIGTERM and the test's "midway" is gone. So this thread stays here until the rank
        // is killed (at most a minute, so that a test gone wrong cannot hang for ever); the
        // rank's other threads take the SIGTERM as usual.
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        end.tv_sec += 60;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) != 0) {}
    }
    return real(in, off_in, out, off_out, len, flags);
}
