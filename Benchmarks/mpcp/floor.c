// The raw system-call floor of a small-file copy: the calls mpcp makes for each file of a new tree
// (statx, open with O_NOATIME, create, copy_file_range, flistxattr, futimens, two closes), in C, with no
// scheduling, no error reporting and no safety beyond O_EXCL. Directories are listed first (one
// thread), then THREADS threads take them one at a time and copy their files; directory times are
// set last. Regular files and directories only: a peer for the "small" data set, not a tool.
//
//   cc -O2 -pthread -o floor floor.c && ./floor SRC DST [THREADS]
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

struct dir { char *rel; struct statx st; };
static struct dir *dirs;
static size_t ndirs, capdirs;
static const char *src_root, *dst_root;
static atomic_size_t next_dir;

static void die(const char *what, const char *path) { perror(what); fprintf(stderr, "  at %s\n", path); exit(1); }

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

static void copy_files(const struct dir *dir) {
    char *s = join(src_root, dir->rel), *d = join(dst_root, dir->rel);
    int sd = open(s, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dd = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (sd < 0 || dd < 0) die("open directory", s);
    char buf[1 << 16], names[1024];
    long n;
    while ((n = syscall(SYS_getdents64, sd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (e->d_type != DT_REG) continue;
            struct statx st;
            if (statx(sd, e->d_name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st)) die("statx", e->d_name);
            int in = openat(sd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC);
            int out = openat(dd, e->d_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.stx_mode & 0777);
            if (in < 0 || out < 0) die("open", e->d_name);
            loff_t a = 0, b = 0;
            for (size_t left = st.stx_size; left > 0;) {
                ssize_t r = copy_file_range(in, &a, out, &b, left, 0);
                if (r <= 0) { if (r < 0) die("copy_file_range", e->d_name); break; }
                left -= (size_t)r;
            }
            (void)flistxattr(in, names, sizeof names);
            struct timespec t[2] = {{st.stx_atime.tv_sec, st.stx_atime.tv_nsec}, {st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec}};
            if (futimens(out, t)) die("futimens", e->d_name);
            close(out);
            close(in);
        }
    }
    close(sd); close(dd);
    free(s); free(d);
}

static void *worker(void *unused) {
    (void)unused;
    for (size_t i; (i = atomic_fetch_add(&next_dir, 1)) < ndirs;) copy_files(&dirs[i]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s SRC DST [THREADS]\n", argv[0]); return 2; }
    src_root = argv[1]; dst_root = argv[2];
    int threads = argc > 3 ? atoi(argv[3]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
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
