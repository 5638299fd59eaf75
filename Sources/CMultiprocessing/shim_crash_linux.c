#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_crash_linux.h"

#include <signal.h>
#include <stddef.h>

// The crash signals the Swift runtime's backtracer catches (swift/stdlib/public/runtime/
// CrashHandlerLinux.cpp).
static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT };
#define CRASH_SIGNAL_COUNT (sizeof crash_signals / sizeof crash_signals[0])

// The handler of each, as it was when this executable's constructors ran: the libraries it
// depends on (libswiftCore among them, which installs the backtracer in a static initializer)
// have been initialized by then, the program's own code has not run.
static void *installed_at_load[CRASH_SIGNAL_COUNT];

__attribute__((constructor)) static void cmp_crash_handlers_record(void) {
    for (size_t i = 0; i < CRASH_SIGNAL_COUNT; i++) {
        struct sigaction current;
        if (sigaction(crash_signals[i], NULL, &current) != 0) continue;
        void *handler = (current.sa_flags & SA_SIGINFO) ? (void *)current.sa_sigaction : (void *)current.sa_handler;
        if (handler != (void *)SIG_DFL && handler != (void *)SIG_IGN) installed_at_load[i] = handler;
    }
}

int cmp_crash_handlers_reset_to_default(void) {
    int reset = 0;
    for (size_t i = 0; i < CRASH_SIGNAL_COUNT; i++) {
        if (installed_at_load[i] == NULL) continue;
        struct sigaction current;
        if (sigaction(crash_signals[i], NULL, &current) != 0) continue;
        void *handler = (current.sa_flags & SA_SIGINFO) ? (void *)current.sa_sigaction : (void *)current.sa_handler;
        if (handler != installed_at_load[i]) continue;
        struct sigaction fallback = { 0 };
        fallback.sa_handler = SIG_DFL;
        sigemptyset(&fallback.sa_mask);
        if (sigaction(crash_signals[i], &fallback, NULL) == 0) reset++;
    }
    return reset;
}
#endif
