// The C shim of swift-multiprocessing.
//
// It holds only what Swift cannot call by itself: functions that glibc declares
// under _GNU_SOURCE, variadic calls (syscall, ioctl, prctl, fcntl), and macros
// (wait status, CMSG, CPU_COUNT). Each is a plain function with a `cmp_` prefix.
// Everything else is called from Swift through Internals/Syscalls.swift.
#ifndef CMULTIPROCESSING_H
#define CMULTIPROCESSING_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#if defined(__linux__)
#include "cmp_linux.h"
#include "cmp_ipc_linux.h"
#include "cmp_sync.h"
#include "cmp_quoting.h"
#include "cmp_manager_linux.h"
#include "cmp_queue.h"
#include "cmp_pool_linux.h"
#include "cmp_terminal_linux.h"
#include "cmp_crash_linux.h"
#include "cmp_seal_linux.h"
#endif

#endif
