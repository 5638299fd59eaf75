#ifndef POOL_FLOOR_H
#define POOL_FLOOR_H

/// The floor under a recycled worker's cost: `count` times, one after another, fork(), _exit(0)
/// in the child and waitpid() in this process, with nothing else. Returns the wall time in
/// nanoseconds, or -errno when a fork or wait failed. `cpu_nanoseconds` receives the CPU time
/// (user and system) of this process and of the reaped children over the same span.
long long pool_fork_floor(int count, long long *cpu_nanoseconds);

#endif
