// An LD_PRELOAD library that makes accept(2) fail as the kernel may, for the manager's accept-loop
// tests (Tests/ManagerTests/AcceptErrorTests.swift, which builds it with `cc -shared`).
//
// MP_ACCEPT_FAULTS is a comma-separated list of errno numbers: the first accepts fail with them,
// in order. A connection's own network error (ENETDOWN, EHOSTUNREACH, EPERM, ECONNABORTED, EPROTO
// and the rest of accept(2)'s list) comes with that connection, which is gone: the library takes
// the connection with the real accept, closes it and returns the error, as Linux passes a pending
// error. A process-wide error (EMFILE, ENFILE, ENOBUFS, ENOMEM) and EINTR leave the connection
// queued: the library returns the error without accepting. A connection's error is used up only
// by an accept that found a connection (a non-blocking listener's EAGAIN uses none).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int faults[64];
static int fault_count = -1;
static atomic_int next_call;

static void load_faults(void) {
    const char *text = getenv("MP_ACCEPT_FAULTS");
    fault_count = 0;
    while (text != NULL && *text != '\0' && fault_count < 64) {
        faults[fault_count++] = atoi(text);
        text = strchr(text, ',');
        if (text != NULL) text++;
    }
}

static int leaves_connection_queued(int error) {
    return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM || error == EINTR;
}

int accept(int fd, struct sockaddr *address, socklen_t *length) {
    static int (*real_accept)(int, struct sockaddr *, socklen_t *);
    if (real_accept == NULL) real_accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    if (fault_count < 0) load_faults();
    int call = atomic_load(&next_call);
    if (call < fault_count && leaves_connection_queued(faults[call])) {
        atomic_fetch_add(&next_call, 1);
        errno = faults[call];
        return -1;
    }
    int accepted = real_accept(fd, address, length);
    if (accepted < 0) return accepted;  // nothing queued (a non-blocking listener): no fault used
    call = atomic_fetch_add(&next_call, 1);
    if (call < fault_count) {
        close(accepted);
        errno = faults[call];
        return -1;
    }
    return accepted;
}
