#ifndef CMP_QUOTING_H
#define CMP_QUOTING_H

#include <stddef.h>

/// MB_CUR_MAX of the current locale (a macro in C): 1 in a single-byte locale.
int cmp_mb_cur_max(void);

/// Reads the multibyte character of the current locale that starts at `s` (`n` bytes left):
/// returns its length in bytes and sets `*printable` (iswprint), or returns -1 for a byte that
/// starts no character and -2 for a character cut short by the end. `mbrtowc(3)`, whose
/// `mbstate_t` and `wint_t` Swift's Glibc module does not show.
int cmp_mb_char(const char *s, size_t n, int *printable);

#endif
