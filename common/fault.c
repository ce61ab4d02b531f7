/* Crash points for tests; see fault.h. */
#include "common/fault.h"

#include <ctype.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void fault_point(const char *name)
{
    const char *at = getenv("BERTH_TEST_CRASH_AT");
    if (at == NULL || strcmp(at, name) != 0) {
        return;
    }
    log_error("event=test_crash point=%s", name);
    raise(SIGKILL);
}

void fault_hold(const char *name)
{
    char var[64] = "BERTH_TEST_HOLD_";
    size_t n = strlen(var);
    for (const char *p = name; *p != '\0' && n + 1 < sizeof(var); p++) {
        var[n++] = (char)toupper((unsigned char)*p);
    }
    var[n] = '\0';
    const char *path = getenv(var);
    if (path == NULL || path[0] == '\0') {
        return;
    }
    bool logged = false;
    while (access(path, F_OK) == 0) {
        if (!logged) {
            log_info("event=test_hold point=%s", name);
            logged = true;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

bool fault_injected(const char *name)
{
    const char *list = getenv("BERTH_TEST_FAULTS");
    size_t n = strlen(name);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}
