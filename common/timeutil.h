/* Clocks and timestamp formatting. Thread-safe. */
#ifndef BERTH_TIMEUTIL_H
#define BERTH_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock, milliseconds since the Unix epoch. */
int64_t time_now_ms(void);

/* Monotonic clock in nanoseconds, for durations. */
int64_t time_mono_ns(void);

/* Format ms since the epoch as RFC 3339 UTC with milliseconds
 * ("2026-11-26T10:11:12.123Z") into out (at least 25 bytes). */
void time_format_rfc3339(int64_t ms, char *out, size_t cap);

/* Sleep for ms milliseconds (restarting on EINTR). */
void time_sleep_ms(int64_t ms);

#endif
