#if defined(__linux__)
#define _GNU_SOURCE
#include "cmp_linux.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/auxv.h>

// The child runtime's entry point, defined in Swift (`@_cdecl` in Process/Bootstrap.swift). Weak, so
// that a program that links this shim without the Multiprocessing module still links.
extern void cmp_multiprocessing_enter_child(void) __attribute__((weak));

static void cmp_enter_child_before_main(void);

bool cmp_child_entry_before_main(void) {
    // The program's entry point lies in the main executable; this function lies in the image that
    // linked the shim. Only the main executable's constructors run after its own Swift image
    // constructor (swiftrt.o), which registers the program's types for `_typeByName`.
    Dl_info program, shim;
    void *entry = (void *)getauxval(AT_ENTRY);
    if (entry == NULL || dladdr(entry, &program) == 0 || dladdr((void *)&cmp_enter_child_before_main, &shim) == 0) return false;
    return program.dli_fbase == shim.dli_fbase && cmp_multiprocessing_enter_child != NULL;
}

// Runs before `main` in every program that links the library into its executable (SwiftPM's way
// for executables and test binaries), and hands a re-executed child (or the fork server) to the
// child runtime, which never returns: the child runs its task, never the program's `main` (nor a
// test runner's). A program started by a user finds neither variable and goes on to `main` at once.
// Without a priority, so that it runs after the Swift image constructor (swiftrt.o, linked first)
// has registered this executable's types and conformances. In a shared library it does nothing:
// `bootstrap()` in `main` is the way in there.
__attribute__((constructor)) static void cmp_enter_child_before_main(void) {
    if (getenv("SWIFT_MULTIPROCESSING_CHILD") == NULL && getenv("SWIFT_MULTIPROCESSING_FORKSERVER") == NULL) return;
    if (cmp_child_entry_before_main()) cmp_multiprocessing_enter_child();
}
#endif
