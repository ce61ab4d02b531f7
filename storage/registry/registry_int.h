/*
 * What the files of storage/registry share and nothing else includes: the
 * one way to fill in a struct registry_status on failure. Thread-safe.
 */
#ifndef BERTH_STORAGE_REGISTRY_REGISTRY_INT_H
#define BERTH_STORAGE_REGISTRY_REGISTRY_INT_H

#include "storage/registry/registry.h"

/* Records why a call failed (reason, error and a printf-style message cut
 * to fit s->message) and returns rc, so a caller can write
 * `return registry_fail(s, ...)`. */
enum berth_err registry_fail(struct registry_status *s, enum registry_reason reason,
                             enum berth_err rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
