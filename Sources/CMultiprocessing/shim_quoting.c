#include "cmp_quoting.h"

#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

int cmp_mb_cur_max(void) { return (int)MB_CUR_MAX; }

int cmp_mb_char(const char *s, size_t n, int *printable) {
    mbstate_t state;
    memset(&state, 0, sizeof state);
    wchar_t w = 0;
    size_t length = mbrtowc(&w, s, n, &state);
    if (length == (size_t)-1) return -1;
    if (length == (size_t)-2) return -2;
    if (length == 0) length = 1; /* a NUL byte: not in a file name */
    *printable = iswprint((wint_t)w) != 0;
    return (int)length;
}
