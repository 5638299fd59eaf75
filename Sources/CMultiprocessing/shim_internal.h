// Helpers shared by the shim's .c files; not part of the module's interface.
#ifndef CMP_SHIM_INTERNAL_H
#define CMP_SHIM_INTERNAL_H
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/// The most descriptors one message carries.
#define CMP_MAX_RIGHTS 64
/// Room for CMP_MAX_RIGHTS descriptors in a control buffer.
#define CMP_RIGHTS_SPACE CMSG_SPACE(sizeof(int) * CMP_MAX_RIGHTS)

/// Attaches `nfds` descriptors to `msg` as one SCM_RIGHTS message in `control`
/// (CMP_RIGHTS_SPACE bytes). Returns 0, or -E2BIG for more than CMP_MAX_RIGHTS.
static inline int cmp_attach_rights(struct msghdr *msg, char *control, const int *fds, int nfds) {
    if (nfds > CMP_MAX_RIGHTS) return -E2BIG;
    if (nfds <= 0) return 0;
    memset(control, 0, CMP_RIGHTS_SPACE);
    msg->msg_control = control;
    msg->msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    return 0;
}
#endif
