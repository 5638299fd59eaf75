#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_ipc_linux.h"
#include "shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

ssize_t cmp_ipc_write2(int fd, bool socket, const void *a, size_t alen, const void *b, size_t blen,
                       const int *fds, int nfds) {
    struct iovec iov[2];
    int count = 0;
    if (alen > 0) { iov[count].iov_base = (void *)a; iov[count].iov_len = alen; count++; }
    if (blen > 0) { iov[count].iov_base = (void *)b; iov[count].iov_len = blen; count++; }
    ssize_t r;
    if (socket) {
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)count;
        char control[CMP_RIGHTS_SPACE];
        int attached = cmp_attach_rights(&msg, control, fds, nfds);
        if (attached != 0) return attached;
        do { r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); } while (r == -1 && errno == EINTR);
        return r == -1 ? -errno : r;
    }
    if (nfds > 0) return -EINVAL;  // descriptors travel only over a socket
    // A pipe has no MSG_NOSIGNAL: block SIGPIPE around the write, and if this write raised one
    // (EPIPE) while the thread did not block SIGPIPE itself, take it off the pending set so that
    // it never fires. (A SIGPIPE pending from before was already delivered: it was unblocked.)
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    do { r = writev(fd, iov, count); } while (r == -1 && errno == EINTR);
    int saved = errno;
    if (r == -1 && saved == EPIPE && !sigismember(&old_set, SIGPIPE)) {
        struct timespec zero = { 0, 0 };
        int s;
        do { s = sigtimedwait(&pipe_set, NULL, &zero); } while (s == -1 && errno == EINTR);
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    return r == -1 ? -saved : r;
}

int cmp_ipc_punch_hole(int fd, int64_t offset, int64_t len) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) == -1 ? -errno : 0;
}
#endif
