/* The notification listener's loop. See listen.h. */
#include "server/jobs/listen.h"

#include <stdbool.h>

#include "common/log.h"
#include "storage/meta/meta.h"
#include "storage/store/store.h"

void jobs_listen(const struct jobs_listener *l)
{
    bool listening = false;
    bool first = true;
    bool failed = false; /* logged once per outage */
    while (!atomic_load(l->stop)) {
        struct meta *m = NULL;
        enum berth_err rc = store_meta_get(l->st, &m);
        if (rc != BERTH_OK) {
            listening = false;
        } else if (!listening) {
            rc = meta_listen(m, l->channel);
            if (rc == BERTH_OK) {
                listening = true;
                if (failed) {
                    log_info("event=%s_listening", l->what);
                    failed = false;
                }
                l->wake(l->arg);
            }
        }
        if (first) {
            first = false;
            if (l->first_tried != NULL) {
                l->first_tried(l->arg);
            }
        }
        if (listening) {
            bool notified = false;
            /* short, so that a stop is seen soon */
            rc = meta_wait_notify(m, 250, &notified);
            if (rc != BERTH_OK) {
                listening = false;
            } else if (notified) {
                l->wake(l->arg);
            }
        }
        if (!listening) {
            if (!failed) {
                log_warn("event=%s_listen_failed err=%s", l->what, berth_strerror(rc));
                failed = true;
            }
            l->pause(l->arg);
        }
    }
}
