#ifndef CMP_TERMINAL_LINUX_H
#define CMP_TERMINAL_LINUX_H

/// The width in columns of the terminal on `fd` (`ioctl(TIOCGWINSZ)`, which Swift cannot call:
/// `ioctl` is variadic): > 0, 0 when the terminal reports none, or -errno (ENOTTY off a terminal).
int cmp_terminal_columns(int fd);

#endif
