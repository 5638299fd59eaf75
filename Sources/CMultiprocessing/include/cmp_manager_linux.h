#ifndef CMP_MANAGER_LINUX_H
#define CMP_MANAGER_LINUX_H
// What the manager module (Sources/MultiprocessingManager) needs that Swift cannot call. Kept
// apart from the other headers so that branches merge without conflicts.

/// The bytes this socket has sent that its peer has not read yet (ioctl SIOCOUTQ), or -errno.
/// For a Unix stream socket it falls to 0 once the peer has read everything.
int cmp_manager_unsent_bytes(int fd);

#endif
