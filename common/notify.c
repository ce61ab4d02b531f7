/*
 * sd_notify(3)'s protocol by hand: berth needs only to send a few states, which is one
 * sendto() of a datagram to the socket systemd names in $NOTIFY_SOCKET.
 */
#include "common/notify.h"

#include "common/str.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum berth_err notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || *path == '\0') {
        return BERTH_OK;
    }
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof(addr.sun_path)) {
        return BERTH_EINVAL;
    }
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@') {
        addr.sun_path[0] = '\0'; /* the abstract namespace: no terminating NUL in the length */
    }
    socklen_t addr_len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return BERTH_EIO;
    }
    ssize_t sent;
    do {
        sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
    } while (sent < 0 && errno == EINTR);
    close(fd);
    return sent == (ssize_t)strlen(state) ? BERTH_OK : BERTH_EIO;
}

bool notify_watchdog_usec(uint64_t *usec)
{
    const char *v = getenv("WATCHDOG_USEC");
    uint64_t n;
    if (v == NULL || str_parse_u64(v, UINT64_MAX, &n) != BERTH_OK || n == 0) {
        return false;
    }
    const char *pid = getenv("WATCHDOG_PID");
    uint64_t p;
    if (pid != NULL && *pid != '\0' &&
        (str_parse_u64(pid, UINT64_MAX, &p) != BERTH_OK || p != (uint64_t)getpid())) {
        return false;
    }
    *usec = n;
    return true;
}
