/*
 * The vulnerability database: importing OSV records (a directory, a .json
 * file or an archive of them) into <root>/vulndb.db in one transaction,
 * and matching an image's packages against it. SQL lives in
 * meta_vulndb.c; this file does the walking, parsing and deciding.
 */
#include "scan/vulndb/vulndb.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/fileio.h"
#include "common/log.h"
#include "scan/vulndb/osv.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "vulndb_int.h"

/* Directory levels an import descends. */
#define VULNDB_MAX_DEPTH 16
#define META_UPDATED_AT "source_updated_at_ms"

struct vulndb {
    struct vdb *vdb;
    int64_t updated_at_ms;
};

struct importer {
    struct vdb *db;
    struct vulndb_import_stats *stats;
    char *err;
    size_t cap;
};

static enum berth_err fail(struct importer *im, enum berth_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum berth_err fail(struct importer *im, enum berth_err rc, const char *fmt, ...)
{
    if (im->cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(im->err, im->cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void note_invalid(struct importer *im, const char *label, const char *why)
{
    char lv[256], wv[256];
    im->stats->invalid++;
    if (im->stats->first_invalid[0] == '\0') {
        snprintf(im->stats->first_invalid, sizeof(im->stats->first_invalid), "%s: %s", label, why);
    }
    log_warn("event=vulndb_import_skip file=%s reason=%s", log_value(label, lv, sizeof(lv)),
             log_value(why, wv, sizeof(wv)));
}

static enum berth_err store_record(struct importer *im, const struct osv_record *rec)
{
    enum berth_err rc = BERTH_OK;
    size_t n = 0;
    struct vdb_affected *rows =
        calloc(rec->affected_count ? rec->affected_count : 1, sizeof(*rows));
    char *description = NULL;
    if (rows == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < rec->affected_count; i++) {
        const struct osv_affected *a = &rec->affected[i];
        if (a->ecosystem == NULL || scan_ecosystem_scheme(a->ecosystem) == SCAN_VERSION_NONE) {
            continue;
        }
        struct osv_severity_result sev;
        osv_resolve_severity(rec, a, &sev);
        char *ranges = osv_affected_dump(a);
        if (ranges == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        rows[n++] = (struct vdb_affected){
            .ecosystem = a->ecosystem,
            .package = a->name,
            .ranges = ranges,
            .severity = scan_severity_name(sev.severity),
            .cvss3_tenths = sev.cvss3_tenths,
            .cvss3_vector = sev.cvss3_vector,
        };
    }
    if (n == 0) {
        /* nothing berth can match; drop an older version that had some */
        im->stats->not_os++;
        rc = vdb_delete(im->db, rec->id);
        goto out;
    }
    const char *text = rec->summary && rec->summary[0] ? rec->summary
                       : rec->details                  ? rec->details
                                                       : "";
    /* ECR's limits, applied here once: findings are made from these rows */
    description = str_ndup(text, str_utf8_cut(text, SCAN_DESCRIPTION_MAX));
    const char *uri = osv_record_uri(rec);
    if (description == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    struct vdb_vuln vuln = {
        .osv_id = rec->id,
        .name = osv_record_finding_name(rec),
        .modified = rec->modified,
        .description = description,
        .uri = uri && strlen(uri) <= SCAN_URI_MAX ? uri : NULL,
    };
    rc = vdb_put(im->db, &vuln, rows, n);
    if (rc == BERTH_OK) {
        im->stats->records++;
    }
out:
    for (size_t i = 0; i < n; i++) {
        free((char *)rows[i].ranges);
    }
    free(rows);
    free(description);
    return rc;
}

static enum berth_err import_json(struct importer *im, const char *label, const char *json,
                                  size_t len)
{
    if (++im->stats->files > VULNDB_MAX_FILES) {
        return fail(im, BERTH_ETOOBIG, "more than %d .json files", VULNDB_MAX_FILES);
    }
    struct osv_record *rec = NULL;
    char why[256];
    enum berth_err rc = osv_record_parse(json, len, &rec, why, sizeof(why));
    if (rc == BERTH_EINVAL || rc == BERTH_ETOOBIG) {
        note_invalid(im, label, why);
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    if (rec->is_withdrawn) {
        im->stats->withdrawn++;
        rc = vdb_delete(im->db, rec->id);
    } else {
        rc = store_record(im, rec);
    }
    osv_record_free(rec);
    if (rc != BERTH_OK && rc != BERTH_ENOMEM) {
        return fail(im, rc, "storing %s failed", label);
    }
    return rc;
}

static enum berth_err import_file(struct importer *im, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    enum berth_err rc = file_read_bounded(path, OSV_RECORD_MAX, &buf, &len);
    if (rc == BERTH_ETOOBIG) {
        im->stats->files++;
        note_invalid(im, path, "larger than the 4 MiB record limit");
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        return fail(im, rc == BERTH_ENOMEM ? rc : BERTH_EIO, "cannot read %s: %s", path,
                    strerror(errno));
    }
    rc = import_json(im, path, buf, len);
    free(buf);
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum berth_err import_dir(struct importer *im, const char *dir, int depth)
{
    enum berth_err rc = BERTH_OK;
    char **names = NULL;
    size_t count = 0, cap = 0;
    char *path = NULL;
    if (depth > VULNDB_MAX_DEPTH) {
        return fail(im, BERTH_ETOOBIG, "%s is nested more than %d levels deep", dir,
                    VULNDB_MAX_DEPTH);
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return fail(im, BERTH_EIO, "cannot list %s: %s", dir, strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue; /* ".", "..", and hidden files */
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            char **p = realloc(names, ncap * sizeof(*p));
            if (p == NULL) {
                rc = BERTH_ENOMEM;
                goto out;
            }
            names = p;
            cap = ncap;
        }
        names[count] = strdup(de->d_name);
        if (names[count] == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        count++;
        if (count > VULNDB_MAX_FILES) {
            rc = fail(im, BERTH_ETOOBIG, "%s has more than %d entries", dir, VULNDB_MAX_FILES);
            goto out;
        }
    }
    closedir(d);
    d = NULL;
    if (count > 1) {
        qsort(names, count, sizeof(*names), name_cmp);
    }
    for (size_t i = 0; i < count && rc == BERTH_OK; i++) {
        size_t n = strlen(dir) + strlen(names[i]) + 2;
        free(path);
        path = malloc(n);
        if (path == NULL) {
            rc = BERTH_ENOMEM;
            break;
        }
        snprintf(path, n, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0) {
            continue; /* vanished or a dangling link */
        }
        if (S_ISDIR(st.st_mode)) {
            rc = import_dir(im, path, depth + 1);
        } else if (S_ISREG(st.st_mode) && str_has_suffix(names[i], ".json")) {
            rc = import_file(im, path);
        }
    }
out:
    if (d != NULL) {
        closedir(d);
    }
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
    free(path);
    return rc;
}

static enum berth_err archive_bytes_ok(struct importer *im, struct archive *a, const char *path)
{
    la_int64_t n = archive_filter_bytes(a, 0);
    if (n > 0 && (uint64_t)n > VULNDB_MAX_ARCHIVE_BYTES) {
        return fail(im, BERTH_ETOOBIG, "%s expands to more than %llu bytes", path,
                    (unsigned long long)VULNDB_MAX_ARCHIVE_BYTES);
    }
    return BERTH_OK;
}

static const char *aerr(struct archive *a)
{
    const char *msg = archive_error_string(a);
    return msg ? msg : "unreadable archive";
}

static enum berth_err import_archive(struct importer *im, const char *path)
{
    enum berth_err rc = BERTH_OK;
    char *buf = NULL;
    char *label = NULL;
    struct archive *a = archive_read_new();
    if (a == NULL) {
        return BERTH_ENOMEM;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    if (archive_read_open_filename(a, path, 128 * 1024) != ARCHIVE_OK) {
        rc = fail(im, BERTH_EINVAL, "cannot read %s: %s", path, aerr(a));
        goto out;
    }
    for (;;) {
        struct archive_entry *e;
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF) {
            break;
        }
        if (ar < ARCHIVE_WARN) {
            rc = fail(im, BERTH_EINVAL, "reading %s: %s", path, aerr(a));
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        bool wanted =
            name != NULL && archive_entry_filetype(e) == AE_IFREG && str_has_suffix(name, ".json");
        la_int64_t size = archive_entry_size(e);
        if (wanted) {
            size_t n = strlen(path) + strlen(name) + 2;
            free(label);
            label = malloc(n);
            if (label == NULL) {
                rc = BERTH_ENOMEM;
                goto out;
            }
            snprintf(label, n, "%s:%s", path, name);
        }
        if (wanted && archive_entry_size_is_set(e) && size > OSV_RECORD_MAX) {
            im->stats->files++;
            note_invalid(im, label, "larger than the 4 MiB record limit");
            wanted = false;
        }
        if (!wanted) {
            const void *blk;
            size_t blen;
            la_int64_t off;
            int dr;
            while ((dr = archive_read_data_block(a, &blk, &blen, &off)) == ARCHIVE_OK) {
                if ((rc = archive_bytes_ok(im, a, path)) != BERTH_OK) {
                    goto out;
                }
            }
            if (dr != ARCHIVE_EOF) {
                rc = fail(im, BERTH_EINVAL, "reading %s: %s", path, aerr(a));
                goto out;
            }
            continue;
        }
        size_t cap = archive_entry_size_is_set(e) ? (size_t)size : OSV_RECORD_MAX;
        size_t len = 0;
        free(buf);
        buf = malloc(cap + 1);
        if (buf == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        for (;;) {
            la_ssize_t got = archive_read_data(a, buf + len, cap - len);
            if (got < 0) {
                rc = fail(im, BERTH_EINVAL, "reading %s: %s", label, aerr(a));
                goto out;
            }
            if (got == 0 || len + (size_t)got == cap) {
                len += (size_t)got;
                break;
            }
            len += (size_t)got;
        }
        if ((rc = archive_bytes_ok(im, a, path)) != BERTH_OK) {
            goto out;
        }
        rc = import_json(im, label, buf, len);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
out:
    archive_read_free(a);
    free(buf);
    free(label);
    return rc;
}

static bool is_archive_name(const char *path)
{
    static const char *const suffixes[] = {".tar.gz", ".tgz", ".tar.zst", ".tzst", ".zip", ".tar"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (str_has_suffix(path, suffixes[i])) {
            return true;
        }
    }
    return false;
}

static enum berth_err file_path(const char *root_dir, const char *name, char **out)
{
    size_t n = strlen(root_dir) + strlen(name) + 2;
    *out = malloc(n);
    if (*out == NULL) {
        return BERTH_ENOMEM;
    }
    snprintf(*out, n, "%s/%s", root_dir, name);
    return BERTH_OK;
}

/* The file an import writes: <root>/vulndb.db. */
static enum berth_err db_path(const char *root_dir, char **out)
{
    return file_path(root_dir, VULNDB_FILE, out);
}

/* The file a reader opens: the shared database's local copy when there is
 * one, else <root>/vulndb.db. */
static enum berth_err read_path(const char *root_dir, char **out)
{
    enum berth_err rc = file_path(root_dir, VULNDB_SHARED_FILE, out);
    struct stat st;
    if (rc != BERTH_OK || stat(*out, &st) == 0) {
        return rc;
    }
    free(*out);
    return db_path(root_dir, out);
}

enum berth_err vulndb_import(const char *root_dir, const char *path,
                             struct vulndb_import_stats *stats, char *err, size_t cap)
{
    struct vulndb_import_stats local = {0};
    struct importer im = {.stats = &local, .err = err, .cap = cap};
    enum berth_err rc;
    char *dbfile = NULL;
    struct stat st;
    if (cap > 0) {
        err[0] = '\0';
    }
    if (stat(path, &st) != 0) {
        return fail(&im, BERTH_ENOTFOUND, "%s: %s", path, strerror(errno));
    }
    bool is_dir = S_ISDIR(st.st_mode);
    if (!is_dir &&
        !(S_ISREG(st.st_mode) && (str_has_suffix(path, ".json") || is_archive_name(path)))) {
        return fail(&im, BERTH_EINVAL,
                    "%s is not a directory, a .json file or a .tar.gz, .tgz, .tar.zst, .tzst, "
                    ".tar or .zip archive",
                    path);
    }
    rc = file_mkdir_p(root_dir, 0750);
    if (rc != BERTH_OK) {
        return fail(&im, rc, "cannot create %s: %s", root_dir, strerror(errno));
    }
    rc = db_path(root_dir, &dbfile);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = vdb_open(dbfile, true, &im.db, err, cap);
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = vdb_begin(im.db);
    if (rc != BERTH_OK) {
        fail(&im, rc, "cannot start the import transaction%s",
             rc == BERTH_EBUSY ? ": another import is running" : "");
        goto out;
    }
    if (is_dir) {
        rc = import_dir(&im, path, 0);
    } else if (str_has_suffix(path, ".json")) {
        rc = import_file(&im, path);
    } else {
        rc = import_archive(&im, path);
    }
    if (rc == BERTH_OK && local.files == 0) {
        rc = fail(&im, BERTH_ENOTFOUND, "no .json files in %s", path);
    }
    if (rc == BERTH_OK) {
        local.imported_at_ms = time_now_ms();
        rc = vdb_meta_set(im.db, META_UPDATED_AT, local.imported_at_ms);
    }
    if (rc == BERTH_OK) {
        rc = vdb_commit(im.db);
        if (rc != BERTH_OK) {
            fail(&im, rc, "committing the import failed");
        }
    }
out:
    if (im.db != NULL) {
        if (rc != BERTH_OK) {
            vdb_rollback(im.db);
        }
        vdb_close(im.db);
    }
    free(dbfile);
    if (rc == BERTH_OK) {
        char pv[256];
        log_info("event=vulndb_import path=%s files=%zu records=%zu withdrawn=%zu not_os=%zu "
                 "invalid=%zu",
                 log_value(path, pv, sizeof(pv)), local.files, local.records, local.withdrawn,
                 local.not_os, local.invalid);
        if (stats != NULL) {
            *stats = local;
        }
    }
    return rc;
}

enum berth_err vulndb_open(const char *root_dir, struct vulndb **out)
{
    char *dbfile = NULL;
    struct vulndb *db = NULL;
    struct stat st;
    char err[256];
    enum berth_err rc = read_path(root_dir, &dbfile);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (stat(dbfile, &st) != 0) {
        rc = BERTH_ENOTFOUND;
        goto out;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = vdb_open(dbfile, false, &db->vdb, err, sizeof(err));
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = vdb_meta_get(db->vdb, META_UPDATED_AT, &db->updated_at_ms);
    if (rc == BERTH_ENOTFOUND) {
        db->updated_at_ms = -1;
        rc = BERTH_OK;
    }
out:
    free(dbfile);
    if (rc != BERTH_OK) {
        vulndb_close(db);
        return rc;
    }
    *out = db;
    return BERTH_OK;
}

void vulndb_close(struct vulndb *db)
{
    if (db == NULL) {
        return;
    }
    vdb_close(db->vdb);
    free(db);
}

int64_t vulndb_source_updated_at_ms(const struct vulndb *db)
{
    return db ? db->updated_at_ms : -1;
}

static enum berth_err summary_ecosystem(void *ctx, const char *ecosystem, int64_t records)
{
    struct vulndb_summary *out = ctx;
    if (out->ecosystem_count < VULNDB_SUMMARY_ECOSYSTEMS) {
        str_copy(out->ecosystems[out->ecosystem_count].name, sizeof(out->ecosystems[0].name),
                 ecosystem);
        out->ecosystems[out->ecosystem_count].records = records;
    }
    out->ecosystem_count++;
    return BERTH_OK;
}

enum berth_err vulndb_summary(const char *root_dir, struct vulndb_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->updated_at_ms = -1;
    out->schema_version = VULNDB_SCHEMA_VERSION;
    struct vulndb *db = NULL;
    enum berth_err rc = vulndb_open(root_dir, &db);
    if (rc != BERTH_OK) {
        return rc;
    }
    char *dbfile = NULL;
    struct stat st;
    if (read_path(root_dir, &dbfile) == BERTH_OK && stat(dbfile, &st) == 0) {
        out->file_bytes = (int64_t)st.st_size;
    }
    free(dbfile);
    out->updated_at_ms = db->updated_at_ms;
    rc = vdb_counts(db->vdb, &out->records, summary_ecosystem, out);
    vulndb_close(db);
    return rc;
}

enum berth_err vulndb_seal(const char *root_dir, int64_t *records, int64_t *imported_at_ms,
                           char *err, size_t cap)
{
    char *dbfile = NULL;
    struct stat st;
    enum berth_err rc = db_path(root_dir, &dbfile);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (stat(dbfile, &st) != 0) {
        snprintf(err, cap, "no vulnerability database at %s", dbfile);
        free(dbfile);
        return BERTH_ENOTFOUND;
    }
    rc = vdb_seal(dbfile, err, cap);
    struct vdb *db = NULL;
    if (rc == BERTH_OK) {
        rc = vdb_open(dbfile, false, &db, err, cap);
    }
    if (rc == BERTH_OK) {
        rc = vdb_meta_get(db, META_UPDATED_AT, imported_at_ms);
        if (rc == BERTH_ENOTFOUND) {
            *imported_at_ms = -1;
            rc = BERTH_OK;
        }
    }
    if (rc == BERTH_OK) {
        rc = vdb_counts(db, records, NULL, NULL);
    }
    vdb_close(db);
    free(dbfile);
    return rc;
}

enum berth_err vulndb_check_file(const char *path, int64_t *imported_at_ms, char *err, size_t cap)
{
    struct vdb *db = NULL;
    enum berth_err rc = vdb_open(path, false, &db, err, cap);
    if (rc == BERTH_OK) {
        rc = vdb_meta_get(db, META_UPDATED_AT, imported_at_ms);
        if (rc == BERTH_ENOTFOUND) {
            *imported_at_ms = -1;
            rc = BERTH_OK;
        }
    }
    vdb_close(db);
    return rc;
}

struct match_ctx {
    const struct scan_os *os;
    const char *package;
    const char *version;
    const char *arch; /* of the first binary package built from it, or NULL */
    struct scan_findings *out;
};

static enum berth_err on_row(void *arg, const struct vdb_row *row)
{
    struct match_ctx *m = arg;
    struct osv_affected *a = NULL;
    bool hit = false;
    if (osv_affected_parse(row->ranges, strlen(row->ranges), &a) != BERTH_OK) {
        log_warn("event=vulndb_bad_row osv_id=%s", row->osv_id);
        return BERTH_OK;
    }
    enum berth_err rc = osv_affected_includes(a, m->os->scheme, m->version, &hit);
    const char *fix =
        rc == BERTH_OK && hit ? osv_affected_fixed(a, m->os->scheme, m->version) : NULL;
    char fixed[SCAN_ATTRIBUTE_VALUE_MAX + 1] = "";
    if (fix != NULL && strlen(fix) < sizeof(fixed)) {
        memcpy(fixed, fix, strlen(fix) + 1);
    }
    osv_affected_free(a);
    if (rc != BERTH_OK || !hit) {
        return BERTH_OK;
    }
    enum scan_severity sev = SCAN_SEVERITY_UNDEFINED;
    scan_severity_parse(row->severity, &sev);
    struct scan_finding f = {
        .name = row->name,
        .description = row->description,
        .uri = row->uri,
        .severity = sev,
        .package_name = m->package,
        .package_version = m->version,
        .fixed_version = fixed[0] != '\0' ? fixed : NULL,
        .cvss3_tenths = row->cvss3_vector ? row->cvss3_tenths : -1,
        .cvss3_vector = row->cvss3_vector,
        .source_id = row->osv_id,
        .package_manager = scan_pkg_manager_name(m->os->manager),
        .package_arch = m->arch,
        .platform = m->os->platform,
    };
    rc = scan_findings_add(m->out, &f);
    return rc == BERTH_EINVAL ? BERTH_OK : rc;
}

/* Order packages by (source, source_version) to visit each pair once. */
static int pair_cmp(const void *pa, const void *pb)
{
    const struct scan_pkg *a = *(const struct scan_pkg *const *)pa;
    const struct scan_pkg *b = *(const struct scan_pkg *const *)pb;
    int c = strcmp(a->source, b->source);
    return c ? c : strcmp(a->source_version, b->source_version);
}

/* pair_cmp, then the binary package's name: the first of a pair is the
 * same for any input order. */
static int order_cmp(const void *pa, const void *pb)
{
    int c = pair_cmp(pa, pb);
    if (c == 0) {
        const struct scan_pkg *a = *(const struct scan_pkg *const *)pa;
        const struct scan_pkg *b = *(const struct scan_pkg *const *)pb;
        c = strcmp(a->name, b->name);
    }
    return c;
}

enum berth_err vulndb_match(struct vulndb *db, const struct scan_os *os,
                            const struct scan_pkgs *pkgs, struct scan_findings *out)
{
    if (db == NULL || os == NULL || pkgs == NULL || out == NULL) {
        return BERTH_EINVAL;
    }
    if (pkgs->count == 0) {
        return BERTH_OK;
    }
    const struct scan_pkg **order = malloc(pkgs->count * sizeof(*order));
    if (order == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < pkgs->count; i++) {
        order[i] = &pkgs->items[i];
    }
    qsort(order, pkgs->count, sizeof(*order), order_cmp);
    enum berth_err rc = BERTH_OK;
    for (size_t i = 0; i < pkgs->count && rc == BERTH_OK; i++) {
        if (i > 0 && pair_cmp(&order[i - 1], &order[i]) == 0) {
            continue;
        }
        struct match_ctx m = {os, order[i]->source, order[i]->source_version, order[i]->arch, out};
        rc = vdb_query(db->vdb, os->ecosystem, os->family, m.package, on_row, &m);
    }
    free(order);
    return rc;
}

enum berth_err vulndb_copy(const char *from_root, const char *to_root, enum vulndb_copied *what,
                           char *err, size_t cap)
{
    *what = VULNDB_COPY_NONE;
    struct vulndb_summary *from = calloc(2, sizeof(*from));
    if (from == NULL) {
        return BERTH_ENOMEM;
    }
    struct vulndb_summary *to = from + 1;
    enum berth_err rc = vulndb_summary(from_root, from);
    if (rc == BERTH_ENOTFOUND) {
        free(from);
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        snprintf(err, cap, "cannot read the vulnerability database under %s: %s", from_root,
                 berth_strerror(rc));
        free(from);
        return rc;
    }
    rc = vulndb_summary(to_root, to);
    if (rc == BERTH_OK && to->updated_at_ms >= from->updated_at_ms) {
        *what = VULNDB_COPY_KEPT;
        free(from);
        return BERTH_OK;
    }
    free(from);
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        snprintf(err, cap, "cannot read the vulnerability database under %s: %s", to_root,
                 berth_strerror(rc));
        return rc;
    }
    char *src = NULL, *dst = NULL;
    rc = db_path(from_root, &src);
    if (rc == BERTH_OK) {
        rc = db_path(to_root, &dst);
    }
    if (rc == BERTH_OK) {
        rc = vdb_backup(src, dst, err, cap);
    }
    free(src);
    free(dst);
    if (rc == BERTH_OK) {
        *what = VULNDB_COPY_DONE;
    }
    return rc;
}
