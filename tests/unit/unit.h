/*
 * A small unit-test harness: CHECK macros that count and report failures
 * with file and line, and a runner. One binary per module; exit status is
 * non-zero when any check failed. Single-threaded.
 */
#ifndef BERTH_UNIT_H
#define BERTH_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_checks;
static int unit_failures;
static const char *unit_current = "";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        unit_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            unit_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__, unit_current,     \
                    #cond);                                                                        \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long unit_a = (long long)(a), unit_b = (long long)(b);                                \
        unit_checks++;                                                                             \
        if (unit_a != unit_b) {                                                                    \
            unit_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__,    \
                    unit_current, #a, unit_a, #b, unit_b);                                         \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *unit_a = (a), *unit_b = (b);                                                   \
        unit_checks++;                                                                             \
        if (unit_a == NULL || unit_b == NULL || strcmp(unit_a, unit_b) != 0) {                     \
            unit_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__,      \
                    unit_current, #a, unit_a ? unit_a : "(null)", unit_b ? unit_b : "(null)");     \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        unit_current = #fn;                                                                        \
        fn();                                                                                      \
    } while (0)

static inline int unit_report(const char *name)
{
    if (unit_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    fprintf(stderr, "%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp); the path is
 * static storage overwritten by the next call. Aborts on failure. */
static inline const char *unit_tmpdir(void)
{
    static char path[512];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/berth-unit-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

#endif
