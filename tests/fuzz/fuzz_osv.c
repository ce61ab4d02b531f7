/* libFuzzer target: OSV record parsing, then everything the scanner does
 * with a record: the finding's name, URI and severity, and the affected
 * entries' evaluation, which must give the same answer after the compact
 * dump the vulnerability database stores and its parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan/vulndb/osv.h"
#include "scan/packages/scan_inventory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bounds on the work one input may cause. */
#define MAX_AFFECTED_CHECKED 8
#define MAX_CANDIDATES 6

static void check_affected(const struct osv_affected *aff)
{
    if (aff->ecosystem == NULL) {
        return;
    }
    enum scan_version_scheme scheme = scan_ecosystem_scheme(aff->ecosystem);
    const char *candidates[MAX_CANDIDATES] = {"0", "1.0", "1:2.3-4~deb12u1", NULL, NULL, NULL};
    size_t n = 3;
    if (aff->version_count > 0) {
        candidates[n++] = aff->versions[0];
    }
    for (size_t r = 0; r < aff->range_count && n < MAX_CANDIDATES; r++) {
        if (aff->ranges[r].event_count > 0) {
            candidates[n++] = aff->ranges[r].events[aff->ranges[r].event_count - 1].version;
        }
    }
    char *dump = osv_affected_dump(aff);
    if (dump == NULL) {
        return;
    }
    struct osv_affected *back = NULL;
    if (osv_affected_parse(dump, strlen(dump), &back) != BERTH_OK) {
        abort(); /* the database could not read what it stored */
    }
    for (size_t i = 0; i < n; i++) {
        bool in = false, in_back = false;
        enum berth_err rc = osv_affected_includes(aff, scheme, candidates[i], &in);
        enum berth_err rc_back = osv_affected_includes(back, scheme, candidates[i], &in_back);
        if (rc != rc_back || (rc == BERTH_OK && in != in_back)) {
            abort();
        }
    }
    osv_affected_free(back);
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct osv_record *rec = NULL;
    char err[256];
    if (osv_record_parse((const char *)data, size, &rec, err, sizeof(err)) != BERTH_OK) {
        return 0;
    }
    if (rec->id == NULL || osv_record_finding_name(rec) == NULL) {
        abort();
    }
    (void)osv_record_uri(rec);
    struct osv_severity_result sev;
    osv_resolve_severity(rec, NULL, &sev);
    for (size_t i = 0; i < rec->affected_count && i < MAX_AFFECTED_CHECKED; i++) {
        osv_resolve_severity(rec, &rec->affected[i], &sev);
        if ((sev.cvss3_tenths < 0) != (sev.cvss3_vector == NULL) || sev.cvss3_tenths > 100) {
            abort();
        }
        check_affected(&rec->affected[i]);
    }
    osv_record_free(rec);
    return 0;
}
