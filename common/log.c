/* key=value logging to stderr; one write(2) per line. Thread-safe. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static atomic_int log_level = LOG_INFO;
static _Thread_local const char *log_req_id;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level);
}

int log_parse_level(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_request_id(const char *id)
{
    log_req_id = id;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level)) {
        return;
    }
    int saved_errno = errno;
    char line[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level]);
    size_t len = (n > 0) ? (size_t)n : 0;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        len += (size_t)n;
    }
    if (len >= sizeof(line) - 1) {
        len = sizeof(line) - 2;
    }
    if (log_req_id != NULL && len < sizeof(line) - 2) {
        n = snprintf(line + len, sizeof(line) - len, " req=%s", log_req_id);
        if (n > 0) {
            len += (size_t)n;
        }
        if (len >= sizeof(line) - 1) {
            len = sizeof(line) - 2;
        }
    }
    line[len++] = '\n';
    const char *p = line;
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    errno = saved_errno;
}

static int plain_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '/' || c == '@' || c == '+' || c == '-';
}

const char *log_value(const char *in, char *out, size_t cap)
{
    if (cap == 0) {
        return out;
    }
    if (in == NULL) {
        in = "";
    }
    int quote = (*in == '\0');
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (!plain_char(*p)) {
            quote = 1;
            break;
        }
    }
    size_t o = 0;
    size_t limit = cap - 1; /* room for NUL */
    if (quote && o < limit) {
        out[o++] = '"';
    }
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        char esc[5];
        size_t elen;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            elen = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
            elen = 4;
        } else {
            esc[0] = (char)*p;
            elen = 1;
        }
        /* keep room for a closing quote and "..." */
        if (o + elen + (quote ? 1 : 0) + 3 > limit) {
            for (int i = 0; i < 3 && o < limit; i++) {
                out[o++] = '.';
            }
            break;
        }
        memcpy(out + o, esc, elen);
        o += elen;
    }
    if (quote && o < limit) {
        out[o++] = '"';
    }
    out[o] = '\0';
    return out;
}
