#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_manager_linux.h"

#include <errno.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

int cmp_manager_unsent_bytes(int fd) {
    int queued = 0;
    if (ioctl(fd, SIOCOUTQ, &queued) != 0) return -errno;
    return queued;
}
#endif
