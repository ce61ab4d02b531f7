/*
 * Private to the lifecycle module: the parsed policy that
 * storage/lifecycle/validate.c builds and storage/lifecycle/lifecycle.c evaluates.
 */
#ifndef BERTH_LIFECYCLE_INT_H
#define BERTH_LIFECYCLE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/lifecycle/lifecycle.h"

enum lc_status { LC_TAGGED, LC_UNTAGGED, LC_ANY };
enum lc_count { LC_COUNT_MORE_THAN, LC_SINCE_PUSHED, LC_SINCE_PULLED, LC_SINCE_TRANSITIONED };

struct lc_rule {
    int priority;
    enum lc_status status;
    enum lc_count count_type;
    int64_t count_number;
    bool archive_class; /* selection.storageClass "archive" (else "standard") */
    bool transition;    /* action transition to archive (else expire) */
    bool is_pattern;    /* list is a tagPatternList, else a tagPrefixList */
    size_t list_count;
    char **list;      /* list_count owned strings (tagged rules only) */
    size_t *list_len; /* their lengths in bytes */
};

struct lifecycle_policy {
    struct lc_rule *rules; /* rule_count, ascending rulePriority */
    size_t rule_count;
};

#endif
