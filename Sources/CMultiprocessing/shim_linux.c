#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_linux.h"
#include "shim_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int cmp_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns, bool shared) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
        ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
        tsp = &ts;
    }
    int op = shared ? FUTEX_WAIT : (FUTEX_WAIT | FUTEX_PRIVATE_FLAG);
    long r = syscall(SYS_futex, word, op, expected, tsp, NULL, 0);
    return r == -1 ? -errno : 0;
}

int cmp_futex_wake(uint32_t *word, int count, bool shared) {
    int op = shared ? FUTEX_WAKE : (FUTEX_WAKE | FUTEX_PRIVATE_FLAG);
    long r = syscall(SYS_futex, word, op, count, NULL, NULL, 0);
    return r == -1 ? -errno : (int)r;
}

int cmp_set_pdeathsig(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0) == -1 ? -errno : 0; }
int cmp_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0) == -1 ? -errno : 0; }
int cmp_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, on, 0, 0, 0) == -1 ? -errno : 0; }

int cmp_pidfd_open(pid_t pid) {
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r == -1 ? -errno : (int)r;
}

int cmp_pidfd_send_signal(int pidfd, int signal) {
    long r = syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
    return r == -1 ? -errno : 0;
}

pid_t cmp_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int cmp_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bool cmp_wifexited(int status) { return WIFEXITED(status); }
int cmp_wexitstatus(int status) { return WEXITSTATUS(status); }
bool cmp_wifsignaled(int status) { return WIFSIGNALED(status); }
int cmp_wtermsig(int status) { return WTERMSIG(status); }

int cmp_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int cmp_memfd_create(const char *name, bool cloexec) {
    // Sealable: a region's size is sealed once set (shim_seal_linux.c), so no holder can shrink it.
    int fd = memfd_create(name, (cloexec ? MFD_CLOEXEC : 0) | MFD_ALLOW_SEALING);
    return fd == -1 ? -errno : fd;
}

int cmp_pipe2(int fds[2], int flags) { return pipe2(fds, flags) == -1 ? -errno : 0; }
int cmp_close_range(unsigned first, unsigned last, int flags) {
    return close_range(first, last, flags) == -1 ? -errno : 0;
}
int cmp_fcntl_getfd(int fd) { int r = fcntl(fd, F_GETFD); return r == -1 ? -errno : r; }
int cmp_fcntl_setfd(int fd, int flags) { return fcntl(fd, F_SETFD, flags) == -1 ? -errno : 0; }
int cmp_fcntl_getfl(int fd) { int r = fcntl(fd, F_GETFL); return r == -1 ? -errno : r; }
int cmp_fcntl_setfl(int fd, int flags) { return fcntl(fd, F_SETFL, flags) == -1 ? -errno : 0; }
int cmp_fcntl_dupfd_cloexec(int fd, int minimum) {
    int r = fcntl(fd, F_DUPFD_CLOEXEC, minimum);
    return r == -1 ? -errno : r;
}
int cmp_fcntl_setpipe_size(int fd, int size) {
    int r = fcntl(fd, F_SETPIPE_SZ, size);
    return r == -1 ? -errno : r;
}
int cmp_eventfd(unsigned initial, int flags) {
    int r = eventfd(initial, flags);
    return r == -1 ? -errno : r;
}

ssize_t cmp_send_with_fds(int socket, const void *buf, size_t len, const int *fds, int nfds) {
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char control[CMP_RIGHTS_SPACE];
    int attached = cmp_attach_rights(&msg, control, fds, nfds);
    if (attached != 0) return attached;
    ssize_t r;
    do { r = sendmsg(socket, &msg, MSG_NOSIGNAL); } while (r == -1 && errno == EINTR);
    return r == -1 ? -errno : r;
}

ssize_t cmp_recv_with_fds(int socket, void *buf, size_t len, int *fds, int maxfds, int *nfds) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char control[CMP_RIGHTS_SPACE];
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    *nfds = 0;
    ssize_t r;
    do { r = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); } while (r == -1 && errno == EINTR);
    if (r == -1) return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int *data = (int *)CMSG_DATA(c);
            for (int i = 0; i < count; i++) {
                if (*nfds < maxfds) fds[(*nfds)++] = data[i];
                else close(data[i]);  // more than the caller can hold: never leak
            }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        // More descriptors than the buffer holds (the kernel closed the rest) or than this process
        // could take: the ones installed belong to a message that is being refused, so close them
        // too, or each such message leaks them.
        for (int i = 0; i < *nfds; i++) close(fds[i]);
        *nfds = 0;
        return -EMSGSIZE;
    }
    return r;
}

ssize_t cmp_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len) {
    ssize_t r = copy_file_range(fd_in, (off64_t *)off_in, fd_out, (off64_t *)off_out, len, 0);
    return r == -1 ? -errno : r;
}
int cmp_fallocate(int fd, int mode, int64_t offset, int64_t len) {
    return fallocate(fd, mode, offset, len) == -1 ? -errno : 0;
}
int cmp_try_lock_exclusive(int fd) { return flock(fd, LOCK_EX | LOCK_NB) == -1 ? -errno : 0; }
int cmp_ficlone(int dest_fd, int src_fd) { return ioctl(dest_fd, FICLONE, src_fd) == -1 ? -errno : 0; }
int cmp_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags) == -1 ? -errno : 0;
}
ssize_t cmp_getdents64(int fd, void *buf, size_t count) {
    ssize_t r = getdents64(fd, buf, count);
    return r == -1 ? -errno : r;
}
int cmp_openat(int dirfd, const char *path, int flags, mode_t mode) {
    int r = openat(dirfd, path, flags, mode);
    return r == -1 ? -errno : r;
}
int cmp_seek_data(void) { return SEEK_DATA; }
int cmp_seek_hole(void) { return SEEK_HOLE; }
int cmp_o_tmpfile(void) { return O_TMPFILE; }
int cmp_o_noatime(void) { return O_NOATIME; }
unsigned cmp_rename_noreplace(void) { return RENAME_NOREPLACE; }

int cmp_statx(int dirfd, const char *path, bool follow, cmp_stat_t *out) {
    struct statx sx;
    int flags = follow ? 0 : AT_SYMLINK_NOFOLLOW;
    if (path[0] == '\0') flags |= AT_EMPTY_PATH;
    if (statx(dirfd, path, flags, STATX_BASIC_STATS, &sx) == -1) return -errno;
    out->mode = sx.stx_mode;
    out->uid = sx.stx_uid;
    out->gid = sx.stx_gid;
    out->nlink = sx.stx_nlink;
    out->ino = sx.stx_ino;
    out->size = sx.stx_size;
    out->blocks = sx.stx_blocks;
    out->dev_major = sx.stx_dev_major;
    out->dev_minor = sx.stx_dev_minor;
    out->atime_sec = sx.stx_atime.tv_sec; out->atime_nsec = sx.stx_atime.tv_nsec;
    out->mtime_sec = sx.stx_mtime.tv_sec; out->mtime_nsec = sx.stx_mtime.tv_nsec;
    out->ctime_sec = sx.stx_ctime.tv_sec; out->ctime_nsec = sx.stx_ctime.tv_nsec;
    return 0;
}
// MARK: mpcp (the copier engine)
#include <fnmatch.h>
#include <sys/xattr.h>
ssize_t cmp_flistxattr(int fd, char *list, size_t size) {
    ssize_t r = flistxattr(fd, list, size);
    return r == -1 ? -errno : r;
}
ssize_t cmp_fgetxattr(int fd, const char *name, void *value, size_t size) {
    ssize_t r = fgetxattr(fd, name, value, size);
    return r == -1 ? -errno : r;
}
int cmp_fsetxattr(int fd, const char *name, const void *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0) == -1 ? -errno : 0;
}
int cmp_fnmatch(const char *pattern, const char *string, bool pathname, bool period) {
    return fnmatch(pattern, string, (pathname ? FNM_PATHNAME : 0) | (period ? FNM_PERIOD : 0));
}
int cmp_at_empty_path(void) { return AT_EMPTY_PATH; }
int cmp_at_symlink_follow(void) { return AT_SYMLINK_FOLLOW; }
int cmp_o_path(void) { return O_PATH; }
int cmp_fadvise_sequential(int fd) { return posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) == 0 ? 0 : -EINVAL; }
#endif

int cmp_thread_count(void) {
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    // Fields after ')' start at field 3; num_threads is field 20.
    int field = 2;
    while (*p && field < 20) {
        if (*p == ' ') field++;
        p++;
    }
    return field == 20 ? atoi(p) : -1;
}

int cmp_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
              char *const argv[], char *const envp[]) {
    posix_spawnattr_t attr;
    int r = posix_spawnattr_init(&attr);
    if (r != 0) return -r;
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    r = posix_spawn(pid, path, actions, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    return -r;
}

char **cmp_environ(void) { return environ; }

// MARK: process start: children of the fork server, fresh threads, the child's channel
#include <pthread.h>
#include <sys/resource.h>

pid_t cmp_clone_sibling(void) {
    // No new stack, no TLS, no tid pointers: the child continues on a copy of this stack, like fork.
    long r = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL, NULL, 0UL);
    return r == -1 ? -errno : (pid_t)r;
}

int cmp_run_on_fresh_thread(void *(*body)(void *), void *context) {
    // The child starts with no signal blocked, as a spawned child does (a parent whose threads
    // block SIGTERM must not make its forked children immune to it); this thread, which only
    // waits, takes no signal at all, so every signal goes to the thread that runs the child.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    pthread_attr_t attr;
    int r = pthread_attr_init(&attr);
    if (r != 0) return -r;
    r = pthread_attr_setsigmask_np(&attr, &none);
    if (r != 0) { pthread_attr_destroy(&attr); return -r; }
    pthread_t thread;
    r = pthread_create(&thread, &attr, body, context);
    pthread_attr_destroy(&attr);
    if (r != 0) return -r;
    pthread_join(thread, NULL);
    return 0;
}

int cmp_move_descriptor_high(int fd) {
    int minimum = 512;
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
        && limit.rlim_cur < (rlim_t)minimum * 2) {
        minimum = (int)(limit.rlim_cur / 2);
    }
    if (fd >= minimum) {
        int flags = fcntl(fd, F_GETFD);
        if (flags == -1 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == -1) return -errno;
        return fd;
    }
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, minimum);
    if (moved == -1) return -errno;
    close(fd);
    return moved;
}

#if defined(__linux__)
// MARK: mpcp: resolving paths beneath a directory
#include <linux/openat2.h>
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
int cmp_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve) {
    // openat2 refuses a mode without O_CREAT or O_TMPFILE (EINVAL), where openat ignores it.
    bool creates = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .mode = creates ? mode : 0, .resolve = resolve };
    long r = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    return r == -1 ? -errno : (int)r;
}
uint64_t cmp_resolve_beneath(void) { return RESOLVE_BENEATH; }
uint64_t cmp_resolve_no_symlinks(void) { return RESOLVE_NO_SYMLINKS; }
unsigned cmp_rename_exchange(void) { return RENAME_EXCHANGE; }
#endif
