/*
 * berth migrate's metadata half: every table copied row for row between
 * two databases of any drivers. Tables are found in the source's catalog
 * (so a table a later migration adds is carried without a change here),
 * in an order where every table comes after the tables it references;
 * column types are read from the destination's catalog and values bound
 * as integers, text or bytes accordingly.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/rand.h"
#include "storage/meta/meta_copy.h"
#include "storage/meta/meta_int.h"

#define COPY_TABLES_MAX 128
#define COPY_COLUMNS_MAX 64
#define COPY_NAME_MAX 64

/* Tables in an order that satisfies their references; tables the catalog
 * shows that are not listed follow, in name order. */
static const char *const known_order[] = {
    "repositories",
    "blobs",
    "repo_blobs",
    "manifests",
    "manifest_refs",
    "tags",
    "principals",
    "access_keys",
    "server_secrets",
    "registry_settings",
    "scan_jobs",
    "scans",
    "scan_findings",
    "lifecycle_previews",
    "lifecycle_preview_results",
    "pull_time_exclusions",
    "creation_templates",
    "ptc_rules",
    "upstream_secrets",
    "ptc_tag_checks",
    "signing_statuses",
    "replication_queue",
};

/* Never copied: the schema's own bookkeeping, upload sessions (their
 * bytes are stages local to the server that received them), the
 * background jobs' leases (held by the source's processes: the
 * destination's replicas take their own), console sessions (signing in
 * again on the destination is cheap; they come and go as it runs) and the
 * shared vulnerability database's generation (berth migrate publishes the
 * source's database into the destination's own, or writes it to a single
 * node's file: server/cli/migrate.c). */
static bool skipped(const char *t)
{
    return strcmp(t, "uploads") == 0 || strcmp(t, "leases") == 0 ||
           strcmp(t, "console_sessions") == 0 || strcmp(t, "vulndb_shared") == 0 ||
           strcmp(t, "berth_schema") == 0 || strncmp(t, "sqlite_", 7) == 0;
}

struct table_list {
    char name[COPY_TABLES_MAX][COPY_NAME_MAX];
    size_t n;
};

enum col_kind { COL_INT, COL_TEXT, COL_BLOB };

struct column_list {
    char name[COPY_COLUMNS_MAX][COPY_NAME_MAX];
    enum col_kind kind[COPY_COLUMNS_MAX];
    size_t n;
};

/* A statement of dynamic text (not cached: finalized by the caller). */
static struct meta_stmt *dyn_prepare(struct meta *m, const char *sql)
{
    struct meta_stmt *st = m->drv->prepare(m->conn, sql);
    if (st == NULL) {
        m->drv->error(m->conn, "migrate_prepare");
    }
    return st;
}

static bool safe_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= COPY_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The tables of m, in reference order, without the skipped ones. */
static enum berth_err list_tables(struct meta *m, struct table_list *out)
{
    const char *sql =
        meta_sql(m, "SELECT name FROM sqlite_master WHERE type = 'table'",
                 "SELECT table_name FROM information_schema.tables "
                 "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'");
    struct meta_stmt *st = dyn_prepare(m, sql);
    if (st == NULL) {
        return BERTH_EDB;
    }
    char found[COPY_TABLES_MAX][COPY_NAME_MAX];
    size_t nf = 0;
    enum meta_step s;
    while ((s = m->drv->step(st)) == META_STEP_ROW) {
        const char *t = m->drv->col_text(st, 0);
        if (t == NULL || skipped(t)) {
            continue;
        }
        if (!safe_name(t) || nf == COPY_TABLES_MAX) {
            m->drv->finalize(st);
            return BERTH_EINVAL;
        }
        snprintf(found[nf++], COPY_NAME_MAX, "%s", t);
    }
    m->drv->finalize(st);
    if (s != META_STEP_DONE) {
        return m->drv->error(m->conn, "migrate_tables");
    }
    out->n = 0;
    bool used[COPY_TABLES_MAX] = {false};
    for (size_t k = 0; k < sizeof(known_order) / sizeof(known_order[0]); k++) {
        for (size_t i = 0; i < nf; i++) {
            if (!used[i] && strcmp(found[i], known_order[k]) == 0) {
                used[i] = true;
                memcpy(out->name[out->n++], found[i], COPY_NAME_MAX);
            }
        }
    }
    size_t first_rest = out->n;
    for (size_t i = 0; i < nf; i++) {
        if (!used[i]) {
            memcpy(out->name[out->n++], found[i], COPY_NAME_MAX);
        }
    }
    qsort(out->name[first_rest], out->n - first_rest, COPY_NAME_MAX, name_cmp);
    return BERTH_OK;
}

/* The columns of table t in m, with the kind of value each holds. */
static enum berth_err list_columns(struct meta *m, const char *t, struct column_list *out)
{
    const char *sql =
        meta_sql(m, "SELECT name, upper(type) FROM pragma_table_info(?1) ORDER BY cid",
                 "SELECT column_name, upper(data_type) FROM "
                 "information_schema.columns WHERE table_schema = current_schema() "
                 "AND table_name = ?1 ORDER BY ordinal_position");
    struct meta_stmt *st = dyn_prepare(m, sql);
    if (st == NULL) {
        return BERTH_EDB;
    }
    m->drv->bind_text(st, 1, t);
    out->n = 0;
    enum meta_step s;
    while ((s = m->drv->step(st)) == META_STEP_ROW) {
        const char *c = m->drv->col_text(st, 0);
        const char *type = m->drv->col_text(st, 1);
        if (c == NULL || !safe_name(c) || out->n == COPY_COLUMNS_MAX) {
            m->drv->finalize(st);
            return BERTH_EINVAL;
        }
        type = type != NULL ? type : "";
        snprintf(out->name[out->n], COPY_NAME_MAX, "%s", c);
        out->kind[out->n] = strstr(type, "INT") != NULL                               ? COL_INT
                            : (strstr(type, "BLOB") != NULL || strstr(type, "BYTEA")) ? COL_BLOB
                                                                                      : COL_TEXT;
        out->n++;
    }
    m->drv->finalize(st);
    if (s != META_STEP_DONE) {
        return m->drv->error(m->conn, "migrate_columns");
    }
    return out->n > 0 ? BERTH_OK : BERTH_EINVAL;
}

/* One integer from a query of dynamic text (-1 on error). */
static int64_t query_count(struct meta *m, const char *sql)
{
    struct meta_stmt *st = dyn_prepare(m, sql);
    if (st == NULL) {
        return -1;
    }
    int64_t v = -1;
    if (m->drv->step(st) == META_STEP_ROW) {
        v = m->drv->col_is_null(st, 0) ? 0 : m->drv->col_int64(st, 0);
    }
    m->drv->finalize(st);
    return v;
}

static int64_t count_rows(struct meta *m, const char *t)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);
    return query_count(m, sql);
}

/* The value of a registry setting into out (empty when absent). */
static enum berth_err setting_get(struct meta *m, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    struct meta_stmt *st = dyn_prepare(m, "SELECT value FROM registry_settings WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    m->drv->bind_text(st, 1, name);
    enum meta_step s = m->drv->step(st);
    if (s == META_STEP_ROW) {
        const char *v = m->drv->col_text(st, 0);
        snprintf(out, cap, "%s", v != NULL ? v : "");
    }
    m->drv->finalize(st);
    return s == META_STEP_ERROR ? m->drv->error(m->conn, "migrate_setting") : BERTH_OK;
}

static enum berth_err setting_delete(struct meta *m, const char *name)
{
    struct meta_stmt *st = dyn_prepare(m, "DELETE FROM registry_settings WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    m->drv->bind_text(st, 1, name);
    enum meta_step s = m->drv->step(st);
    m->drv->finalize(st);
    return s == META_STEP_ERROR ? m->drv->error(m->conn, "migrate_setting") : BERTH_OK;
}

static enum berth_err setting_put(struct meta *m, const char *name, const char *value)
{
    enum berth_err rc = setting_delete(m, name);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_stmt *st = dyn_prepare(m, "INSERT INTO registry_settings (name, value, updated_at) "
                                          "VALUES (?1, ?2, 0)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    m->drv->bind_text(st, 1, name);
    m->drv->bind_text(st, 2, value);
    enum meta_step s = m->drv->step(st);
    m->drv->finalize(st);
    return s == META_STEP_ERROR ? m->drv->error(m->conn, "migrate_setting") : BERTH_OK;
}

enum berth_err meta_copy_note_served(struct meta *m, int64_t now_ms)
{
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    char from[128], served[64];
    rc = setting_get(m, META_COPY_FROM_SETTING, from, sizeof(from));
    if (rc == BERTH_OK) {
        rc = setting_get(m, META_COPY_SERVED_SETTING, served, sizeof(served));
    }
    if (rc == BERTH_OK && from[0] != '\0' && served[0] == '\0') {
        char v[32];
        snprintf(v, sizeof(v), "%" PRId64, now_ms);
        rc = setting_put(m, META_COPY_SERVED_SETTING, v);
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        }
    }
    meta_rollback(m);
    return rc;
}

enum berth_err meta_copy_store_id(struct meta *m, bool create, char *out)
{
    enum berth_err rc = create ? meta_begin(m) : meta_begin_read(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = setting_get(m, META_COPY_STORE_SETTING, out, 33);
    if (rc == BERTH_OK && out[0] == '\0' && create) {
        uint8_t raw[16];
        rc = rand_bytes(raw, sizeof(raw));
        for (size_t i = 0; rc == BERTH_OK && i < sizeof(raw); i++) {
            snprintf(out + 2 * i, 3, "%02x", raw[i]);
        }
        if (rc == BERTH_OK) {
            rc = setting_put(m, META_COPY_STORE_SETTING, out);
        }
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        }
        if (rc != BERTH_OK) {
            out[0] = '\0';
        }
    }
    meta_rollback(m);
    return rc;
}

enum berth_err meta_copy_store_id_peek(const char *backend, const char *target, char *out)
{
    out[0] = '\0';
    struct meta *m;
    enum berth_err rc = meta_open_unmigrated(backend, target, &m);
    if (rc != BERTH_OK) {
        return rc;
    }
    int version = meta_schema_version(m);
    if (version < 0) {
        rc = m->drv->error(m->conn, "store_id_peek");
    } else if (version >= META_SETTINGS_VERSION) {
        rc = setting_get(m, META_COPY_STORE_SETTING, out, 33);
    }
    meta_close(m);
    return rc;
}

enum berth_err meta_copy_registry_id(struct meta *m, char *out)
{
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = setting_get(m, META_COPY_ID_SETTING, out, 33);
    if (rc == BERTH_OK && out[0] == '\0') {
        uint8_t raw[16];
        rc = rand_bytes(raw, sizeof(raw));
        for (size_t i = 0; rc == BERTH_OK && i < sizeof(raw); i++) {
            snprintf(out + 2 * i, 3, "%02x", raw[i]);
        }
        if (rc == BERTH_OK) {
            rc = setting_put(m, META_COPY_ID_SETTING, out);
        }
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    meta_rollback(m);
    return rc;
}

/* Whether dst holds registry data of its own: rows other than what
 * opening a store makes (server secrets) and the migration settings. */
static enum berth_err dst_holds_data(struct meta *dst, const struct table_list *tl, char *what,
                                     size_t cap)
{
    what[0] = '\0';
    for (size_t i = 0; i < tl->n; i++) {
        const char *t = tl->name[i];
        if (strcmp(t, "server_secrets") == 0) {
            continue;
        }
        char sql[256];
        if (strcmp(t, "registry_settings") == 0) {
            snprintf(sql, sizeof(sql),
                     "SELECT count(*) FROM registry_settings WHERE name NOT IN ('%s', '%s', '%s', "
                     "'%s')",
                     META_COPY_ID_SETTING, META_COPY_FROM_SETTING, META_COPY_SERVED_SETTING,
                     META_COPY_STORE_SETTING);
        } else {
            snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);
        }
        int64_t n = query_count(dst, sql);
        if (n < 0) {
            return BERTH_EDB;
        }
        if (n > 0) {
            snprintf(what, cap, "%" PRId64 " rows in %s", n, t);
            return BERTH_OK;
        }
    }
    return BERTH_OK;
}

/* BERTH_OK when dst is empty or an earlier copy of src_id not served
 * since (or force); BERTH_EEXIST (why says so) when it holds another
 * registry's data or was served since. */
static enum berth_err check_dst(struct meta *dst, const struct table_list *tl, const char *src_id,
                                bool force, char *why, size_t why_cap)
{
    char from[128], served[64];
    enum berth_err rc = setting_get(dst, META_COPY_FROM_SETTING, from, sizeof(from));
    if (rc == BERTH_OK) {
        rc = setting_get(dst, META_COPY_SERVED_SETTING, served, sizeof(served));
    }
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot read the destination's settings");
        return rc;
    }
    if (strcmp(from, src_id) == 0) {
        if (served[0] != '\0' && !force) {
            time_t at = (time_t)(strtoll(served, NULL, 10) / 1000);
            struct tm tm;
            char when[32] = "?";
            if (gmtime_r(&at, &tm) != NULL) {
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            }
            snprintf(why, why_cap,
                     "the destination is a copy of this source, but berth serve has served it "
                     "since the copy (from %s): it may hold writes that copying again would "
                     "discard; refusing (--force copies again all the same)",
                     when);
            return BERTH_EEXIST;
        }
        return BERTH_OK;
    }
    char what[256];
    rc = dst_holds_data(dst, tl, what, sizeof(what));
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot read the destination database");
        return rc;
    }
    if (what[0] != '\0') {
        snprintf(why, why_cap,
                 "the destination already holds another registry's data (%s%s%s); refusing "
                 "to overwrite it",
                 what, from[0] != '\0' ? ", migrated from registry " : "", from);
        return BERTH_EEXIST;
    }
    return BERTH_OK;
}

enum berth_err meta_copy_check(struct meta *dst, const char *src_id, bool force, char *why,
                               size_t why_cap)
{
    why[0] = '\0';
    struct table_list *tl = calloc(1, sizeof(*tl));
    if (tl == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = meta_begin_read(dst);
    if (rc == BERTH_OK) {
        rc = list_tables(dst, tl);
        if (rc != BERTH_OK) {
            snprintf(why, why_cap, "cannot list the destination's tables");
        } else {
            rc = check_dst(dst, tl, src_id, force, why, why_cap);
        }
        meta_rollback(dst);
    } else {
        snprintf(why, why_cap, "cannot read the destination database");
    }
    free(tl);
    return rc;
}

/* Copy table t's rows from src to dst (both in their transactions). */
static enum berth_err copy_table(struct meta *src, struct meta *dst, const char *t, int64_t *rows)
{
    struct column_list cols;
    enum berth_err rc = list_columns(dst, t, &cols);
    if (rc != BERTH_OK) {
        return rc;
    }
    char sel[4096];
    char ins[4096];
    size_t so = (size_t)snprintf(sel, sizeof(sel), "SELECT ");
    size_t io = (size_t)snprintf(ins, sizeof(ins), "INSERT INTO %s (", t);
    for (size_t i = 0; i < cols.n; i++) {
        so += (size_t)snprintf(sel + so, sizeof(sel) - so, "%s%s", i ? ", " : "", cols.name[i]);
        io += (size_t)snprintf(ins + io, sizeof(ins) - io, "%s%s", i ? ", " : "", cols.name[i]);
    }
    snprintf(sel + so, sizeof(sel) - so, " FROM %s", t);
    io += (size_t)snprintf(ins + io, sizeof(ins) - io, ") VALUES (");
    for (size_t i = 0; i < cols.n; i++) {
        io += (size_t)snprintf(ins + io, sizeof(ins) - io, "%s?%zu", i ? ", " : "", i + 1);
    }
    snprintf(ins + io, sizeof(ins) - io, ")");
    struct meta_stmt *r = dyn_prepare(src, sel);
    if (r == NULL) {
        return BERTH_EDB;
    }
    struct meta_stmt *w = dyn_prepare(dst, ins);
    if (w == NULL) {
        src->drv->finalize(r);
        return BERTH_EDB;
    }
    enum meta_step s;
    rc = BERTH_OK;
    while ((s = src->drv->step(r)) == META_STEP_ROW) {
        dst->drv->reset(w);
        for (size_t i = 0; i < cols.n; i++) {
            int p = (int)i + 1;
            int c = (int)i;
            if (src->drv->col_is_null(r, c)) {
                dst->drv->bind_null(w, p);
            } else if (cols.kind[i] == COL_INT) {
                dst->drv->bind_int64(w, p, src->drv->col_int64(r, c));
            } else if (cols.kind[i] == COL_BLOB) {
                const void *b = src->drv->col_blob(r, c);
                size_t n = src->drv->col_bytes(r, c);
                dst->drv->bind_blob(w, p, b != NULL ? b : "", n);
            } else {
                const char *v = src->drv->col_text(r, c);
                dst->drv->bind_text(w, p, v != NULL ? v : "");
            }
        }
        if (dst->drv->step(w) == META_STEP_ERROR) {
            rc = dst->drv->error(dst->conn, "migrate_insert");
            log_error("event=migrate_row_refused table=%s", t);
            break;
        }
        (*rows)++;
    }
    if (rc == BERTH_OK && s != META_STEP_DONE) {
        rc = src->drv->error(src->conn, "migrate_select");
    }
    dst->drv->finalize(w);
    src->drv->finalize(r);
    if (rc == BERTH_OK && dst->drv->dialect == META_DIALECT_POSTGRES) {
        /* identity columns continue after the highest id copied */
        for (size_t i = 0; i < cols.n; i++) {
            if (strcmp(cols.name[i], "id") == 0) {
                char sql[512];
                snprintf(sql, sizeof(sql),
                         "SELECT setval(pg_get_serial_sequence('%s', 'id'), "
                         "(SELECT max(id) FROM %s)) FROM %s LIMIT 1",
                         t, t, t);
                if (query_count(dst, sql) < 0 && count_rows(dst, t) > 0) {
                    rc = BERTH_EDB;
                }
            }
        }
    }
    return rc;
}

enum berth_err meta_copy_all(struct meta *src, struct meta *dst, const char *src_id,
                             struct meta_copy_stats *stats, char *why, size_t why_cap)
{
    memset(stats, 0, sizeof(*stats));
    why[0] = '\0';
    if (meta_schema_version(src) != meta_schema_version(dst)) {
        snprintf(why, why_cap, "the schema versions differ (source %d, destination %d)",
                 meta_schema_version(src), meta_schema_version(dst));
        return BERTH_EUNSUPPORTED;
    }
    enum berth_err rc = meta_begin_read(src);
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot read the source database");
        return rc;
    }
    rc = meta_begin(dst);
    if (rc != BERTH_OK) {
        meta_rollback(src);
        snprintf(why, why_cap, "cannot write the destination database");
        return rc;
    }
    struct table_list *tl = calloc(1, sizeof(*tl));
    if (tl == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = list_tables(src, tl);
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot list the source's tables");
        goto out;
    }
    stats->archived_blobs = query_count(src, "SELECT count(*) FROM blobs WHERE tier <> 0");
    if (stats->archived_blobs != 0) {
        snprintf(why, why_cap,
                 "the source has %" PRId64 " blobs in the archive tier, which berth migrate "
                 "does not carry; restore those images first",
                 stats->archived_blobs);
        rc = BERTH_EUNSUPPORTED;
        goto out;
    }
    /* meta_copy_check ran first: a served copy was refused or forced */
    rc = check_dst(dst, tl, src_id, true, why, why_cap);
    if (rc != BERTH_OK) {
        goto out;
    }
    /* the destination's pairing with its own blob store stays */
    char store_id[64];
    rc = setting_get(dst, META_COPY_STORE_SETTING, store_id, sizeof(store_id));
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot read the destination's settings");
        goto out;
    }
    /* empty, or an earlier copy of this registry: clear it, newest tables first */
    for (size_t i = tl->n; i-- > 0;) {
        char sql[256];
        snprintf(sql, sizeof(sql), "DELETE FROM %s", tl->name[i]);
        rc = dst->drv->exec(dst->conn, sql, "migrate_clear");
        if (rc != BERTH_OK) {
            snprintf(why, why_cap, "cannot clear table %s of the destination", tl->name[i]);
            goto out;
        }
    }
    for (size_t i = 0; i < tl->n; i++) {
        rc = copy_table(src, dst, tl->name[i], &stats->rows);
        if (rc != BERTH_OK) {
            snprintf(why, why_cap, "copying table %s failed (see the log above)", tl->name[i]);
            goto out;
        }
        stats->tables++;
    }
    rc = setting_put(dst, META_COPY_ID_SETTING, src_id);
    if (rc == BERTH_OK) {
        rc = setting_put(dst, META_COPY_FROM_SETTING, src_id);
    }
    if (rc == BERTH_OK) {
        /* not served since this copy (the source's own mark is not dst's) */
        rc = setting_delete(dst, META_COPY_SERVED_SETTING);
    }
    if (rc == BERTH_OK) {
        rc = setting_delete(dst, META_COPY_STORE_SETTING);
    }
    if (rc == BERTH_OK && store_id[0] != '\0') {
        rc = setting_put(dst, META_COPY_STORE_SETTING, store_id);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(dst);
    }
    if (rc != BERTH_OK && why[0] == '\0') {
        snprintf(why, why_cap, "cannot commit the destination database");
    }
out:
    free(tl);
    meta_rollback(dst);
    meta_rollback(src);
    return rc;
}

enum berth_err meta_copy_compare(struct meta *a, struct meta *b, char *why, size_t why_cap)
{
    struct table_list *tl = calloc(1, sizeof(*tl));
    if (tl == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = list_tables(a, tl);
    for (size_t i = 0; rc == BERTH_OK && i < tl->n; i++) {
        const char *t = tl->name[i];
        int64_t na = count_rows(a, t);
        int64_t nb = count_rows(b, t);
        if (strcmp(t, "registry_settings") == 0) {
            /* the migration's own settings may be in one and not the other */
            char v[64];
            if (setting_get(a, META_COPY_FROM_SETTING, v, sizeof(v)) == BERTH_OK && v[0]) {
                na--;
            }
            if (setting_get(b, META_COPY_FROM_SETTING, v, sizeof(v)) == BERTH_OK && v[0]) {
                nb--;
            }
            /* and each its own pairing with its blob store */
            if (setting_get(a, META_COPY_STORE_SETTING, v, sizeof(v)) == BERTH_OK && v[0]) {
                na--;
            }
            if (setting_get(b, META_COPY_STORE_SETTING, v, sizeof(v)) == BERTH_OK && v[0]) {
                nb--;
            }
        }
        if (na < 0 || nb < 0 || na != nb) {
            snprintf(why, why_cap,
                     "table %s has %" PRId64 " rows in the source, %" PRId64 " in the destination",
                     t, na, nb);
            rc = BERTH_EINVAL;
        }
    }
    free(tl);
    return rc;
}

enum berth_err meta_copy_blob_rows(struct meta *m, meta_copy_blob_fn fn, void *arg)
{
    struct meta_stmt *st = dyn_prepare(m, "SELECT digest, size FROM blobs ORDER BY id");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = BERTH_OK;
    enum meta_step s;
    while ((s = m->drv->step(st)) == META_STEP_ROW) {
        const char *d = m->drv->col_text(st, 0);
        rc = fn(arg, d != NULL ? d : "", m->drv->col_int64(st, 1));
        if (rc != BERTH_OK) {
            break;
        }
    }
    if (rc == BERTH_OK && s != META_STEP_DONE) {
        rc = m->drv->error(m->conn, "migrate_blob_rows");
    }
    m->drv->finalize(st);
    return rc;
}
