/*
 * Logging: one key=value line (or JSON object, log.format) per event on stderr, written with a
 * single write(2) so lines from different threads never interleave. Thread-safe. Each thread may
 * carry a current request id, appended as req=<id>.
 */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set the process-wide threshold; messages above it are dropped cheaply. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "error", "warn", "info", "debug". Returns 0 on success, -1 if unknown. */
int log_parse_level(const char *name, enum log_level *out);

/* Write each line as one JSON object instead of key=value pairs: the same
 * keys (ts, level, the message's own, req) with string values, and the
 * values that are plain numbers as JSON numbers. A word of the message
 * that is not key=value goes under "msg". Process-wide; set it before
 * threads start. */
void log_set_json(bool on);

/* Convert one key=value line (as written by log_msg, without its newline)
 * into a JSON object in out (cap bytes, NUL-terminated; cut short lines
 * still close the object). Returns the length written. For tests and
 * log_msg. */
size_t log_line_to_json(const char *line, char *out, size_t cap);

/* Set (or with NULL clear) the calling thread's request id. The string is
 * borrowed: it must stay valid until cleared. */
void log_set_request_id(const char *id);

/* Emit one line: ts=... level=... <formatted message> [req=...]. The
 * message should itself be key=value pairs ("event=x key=y"). Lines are
 * truncated at 4 KiB. Never blocks for long (one write to stderr). */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_get_level() >= LOG_INFO)                                                           \
            log_msg(LOG_INFO, __VA_ARGS__);                                                        \
    } while (0)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_DEBUG)                                                          \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

/*
 * Render an untrusted string as one log value: as is when it has only
 * [A-Za-z0-9._:/@+-], otherwise double-quoted with ", \ and control bytes
 * escaped. Always NUL-terminates out (cap >= 1); truncates with "..." when
 * out is too small. Returns out, so it can be used inside a log call.
 */
const char *log_value(const char *in, char *out, size_t cap);

#endif
