// The queue's header page has no C code; this file compiles its declaration, so that the C compiler
// checks the layout's static asserts with the shim, and not only when Swift imports the header.
#include "cmp_queue.h"
