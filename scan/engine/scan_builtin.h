/*
 * The built-in offline scanner in one call: read the image's layers
 * (scan_layers), find its OS and packages (scan_inventory), match them
 * against the imported vulnerability database (vulndb) and return ECR's
 * scan outcome: COMPLETE with findings, or FAILED with a description.
 * Thread-safe as long as each thread uses its own struct vulndb; blocks
 * on file and database reads.
 */
#ifndef BERTH_SCAN_BUILTIN_H
#define BERTH_SCAN_BUILTIN_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "scan/findings/scan_findings.h"
#include "scan/packages/scan_inventory.h"
#include "scan/packages/scan_layers.h"
#include "scan/vulndb/vulndb.h"

/* ECR's imageScanStatus descriptions. */
#define SCAN_DESCRIPTION_COMPLETE "The scan was completed successfully."
#define SCAN_DESCRIPTION_UNSUPPORTED                                                               \
    "UnsupportedImageError: The operating system and/or package manager are not supported."

enum scan_status {
    SCAN_STATUS_COMPLETE,
    SCAN_STATUS_FAILED,
};

struct scan_result {
    enum scan_status status;
    /* SCAN_DESCRIPTION_COMPLETE, SCAN_DESCRIPTION_UNSUPPORTED, or one of
     * "LayerError: ...", "ImageTooLargeError: ...", "PackageDatabaseError:
     * ...", "VulnerabilityDatabaseError: ..." with the reason, which may
     * quote names from the image as they are (scan_run_image makes every
     * description printable). */
    char description[512];
    struct scan_os os;                 /* os.ecosystem is "" when no OS was recognised */
    size_t package_count;              /* installed packages found */
    struct scan_findings findings;     /* empty unless COMPLETE; in final order */
    int64_t completed_at_ms;           /* imageScanCompletedAt */
    int64_t vuln_source_updated_at_ms; /* vulnerabilitySourceUpdatedAt, -1 when unknown */
    uint64_t bytes_read;               /* decompressed layer bytes read */
};

/*
 * Scan an image: layers[0..count) lowest first (blob paths and media
 * types), matched against db (may be NULL: the scan then fails with a
 * VulnerabilityDatabaseError once the image itself was read), within lim.
 * Everything the image can cause ends as a result: a FROM scratch image or
 * one without a recognised OS or package database is FAILED with exactly
 * SCAN_DESCRIPTION_UNSUPPORTED; corrupt, truncated or non-tar layers,
 * limits (scan.max_image_bytes, an oversized package database, too many
 * entries) and malformed package databases are FAILED with the reason.
 * Returns BERTH_OK with *out (free with scan_result_free); BERTH_EINVAL
 * for bad arguments; BERTH_EBUSY when lim->cancel was set while reading;
 * BERTH_EDB when the vulnerability database fails while matching;
 * BERTH_ENOMEM. Never leaves anything on disk.
 */
enum berth_err scan_builtin_run(const struct scan_layer *layers, size_t count, struct vulndb *db,
                                const struct scan_limits *lim, struct scan_result **out);

void scan_result_free(struct scan_result *r);

#endif
