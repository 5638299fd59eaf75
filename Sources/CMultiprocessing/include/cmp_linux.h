#ifndef CMP_LINUX_H
#define CMP_LINUX_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <signal.h>
#include <spawn.h>
#include <time.h>

// MARK: futex (futex(2))
/// Waits while `*word == expected`. `timeout_ns < 0` waits forever; the timeout is relative.
/// Returns 0 or -errno (EAGAIN when the value differed, ETIMEDOUT, EINTR).
int cmp_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns, bool shared);
/// Wakes up to `count` waiters. Returns the number woken or -errno.
int cmp_futex_wake(uint32_t *word, int count, bool shared);

// MARK: processes
int cmp_set_pdeathsig(int signal);          // prctl(PR_SET_PDEATHSIG)
int cmp_set_thread_name(const char *name);  // prctl(PR_SET_NAME), 15 bytes kept
int cmp_set_child_subreaper(int on);        // prctl(PR_SET_CHILD_SUBREAPER)
int cmp_pidfd_open(pid_t pid);              // returns fd or -errno
int cmp_pidfd_send_signal(int pidfd, int signal); // returns 0 or -errno
pid_t cmp_gettid(void);
int cmp_cpu_count(void);                    // CPUs in this process's affinity mask

// wait status macros (wait(2))
bool cmp_wifexited(int status);
int cmp_wexitstatus(int status);
bool cmp_wifsignaled(int status);
int cmp_wtermsig(int status);

// posix_spawn file actions: closefrom is a GNU extension
int cmp_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

// MARK: descriptors
int cmp_memfd_create(const char *name, bool cloexec);   // fd or -errno
int cmp_pipe2(int fds[2], int flags);                   // 0 or -errno
int cmp_close_range(unsigned first, unsigned last, int flags);
int cmp_fcntl_getfd(int fd);
int cmp_fcntl_setfd(int fd, int flags);
int cmp_fcntl_getfl(int fd);
int cmp_fcntl_setfl(int fd, int flags);
int cmp_fcntl_dupfd_cloexec(int fd, int minimum);
int cmp_fcntl_setpipe_size(int fd, int size);
int cmp_eventfd(unsigned initial, int flags);

/// Sends `len` bytes and up to `nfds` descriptors (SCM_RIGHTS) in one sendmsg.
/// Returns bytes sent or -errno.
ssize_t cmp_send_with_fds(int socket, const void *buf, size_t len, const int *fds, int nfds);
/// Receives up to `len` bytes and up to `maxfds` descriptors, which arrive close-on-exec.
/// `*nfds` is set to the number received. Returns bytes read (0 at EOF) or -errno.
ssize_t cmp_recv_with_fds(int socket, void *buf, size_t len, int *fds, int maxfds, int *nfds);

// MARK: files
ssize_t cmp_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len);
int cmp_fallocate(int fd, int mode, int64_t offset, int64_t len);
int cmp_try_lock_exclusive(int fd);                     // flock(LOCK_EX|LOCK_NB); 0 or -errno (Swift sees struct flock)
int cmp_ficlone(int dest_fd, int src_fd);               // ioctl(FICLONE); 0 or -errno
int cmp_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags);
ssize_t cmp_getdents64(int fd, void *buf, size_t count);
int cmp_openat(int dirfd, const char *path, int flags, mode_t mode); // variadic in libc
int cmp_seek_data(void);   // SEEK_DATA
int cmp_seek_hole(void);   // SEEK_HOLE
int cmp_o_tmpfile(void);   // O_TMPFILE
int cmp_o_noatime(void);   // O_NOATIME
unsigned cmp_rename_noreplace(void); // RENAME_NOREPLACE

/// A subset of statx(2), with nanosecond times.
typedef struct {
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint32_t nlink;
    uint64_t ino;
    uint64_t size;
    uint64_t blocks;
    uint64_t dev_major;
    uint64_t dev_minor;
    int64_t atime_sec;  uint32_t atime_nsec;
    int64_t mtime_sec;  uint32_t mtime_nsec;
    int64_t ctime_sec;  uint32_t ctime_nsec;
} cmp_stat_t;
/// statx with AT_SYMLINK_NOFOLLOW when `follow` is false. 0 or -errno.
int cmp_statx(int dirfd, const char *path, bool follow, cmp_stat_t *out);

// MARK: mpcp (the copier engine): xattrs, pattern matching, flags Swift does not see
ssize_t cmp_flistxattr(int fd, char *list, size_t size);                 // bytes or -errno
ssize_t cmp_fgetxattr(int fd, const char *name, void *value, size_t size); // bytes or -errno
int cmp_fsetxattr(int fd, const char *name, const void *value, size_t size); // 0 or -errno
int cmp_fnmatch(const char *pattern, const char *string, bool pathname, bool period); // 0 = match
int cmp_at_empty_path(void);     // AT_EMPTY_PATH
int cmp_at_symlink_follow(void); // AT_SYMLINK_FOLLOW
int cmp_o_path(void);            // O_PATH
int cmp_fadvise_sequential(int fd); // posix_fadvise(POSIX_FADV_SEQUENTIAL); 0 or -errno

#endif

// MARK: process start
/// Number of threads in this process (from /proc/self/stat), or -1 if unknown.
int cmp_thread_count(void);
/// posix_spawn with the process's signal mask and default signal dispositions reset in the child.
int cmp_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
              char *const argv[], char *const envp[]);
char **cmp_environ(void);

// MARK: process start: children of the fork server, fresh threads, the child's channel
/// clone(CLONE_PARENT | SIGCHLD): a fork whose child is a child of this process's parent (the fork
/// server's children belong to the program that asked for them). The child's thread keeps the
/// forking thread's thread-local state (glibc's and Swift's cached thread ids): run nothing there
/// but `cmp_run_on_fresh_thread`. Returns 0 in the child, the pid in this process, or -errno.
pid_t cmp_clone_sibling(void);
/// Runs `body(context)` on a new pthread, whose thread-local state is its own and whose signal
/// mask is empty, and waits for it with every signal blocked. Returns 0 after the thread ends, or
/// -errno when it cannot start.
int cmp_run_on_fresh_thread(void *(*body)(void *), void *context);
/// Moves `fd` to a high descriptor number (512, or half the RLIMIT_NOFILE soft limit when that is
/// lower), close-on-exec, and closes the old number. Returns the new descriptor or -errno.
int cmp_move_descriptor_high(int fd);

// MARK: mpcp: resolving paths beneath a directory
/// openat2(2) with `resolve` (RESOLVE_* flags), O_CLOEXEC added: a descriptor or -errno
/// (-ENOSYS where the kernel is older than 5.6).
int cmp_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve);
uint64_t cmp_resolve_beneath(void);     // RESOLVE_BENEATH
uint64_t cmp_resolve_no_symlinks(void); // RESOLVE_NO_SYMLINKS
unsigned cmp_rename_exchange(void);     // RENAME_EXCHANGE (for the tests' races)

// MARK: process start: entering a child before main (shim_entry_linux.c)
/// Whether the shim's constructor hands a re-executed child to the child runtime before `main`:
/// true when the shim is linked into the main executable (not a shared library) together with the
/// Multiprocessing module.
bool cmp_child_entry_before_main(void);
