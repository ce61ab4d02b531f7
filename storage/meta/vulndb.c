/* Metadata: the shared vulnerability database's current generation (the
 * vulndb_shared table, one row). See meta_vulndb.h. */
#include "meta_int.h"

#include <string.h>

#include "storage/meta/meta_vulndb.h"

enum berth_err meta_vulndb_get(struct meta *m, struct meta_vulndb *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT generation, digest, size, records, imported_at, published_at "
                        "FROM vulndb_shared WHERE id = 1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = BERTH_OK;
    int step = meta_step(st);
    if (step == META_STEP_ROW) {
        struct meta_vulndb v;
        memset(&v, 0, sizeof(v));
        v.generation = meta_col_int64(st, 0);
        rc = meta_col_text(st, 1, v.digest, sizeof(v.digest));
        v.size = meta_col_int64(st, 2);
        v.records = meta_col_int64(st, 3);
        v.imported_at_ms = meta_col_int64(st, 4);
        v.published_at_ms = meta_col_int64(st, 5);
        if (rc == BERTH_OK) {
            *out = v;
        } else {
            rc = BERTH_EDB;
        }
    } else if (step == META_STEP_DONE) {
        rc = BERTH_ENOTFOUND;
    } else {
        rc = meta_fail(m, "vulndb_get");
    }
    meta_done(st);
    return rc;
}

enum berth_err meta_vulndb_publish(struct meta *m, const struct meta_vulndb *in,
                                   int64_t expect_generation, int64_t *generation)
{
    struct digest d;
    if (in == NULL || digest_parse(in->digest, &d) != BERTH_OK || in->size < 0 ||
        expect_generation < 0) {
        return BERTH_EINVAL;
    }
    /* One statement: the first row is created (none may be there yet), a
     * later one replaces the expected one only. */
    struct meta_stmt *st =
        expect_generation == 0
            ? meta_prepare(m, "INSERT INTO vulndb_shared (id, generation, digest, size, records, "
                              "imported_at, published_at) VALUES (1, ?1 + 1, ?2, ?3, ?4, ?5, ?6) "
                              "ON CONFLICT (id) DO NOTHING")
            : meta_prepare(m, "UPDATE vulndb_shared SET generation = ?1 + 1, digest = ?2, "
                              "size = ?3, records = ?4, imported_at = ?5, published_at = ?6 "
                              "WHERE id = 1 AND generation = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, expect_generation);
    meta_bind_text(st, 2, d.str);
    meta_bind_int64(st, 3, in->size);
    meta_bind_int64(st, 4, in->records);
    meta_bind_int64(st, 5, in->imported_at_ms);
    meta_bind_int64(st, 6, in->published_at_ms);
    enum berth_err rc = meta_step_done(m, st, "vulndb_publish");
    if (rc != BERTH_OK) {
        return rc;
    }
    if (meta_changes(m) == 0) {
        return BERTH_ECONFLICT;
    }
    rc = meta_notify(m, META_CHANNEL_VULNDB);
    if (rc == BERTH_OK && generation != NULL) {
        *generation = expect_generation + 1;
    }
    return rc;
}
