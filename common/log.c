/* key=value logging to stderr; one write(2) per line. Thread-safe. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/str.h"

#define LOG_LINE_MAX 4096

static atomic_int log_level = LOG_INFO;
static atomic_bool log_json;
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

void log_set_json(bool on)
{
    atomic_store(&log_json, on);
}

/* Appends to a bounded output; past the end it only counts. */
struct jout {
    char *p;
    size_t len;
    size_t cap; /* room for text, the NUL excluded */
};

static void jput(struct jout *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->len < o->cap; i++) {
        o->p[o->len++] = s[i];
    }
}

static void jputc(struct jout *o, char c)
{
    jput(o, &c, 1);
}

/* A JSON string body (no quotes) of raw bytes, escaping for JSON. */
static void jstring_byte(struct jout *o, unsigned char c)
{
    if (c == '"' || c == '\\') {
        jputc(o, '\\');
        jputc(o, (char)c);
    } else if (c < 0x20 || c == 0x7f) {
        char esc[8];
        snprintf(esc, sizeof(esc), "\\u%04x", c);
        jput(o, esc, 6);
    } else {
        jputc(o, (char)c);
    }
}

/* Whether [s, s+n) is a JSON number (-?digits[.digits]), leading zeros aside. */
static bool is_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') {
        i++;
    }
    size_t digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0 || (digits > 1 && s[i - digits] == '0')) {
        return false;
    }
    if (i < n && s[i] == '.') {
        i++;
        size_t frac = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
            frac++;
        }
        if (frac == 0) {
            return false;
        }
    }
    return i == n && digits <= 15;
}

size_t log_line_to_json(const char *line, char *out, size_t cap)
{
    if (cap < 3) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return 0;
    }
    /* keep room for the closing brace */
    struct jout o = {out, 0, cap - 2};
    jputc(&o, '{');
    bool first = true;
    const char *p = line;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *word = p;
        const char *eq = NULL;
        while (*p && *p != ' ' && *p != '=' && *p != '"') {
            p++;
        }
        if (*p == '=' && p > word) {
            eq = p;
        }
        size_t mark = o.len;
        if (!first) {
            jputc(&o, ',');
        }
        jputc(&o, '"');
        if (eq != NULL) {
            for (const char *k = word; k < eq; k++) {
                jstring_byte(&o, (unsigned char)*k);
            }
            p = eq + 1;
        } else {
            jput(&o, "msg", 3);
            p = word;
        }
        jput(&o, "\":", 2);
        if (*p == '"') {
            /* a quoted value as log_value writes it: \" \\ and \xNN */
            p++;
            jputc(&o, '"');
            while (*p && *p != '"') {
                if (*p == '\\' && p[1] == 'x' && str_hex_value(p[2]) >= 0 &&
                    str_hex_value(p[3]) >= 0) {
                    jstring_byte(&o,
                                 (unsigned char)(str_hex_value(p[2]) * 16 + str_hex_value(p[3])));
                    p += 4;
                } else if (*p == '\\' && p[1] != '\0') {
                    jstring_byte(&o, (unsigned char)p[1]);
                    p += 2;
                } else {
                    jstring_byte(&o, (unsigned char)*p++);
                }
            }
            if (*p == '"') {
                p++;
            }
            jputc(&o, '"');
        } else {
            const char *v = p;
            while (*p && *p != ' ') {
                p++;
            }
            if (eq != NULL && is_number(v, (size_t)(p - v))) {
                jput(&o, v, (size_t)(p - v));
            } else {
                jputc(&o, '"');
                for (const char *c = v; c < p; c++) {
                    jstring_byte(&o, (unsigned char)*c);
                }
                jputc(&o, '"');
            }
        }
        if (o.len >= o.cap) {
            /* cut short: drop the partial member so the object stays valid */
            o.len = mark;
            break;
        }
        first = false;
    }
    out[o.len++] = '}';
    out[o.len] = '\0';
    return o.len;
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
    line[len] = '\0';
    char json[LOG_LINE_MAX + LOG_LINE_MAX / 2];
    const char *p = line;
    if (atomic_load(&log_json)) {
        len = log_line_to_json(line, json, sizeof(json) - 1);
        p = json;
        json[len++] = '\n';
    } else {
        line[len++] = '\n';
    }
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
