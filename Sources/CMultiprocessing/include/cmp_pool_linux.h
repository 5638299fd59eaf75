#ifndef CMP_POOL_LINUX_H
#define CMP_POOL_LINUX_H
// What the process pool's interrupt handling (Sources/Multiprocessing/Pool/PoolInterrupts.swift)
// needs that Swift cannot do: a SIGINT handler, which must run no Swift code. Kept apart from the
// other headers so that branches merge without conflicts.

/// Installs the pool's SIGINT handler, or counts one more user of it. The handler adds one to
/// `eventfd` (which the pool's watcher thread reads) and then calls the handler that was installed
/// before it, if that was a function. Returns 1 when the handler is in place, 0 when SIGINT was
/// ignored (SIG_IGN: the program, or the shell that started it in the background, wants no
/// interrupt, and the disposition is left alone), or -errno.
int cmp_pool_sigint_acquire(int eventfd);

/// One user fewer; the last one puts the previous disposition back, unless other code replaced
/// the pool's handler meanwhile (then that code's handler is left in place).
void cmp_pool_sigint_release(void);

/// For a SIGINT that no pool call took (it came just as the last call ended, or a second time while
/// the pool stops): when the previous disposition was the default, puts it back and raises SIGINT
/// again, so the process ends as it would have without the pool. Returns 1 if it raised it.
int cmp_pool_sigint_pass_on(void);

/// How many SIGINTs the pool's handler has seen in this process.
unsigned long cmp_pool_sigint_count(void);

/// The CPU the calling thread runs on now (`sched_getcpu`), or -errno.
int cmp_pool_current_cpu(void);

#endif
