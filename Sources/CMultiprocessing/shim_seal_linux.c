#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_seal_linux.h"

#include <errno.h>
#include <fcntl.h>

int cmp_seal_fixed_size(void) { return F_SEAL_SHRINK | F_SEAL_GROW; }

int cmp_seal_size(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1 ? -errno : 0;
}

int cmp_get_seals(int fd) {
    int r = fcntl(fd, F_GET_SEALS);
    return r == -1 ? -errno : r;
}
#endif
