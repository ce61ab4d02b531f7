/*
 * berth-storm: a pull storm, as a DaemonSet rollout makes one: every node
 * pulls the same image at once. Pushes one image (a layer of --layer-mib
 * MiB of random bytes, a config, an OCI manifest), then runs --waves waves
 * of --clients clients. Each client opens its own connection, from its own
 * loopback source address (127.1.x.y: Linux routes all of 127/8 to lo, so
 * each client looks like another node), and pulls as docker does: HEAD
 * manifest, GET manifest, GET config, GET layer, on that keep-alive
 * connection (a new one when the server closes it). A wave starts when the
 * previous one has ended and --wave-gap-ms more have passed. Every
 * response is checked (status, digest header, manifest and config byte for
 * byte, the whole layer against the bytes that were pushed). There are no
 * retries: a pull that fails counts as failed.
 *
 * Meanwhile another thread, from another address (127.2.0.1), sends a HEAD
 * of the manifest on a new connection every --probe-ms and times it: what
 * any other client of the registry sees during the storm. With
 * --probe-keepalive it sends them all on one connection, opened before the
 * storm, as a client that keeps its connections (Go's, containerd's) does:
 * one the server closed while it was idle is seen closed before the next
 * HEAD and opened again (counted as a reconnect), not sent on.
 *
 * One thread drives every storm connection with epoll; its memory is the
 * expected layer plus a few KiB per client. With --pid, the server's peak
 * RSS (VmHWM) is read at the end. With --basic KEY:SECRET every request (the
 * setup push, the storm's, the probe's) carries that credential as HTTP
 * Basic authorization, as `docker login` with an access key makes docker
 * send it; the report counts the answers by status, so a refusal of the
 * valid credential (a 401 or 403) shows by number. The report is a table
 * line on stdout and JSON with --json-file. Exit status 0 when every pull and every probe
 * succeeded, 1 otherwise, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"
#include "common/base64.h"
#include "common/rand.h"
#include "common/str.h"

#define STORM_MAX_CLIENTS 20000
#define STORM_HEAD_MAX 4096
#define STORM_DOC_MAX 2048
#define STORM_REQ_MAX 1024
#define STORM_CHUNK (256 * 1024)
#define STORM_ERRORS_SHOWN 10
#define STORM_SLOW_SHOWN 10                    /* slow probes listed on stdout (all in the JSON) */
#define STORM_PROBE_BOUND_NS (50 * 1000000ULL) /* the bound on a HEAD */

enum cstate { C_IDLE, C_CONNECTING, C_SENDING, C_HEAD, C_BODY, C_DONE };

enum fail_kind { F_CONNECT, F_TRANSPORT, F_STATUS, F_CHECK, F_TIMEOUT, F_COUNT };
static const char *const fail_names[F_COUNT] = {"connect", "transport", "status", "check",
                                                "timeout"};

struct conn {
    int fd;
    enum cstate state;
    int step; /* 0 HEAD manifest, 1 GET manifest, 2 GET config, 3 GET layer */
    struct in_addr src;
    int64_t start_ns;
    char req[STORM_REQ_MAX];
    size_t req_len, req_off;
    char head[STORM_HEAD_MAX];
    size_t head_len;
    int status;
    bool close_after;
    uint64_t body_want, body_got;
    char doc[STORM_DOC_MAX]; /* manifest or config body */
    char digest[80];         /* Docker-Content-Digest of the HEAD */
    bool ok;
};

struct storm {
    struct sockaddr_in server;
    char hostport[300];
    struct bench_image img;
    unsigned char *layer; /* the expected layer bytes */
    size_t clients, waves, addresses;
    long timeout_s;
    long gap_ms; /* pause between waves */
    int epfd;
    struct conn *conns;
    unsigned char *scratch;
    uint64_t fails[F_COUNT];
    size_t errors_shown;
    uint64_t requests, reconnects;
    /* per pull latency (ns) of successful pulls, all waves */
    uint64_t *lat;
    size_t lat_count;
    char authorization[BENCH_AUTH_MAX + 2]; /* with its CRLF, or "" */
    uint64_t statuses[1000];                /* the storm's answers by status */
};

/* One probe HEAD that was answered 200. */
struct probe_sample {
    int64_t start; /* when it began (now_ns) */
    uint64_t conn; /* connect alone (the kernel's part and the listen backlog); ~0 when kept */
    uint64_t lat;  /* connect to the answer's head */
};

struct probe {
    struct sockaddr_in server;
    struct in_addr src;
    bool bind_src;
    bool keepalive; /* one connection for every HEAD (fd), not one each */
    int fd;         /* the kept connection, or -1 */
    bool opened;    /* a connection was opened before */
    uint64_t reconnects;
    char req[STORM_REQ_MAX];
    size_t req_len;
    long interval_ms;
    atomic_bool stop;
    struct probe_sample *samples;
    size_t count, cap;
    uint64_t failed;
    char first_error[200];
    uint64_t statuses[1000]; /* answers by status */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest rank, sorted input */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return (double)v[rank - 1] / 1e6;
}

/* ---- the storm connections ---- */

static void fail_conn(struct storm *s, struct conn *c, enum fail_kind k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_conn(struct storm *s, struct conn *c, enum fail_kind k, const char *fmt, ...)
{
    s->fails[k]++;
    if (s->errors_shown < STORM_ERRORS_SHOWN) {
        s->errors_shown++;
        char msg[300];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "berth-storm: client %s step %d: %s: %s\n", inet_ntoa(c->src), c->step,
                fail_names[k], msg);
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = C_DONE;
    c->ok = false;
}

static void build_request(struct storm *s, struct conn *c)
{
    static const char *const accept_manifest =
        "Accept: application/vnd.oci.image.manifest.v1+json\r\n";
    const char *method = c->step == 0 ? "HEAD" : "GET";
    char path[600];
    switch (c->step) {
    case 0:
    case 1:
        snprintf(path, sizeof(path), "/v2/%s/manifests/%s", s->img.repo, s->img.tag);
        break;
    case 2:
        snprintf(path, sizeof(path), "/v2/%s/blobs/%s", s->img.repo, s->img.config_digest.str);
        break;
    default:
        snprintf(path, sizeof(path), "/v2/%s/blobs/%s", s->img.repo, s->img.layer.str);
        break;
    }
    int n = snprintf(c->req, sizeof(c->req),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth-storm\r\n%s%s\r\n", method,
                     path, s->hostport, c->step <= 1 ? accept_manifest : "", s->authorization);
    c->req_len = n > 0 && (size_t)n < sizeof(c->req) ? (size_t)n : 0;
    c->req_off = 0;
    c->head_len = 0;
    c->status = 0;
    c->close_after = false;
    c->body_want = 0;
    c->body_got = 0;
    s->requests++;
}

static bool watch(struct storm *s, struct conn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(s->epfd, op, c->fd, &ev) == 0;
}

static void conn_connect(struct storm *s, struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail_conn(s, c, F_CONNECT, "socket: %s", strerror(errno));
        return;
    }
    if (s->addresses > 0) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = c->src};
        if (bind(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            fail_conn(s, c, F_CONNECT, "bind: %s", strerror(errno));
            return;
        }
    }
    if (connect(c->fd, (struct sockaddr *)&s->server, sizeof(s->server)) != 0 &&
        errno != EINPROGRESS) {
        fail_conn(s, c, F_CONNECT, "connect: %s", strerror(errno));
        return;
    }
    c->state = C_CONNECTING;
    if (!watch(s, c, EPOLLOUT, EPOLL_CTL_ADD)) {
        fail_conn(s, c, F_CONNECT, "epoll: %s", strerror(errno));
    }
}

static void conn_send(struct storm *s, struct conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            fail_conn(s, c, F_TRANSPORT, "send: %s", strerror(errno));
            return;
        }
        c->req_off += (size_t)n;
    }
    c->state = C_HEAD;
    if (!watch(s, c, EPOLLIN, EPOLL_CTL_MOD)) {
        fail_conn(s, c, F_TRANSPORT, "epoll: %s", strerror(errno));
    }
}

static bool header_value(const char *line, size_t len, const char *name, const char **v,
                         size_t *vlen)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') {
        return false;
    }
    const char *p = line + nl + 1, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *v = p;
    *vlen = (size_t)(end - p);
    return true;
}

/* Parse c->head (ending with the blank line); false on a malformed head. */
static bool parse_head(struct conn *c)
{
    char *p = c->head, *end = c->head + c->head_len;
    char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (eol == NULL || eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0) {
        return false;
    }
    /* "HTTP/1.x NNN": exactly three digits, then a space or the line's end */
    const char *code = p + 9;
    if (p[8] != ' ' || !isdigit((unsigned char)code[0]) || !isdigit((unsigned char)code[1]) ||
        !isdigit((unsigned char)code[2]) || (code + 3 < eol && code[3] != ' ')) {
        return false;
    }
    c->status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    if (strncmp(p, "HTTP/1.0", 8) == 0) {
        c->close_after = true;
    }
    bool have_len = false;
    c->digest[0] = '\0';
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL || eol == p) {
            break;
        }
        const char *v;
        size_t vl;
        size_t ll = (size_t)(eol - p);
        if (header_value(p, ll, "Content-Length", &v, &vl)) {
            char num[32];
            if (vl == 0 || vl >= sizeof(num)) {
                return false;
            }
            memcpy(num, v, vl);
            num[vl] = '\0';
            c->body_want = strtoull(num, NULL, 10);
            have_len = true;
        } else if (header_value(p, ll, "Connection", &v, &vl)) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0) {
                c->close_after = true;
            }
        } else if (header_value(p, ll, "Docker-Content-Digest", &v, &vl)) {
            if (vl < sizeof(c->digest)) {
                memcpy(c->digest, v, vl);
                c->digest[vl] = '\0';
            }
        } else if (header_value(p, ll, "Transfer-Encoding", &v, &vl)) {
            return false; /* every answer of a pull has a length */
        }
    }
    if (c->step == 0) {
        c->body_want = 0; /* HEAD */
    } else if (!have_len) {
        return false;
    }
    return true;
}

static void finish_response(struct storm *s, struct conn *c)
{
    struct bench_image *img = &s->img;
    if (c->status != 200) {
        fail_conn(s, c, F_STATUS, "status %d", c->status);
        return;
    }
    bool good = true;
    switch (c->step) {
    case 0:
        good = strcmp(c->digest, img->manifest_digest.str) == 0;
        break;
    case 1:
        good = c->body_got == img->manifest_len && memcmp(c->doc, img->manifest, c->body_got) == 0;
        break;
    case 2:
        good = c->body_got == img->config_len && memcmp(c->doc, img->config, c->body_got) == 0;
        break;
    default:
        good = c->body_got == img->layer_size; /* bytes were compared as they came */
        break;
    }
    if (!good) {
        fail_conn(s, c, F_CHECK, "wrong %s", c->step == 0 ? "digest" : "body");
        return;
    }
    c->step++;
    if (c->step == 4) {
        s->lat[s->lat_count++] = (uint64_t)(now_ns() - c->start_ns);
        close(c->fd);
        c->fd = -1;
        c->state = C_DONE;
        c->ok = true;
        return;
    }
    build_request(s, c);
    if (c->close_after) {
        close(c->fd);
        c->fd = -1;
        s->reconnects++;
        conn_connect(s, c);
        return;
    }
    c->state = C_SENDING;
    if (!watch(s, c, EPOLLOUT, EPOLL_CTL_MOD)) {
        fail_conn(s, c, F_TRANSPORT, "epoll: %s", strerror(errno));
        return;
    }
    conn_send(s, c);
}

/* Take body bytes from buf; true when the response is complete. */
static bool take_body(struct storm *s, struct conn *c, const unsigned char *buf, size_t len)
{
    if (len > c->body_want - c->body_got) {
        fail_conn(s, c, F_CHECK, "more body than Content-Length");
        return false;
    }
    if (c->step == 3) {
        if (memcmp(buf, s->layer + c->body_got, len) != 0) {
            fail_conn(s, c, F_CHECK, "layer bytes differ at offset %llu",
                      (unsigned long long)c->body_got);
            return false;
        }
    } else {
        if (c->body_got + len > sizeof(c->doc)) {
            fail_conn(s, c, F_CHECK, "document too long");
            return false;
        }
        memcpy(c->doc + c->body_got, buf, len);
    }
    c->body_got += len;
    return c->body_got == c->body_want;
}

static void conn_read(struct storm *s, struct conn *c)
{
    for (;;) {
        if (c->state == C_HEAD) {
            ssize_t n = recv(c->fd, c->head + c->head_len, sizeof(c->head) - 1 - c->head_len, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    return;
                }
                fail_conn(s, c, F_TRANSPORT, "recv: %s", strerror(errno));
                return;
            }
            if (n == 0) {
                fail_conn(s, c, F_TRANSPORT, "closed by the server before an answer");
                return;
            }
            size_t old = c->head_len;
            c->head_len += (size_t)n;
            size_t from = old > 3 ? old - 3 : 0;
            char *blank = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
            if (blank == NULL) {
                if (c->head_len >= sizeof(c->head) - 1) {
                    fail_conn(s, c, F_CHECK, "response head too long");
                }
                continue;
            }
            size_t head_end = (size_t)(blank - c->head) + 4;
            size_t extra = c->head_len - head_end;
            c->head_len = head_end;
            if (!parse_head(c)) {
                fail_conn(s, c, F_CHECK, "malformed response head");
                return;
            }
            s->statuses[c->status]++; /* three digits: below 1000 */
            if (c->status != 200) {
                fail_conn(s, c, F_STATUS, "status %d", c->status);
                return;
            }
            c->state = C_BODY;
            if (extra > 0 && !take_body(s, c, (unsigned char *)c->head + head_end, extra)) {
                if (c->state == C_DONE) {
                    return;
                }
            }
            if (c->body_got == c->body_want) {
                finish_response(s, c);
                if (c->state != C_HEAD) {
                    return;
                }
            }
            continue;
        }
        if (c->state != C_BODY) {
            return;
        }
        size_t want = c->body_want - c->body_got;
        ssize_t n = recv(c->fd, s->scratch, want < STORM_CHUNK ? want : STORM_CHUNK, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            fail_conn(s, c, F_TRANSPORT, "recv: %s", strerror(errno));
            return;
        }
        if (n == 0) {
            fail_conn(s, c, F_TRANSPORT, "closed by the server after %llu of %llu body bytes",
                      (unsigned long long)c->body_got, (unsigned long long)c->body_want);
            return;
        }
        if (take_body(s, c, s->scratch, (size_t)n)) {
            finish_response(s, c);
            if (c->state != C_HEAD) {
                return;
            }
        } else if (c->state == C_DONE) {
            return;
        }
    }
}

static void conn_event(struct storm *s, struct conn *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            fail_conn(s, c, F_CONNECT, "connect: %s", strerror(err ? err : errno));
            return;
        }
        c->state = C_SENDING;
        conn_send(s, c);
        return;
    }
    if (c->state == C_SENDING) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            fail_conn(s, c, F_TRANSPORT, "connection reset while sending");
            return;
        }
        conn_send(s, c);
        return;
    }
    conn_read(s, c);
}

static struct in_addr client_addr(size_t i)
{
    /* 127.1.0.1 onwards, skipping .0 and .255 in the last byte */
    uint32_t a = (127u << 24) | (1u << 16) | (uint32_t)((i / 254) << 8) | (uint32_t)(i % 254 + 1);
    struct in_addr r = {.s_addr = htonl(a)};
    return r;
}

struct wave_result {
    size_t ok, failed;
    double seconds;
};

static bool run_wave(struct storm *s, size_t wave, struct wave_result *wr)
{
    size_t base = s->lat_count;
    int64_t start = now_ns();
    int64_t deadline = start + (int64_t)s->timeout_s * 1000000000LL;
    for (size_t i = 0; i < s->clients; i++) {
        struct conn *c = &s->conns[i];
        memset(c, 0, sizeof(*c));
        c->fd = -1;
        size_t k = wave * s->clients + i;
        c->src = client_addr(s->addresses > 0 ? k % s->addresses : 0);
        c->start_ns = now_ns();
        build_request(s, c);
        conn_connect(s, c);
    }
    size_t open = 0;
    struct epoll_event evs[256];
    for (;;) {
        open = 0;
        for (size_t i = 0; i < s->clients; i++) {
            open += s->conns[i].state != C_DONE;
        }
        if (open == 0) {
            break;
        }
        if (now_ns() > deadline) {
            for (size_t i = 0; i < s->clients; i++) {
                if (s->conns[i].state != C_DONE) {
                    fail_conn(s, &s->conns[i], F_TIMEOUT, "not done within %ld s", s->timeout_s);
                }
            }
            break;
        }
        int n = epoll_wait(s->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), 200);
        if (n < 0 && errno != EINTR) {
            perror("berth-storm: epoll_wait");
            return false;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state != C_DONE) {
                conn_event(s, c, evs[i].events);
            }
        }
    }
    wr->seconds = (double)(now_ns() - start) / 1e9;
    wr->ok = s->lat_count - base;
    wr->failed = s->clients - wr->ok;
    return true;
}

/* ---- the probe ---- */

static void probe_fail(struct probe *p, const char *what, int err)
{
    p->failed++;
    if (p->first_error[0] == '\0') {
        snprintf(p->first_error, sizeof(p->first_error), "%s: %s", what,
                 err ? strerror(err) : "unexpected answer");
    }
}

/* A new connection to the server from the probe's address, or -1. */
static int probe_connect(struct probe *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        probe_fail(p, "socket", errno);
        return -1;
    }
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (p->bind_src) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = p->src};
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            probe_fail(p, "bind", errno);
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&p->server, sizeof(p->server)) != 0) {
        probe_fail(p, "connect", errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether a kept connection, idle since its last answer, is still open:
 * the server may have closed it meanwhile (its idle timeout), and a HEAD
 * sent on it would meet the close instead of an answer. Go's transport
 * sees the close by reading idle connections; this looks before sending.
 * Bytes the server sent unasked end the connection too. */
static bool probe_alive(int fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The probe's connection is done with: closed, unless it is kept. */
static void probe_done(struct probe *p, int fd, bool ok)
{
    if (p->keepalive && ok) {
        p->fd = fd;
    } else {
        close(fd);
        p->fd = -1;
    }
}

static void probe_once(struct probe *p)
{
    int64_t t0 = now_ns();
    int fd = p->fd;
    if (fd >= 0 && !probe_alive(fd)) {
        close(fd);
        fd = p->fd = -1;
    }
    if (fd < 0) {
        /* a kept connection that ended is opened again, timed */
        p->reconnects += p->keepalive && p->opened;
        fd = probe_connect(p);
        if (fd < 0) {
            return;
        }
        p->opened = true;
    }
    int64_t tc = now_ns();
    if (send(fd, p->req, p->req_len, MSG_NOSIGNAL) != (ssize_t)p->req_len) {
        probe_fail(p, "send", errno);
        probe_done(p, fd, false);
        return;
    }
    /* read and parse the answer's head as a storm connection's HEAD */
    struct conn c = {.step = 0};
    char *blank = NULL;
    while (blank == NULL) {
        if (c.head_len == sizeof(c.head)) {
            probe_fail(p, "head too long", 0);
            probe_done(p, fd, false);
            return;
        }
        ssize_t n = recv(fd, c.head + c.head_len, sizeof(c.head) - c.head_len, 0);
        if (n <= 0) {
            probe_fail(p, n == 0 ? "closed before the answer" : "recv", n == 0 ? 0 : errno);
            probe_done(p, fd, false);
            return;
        }
        c.head_len += (size_t)n;
        blank = memmem(c.head, c.head_len, "\r\n\r\n", 4);
    }
    int64_t t1 = now_ns();
    /* a HEAD's answer is its head: anything after it, or a close
     * announced (HTTP/1.0, Connection: close), ends the kept connection */
    size_t head_end = (size_t)(blank - c.head) + 4;
    bool extra = head_end != c.head_len;
    c.head_len = head_end;
    if (!parse_head(&c)) {
        probe_fail(p, "malformed head", 0);
        probe_done(p, fd, false);
        return;
    }
    probe_done(p, fd, !extra && !c.close_after);
    p->statuses[c.status]++;
    if (c.status != 200) {
        probe_fail(p, "status", 0);
        return;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4096;
        struct probe_sample *grown = realloc(p->samples, cap * sizeof(*grown));
        if (grown == NULL) {
            probe_fail(p, "memory", ENOMEM);
            return;
        }
        p->samples = grown;
        p->cap = cap;
    }
    p->samples[p->count++] =
        (struct probe_sample){.start = t0, .conn = (uint64_t)(tc - t0), .lat = (uint64_t)(t1 - t0)};
}

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    while (!atomic_load(&p->stop)) {
        int64_t t0 = now_ns();
        probe_once(p);
        int64_t wait = p->interval_ms * 1000000LL - (now_ns() - t0);
        if (wait > 0) {
            struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- set-up and report ---- */

static bool parse_server(const char *url, struct storm *s)
{
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "berth-storm: URL must start with http://\n");
        return false;
    }
    const char *auth = url + 7;
    size_t alen = strcspn(auth, "/");
    if (alen == 0 || alen >= sizeof(s->hostport)) {
        fprintf(stderr, "berth-storm: '%s' is not a registry base URL\n", url);
        return false;
    }
    memcpy(s->hostport, auth, alen);
    s->hostport[alen] = '\0';
    char host[300];
    const char *colon = strrchr(s->hostport, ':');
    if (colon == NULL) {
        fprintf(stderr, "berth-storm: the URL needs a port\n");
        return false;
    }
    memcpy(host, s->hostport, (size_t)(colon - s->hostport));
    host[colon - s->hostport] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) {
        fprintf(stderr, "berth-storm: cannot resolve '%s'\n", s->hostport);
        return false;
    }
    memcpy(&s->server, res->ai_addr, sizeof(s->server));
    freeaddrinfo(res);
    return true;
}

static long peak_rss_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    long v = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: berth-storm [options] http://HOST:PORT\n"
               "\n"
               "  -c, --clients N       clients per wave, each its own connection (default 1000)\n"
               "      --waves N         waves, one after the other (default 2)\n"
               "      --wave-gap-ms N   pause N ms between waves (default 0)\n"
               "      --layer-mib N     layer size in MiB (default 10)\n"
               "      --addresses N     distinct client source addresses 127.1.x.y (default: one\n"
               "                        per client; 0: let the kernel choose, i.e. 127.0.0.1)\n"
               "      --probe-ms N      a HEAD from 127.2.0.1 every N ms during the storm "
               "(default 20)\n"
               "      --probe-keepalive send the probe's HEADs on one kept connection, opened\n"
               "                        before the storm, instead of a new one each\n"
               "      --timeout S       a wave not done after S seconds fails (default 600)\n"
               "      --pid PID         report this process's peak RSS (VmHWM) at the end\n"
               "      --json-file F     write the report as JSON to F\n"
               "      --wait S          first wait until GET /v2/ answers 200 (default 30)\n"
               "      --basic KEY:SECRET  send this credential (HTTP Basic) with every request:\n"
               "                        the setup push, the storm's, the probe's\n");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {{"clients", required_argument, NULL, 'c'},
                                          {"waves", required_argument, NULL, 'W'},
                                          {"wave-gap-ms", required_argument, NULL, 'G'},
                                          {"layer-mib", required_argument, NULL, 'L'},
                                          {"addresses", required_argument, NULL, 'A'},
                                          {"probe-ms", required_argument, NULL, 'P'},
                                          {"probe-keepalive", no_argument, NULL, 'K'},
                                          {"timeout", required_argument, NULL, 'T'},
                                          {"pid", required_argument, NULL, 'p'},
                                          {"json-file", required_argument, NULL, 'j'},
                                          {"wait", required_argument, NULL, 'w'},
                                          {"basic", required_argument, NULL, 'B'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    struct storm s = {.clients = 1000, .waves = 2, .timeout_s = 600};
    uint64_t layer_mib = 10, wait_s = 30;
    long probe_ms = 20, pid = 0;
    long addresses = -1;
    const char *json_file = NULL;
    const char *basic = NULL;
    bool probe_keepalive = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longs, NULL)) != -1) {
        uint64_t v = 0;
        bool num = opt != 'j' && opt != 'B' && opt != 'K' && opt != 'h' && opt != '?';
        if (num && str_parse_u64(optarg, 1000000000, &v) != BERTH_OK) {
            fprintf(stderr, "berth-storm: not a number: '%s'\n", optarg);
            return 2;
        }
        switch (opt) {
        case 'c':
            s.clients = (size_t)v;
            break;
        case 'W':
            s.waves = (size_t)v;
            break;
        case 'G':
            s.gap_ms = (long)v;
            break;
        case 'L':
            layer_mib = v;
            break;
        case 'A':
            addresses = (long)v;
            break;
        case 'P':
            probe_ms = (long)v;
            break;
        case 'K':
            probe_keepalive = true;
            break;
        case 'T':
            s.timeout_s = (long)v;
            break;
        case 'p':
            pid = (long)v;
            break;
        case 'j':
            json_file = optarg;
            break;
        case 'w':
            wait_s = v;
            break;
        case 'B':
            basic = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || s.clients < 1 || s.clients > STORM_MAX_CLIENTS || s.waves < 1 ||
        s.waves > 100 || layer_mib < 1 || layer_mib > 1024 || probe_ms < 1 || s.timeout_s < 1 ||
        s.gap_ms > 3600000) {
        usage(stderr);
        return 2;
    }
    s.addresses = addresses < 0 ? s.clients * s.waves : (size_t)addresses;
    if (s.addresses > 60000) {
        fprintf(stderr, "berth-storm: at most 60000 addresses\n");
        return 2;
    }
    const char *url = argv[optind];
    if (!parse_server(url, &s)) {
        return 2;
    }
    /* each client holds a descriptor; the probe one more */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < s.clients + 64) {
        rl.rlim_cur = rl.rlim_max < s.clients + 64 ? rl.rlim_max : s.clients + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct bench_options o = {.concurrency = 1, .requests = 1, .timeout_s = 600};
    snprintf(o.url, sizeof(o.url), "%.*s", (int)(strcspn(url + 7, "/") + 7), url);
    snprintf(o.origin, sizeof(o.origin), "%s", o.url);
    snprintf(o.prefix, sizeof(o.prefix), "berth-storm");
    if (basic != NULL) {
        /* "Authorization: Basic " + base64 of KEY:SECRET */
        size_t n = strlen(basic);
        if (strchr(basic, ':') == NULL || base64_encoded_size(n) + 24 > sizeof(o.authorization)) {
            fprintf(stderr, "berth-storm: --basic wants KEY:SECRET (at most %zu bytes)\n",
                    (sizeof(o.authorization) - 24) / 4 * 3);
            return 2;
        }
        char b64[BENCH_AUTH_MAX - 24];
        base64_encode((const uint8_t *)basic, n, b64);
        snprintf(o.authorization, sizeof(o.authorization), "Authorization: Basic %s", b64);
        snprintf(s.authorization, sizeof(s.authorization), "%s\r\n", o.authorization);
    }
    if (wait_s > 0 && bench_wait_ready(&o, (long)wait_s) != BERTH_OK) {
        fprintf(stderr, "berth-storm: %s/v2/ did not answer 200\n", o.url);
        return 1;
    }

    /* the image: pushed once, untimed */
    uint64_t seed = 0;
    rand_bytes(&seed, sizeof(seed));
    char repo_base[64];
    snprintf(repo_base, sizeof(repo_base), "berth-storm/%08llx/image",
             (unsigned long long)(seed & 0xffffffffu));
    struct bench_stats setup_stats;
    if (bench_stats_init(&setup_stats, 1) != BERTH_OK) {
        return 1;
    }
    struct bench_phase setup = {
        .label = "storm setup",
        .kind = BENCH_KIND_PUSH_MONO,
        .count = 1,
        .concurrency = 1,
        .layer_size = layer_mib * BENCH_MIB,
        .seed_base = bench_mix64(seed),
        .repo_base = repo_base,
        .stats = &setup_stats,
    };
    struct bench_engine *e = bench_engine_new(&o);
    if (e == NULL || bench_engine_run(e, &setup) != BERTH_OK || setup_stats.ops_ok != 1 ||
        bench_phase_image(&setup, 0, &s.img) != BERTH_OK) {
        fprintf(stderr, "berth-storm: the setup push failed\n");
        return 1;
    }
    bench_engine_free(e);
    bench_stats_fini(&setup_stats);

    s.layer = malloc(s.img.layer_size);
    s.scratch = malloc(STORM_CHUNK);
    s.conns = calloc(s.clients, sizeof(*s.conns));
    s.lat = calloc(s.clients * s.waves, sizeof(*s.lat));
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s.layer == NULL || s.scratch == NULL || s.conns == NULL || s.lat == NULL || s.epfd < 0) {
        fprintf(stderr, "berth-storm: out of memory\n");
        return 1;
    }
    bench_data_fill(s.img.layer_seed, 0, s.layer, s.img.layer_size);

    struct probe p = {.server = s.server,
                      .interval_ms = probe_ms,
                      .bind_src = s.addresses > 0,
                      .keepalive = probe_keepalive,
                      .fd = -1};
    p.src.s_addr = htonl((127u << 24) | (2u << 16) | 1u);
    int rn = snprintf(p.req, sizeof(p.req),
                      "HEAD /v2/%s/manifests/%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
                      "berth-storm-probe\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n"
                      "%s%s\r\n",
                      s.img.repo, s.img.tag, s.hostport, s.authorization,
                      probe_keepalive ? "" : "Connection: close\r\n");
    p.req_len = (size_t)rn;
    atomic_init(&p.stop, false);
    /* one probe before the storm: the quiet baseline */
    probe_once(&p);
    double quiet_ms = p.count == 1 ? (double)p.samples[0].lat / 1e6 : -1;
    p.count = 0;
    p.failed = 0;
    p.first_error[0] = '\0';
    pthread_t probe_thread;
    if (pthread_create(&probe_thread, NULL, probe_main, &p) != 0) {
        fprintf(stderr, "berth-storm: cannot start the probe\n");
        return 1;
    }

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    int64_t t0 = now_ns();
    struct wave_result *waves = calloc(s.waves, sizeof(*waves));
    int64_t *wave_t0 = calloc(s.waves, sizeof(*wave_t0)); /* read after the probe's join */
    bool engine_ok = waves != NULL && wave_t0 != NULL;
    for (size_t w = 0; engine_ok && w < s.waves; w++) {
        if (w > 0 && s.gap_ms > 0) {
            struct timespec ts = {.tv_sec = s.gap_ms / 1000, .tv_nsec = s.gap_ms % 1000 * 1000000};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        wave_t0[w] = now_ns();
        engine_ok = run_wave(&s, w, &waves[w]);
    }
    double seconds = (double)(now_ns() - t0) / 1e9;
    atomic_store(&p.stop, true);
    pthread_join(probe_thread, NULL);
    if (p.fd >= 0) {
        close(p.fd);
    }
    getrusage(RUSAGE_SELF, &ru1);
    if (!engine_ok) {
        return 1;
    }
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    long server_rss = pid > 0 ? peak_rss_kib(pid) : -1;

    size_t total = s.clients * s.waves;
    /* when the slow probes were, by wave: how long after its start (in
     * time order, before the latencies are sorted) */
    json_t *jslow = json_array();
    char slow_text[STORM_SLOW_SHOWN * 40] = "";
    size_t probe_slow = 0, slow_len = 0;
    for (size_t i = 0; i < p.count; i++) {
        const struct probe_sample *ps = &p.samples[i];
        if (ps->lat <= STORM_PROBE_BOUND_NS) {
            continue;
        }
        size_t w = 0;
        while (w + 1 < s.waves && wave_t0[w + 1] <= ps->start) {
            w++;
        }
        /* negative: sent before wave 1 began */
        double after_ms = (double)(ps->start - wave_t0[w]) / 1e6, ms = (double)ps->lat / 1e6;
        json_array_append_new(jslow, json_pack("{s:I,s:f,s:f}", "wave", (json_int_t)w + 1,
                                               "after_ms", after_ms, "ms", ms));
        if (probe_slow++ < STORM_SLOW_SHOWN) {
            size_t room = sizeof(slow_text) - slow_len;
            int n = snprintf(slow_text + slow_len, room, " %.1f ms at wave %zu %+.0f ms;", ms,
                             w + 1, after_ms);
            /* a cut entry ends the list */
            slow_len = n > 0 && (size_t)n < room ? slow_len + (size_t)n : sizeof(slow_text) - 1;
        }
    }
    qsort(s.lat, s.lat_count, sizeof(*s.lat), cmp_u64);
    /* each sorted on its own for its percentiles */
    uint64_t *probe_lat = calloc(p.count + 1, sizeof(*probe_lat));
    uint64_t *probe_conn = calloc(p.count + 1, sizeof(*probe_conn));
    if (probe_lat == NULL || probe_conn == NULL) {
        fprintf(stderr, "berth-storm: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < p.count; i++) {
        probe_lat[i] = p.samples[i].lat;
        probe_conn[i] = p.samples[i].conn;
    }
    qsort(probe_lat, p.count, sizeof(*probe_lat), cmp_u64);
    qsort(probe_conn, p.count, sizeof(*probe_conn), cmp_u64);
    size_t failed = total - s.lat_count;
    double rate = 100.0 * (double)s.lat_count / (double)total;
    double mb = (double)s.lat_count * (double)s.img.layer_size / 1e6;

    printf("berth-storm %s clients=%zu waves=%zu layer=%llu MiB addresses=%zu\n", url, s.clients,
           s.waves, (unsigned long long)layer_mib, s.addresses);
    printf("pulls ok %zu/%zu (%.2f%%) in %.1f s, %.0f MB/s; pull p50 %.0f ms p99 %.0f ms max "
           "%.0f ms\n",
           s.lat_count, total, rate, seconds, seconds > 0 ? mb / seconds : 0,
           pct_ms(s.lat, s.lat_count, 50), pct_ms(s.lat, s.lat_count, 99),
           pct_ms(s.lat, s.lat_count, 100));
    printf("probe HEADs %zu ok, %llu failed; p50 %.1f ms p99 %.1f ms max %.1f ms; over 50 ms: "
           "%zu (quiet: %.1f ms)",
           p.count, (unsigned long long)p.failed, pct_ms(probe_lat, p.count, 50),
           pct_ms(probe_lat, p.count, 99), pct_ms(probe_lat, p.count, 100), probe_slow, quiet_ms);
    if (p.keepalive) {
        printf("; on one kept connection, reopened %llu times", (unsigned long long)p.reconnects);
    }
    printf("\n");
    printf("probe connect p50 %.1f ms p99 %.1f ms max %.1f ms\n", pct_ms(probe_conn, p.count, 50),
           pct_ms(probe_conn, p.count, 99), pct_ms(probe_conn, p.count, 100));
    if (probe_slow > 0) {
        printf("probe HEADs over 50 ms, when (time after their wave's start):%s%s\n", slow_text,
               probe_slow > STORM_SLOW_SHOWN ? " ..." : "");
    }
    if (p.first_error[0] != '\0') {
        printf("probe first error: %s\n", p.first_error);
    }
    printf("server peak RSS %ld KiB; client CPU %.1f s\n", server_rss, cpu);
    json_t *jstatus = json_object(), *jpstatus = json_object();
    printf("answers by status:");
    for (int st = 0; st < 1000; st++) {
        char key[8];
        snprintf(key, sizeof(key), "%d", st);
        if (s.statuses[st] > 0) {
            printf(" %d:%llu", st, (unsigned long long)s.statuses[st]);
            json_object_set_new(jstatus, key, json_integer((json_int_t)s.statuses[st]));
        }
        if (p.statuses[st] > 0) {
            json_object_set_new(jpstatus, key, json_integer((json_int_t)p.statuses[st]));
        }
    }
    printf("; probe:");
    for (int st = 0; st < 1000; st++) {
        if (p.statuses[st] > 0) {
            printf(" %d:%llu", st, (unsigned long long)p.statuses[st]);
        }
    }
    printf("%s\n", basic != NULL ? " (with --basic)" : "");
    if (failed > 0) {
        printf("failures:");
        for (int k = 0; k < F_COUNT; k++) {
            if (s.fails[k] > 0) {
                printf(" %s:%llu", fail_names[k], (unsigned long long)s.fails[k]);
            }
        }
        printf("\n");
    }

    if (json_file != NULL) {
        json_t *doc = json_object(), *jw = json_array(), *jf = json_object();
        for (size_t w = 0; w < s.waves; w++) {
            json_array_append_new(jw, json_pack("{s:I,s:I,s:f}", "ok", (json_int_t)waves[w].ok,
                                                "failed", (json_int_t)waves[w].failed, "seconds",
                                                waves[w].seconds));
        }
        for (int k = 0; k < F_COUNT; k++) {
            json_object_set_new(jf, fail_names[k], json_integer((json_int_t)s.fails[k]));
        }
        json_object_set_new(doc, "url", json_string(url));
        json_object_set_new(doc, "clients", json_integer((json_int_t)s.clients));
        json_object_set_new(doc, "waves", json_integer((json_int_t)s.waves));
        json_object_set_new(doc, "wave_gap_ms", json_integer((json_int_t)s.gap_ms));
        json_object_set_new(doc, "addresses", json_integer((json_int_t)s.addresses));
        json_object_set_new(doc, "layer_bytes", json_integer((json_int_t)s.img.layer_size));
        json_object_set_new(doc, "pulls",
                            json_pack("{s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f}", "total",
                                      (json_int_t)total, "ok", (json_int_t)s.lat_count, "failed",
                                      (json_int_t)failed, "success_pct", rate, "p50_ms",
                                      pct_ms(s.lat, s.lat_count, 50), "p99_ms",
                                      pct_ms(s.lat, s.lat_count, 99), "max_ms",
                                      pct_ms(s.lat, s.lat_count, 100), "seconds", seconds));
        json_object_set_new(doc, "wave_results", jw);
        json_object_set_new(doc, "probe_slow", json_incref(jslow));
        json_object_set_new(doc, "failures", jf);
        json_object_set_new(doc, "http_requests", json_integer((json_int_t)s.requests));
        json_object_set_new(doc, "reconnects", json_integer((json_int_t)s.reconnects));
        json_object_set_new(
            doc, "probe",
            json_pack("{s:I,s:I,s:f,s:f,s:f,s:I,s:f,s:s,s:b,s:I}", "ok", (json_int_t)p.count,
                      "failed", (json_int_t)p.failed, "p50_ms", pct_ms(probe_lat, p.count, 50),
                      "p99_ms", pct_ms(probe_lat, p.count, 99), "max_ms",
                      pct_ms(probe_lat, p.count, 100), "over_50ms", (json_int_t)probe_slow,
                      "quiet_ms", quiet_ms, "first_error", p.first_error, "keepalive",
                      (int)p.keepalive, "reconnects", (json_int_t)p.reconnects));
        json_object_set_new(doc, "probe_connect",
                            json_pack("{s:f,s:f,s:f}", "p50_ms", pct_ms(probe_conn, p.count, 50),
                                      "p99_ms", pct_ms(probe_conn, p.count, 99), "max_ms",
                                      pct_ms(probe_conn, p.count, 100)));
        json_object_set_new(doc, "server_peak_rss_kib", json_integer(server_rss));
        json_object_set_new(doc, "statuses", json_incref(jstatus));
        json_object_set_new(doc, "probe_statuses", json_incref(jpstatus));
        json_object_set_new(doc, "authenticated", json_boolean(basic != NULL));
        json_object_set_new(doc, "client_cpu_seconds", json_real(cpu));
        if (json_dump_file(doc, json_file, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0) {
            fprintf(stderr, "berth-storm: cannot write %s\n", json_file);
            return 1;
        }
        json_decref(doc);
    }
    json_decref(jstatus);
    json_decref(jpstatus);
    json_decref(jslow);
    bool ok = failed == 0 && p.failed == 0;
    free(waves);
    free(wave_t0);
    free(p.samples);
    free(probe_lat);
    free(probe_conn);
    free(s.lat);
    free(s.conns);
    free(s.scratch);
    free(s.layer);
    close(s.epfd);
    return ok ? 0 : 1;
}
