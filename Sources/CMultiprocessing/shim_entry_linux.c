#if defined(__linux__)
#include <stdlib.h>

// The child runtime's entry point, defined in Swift (`@_cdecl` in Process/Bootstrap.swift). Weak, so
// that a program that links this shim without the Multiprocessing module still links.
extern void cmp_multiprocessing_enter_child(void) __attribute__((weak));

// Runs before `main` in every program that links the library, and hands a re-executed child (or
// the fork server) to the child runtime, which never returns: the child runs its task, never the
// program's `main` (nor a test runner's). A program started by a user finds neither variable and
// goes on to `main` at once. Without a priority, so that it runs after the Swift image constructor
// (swiftrt.o, linked first) has registered this executable's types and conformances.
__attribute__((constructor)) static void cmp_enter_child_before_main(void) {
    if (getenv("SWIFT_MULTIPROCESSING_CHILD") == NULL && getenv("SWIFT_MULTIPROCESSING_FORKSERVER") == NULL) return;
    if (cmp_multiprocessing_enter_child != NULL) cmp_multiprocessing_enter_child();
}
#endif
