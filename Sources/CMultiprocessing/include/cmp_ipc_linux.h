#ifndef CMP_IPC_LINUX_H
#define CMP_IPC_LINUX_H
// Connections and queues (Sources/Multiprocessing/IPC). Kept apart from cmp_linux.h so that
// branches merge without conflicts.

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

/// Writes `a` then `b` (either may be empty) with one gather call, without ever raising SIGPIPE.
/// On a socket it is `sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT)` and carries up to 64 descriptors
/// (SCM_RIGHTS) with the first byte; on a pipe it is `writev` with SIGPIPE blocked for the
/// calling thread, and a SIGPIPE raised by this write consumed before unblocking.
/// Returns the bytes written (possibly short) or -errno (EAGAIN when the descriptor is full,
/// EPIPE when the reader is gone). Retries EINTR.
ssize_t cmp_ipc_write2(int fd, bool socket, const void *a, size_t alen, const void *b, size_t blen,
                       const int *fds, int nfds);

/// Frees the pages of `[offset, offset + len)` of a memfd (fallocate PUNCH_HOLE | KEEP_SIZE).
/// 0 or -errno.
int cmp_ipc_punch_hole(int fd, int64_t offset, int64_t len);

#endif
