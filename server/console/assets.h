/*
 * The console's files, embedded in the binary: the table is generated at
 * build time by server/console/embed.cmake from server/console/ui/ (sorted
 * by name; every file of that flat folder). Read-only.
 */
#ifndef BERTH_CONSOLE_ASSETS_H
#define BERTH_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
    const char *name;          /* file name, e.g. "app.js" */
    const unsigned char *data; /* its bytes */
    size_t len;
    const char *etag; /* quoted, from the SHA-256 of the bytes */
};

extern const struct console_asset console_assets[];
extern const size_t console_asset_count;

#endif
