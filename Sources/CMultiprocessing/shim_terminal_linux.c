#define _GNU_SOURCE
#include <errno.h>
#include <sys/ioctl.h>
#include "cmp_terminal_linux.h"

int cmp_terminal_columns(int fd) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) != 0) return -errno;
    return size.ws_col;
}
