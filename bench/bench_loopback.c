/*
 * The loopback limit: how fast one plain TCP stream moves bytes over
 * 127.0.0.1 on this machine, with a sender thread writing 1 MiB buffers and
 * the calling thread reading with the same buffer size the HTTP client
 * uses. Also the free-port helper the scripts use. Blocking.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench.h"
#include "common/timeutil.h"

#define SEND_CHUNK (1024 * 1024)

struct sender {
    uint16_t port;
    uint64_t total;
    enum berth_err rc;
};

static int listen_loopback(uint16_t *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static void *send_main(void *arg)
{
    struct sender *s = arg;
    struct sockaddr_in sa;
    unsigned char *buf = malloc(SEND_CHUNK);
    int fd = -1;

    s->rc = BERTH_EIO;
    if (buf == NULL) {
        s->rc = BERTH_ENOMEM;
        goto out;
    }
    bench_data_fill(1, 0, buf, SEND_CHUNK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(s->port);
    bench_sock_buffers(fd);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        goto out;
    }
    for (uint64_t sent = 0; sent < s->total;) {
        size_t n = s->total - sent < SEND_CHUNK ? (size_t)(s->total - sent) : SEND_CHUNK;
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            goto out;
        }
        sent += (uint64_t)w;
    }
    s->rc = BERTH_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return NULL;
}

enum berth_err bench_loopback_run(uint64_t total, struct bench_loopback_result *out)
{
    enum berth_err rc = BERTH_EIO;
    struct sender s = {.total = total, .rc = BERTH_EIO};
    unsigned char *buf = malloc(BENCH_RECV_BUFFER);
    int lfd = -1, fd = -1;
    bool started = false;
    pthread_t th;
    uint64_t got = 0;
    int64_t t0 = 0;

    if (buf == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    lfd = listen_loopback(&s.port);
    if (lfd < 0) {
        goto out;
    }
    if (pthread_create(&th, NULL, send_main, &s) != 0) {
        goto out;
    }
    started = true;
    do {
        fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            bench_sock_buffers(fd);
        }
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        goto out;
    }
    t0 = time_mono_ns();
    for (;;) {
        ssize_t r = read(fd, buf, BENCH_RECV_BUFFER);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            goto out;
        }
        if (r == 0) {
            break;
        }
        got += (uint64_t)r;
    }
    out->seconds = (double)(time_mono_ns() - t0) / 1e9;
    out->bytes = got;
    rc = got == total ? BERTH_OK : BERTH_EIO;
out:
    /* Close both ends first: a sender still writing then fails instead of
     * blocking the join. */
    if (fd >= 0) {
        close(fd);
    }
    if (lfd >= 0) {
        close(lfd);
    }
    if (started) {
        pthread_join(th, NULL);
        if (rc == BERTH_OK && s.rc != BERTH_OK) {
            rc = s.rc;
        }
    }
    free(buf);
    return rc;
}

enum berth_err bench_free_port(unsigned *port)
{
    uint16_t p;
    int fd = listen_loopback(&p);
    if (fd < 0) {
        return BERTH_EIO;
    }
    close(fd);
    *port = p;
    return BERTH_OK;
}
