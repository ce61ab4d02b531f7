/* Crash points for tests; see fault.h. */
#include "common/fault.h"

#include <signal.h>
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
