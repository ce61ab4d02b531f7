/*
 * The listener: accept, screen the first bytes, hand the connection to
 * libmicrohttpd or answer 400 and close. See accept_int.h.
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "accept_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "server/http/http.h"
#include "pool_int.h"
#include "server/metrics/metrics.h"

/* Room a connection's buffer keeps for the answer: a longer request head
 * is answered 431 by the listener (accept_head_check). */
#define ANSWER_ROOM 4096
/* The most of a head the listener looks at. */
#define HEAD_PEEK_MAX ((size_t)1 << 20)
/* How often the thread wakes with nothing to do (to expire waiting
 * connections and see a stop). */
#define TICK_MS 250

struct waiting {
    int fd;
    int64_t since_ns;
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

struct acceptor {
    int listen_fd;
    int wake[2]; /* a byte on wake[1] stops the thread */
    uint16_t port;
    struct server *srv;
    pthread_t thread;
    bool running;
    struct waiting *waiting;
    size_t count, cap;
    unsigned char *peek; /* head_limit + 1 bytes, for screen */
    size_t head_limit;
};

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

enum accept_verdict accept_screen(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == '\r' || p[i] == '\n')) {
        i++; /* empty lines before a request are tolerated */
    }
    if (i == n) {
        return ACCEPT_HTTP;
    }
    if (p[i] == 0x16 && (i + 1 == n || p[i + 1] == 0x03)) {
        return ACCEPT_TLS;
    }
    /* method */
    size_t start = i;
    while (i < n && is_tchar(p[i])) {
        i++;
    }
    if (i == n) {
        return i - start <= 32 ? ACCEPT_HTTP : ACCEPT_GARBAGE;
    }
    if (i == start || p[i] != ' ') {
        return ACCEPT_GARBAGE;
    }
    i++;
    /* request target: visible characters */
    start = i;
    while (i < n && p[i] > 0x20 && p[i] < 0x7f) {
        i++;
    }
    if (i == n) {
        return ACCEPT_HTTP;
    }
    if (i == start || p[i] != ' ') {
        return ACCEPT_GARBAGE;
    }
    i++;
    /* version: HTTP/1.0 or HTTP/1.1, then the end of the line */
    static const char v[] = "HTTP/1.";
    for (size_t k = 0; k < sizeof(v) - 1; k++, i++) {
        if (i == n) {
            return ACCEPT_HTTP;
        }
        if (p[i] != (unsigned char)v[k]) {
            return ACCEPT_GARBAGE;
        }
    }
    if (i == n) {
        return ACCEPT_HTTP;
    }
    if (p[i] != '0' && p[i] != '1') {
        return ACCEPT_GARBAGE;
    }
    i++;
    if (i < n && p[i] == '\r') {
        i++;
    }
    if (i == n || p[i] == '\n') {
        return ACCEPT_HTTP;
    }
    return ACCEPT_GARBAGE;
}

/* The first n bytes of p start with s. */
static bool starts(const unsigned char *p, size_t n, const char *s)
{
    size_t len = strlen(s);
    return n >= len && memcmp(p, s, len) == 0;
}

/* s occurs in p[0..n). */
static bool contains(const unsigned char *p, size_t n, const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i + len <= n; i++) {
        if (memcmp(p + i, s, len) == 0) {
            return true;
        }
    }
    return false;
}

bool accept_upload(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == '\r' || p[i] == '\n')) {
        i++;
    }
    p += i;
    n -= i;
    bool head = starts(p, n, "HEAD ");
    size_t m = head                     ? 5
               : starts(p, n, "POST ")  ? 5
               : starts(p, n, "PUT ")   ? 4
               : starts(p, n, "PATCH ") ? 6
                                        : 0;
    if (m == 0 || !starts(p + m, n - m, "/v2/")) {
        return false;
    }
    size_t end = m; /* the target ends at the first space or control byte */
    while (end < n && p[end] > 0x20 && p[end] < 0x7f) {
        end++;
    }
    return contains(p + m, end - m, head ? "/blobs/" : "/blobs/uploads/");
}

/* p[0..n) equals s, ignoring ASCII case. */
static bool same_name(const unsigned char *p, size_t n, const char *s)
{
    return n == strlen(s) && strncasecmp((const char *)p, s, n) == 0;
}

/* A Content-Length value (after the colon) that libmicrohttpd 0.9.75
 * reads as a length and berth takes: spaces or tabs, then 1 to 18
 * digits and nothing after them (libmicrohttpd refuses a space after the
 * digits too). */
static bool length_value(const unsigned char *p, size_t n)
{
    while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    if (n == 0 || n > 18) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
    }
    return true;
}

unsigned accept_head_check(const unsigned char *p, size_t n, size_t limit, const char **message)
{
    size_t start = 0;
    while (start < n && (p[start] == '\r' || p[start] == '\n')) {
        start++;
    }
    *message = "the request head is larger than this server takes";
    size_t line = start;
    for (bool first = true;; first = false) {
        const unsigned char *lf = memchr(p + line, '\n', n - line);
        if (lf == NULL) {
            return n - start > limit ? 431 : 0; /* the rest is still to come */
        }
        size_t end = (size_t)(lf - p);
        size_t len = end - line;
        if (len > 0 && p[end - 1] == '\r') {
            len--;
        }
        if (end + 1 - start > limit) {
            return 431;
        }
        if (len == 0 && !first) {
            return 0; /* the whole head is here */
        }
        const unsigned char *colon = first ? NULL : memchr(p + line, ':', len);
        if (colon != NULL && same_name(p + line, (size_t)(colon - (p + line)), "content-length") &&
            !length_value(colon + 1, len - (size_t)(colon + 1 - (p + line)))) {
            *message = "the request's Content-Length is not a length";
            return 400;
        }
        line = end + 1;
    }
}

enum berth_err acceptor_listen(const struct sockaddr *addr, socklen_t len, struct acceptor **out)
{
    struct acceptor *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return BERTH_ENOMEM;
    }
    a->wake[0] = a->wake[1] = -1;
    a->listen_fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (a->listen_fd < 0 ||
        setsockopt(a->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (addr->sa_family == AF_INET6 &&
         setsockopt(a->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(a->listen_fd, addr, len) != 0 || listen(a->listen_fd, 1024) != 0 ||
        pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        char msg[160];
        log_error("event=server_error msg=\"cannot listen\" err=%s",
                  log_value(strerror(errno), msg, sizeof(msg)));
        acceptor_stop(a);
        return BERTH_EIO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(a->listen_fd, (struct sockaddr *)&bound, &blen) == 0) {
        a->port =
            ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)(void *)&bound)->sin_port);
    }
    *out = a;
    return BERTH_OK;
}

uint16_t acceptor_port(const struct acceptor *a)
{
    return a->port;
}

static void remote_text(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    snprintf(out, cap, "-");
    if (sa->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    } else if (sa->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
    }
}

static size_t drain(int fd)
{
    char buf[4096];
    size_t total = 0;
    ssize_t n;
    while (total < (64u << 10) && (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        total += (size_t)n;
    }
    return total;
}

/* Send resp (len bytes) on w's connection, close it and log the answer
 * (request id id, status, term). */
static void answer_close(struct acceptor *a, struct waiting *w, const char *id, const char *resp,
                         size_t len, unsigned status, const char *term)
{
    /* read what was sent first: closing with unread data would reset
     * the connection and could lose the answer */
    size_t in = drain(w->fd);
    ssize_t sent = send(w->fd, resp, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(w->fd, SHUT_WR);
    in += drain(w->fd);
    close(w->fd);
    if (a->srv->cfg->log_access) {
        char remote[64];
        remote_text(&w->addr, remote, sizeof(remote));
        double ms = (double)(time_mono_ns() - w->since_ns) / 1e6;
        log_set_request_id(id);
        log_info("event=access method=- path=- status=%u bytes=%zu bytes_in=%zu "
                 "duration_ms=%.3f remote=%s term=%s",
                 status, sent > 0 ? (size_t)sent : (size_t)0, in, ms, remote, term);
        log_set_request_id(NULL);
    }
}

static void next_id(struct server *srv, char *id, size_t cap)
{
    uint64_t seq = atomic_fetch_add(&srv->id_counter, 1);
    snprintf(id, cap, "%08x%08llx", srv->id_prefix, (unsigned long long)seq);
}

/* Answer a connection that is not speaking what this port speaks, log
 * it, close it. */
static void refuse(struct acceptor *a, struct waiting *w, enum accept_verdict verdict)
{
    char id[24];
    next_id(a->srv, id, sizeof(id));
    bool tls = verdict == ACCEPT_TLS;
    /* on the TLS port the refused connection is one that is not TLS */
    bool plain_on_tls = a->srv->tls != NULL;
    const char *body = plain_on_tls ? "This port speaks HTTPS: the request was plain HTTP. Use an "
                                      "https URL.\n"
                       : tls        ? "Client sent an HTTP request to an HTTPS server.\n"
                                    : "400 Bad Request: malformed request line\n";
    char resp[512];
    int len = snprintf(resp, sizeof(resp),
                       "%s 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\nX-Request-Id: %s\r\n\r\n%s",
                       tls ? "HTTP/1.0" : "HTTP/1.1", strlen(body), id, body);
    answer_close(a, w, id, resp, (size_t)len, 400,
                 plain_on_tls ? "plain_http_on_tls_port"
                 : tls        ? "tls_handshake"
                              : "bad_request_line");
}

/* The request line's target (p[0..n) an ACCEPT_HTTP prefix) starts with
 * s. */
static bool target_starts(const unsigned char *p, size_t n, const char *s)
{
    size_t i = 0;
    while (i < n && (p[i] == '\r' || p[i] == '\n')) {
        i++;
    }
    while (i < n && p[i] != ' ') {
        i++;
    }
    return i < n && starts(p + i + 1, n - i - 1, s);
}

/* A header line named name (lower case) is among the complete lines of
 * p[0..n) after the request line. */
static bool has_header(const unsigned char *p, size_t n, const char *name)
{
    const unsigned char *lf = memchr(p, '\n', n);
    while (lf != NULL) {
        size_t line = (size_t)(lf + 1 - p);
        lf = memchr(p + line, '\n', n - line);
        const unsigned char *colon = memchr(p + line, ':', n - line);
        if (lf != NULL && colon != NULL && colon < lf &&
            same_name(p + line, (size_t)(colon - (p + line)), name)) {
            return true;
        }
    }
    return false;
}

/* Answer what accept_head_check found in the head p[0..n) in the format
 * of the API the request is for (a header line the listener has not seen
 * is not looked for), log it, close the connection. */
static void refuse_head(struct acceptor *a, struct waiting *w, const unsigned char *p, size_t n,
                        unsigned status, const char *message)
{
    char id[24];
    next_id(a->srv, id, sizeof(id));
    const char *reason = status == 431 ? "Request Header Fields Too Large" : "Bad Request";
    char body[256];
    const char *type = "text/plain; charset=utf-8";
    const char *extra = "";
    if (target_starts(p, n, "/v2")) {
        snprintf(body, sizeof(body), "{\"errors\":[{\"code\":\"BAD_REQUEST\",\"message\":\"%s\"}]}",
                 message);
        type = "application/json";
        extra = "Docker-Distribution-API-Version: registry/2.0\r\n";
    } else if (has_header(p, n, "x-amz-target")) {
        snprintf(body, sizeof(body), "{\"__type\":\"SerializationException\",\"message\":\"%s\"}",
                 message);
        type = "application/x-amz-json-1.1";
    } else {
        snprintf(body, sizeof(body), "%s\n", message);
    }
    char resp[768];
    int len = snprintf(resp, sizeof(resp),
                       "HTTP/1.1 %u %s\r\nContent-Type: %s\r\n%sContent-Length: %zu\r\n"
                       "Connection: close\r\nX-Request-Id: %s\r\n\r\n%s",
                       status, reason, type, extra, strlen(body), id, body);
    log_info("event=bad_header reason=%s msg=\"%s\"",
             status == 431 ? "head_too_large" : "content_length", message);
    answer_close(a, w, id, resp, (size_t)len, status,
                 status == 431 ? "head_too_large" : "bad_content_length");
}

static void hand_over(struct acceptor *a, struct waiting *w, bool upload)
{
    struct server *srv = a->srv;
    const struct sockaddr *sa = (const struct sockaddr *)&w->addr;
    size_t worker = 0;
    enum pool_refusal r = pool_take_for(srv->pool, sa, w->addr_len, upload, &worker);
    if (r != POOL_TAKEN) {
        /* as libmicrohttpd did at its limits: closed at once, unanswered */
        char remote[64];
        remote_text(&w->addr, remote, sizeof(remote));
        log_warn("event=connection_refused reason=%s remote=%s",
                 r == POOL_CONNECTION_LIMIT ? "connection_limit" : "per_client_connection_limit",
                 remote);
        close(w->fd);
        return;
    }
    /* libmicrohttpd closes the socket itself on failure; its worker
     * thread takes the connection from a queue (MHD_USE_ITC wakes it) */
    if (MHD_add_connection(srv->workers[worker].daemon, w->fd, sa, w->addr_len) != MHD_YES) {
        pool_release(srv->pool, worker, sa, w->addr_len);
    }
}

/* Look at a readable connection: true when it is done with (handed over
 * or answered), false to keep waiting. */
static bool screen(struct acceptor *a, struct waiting *w)
{
    unsigned char *buf = a->peek;
    ssize_t n = recv(w->fd, buf, a->head_limit + 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return false;
    }
    if (n <= 0) {
        close(w->fd); /* gone before a word */
        return true;
    }
    enum accept_verdict v = accept_screen(buf, (size_t)n);
    /* a TLS port takes TLS handshakes (libmicrohttpd's GnuTLS answers
     * them) and answers everything else; a plain port the reverse */
    bool wanted = a->srv->tls != NULL ? v == ACCEPT_TLS : v == ACCEPT_HTTP;
    const char *message = NULL;
    unsigned status = 0;
    if (wanted && v == ACCEPT_HTTP) {
        status = accept_head_check(buf, (size_t)n, a->head_limit, &message);
    }
    if (status != 0) {
        refuse_head(a, w, buf, (size_t)n, status, message);
    } else if (wanted) {
        /* TLS hides the request line: its connections take the others */
        hand_over(a, w, v == ACCEPT_HTTP && accept_upload(buf, (size_t)n));
    } else {
        refuse(a, w, v);
    }
    return true;
}

static void accept_new(struct acceptor *a)
{
    for (;;) {
        struct waiting w;
        w.addr_len = sizeof(w.addr);
        w.fd = accept4(a->listen_fd, (struct sockaddr *)&w.addr, &w.addr_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (w.fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_warn("event=accept_failed err=too_many_open_files");
                time_sleep_ms(50); /* the listener stays readable: no busy loop */
            }
            return;
        }
        w.since_ns = time_mono_ns();
        /* Most clients send their request right behind the handshake, so
         * it is usually here already: screen it now instead of one more
         * poll round later (a round over every waiting socket, which in a
         * storm of new connections is most of a new client's wait). */
        if (screen(a, &w)) {
            continue;
        }
        size_t limit = 2 * (size_t)a->srv->cfg->http_connection_limit;
        if (a->count > 0 && a->count >= (limit < 256 ? 256 : limit)) {
            /* twice as many silent connections as the server takes (a
             * burst arrives before its first bytes do): the oldest makes
             * room */
            char remote[64];
            remote_text(&a->waiting[0].addr, remote, sizeof(remote));
            log_info("event=connection_closed reason=too_many_silent remote=%s", remote);
            close(a->waiting[0].fd);
            metrics_connection_delta(-1);
            memmove(a->waiting, a->waiting + 1, (a->count - 1) * sizeof(*a->waiting));
            a->count--;
        }
        if (a->count == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 64;
            struct waiting *grown = realloc(a->waiting, cap * sizeof(*grown));
            if (grown == NULL) {
                hand_over(a, &w, false); /* unscreened rather than refused */
                continue;
            }
            a->waiting = grown;
            a->cap = cap;
        }
        a->waiting[a->count++] = w;
        /* open from the client's side: counted while it waits, then by
         * libmicrohttpd once handed over */
        metrics_connection_delta(1);
    }
}

static void *run(void *arg)
{
    struct acceptor *a = arg;
    int64_t head_ns = a->srv->cfg->http_head_timeout_seconds * 1000000000LL;
    struct pollfd *fds = NULL;
    size_t fds_cap = 0;
    for (;;) {
        size_t nfds = 2 + a->count;
        if (nfds > fds_cap) {
            struct pollfd *grown = realloc(fds, nfds * 2 * sizeof(*grown));
            if (grown == NULL) {
                time_sleep_ms(TICK_MS);
                continue;
            }
            fds = grown;
            fds_cap = nfds * 2;
        }
        fds[0] = (struct pollfd){.fd = a->wake[0], .events = POLLIN};
        fds[1] = (struct pollfd){.fd = a->listen_fd, .events = POLLIN};
        for (size_t i = 0; i < a->count; i++) {
            fds[2 + i] = (struct pollfd){.fd = a->waiting[i].fd, .events = POLLIN};
        }
        int rc = poll(fds, (nfds_t)nfds, TICK_MS);
        if (rc < 0 && errno != EINTR) {
            time_sleep_ms(TICK_MS);
            continue;
        }
        if (fds[0].revents != 0) {
            break;
        }
        /* screen the waiting ones first: accept_new may move the array */
        int64_t now = time_mono_ns();
        size_t kept = 0;
        size_t count = a->count;
        for (size_t i = 0; i < count; i++) {
            struct waiting *w = &a->waiting[i];
            bool done = false;
            if (fds[2 + i].revents != 0) {
                done = screen(a, w);
            } else if (now - w->since_ns > head_ns) {
                char remote[64];
                remote_text(&w->addr, remote, sizeof(remote));
                log_info("event=connection_closed reason=head_timeout remote=%s", remote);
                close(w->fd);
                done = true;
            }
            if (done) {
                metrics_connection_delta(-1);
            } else {
                a->waiting[kept++] = *w;
            }
        }
        a->count = kept;
        if (fds[1].revents != 0) {
            accept_new(a);
        }
    }
    free(fds);
    return NULL;
}

enum berth_err acceptor_run(struct acceptor *a, struct server *srv)
{
    a->srv = srv;
    /* the regular connections' buffer, less room for the answer */
    size_t pool = (size_t)srv->cfg->http_memory_limit_kib * 1024;
    a->head_limit = pool > HEAD_PEEK_MAX ? HEAD_PEEK_MAX : pool - ANSWER_ROOM;
    a->peek = malloc(a->head_limit + 1);
    if (a->peek == NULL || pthread_create(&a->thread, NULL, run, a) != 0) {
        return BERTH_EIO;
    }
    a->running = true;
    return BERTH_OK;
}

void acceptor_stop(struct acceptor *a)
{
    if (a == NULL) {
        return;
    }
    if (a->running) {
        ssize_t w = write(a->wake[1], "x", 1);
        (void)w;
        pthread_join(a->thread, NULL);
    }
    for (size_t i = 0; i < a->count; i++) {
        close(a->waiting[i].fd);
        metrics_connection_delta(-1);
    }
    free(a->waiting);
    free(a->peek);
    if (a->listen_fd >= 0) {
        close(a->listen_fd);
    }
    if (a->wake[0] >= 0) {
        close(a->wake[0]);
        close(a->wake[1]);
    }
    free(a);
}
