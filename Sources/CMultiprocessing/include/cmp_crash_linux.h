// What a child does with the Swift runtime's crash handlers (the backtracer).
#ifndef CMP_CRASH_LINUX_H
#define CMP_CRASH_LINUX_H

#include <stdbool.h>

/// In a child made by `fork()`: puts back the default action of each crash signal (SIGSEGV,
/// SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT) whose handler is still the one installed before this
/// program's constructors ran, that is the Swift runtime's backtracer. A handler the program
/// installed later stays. Returns how many were reset.
int cmp_crash_handlers_reset_to_default(void);

#endif
