/* Response builders and streamed bodies. See response_int.h and http.h. */
#include "server/http/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include <microhttpd.h>

#include "response_int.h"

struct http_response *http_resp_bytes(const void *data, size_t len)
{
    return http_wrap_response(
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY));
}

struct http_response *http_resp_empty(void)
{
    return http_wrap_response(
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

static ssize_t never_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

struct http_response *http_resp_head(uint64_t len)
{
    return http_wrap_response(MHD_create_response_from_callback(len, 4096, never_read, NULL, NULL));
}

/* Under TLS libmicrohttpd cannot sendfile a file response: it reads the
 * file in 4 KiB blocks, each becoming one small TLS record, one send and one
 * turn of the event loop (a 100 MiB pull ran at a third of distribution's
 * speed). With TLS on, file bodies are read by berth instead, in blocks of
 * FILE_TLS_BLOCK (the response's own buffer, not the connection pool), so
 * GnuTLS sends full 16 KiB records back to back. Set once by server_start
 * (http_resp_files_by_reader). */
#define FILE_TLS_BLOCK (256 * 1024)
static atomic_bool file_via_reader;

void http_resp_files_by_reader(void)
{
    atomic_store(&file_via_reader, true);
}

struct file_reader {
    int fd;
    uint64_t offset;
};

static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    const struct file_reader *r = cls;
    ssize_t n;
    do {
        n = pread(r->fd, buf, max, (off_t)(r->offset + pos));
    } while (n < 0 && errno == EINTR);
    return n > 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR; /* the length is known: 0 is short */
}

static void file_free(void *cls)
{
    struct file_reader *r = cls;
    close(r->fd);
    free(r);
}

struct http_response *http_resp_fd(int fd, uint64_t offset, uint64_t len)
{
    if (!atomic_load(&file_via_reader)) {
        return http_wrap_response(MHD_create_response_from_fd_at_offset64(len, fd, offset));
    }
    struct file_reader *r = malloc(sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->fd = fd;
    r->offset = offset;
    size_t block = len < FILE_TLS_BLOCK ? (len > 0 ? (size_t)len : 1) : FILE_TLS_BLOCK;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(len, block, file_read, r, file_free);
    if (resp == NULL) {
        free(r); /* the caller keeps fd */
        return NULL;
    }
    return http_wrap_response(resp);
}

/* A streamed body. A read that has nothing yet suspends the connection
 * until the producer's wake; mu orders the two, whichever comes first.
 * Every stream is on its server's list (streams_mu, taken before mu), so
 * that server_stop can wake the sleeping ones: libmicrohttpd 0.9.75 aborts
 * the process when it is stopped with a connection suspended. */
struct stream_ctx {
    http_read_fn read;
    void (*done)(void *arg);
    void *arg;
    struct MHD_Connection *conn;
    struct server *srv;
    struct stream_ctx *prev, *next; /* srv->streams, under srv->streams_mu */
    pthread_mutex_t mu;
    bool suspended; /* the connection sleeps until stream_wake */
    bool woken;     /* a wake came before the connection slept */
    bool aborted;   /* the server stops: end the body with an error */
};

static void stream_wake(void *wake_arg)
{
    struct stream_ctx *c = wake_arg;
    pthread_mutex_lock(&c->mu);
    if (c->suspended) {
        c->suspended = false;
        MHD_resume_connection(c->conn);
    } else {
        c->woken = true;
    }
    pthread_mutex_unlock(&c->mu);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_ctx *c = cls;
    pthread_mutex_lock(&c->mu);
    bool aborted = c->aborted;
    pthread_mutex_unlock(&c->mu);
    if (aborted) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    long long n = c->read(c->arg, pos, buf, max, stream_wake, c);
    if (n == HTTP_READ_WAIT) {
        pthread_mutex_lock(&c->mu);
        if (c->aborted) {
            pthread_mutex_unlock(&c->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR; /* never sleep once stopping */
        }
        if (c->woken) {
            c->woken = false; /* progress already: read again at once */
        } else {
            c->suspended = true;
            MHD_suspend_connection(c->conn);
        }
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    if (n < 0) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (n == 0) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream_ctx *c = cls;
    struct server *srv = c->srv;
    pthread_mutex_lock(&srv->streams_mu);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        srv->streams = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    pthread_mutex_unlock(&srv->streams_mu);
    c->done(c->arg);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct http_response *http_resp_stream(struct request *req, uint64_t len, http_read_fn read,
                                       void (*done)(void *arg), void *arg)
{
    struct stream_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->read = read;
    c->done = done;
    c->arg = arg;
    c->conn = req->conn;
    c->srv = req->srv;
    pthread_mutex_init(&c->mu, NULL);
    struct MHD_Response *r = MHD_create_response_from_callback(
        len == HTTP_LEN_UNKNOWN ? MHD_SIZE_UNKNOWN : len, 64 * 1024, stream_read, c, stream_free);
    if (r == NULL) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    struct server *srv = req->srv;
    pthread_mutex_lock(&srv->streams_mu);
    c->aborted = srv->streams_closed;
    c->next = srv->streams;
    if (c->next != NULL) {
        c->next->prev = c;
    }
    srv->streams = c;
    pthread_mutex_unlock(&srv->streams_mu);
    return http_wrap_response(r);
}

void http_add(struct http_response *resp, const char *name, const char *value)
{
    if (resp != NULL && value != NULL) {
        MHD_add_response_header(http_mhd_response(resp), name, value);
    }
}

int http_streams_abort(struct server *srv)
{
    int woken = 0;
    pthread_mutex_lock(&srv->streams_mu);
    srv->streams_closed = true;
    for (struct stream_ctx *c = srv->streams; c != NULL; c = c->next) {
        pthread_mutex_lock(&c->mu);
        c->aborted = true;
        if (c->suspended) {
            c->suspended = false;
            MHD_resume_connection(c->conn);
            woken++;
        }
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&srv->streams_mu);
    return woken;
}
