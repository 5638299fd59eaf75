// floor.c's per-file work (statx, open with O_NOATIME, create with O_EXCL, copy, flistxattr,
// futimens, two closes) with the per-file calls batched through io_uring (liburing): a prototype
// that asks whether io_uring moves the system-call floor of a small-file copy. Same walk as floor.c
// (directories listed first, then THREADS threads take them one at a time, directory times last);
// each thread has its own ring and handles a directory's files in batches of up to BATCH, in phases,
// one io_uring_enter each:
//   1. IORING_OP_STATX and IORING_OP_OPENAT (source, O_NOATIME) for every file of the batch;
//   2. IORING_OP_OPENAT (destination, O_CREAT|O_EXCL, the mode from phase 1), with the first half
//      of the copy (COPY below);
//   3. the second half of the copy; then flistxattr and futimens as system calls (io_uring has no
//      operation for either), and the two IORING_OP_CLOSEs, which go in with the next batch's phase 1.
// COPY, the fourth argument (copy_file_range has no io_uring operation; default cfr, the fastest):
//   rw      IORING_OP_READ_FIXED into a registered buffer in phase 2, IORING_OP_WRITE_FIXED in 3
//   splice  IORING_OP_SPLICE source -> pipe in phase 2, pipe -> destination in phase 3
//   cfr     copy_file_range as a system call after phase 2 (no phase 3 in the ring)
//   direct  as rw, but both files are direct descriptors (IORING_FILE_INDEX_ALLOC in a registered
//           table, never in the process's descriptor table); flistxattr and futimens then become
//           listxattrat (Linux 6.13) and utimensat on the name, relative to the directories
// Files larger than a buffer (64 KiB) are copied with copy_file_range (direct: refused).
// Regular files and directories only, errors end the program: a peer for the "small" data set.
//
//   cc -O2 -pthread -o floor_uring floor_uring.c -luring && ./floor_uring SRC DST [THREADS] [rw|splice|cfr|direct]
// MPCP_URING_FLAGS=defer sets IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN (Linux 6.1).
// Measured (docs/benchmarks.md, "io_uring"): more system time than floor.c in every mode, because
// statx and creating opens run on io-wq worker threads; no lower floor.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_listxattrat
#define SYS_listxattrat 465 // Linux 6.13; the number is the same on every architecture
#endif

enum { BATCH = 64, BUF = 1 << 16 };
enum mode { RW, SPLICE, CFR, DIRECT };
enum op { OP_STATX, OP_OPEN_IN, OP_OPEN_OUT, OP_COPY1, OP_COPY2, OP_CLOSE };

struct dir { char *rel; struct statx st; };
static struct dir *dirs;
static size_t ndirs, capdirs;
static const char *src_root, *dst_root;
static atomic_size_t next_dir;
static enum mode mode = CFR;
static unsigned setup_flags;

static void die(const char *what, const char *path) { perror(what); fprintf(stderr, "  at %s\n", path); exit(1); }
static void die_res(const char *what, const char *path, int res) { fprintf(stderr, "%s: %s\n  at %s\n", what, strerror(-res), path); exit(1); }

static char *join(const char *a, const char *b) {
    char *p;
    if (asprintf(&p, "%s%s%s", a, *a && *b ? "/" : "", b) < 0) die("asprintf", a);
    return p;
}

// Lists the tree under `rel` (depth first), creating each directory in the destination.
static void walk(const char *rel) {
    char *s = join(src_root, rel), *d = join(dst_root, rel);
    if (ndirs == capdirs) { capdirs = capdirs ? 2 * capdirs : 1024; dirs = realloc(dirs, capdirs * sizeof *dirs); }
    struct dir *me = &dirs[ndirs++];
    me->rel = strdup(rel);
    if (statx(AT_FDCWD, s, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &me->st)) die("statx", s);
    if (mkdir(d, 0700) && *rel) die("mkdir", d);
    DIR *h = opendir(s);
    if (!h) die("opendir", s);
    struct dirent *e;
    while ((e = readdir(h))) {
        if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *sub = join(rel, e->d_name);
        walk(sub);
        free(sub);
    }
    closedir(h);
    free(s); free(d);
}

struct file { const char *name; struct statx st; int in, out; int big; };

struct worker {
    struct io_uring ring;
    char *bufs;              // BATCH buffers of BUF bytes, registered (rw)
    int pipes[BATCH][2];     // splice
    struct file files[BATCH];
    unsigned pending;        // closes submitted with the next enter, reaped later
};

static struct io_uring_sqe *sqe_for(struct worker *w, unsigned i, enum op op) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe) { // ring full: hand what is queued to the kernel first
        if (io_uring_submit(&w->ring) < 0) die("io_uring_submit", "");
        sqe = io_uring_get_sqe(&w->ring);
        if (!sqe) die("io_uring_get_sqe", "");
    }
    io_uring_sqe_set_data64(sqe, (uint64_t)i << 8 | op);
    return sqe;
}

static void openat_in_ring(struct io_uring_sqe *sqe, int dfd, const char *name, int flags, mode_t m) {
    // a direct descriptor is never in the descriptor table, and O_CLOEXEC is refused; liburing adds 1
    if (mode == DIRECT) io_uring_prep_openat_direct(sqe, dfd, name, flags & ~O_CLOEXEC, m, IORING_FILE_INDEX_ALLOC - 1);
    else io_uring_prep_openat(sqe, dfd, name, flags, m);
}

// Submits everything queued and reaps `want` completions of this phase (closes of the last batch
// complete alongside and are only checked).
static void run_phase(struct worker *w, unsigned want) {
    if (io_uring_submit_and_wait(&w->ring, want + w->pending) < 0) die("io_uring_submit_and_wait", "");
    unsigned seen = 0;
    while (seen < want || w->pending) {
        struct io_uring_cqe *cqe;
        int r = io_uring_wait_cqe(&w->ring, &cqe);
        if (r < 0) die_res("io_uring_wait_cqe", "", r);
        uint64_t data = io_uring_cqe_get_data64(cqe);
        unsigned i = (unsigned)(data >> 8);
        enum op op = (enum op)(data & 0xff);
        int res = cqe->res;
        io_uring_cqe_seen(&w->ring, cqe);
        struct file *f = &w->files[i];
        switch (op) {
        case OP_CLOSE: if (res < 0) die_res("close", "", res); w->pending--; continue;
        case OP_STATX: if (res < 0) die_res("statx", f->name, res); break;
        case OP_OPEN_IN: if (res < 0) die_res("open", f->name, res); f->in = res; break;
        case OP_OPEN_OUT: if (res < 0) die_res("create", f->name, res); f->out = res; break;
        case OP_COPY1: case OP_COPY2:
            if (res != (int)f->st.stx_size) die_res("copy (short or failed)", f->name, res < 0 ? res : -EIO);
            break;
        }
        seen++;
    }
}

static void copy_big(struct file *f) {
    loff_t a = 0, b = 0;
    for (size_t left = f->st.stx_size; left > 0;) {
        ssize_t r = copy_file_range(f->in, &a, f->out, &b, left, 0);
        if (r <= 0) { if (r < 0) die("copy_file_range", f->name); break; }
        left -= (size_t)r;
    }
}

static void copy_batch(struct worker *w, int sd, int dd, unsigned n) {
    // 1. statx and open every source
    for (unsigned i = 0; i < n; i++) {
        struct file *f = &w->files[i];
        io_uring_prep_statx(sqe_for(w, i, OP_STATX), sd, f->name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &f->st);
        openat_in_ring(sqe_for(w, i, OP_OPEN_IN), sd, f->name, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC, 0);
    }
    run_phase(w, 2 * n);
    // 2. create every destination, first half of the copy
    unsigned want = 0;
    for (unsigned i = 0; i < n; i++) {
        struct file *f = &w->files[i];
        f->big = f->st.stx_size > BUF;
        if (f->big && mode == DIRECT) die("direct mode copies files of up to 64 KiB only", f->name);
        openat_in_ring(sqe_for(w, i, OP_OPEN_OUT), dd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, f->st.stx_mode & 0777);
        want++;
        if (f->big || f->st.stx_size == 0) continue;
        if (mode == RW || mode == DIRECT) {
            struct io_uring_sqe *sqe = sqe_for(w, i, OP_COPY1);
            io_uring_prep_read_fixed(sqe, f->in, w->bufs + (size_t)i * BUF, (unsigned)f->st.stx_size, 0, 0);
            if (mode == DIRECT) sqe->flags |= IOSQE_FIXED_FILE;
            want++;
        } else if (mode == SPLICE) {
            io_uring_prep_splice(sqe_for(w, i, OP_COPY1), f->in, 0, w->pipes[i][1], -1, (unsigned)f->st.stx_size, 0);
            want++;
        }
    }
    run_phase(w, want);
    // 3. second half of the copy
    want = 0;
    for (unsigned i = 0; i < n; i++) {
        struct file *f = &w->files[i];
        if (f->big) { copy_big(f); continue; }
        if (f->st.stx_size == 0) continue;
        if (mode == RW || mode == DIRECT) {
            struct io_uring_sqe *sqe = sqe_for(w, i, OP_COPY2);
            io_uring_prep_write_fixed(sqe, f->out, w->bufs + (size_t)i * BUF, (unsigned)f->st.stx_size, 0, 0);
            if (mode == DIRECT) sqe->flags |= IOSQE_FIXED_FILE;
            want++;
        } else if (mode == SPLICE) {
            io_uring_prep_splice(sqe_for(w, i, OP_COPY2), w->pipes[i][0], -1, f->out, 0, (unsigned)f->st.stx_size, 0);
            want++;
        } else {
            copy_big(f);
        }
    }
    if (want) run_phase(w, want);
    // metadata (system calls), then the closes, which go in with the next enter
    char names[1024];
    for (unsigned i = 0; i < n; i++) {
        struct file *f = &w->files[i];
        struct timespec t[2] = {{f->st.stx_atime.tv_sec, f->st.stx_atime.tv_nsec}, {f->st.stx_mtime.tv_sec, f->st.stx_mtime.tv_nsec}};
        if (mode == DIRECT) {
            if (syscall(SYS_listxattrat, sd, f->name, AT_SYMLINK_NOFOLLOW, names, sizeof names) < 0 && errno == ENOSYS) die("listxattrat", f->name);
            if (utimensat(dd, f->name, t, AT_SYMLINK_NOFOLLOW)) die("utimensat", f->name);
            io_uring_prep_close_direct(sqe_for(w, i, OP_CLOSE), (unsigned)f->out);
            io_uring_prep_close_direct(sqe_for(w, i, OP_CLOSE), (unsigned)f->in);
        } else {
            (void)flistxattr(f->in, names, sizeof names);
            if (futimens(f->out, t)) die("futimens", f->name);
            io_uring_prep_close(sqe_for(w, i, OP_CLOSE), f->out);
            io_uring_prep_close(sqe_for(w, i, OP_CLOSE), f->in);
        }
        w->pending += 2;
    }
}

static void copy_files(struct worker *w, const struct dir *dir) {
    char *s = join(src_root, dir->rel), *d = join(dst_root, dir->rel);
    int sd = open(s, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (sd < 0 || dd < 0) die("open directory", s);
    char buf[1 << 16];
    long n;
    unsigned count = 0;
    while ((n = syscall(SYS_getdents64, sd, buf, sizeof buf)) > 0) {
        // names point into buf: every batch of this buffer is done before the next getdents64
        for (long off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (e->d_type != DT_REG) continue;
            w->files[count++].name = e->d_name;
            if (count == BATCH) { copy_batch(w, sd, dd, count); count = 0; }
        }
        if (count) { copy_batch(w, sd, dd, count); count = 0; }
    }
    close(sd); close(dd);
    free(s); free(d);
}

static void *worker(void *unused) {
    (void)unused;
    struct worker *w = calloc(1, sizeof *w);
    if (!w) die("calloc", "");
    int r = io_uring_queue_init(4 * BATCH, &w->ring, setup_flags);
    if (r < 0) die_res("io_uring_queue_init", "", r);
    if (mode == DIRECT && (r = io_uring_register_files_sparse(&w->ring, 4 * BATCH)) < 0) die_res("io_uring_register_files_sparse", "", r);
    if (mode == RW || mode == DIRECT) {
        if (posix_memalign((void **)&w->bufs, 4096, (size_t)BATCH * BUF)) die("posix_memalign", "");
        // read_fixed/write_fixed take buf_index 0 and an address inside it: one region is enough
        struct iovec all = {w->bufs, (size_t)BATCH * BUF};
        if ((r = io_uring_register_buffers(&w->ring, &all, 1)) < 0) die_res("io_uring_register_buffers", "", r);
    } else if (mode == SPLICE) {
        for (unsigned i = 0; i < BATCH; i++) {
            if (pipe2(w->pipes[i], O_CLOEXEC)) die("pipe2", "");
            (void)fcntl(w->pipes[i][0], F_SETPIPE_SZ, BUF);
        }
    }
    for (size_t i; (i = atomic_fetch_add(&next_dir, 1)) < ndirs;) copy_files(w, &dirs[i]);
    run_phase(w, 0); // the last closes
    io_uring_queue_exit(&w->ring);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s SRC DST [THREADS] [rw|splice|cfr|direct]\n", argv[0]); return 2; }
    src_root = argv[1]; dst_root = argv[2];
    int threads = argc > 3 ? atoi(argv[3]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (argc > 4) {
        if (!strcmp(argv[4], "rw")) mode = RW;
        else if (!strcmp(argv[4], "splice")) mode = SPLICE;
        else if (!strcmp(argv[4], "cfr")) mode = CFR;
        else if (!strcmp(argv[4], "direct")) mode = DIRECT;
        else { fprintf(stderr, "unknown copy mode %s (rw, splice, cfr or direct)\n", argv[4]); return 2; }
    }
    const char *flags = getenv("MPCP_URING_FLAGS");
    if (flags && !strcmp(flags, "defer")) setup_flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (mkdir(dst_root, 0700)) die("mkdir", dst_root);
    walk("");
    pthread_t t[64];
    if (threads < 1 || threads > 64) threads = 1;
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    for (size_t i = ndirs; i-- > 0;) { // children before parents
        char *d = join(dst_root, dirs[i].rel);
        struct timespec ts[2] = {{dirs[i].st.stx_atime.tv_sec, dirs[i].st.stx_atime.tv_nsec}, {dirs[i].st.stx_mtime.tv_sec, dirs[i].st.stx_mtime.tv_nsec}};
        if (chmod(d, dirs[i].st.stx_mode & 07777) || utimensat(AT_FDCWD, d, ts, 0)) die("directory metadata", d);
        free(d);
    }
    return 0;
}
