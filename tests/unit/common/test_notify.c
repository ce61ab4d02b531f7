/* common/notify.c: the datagram reaches a socket named by $NOTIFY_SOCKET, by path and in
 * the abstract namespace; no variable is a no-op; a malformed one is refused. */
#include "unit.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/notify.h"

/* A bound datagram socket at path ('@' first: abstract); -1 on failure. */
static int listen_at(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    size_t len = strlen(path);
    memcpy(addr.sun_path, path, len);
    bool abstract = path[0] == '@';
    if (abstract) {
        addr.sun_path[0] = '\0';
    }
    socklen_t addr_len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (abstract ? 0 : 1));
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, addr_len) != 0) {
        return -1;
    }
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char got[256];
    ssize_t n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
    CHECK(n >= 0);
    got[n < 0 ? 0 : n] = '\0';
    CHECK_STR(got, want);
}

static void test_path_socket(void)
{
    char dir[] = "/tmp/berth-notify-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/notify.sock", dir);
    int fd = listen_at(path);
    CHECK(fd >= 0);
    setenv("NOTIFY_SOCKET", path, 1);
    CHECK_INT(notify_send("READY=1\nSTATUS=serving"), BERTH_OK);
    expect_datagram(fd, "READY=1\nSTATUS=serving");
    CHECK_INT(notify_send("STOPPING=1"), BERTH_OK);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
    unlink(path);
    /* nobody listening any more */
    CHECK_INT(notify_send("READY=1"), BERTH_EIO);
    rmdir(dir);
}

static void test_abstract_socket(void)
{
    char name[64];
    snprintf(name, sizeof(name), "@berth-notify-test-%ld", (long)getpid());
    int fd = listen_at(name);
    CHECK(fd >= 0);
    setenv("NOTIFY_SOCKET", name, 1);
    CHECK_INT(notify_send("RELOADING=1"), BERTH_OK);
    expect_datagram(fd, "RELOADING=1");
    close(fd);
}

static void test_unset_and_malformed(void)
{
    unsetenv("NOTIFY_SOCKET");
    CHECK_INT(notify_send("READY=1"), BERTH_OK);
    setenv("NOTIFY_SOCKET", "", 1);
    CHECK_INT(notify_send("READY=1"), BERTH_OK);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    CHECK_INT(notify_send("READY=1"), BERTH_EINVAL);
    char long_path[200];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    setenv("NOTIFY_SOCKET", long_path, 1);
    CHECK_INT(notify_send("READY=1"), BERTH_EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    RUN(test_path_socket);
    RUN(test_abstract_socket);
    RUN(test_unset_and_malformed);
    return unit_report("test_notify");
}
