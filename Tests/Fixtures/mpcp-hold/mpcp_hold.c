// mpcp-hold: an LD_PRELOAD library for the MPCopy tests. It holds mpcp (or its worker process) at
// a known point in the middle of a file, so that a test can signal it, kill it or change its
// source there, whatever the machine's speed or load. Tests/MPCopyTests/Support.swift builds it
// (`cc -shared`) and documents how a test uses it; nothing in the libraries knows of it.
//
// Inert unless MPCP_HOLD_PATTERN is set. Then the first data write (copy_file_range, pwrite) into
// or from a file whose path (readlink of /proc/self/fd/N) matches the fnmatch(3) pattern, after
// MPCP_HOLD_SKIP other matching paths (default 0), does its write and holds before it returns:
// the file is open and partly written. The holding process writes "PID PATH\n" once to the FIFO
// MPCP_HOLD_DIR/held. Every later matching write of that process, in any thread, holds too, until
// the hold of that process ends, which is when either
// - the FIFO MPCP_HOLD_DIR/release has a byte in it (the test made its change or killed what it
//   meant to; it keeps the FIFO open, and nobody reads the byte, so every waiter sees it),
// - or the process has finished its response to SIGINT, SIGTERM or SIGHUP: in mpcp, the thread
//   that waits for them with sigwait(3) enters sigwait again (the handler, job.cancel(), has
//   returned); in a worker process, the thread named "mpcp-cancel" returns (it stores the
//   cancellation flag after its cancel queue delivers, then ends).
// Then the held calls return their real results and mpcp carries on as it would have: a
// cancelled copy meets its cancellation flag at the next step of the file. After the hold ended,
// nothing more holds in that process.
//
// The waits are poll(2) on the release FIFO and an eventfd (for the in-process end): no timing,
// and no inotify instance, of which a user has only 128 (an earlier version waited on inotify
// and aborted if it could not get one: a held worker once died unexplained in a loaded run).
// If the hold cannot wait, it says so on stderr and lets go, and the test's own checks fail. A held thread is in an interruptible sleep, so SIGKILL ends it as it
// ends a thread in copy_file_range. mpcp blocks SIGINT, SIGTERM and SIGHUP in every thread but its
// sigwait thread, so holding a copying thread does not change how a signal is taken.
//
// FICLONE (ioctl) on a matching file fails with EOPNOTSUPP, as it does on ext4, so that a
// reflink file system also copies in steps that can be held.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

static const char *hold_pattern; // NULL: inert
static const char *hold_dir;
static long hold_skip;

// Per-process state; a fork child starts afresh (see reset_after_fork).
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int hold_ended;  // this process's hold is over: nothing holds any more
static int hold_notified;      // "PID PATH" written
static int hold_wake = -1;     // eventfd, readable once the hold ended in-process
static pid_t hold_wake_owner;  // the process hold_wake belongs to
#define HOLD_SEEN_MAX 64
static char *hold_seen[HOLD_SEEN_MAX]; // distinct matching paths, in order
static int hold_seen_count;

static void reset_after_fork(void) {
    // The parent's descriptors may be closed in the child, or their numbers reused: forget them.
    pthread_mutex_init(&hold_lock, NULL);
    atomic_store(&hold_ended, 0);
    hold_notified = 0;
    hold_wake = -1;
    hold_wake_owner = 0;
    for (int i = 0; i < hold_seen_count; i++) free(hold_seen[i]);
    hold_seen_count = 0;
}

__attribute__((constructor)) static void hold_init(void) {
    const char *pattern = getenv("MPCP_HOLD_PATTERN");
    const char *dir = getenv("MPCP_HOLD_DIR");
    if (!pattern || !*pattern || !dir || !*dir) return;
    const char *skip = getenv("MPCP_HOLD_SKIP");
    hold_skip = skip ? strtol(skip, NULL, 10) : 0;
    hold_dir = dir;
    pthread_atfork(NULL, NULL, reset_after_fork);
    hold_pattern = pattern;
}

static void *next(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "mpcp-hold: no %s after this library\n", name);
        abort();
    }
    return f;
}

// Ends this process's hold: every held thread returns, and nothing holds again.
static void end_hold(void) {
    pthread_mutex_lock(&hold_lock);
    atomic_store(&hold_ended, 1);
    if (hold_wake >= 0 && hold_wake_owner == getpid()) {
        uint64_t one = 1;
        // Never read: it stays readable for every waiter, present and later.
        ssize_t r = write(hold_wake, &one, sizeof one);
        (void)r;
    }
    pthread_mutex_unlock(&hold_lock);
}

// The path `fd` refers to, in `buffer`; false if it has none.
static int fd_path(int fd, char *buffer, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buffer, size - 1);
    if (n <= 0) return 0;
    buffer[n] = 0;
    return 1;
}

// Whether `fd`'s path matches; the path in `path`.
static int matches(int fd, char *path, size_t size) {
    return fd >= 0 && fd_path(fd, path, size) && fnmatch(hold_pattern, path, 0) == 0;
}

static void notify(const char *path) {
    char fifo[4096], line[4200];
    snprintf(fifo, sizeof fifo, "%s/held", hold_dir);
    int n = snprintf(line, sizeof line, "%d %s\n", (int)getpid(), path);
    if (n < 0 || (size_t)n >= sizeof line) n = (int)sizeof line - 1;
    // The path on one line, whatever its bytes.
    for (int i = 0; i < n - 1; i++) if (line[i] == '\n') line[i] = '?';
    line[n - 1] = '\n';
    // The test holds the FIFO open for reading, so this neither blocks nor fails.
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "mpcp-hold: cannot open %s: %s\n", fifo, strerror(errno));
        return;
    }
    ssize_t r = write(fd, line, (size_t)n);
    (void)r;
    close(fd);
}

// Holds the calling thread until this process's hold ends.
static void wait_for_end(void) {
    char release[4096];
    snprintf(release, sizeof release, "%s/release", hold_dir);
    // The test holds it open for reading and writing, so this neither blocks nor fails.
    int fifo = open(release, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fifo < 0) {
        fprintf(stderr, "mpcp-hold: cannot open %s: %s; not holding\n", release, strerror(errno));
        end_hold();
        return;
    }
    while (!atomic_load(&hold_ended)) {
        struct pollfd fds[2] = {{.fd = fifo, .events = POLLIN}, {.fd = hold_wake, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "mpcp-hold: poll: %s; not holding\n", strerror(errno));
            end_hold();
            break;
        }
        // A byte (the release), or no writer left (the test is gone): let go.
        if (fds[0].revents) { end_hold(); break; }
    }
    close(fifo);
}

// After a data write that moved bytes: hold if the hold says so.
static void maybe_hold(int out, int in) {
    if (!hold_pattern || atomic_load(&hold_ended)) return;
    char path[4096];
    if (!matches(out, path, sizeof path) && !matches(in, path, sizeof path)) return;
    pthread_mutex_lock(&hold_lock);
    int index = 0;
    while (index < hold_seen_count && strcmp(hold_seen[index], path) != 0) index++;
    if (index == hold_seen_count && hold_seen_count < HOLD_SEEN_MAX) hold_seen[hold_seen_count++] = strdup(path);
    if (index < hold_skip || atomic_load(&hold_ended)) { pthread_mutex_unlock(&hold_lock); return; }
    if (hold_wake_owner != getpid()) {
        hold_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (hold_wake < 0) {
            fprintf(stderr, "mpcp-hold: eventfd: %s; not holding\n", strerror(errno));
            atomic_store(&hold_ended, 1);
            pthread_mutex_unlock(&hold_lock);
            return;
        }
        hold_wake_owner = getpid();
    }
    int first = !hold_notified;
    hold_notified = 1;
    pthread_mutex_unlock(&hold_lock);
    if (first) notify(path);
    wait_for_end();
}

// MARK: the data calls mpcp makes (Sources/MPCopy/Engine/Performer+Data.swift)

ssize_t copy_file_range(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned flags) {
    static ssize_t (*real)(int, off_t *, int, off_t *, size_t, unsigned);
    if (!real) real = next("copy_file_range");
    ssize_t n = real(fd_in, off_in, fd_out, off_out, len, flags);
    if (n > 0) {
        int saved = errno;
        maybe_hold(fd_out, fd_in);
        errno = saved;
    }
    return n;
}

ssize_t pwrite(int fd, const void *buffer, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = next("pwrite");
    ssize_t n = real(fd, buffer, count, offset);
    if (n > 0) {
        int saved = errno;
        maybe_hold(fd, -1);
        errno = saved;
    }
    return n;
}

ssize_t pwrite64(int fd, const void *buffer, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = next("pwrite64");
    ssize_t n = real(fd, buffer, count, offset);
    if (n > 0) {
        int saved = errno;
        maybe_hold(fd, -1);
        errno = saved;
    }
    return n;
}

int ioctl(int fd, unsigned long request, ...) {
    static int (*real)(int, unsigned long, ...);
    if (!real) real = next("ioctl");
    va_list args;
    va_start(args, request);
    void *argument = va_arg(args, void *);
    va_end(args);
    if (hold_pattern && request == FICLONE) {
        char path[4096];
        if (matches(fd, path, sizeof path) || matches((int)(intptr_t)argument, path, sizeof path)) {
            errno = EOPNOTSUPP;
            return -1;
        }
    }
    return real(fd, request, argument);
}

// MARK: where a process has taken its cancellation

int sigwait(const sigset_t *set, int *signal) {
    static int (*real)(const sigset_t *, int *);
    if (!real) real = next("sigwait");
    static __thread int calls;
    // The second wait of a thread that waits for SIGINT: it has handled the first signal.
    if (hold_pattern && sigismember(set, SIGINT) == 1 && ++calls >= 2) end_hold();
    return real(set, signal);
}

struct start { void *(*body)(void *); void *argument; };

static void *started(void *p) {
    struct start s = *(struct start *)p;
    free(p);
    void *result = s.body(s.argument);
    char name[17] = {0};
    if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && strcmp(name, "mpcp-cancel") == 0) end_hold();
    return result;
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attributes, void *(*body)(void *), void *argument) {
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real) real = next("pthread_create");
    if (!hold_pattern) return real(thread, attributes, body, argument);
    struct start *s = malloc(sizeof *s);
    if (!s) return EAGAIN;
    s->body = body;
    s->argument = argument;
    int r = real(thread, attributes, started, s);
    if (r != 0) free(s);
    return r;
}
