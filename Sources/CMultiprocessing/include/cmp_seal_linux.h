// Seals on the memfds of shared memory: a mapping whose file can shrink under it faults (SIGBUS).
#ifndef CMP_SEAL_LINUX_H
#define CMP_SEAL_LINUX_H

/// The seals that fix a region's size, which a receiver requires: F_SEAL_SHRINK | F_SEAL_GROW.
int cmp_seal_fixed_size(void);
/// Adds those seals and F_SEAL_SEAL (no more seals: F_SEAL_WRITE would make the others' writes fail) to `fd` (a memfd created with MFD_ALLOW_SEALING). 0 or -errno.
int cmp_seal_size(int fd);
/// The seals of `fd` (F_GET_SEALS), or -errno (-EINVAL: not a memfd or shmem file).
int cmp_get_seals(int fd);

#endif
