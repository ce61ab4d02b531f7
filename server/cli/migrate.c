/*
 * berth migrate --from CONFIG --to CONFIG: copy one configuration's
 * registry into another's store (storage/bundle/migrate.h), printing a
 * line per phase and periodic counts on standard error, and a summary;
 * then the files outside the database the destination needs to serve the
 * same: the upstream secrets key, the signing profiles' keys and the
 * vulnerability database.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_int.h"

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "scan/engine/scan_dbsync.h"
#include "scan/vulndb/vulndb.h"
#include "storage/bundle/migrate.h"
#include "storage/meta/meta.h"

struct shown {
    int64_t last_ms;
    enum migrate_phase phase;
    int64_t kill_after; /* for tests: SIGKILL itself after this many blobs copied */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A line at each phase's start and end, and every two seconds between. */
static void show_progress(void *arg, const struct migrate_progress *p)
{
    struct shown *sh = arg;
    if (sh->kill_after > 0 && p->phase == MIGRATE_BLOBS && p->copied >= sh->kill_after) {
        fprintf(stderr, "migrate: killed after %lld blobs (BERTH_TEST_MIGRATE_KILL_AFTER)\n",
                (long long)p->copied);
        fflush(stderr);
        raise(SIGKILL);
    }
    int64_t t = now_ms();
    bool edge = p->finished || p->done == 0 || p->phase != sh->phase;
    if (!edge && t - sh->last_ms < 2000) {
        return;
    }
    sh->last_ms = t;
    sh->phase = p->phase;
    if (p->phase == MIGRATE_METADATA) {
        if (p->finished) {
            fprintf(stderr, "migrate: metadata: %lld rows copied\n", (long long)p->done);
        } else {
            fprintf(stderr, "migrate: metadata: copying every table in one transaction\n");
        }
    } else if (p->phase == MIGRATE_BLOBS) {
        fprintf(stderr,
                "migrate: blobs: %lld/%lld (%lld copied, %lld already there), %.1f MiB "
                "copied%s\n",
                (long long)p->done, (long long)p->total, (long long)p->copied,
                (long long)p->present, (double)p->bytes / (1024.0 * 1024.0),
                p->finished ? ", done" : "");
    } else {
        fprintf(stderr, "migrate: verify: %lld/%lld blobs re-read and hashed, %.1f MiB%s\n",
                (long long)p->done, (long long)p->total, (double)p->bytes / (1024.0 * 1024.0),
                p->finished ? ", row counts equal, done" : "");
    }
    fflush(stderr);
}

/* A configuration file as written (no environment, no --root). */
static bool read_one(const char *path, struct berth_config *cfg)
{
    char err[512];
    if (config_init(cfg) != BERTH_OK) {
        fprintf(stderr, "berth migrate: out of memory\n");
        return false;
    }
    if (config_load_file(cfg, path, err, sizeof(err)) != BERTH_OK ||
        config_validate(cfg, err, sizeof(err)) != BERTH_OK) {
        fprintf(stderr, "berth migrate: %s: %s\n", path, err);
        config_fini(cfg);
        return false;
    }
    return true;
}

static int count_secret(void *ctx, const char *name, int64_t created_at, int64_t updated_at)
{
    (void)name;
    (void)created_at;
    (void)updated_at;
    (*(int64_t *)ctx)++;
    return 0;
}

/*
 * The source's upstream secrets (berth secrets) are sealed with its key:
 * the destination must open them with the same one. With secrets in the
 * source and its key found: a destination without a key gets a copy of the
 * source's in its key file (0600) when write is set (after the copy); one
 * with another key is refused (before anything is copied). False
 * (reported) to stop.
 */
static bool carry_secrets_key(const struct cli *src_cli, struct store *src,
                              const struct cli *dst_cli, bool write)
{
    int64_t n = 0;
    struct meta *m = store_meta(src);
    if (m == NULL || meta_upstream_secret_list(m, count_secret, &n) != BERTH_OK) {
        fprintf(stderr, "berth migrate: cannot list the source's upstream secrets\n");
        return false;
    }
    if (n == 0) {
        return true;
    }
    uint8_t sk[SEAL_KEY_LEN], dk[SEAL_KEY_LEN];
    bool sfound = false, dfound = false;
    if (!cli_upstream_key(src_cli, false, sk, &sfound)) {
        return false;
    }
    if (!sfound) {
        return true; /* sealed with a key this configuration does not name */
    }
    bool ok = cli_upstream_key(dst_cli, false, dk, &dfound);
    if (ok && dfound && memcmp(sk, dk, SEAL_KEY_LEN) != 0) {
        fprintf(stderr,
                "berth migrate: refused: the destination's upstream secrets key "
                "(pull_through.secrets_key or its key file) differs from the source's, so the "
                "source's %lld upstream secrets could not be opened there; give the destination "
                "the source's key, or none (then the source's key file is copied)\n",
                (long long)n);
        ok = false;
    } else if (ok && !dfound && write) {
        const struct berth_config *cfg = &dst_cli->cfg;
        char path[4096], hex[2 * SEAL_KEY_LEN + 2];
        if (cfg->pull_through_secrets_key_file[0] != '\0') {
            snprintf(path, sizeof(path), "%s", cfg->pull_through_secrets_key_file);
        } else {
            snprintf(path, sizeof(path), "%s/secrets.key", cfg->root);
        }
        for (size_t i = 0; i < SEAL_KEY_LEN; i++) {
            snprintf(hex + 2 * i, 3, "%02x", sk[i]);
        }
        hex[2 * SEAL_KEY_LEN] = '\n';
        hex[2 * SEAL_KEY_LEN + 1] = '\0';
        enum berth_err rc = file_write_atomic(path, hex, 2 * SEAL_KEY_LEN + 1, 0600, true);
        memset(hex, 0, sizeof(hex));
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth migrate: cannot write the upstream secrets key to %s (%s)\n",
                    path, berth_strerror(rc));
            ok = false;
        } else {
            fprintf(stderr, "migrate: the source's upstream secrets key copied to %s\n", path);
        }
    }
    memset(sk, 0, sizeof(sk));
    memset(dk, 0, sizeof(dk));
    return ok;
}

/* Largest signing profile file carried (a PEM key and its chain). */
#define PROFILE_MAX ((size_t)1 << 20)

struct profiles {
    char (*names)[NAME_MAX + 1]; /* <profile>.pem, in directory order */
    size_t count;
    size_t cap;
};

/* The <profile>.pem files of dir (none when dir is "" or missing). */
static bool list_profiles(const char *dir, struct profiles *out)
{
    memset(out, 0, sizeof(*out));
    if (dir[0] == '\0') {
        return true;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return true;
        }
        fprintf(stderr, "berth migrate: cannot read signing.profiles_dir %s: %s\n", dir,
                strerror(errno));
        return false;
    }
    struct dirent *e;
    bool ok = true;
    while (ok && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n <= 4 || strcmp(e->d_name + n - 4, ".pem") != 0) {
            continue;
        }
        if (out->count == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 16;
            void *p = realloc(out->names, cap * sizeof(*out->names));
            if (p == NULL) {
                fprintf(stderr, "berth migrate: out of memory\n");
                ok = false;
                break;
            }
            out->names = p;
            out->cap = cap;
        }
        memcpy(out->names[out->count++], e->d_name, n + 1);
    }
    closedir(d);
    return ok;
}

/*
 * signing.profiles_dir: managed signing signs for a profile with the key
 * in <profile>.pem there, else with a key berth generates and keeps in the
 * metadata (carried with it). The source's files must sign the same at the
 * destination: a destination naming no directory is refused (its
 * signatures would silently use generated keys), as is one whose file of
 * the same name differs; with write (after the copy) the files the
 * destination's directory lacks are copied there (0600, the directory
 * created 0700). Nothing to do when both name the same directory. False
 * (reported) to stop.
 */
static bool carry_profiles(const char *to, const struct berth_config *src,
                           const struct berth_config *dst, bool write)
{
    struct profiles pf;
    if (!list_profiles(src->signing_profiles_dir, &pf)) {
        return false;
    }
    bool ok = true;
    size_t copied = 0;
    char sreal[PATH_MAX], dreal[PATH_MAX];
    if (pf.count == 0) {
        goto out;
    }
    if (dst->signing_profiles_dir[0] == '\0') {
        fprintf(stderr,
                "berth migrate: refused: the source signs with the keys of %zu signing "
                "profiles in %s (signing.profiles_dir) and %s names no signing.profiles_dir, "
                "so the destination would sign those profiles with keys of its own; set "
                "signing.profiles_dir there (a missing or empty directory gets copies of the "
                "source's files)\n",
                pf.count, src->signing_profiles_dir, to);
        ok = false;
        goto out;
    }
    if (realpath(src->signing_profiles_dir, sreal) != NULL &&
        realpath(dst->signing_profiles_dir, dreal) != NULL && strcmp(sreal, dreal) == 0) {
        goto out; /* the same files */
    }
    for (size_t i = 0; ok && i < pf.count; i++) {
        char spath[PATH_MAX], dpath[PATH_MAX];
        snprintf(spath, sizeof(spath), "%s/%s", src->signing_profiles_dir, pf.names[i]);
        snprintf(dpath, sizeof(dpath), "%s/%s", dst->signing_profiles_dir, pf.names[i]);
        char *sdata = NULL, *ddata = NULL;
        size_t slen = 0, dlen = 0;
        enum berth_err rc = file_read_bounded(spath, PROFILE_MAX, &sdata, &slen);
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth migrate: cannot read %s (%s)\n", spath, berth_strerror(rc));
            ok = false;
        }
        enum berth_err drc = ok ? file_read_bounded(dpath, PROFILE_MAX, &ddata, &dlen) : BERTH_OK;
        if (ok && drc == BERTH_OK && (dlen != slen || memcmp(sdata, ddata, slen) != 0)) {
            fprintf(stderr,
                    "berth migrate: refused: the destination's signing profile file %s differs "
                    "from the source's %s, so that profile would sign with another key; remove "
                    "one or make them the same\n",
                    dpath, spath);
            ok = false;
        } else if (ok && drc != BERTH_OK && drc != BERTH_ENOTFOUND) {
            fprintf(stderr, "berth migrate: cannot read %s (%s)\n", dpath, berth_strerror(drc));
            ok = false;
        } else if (ok && drc == BERTH_ENOTFOUND && write) {
            rc = file_mkdir_p(dst->signing_profiles_dir, 0700);
            if (rc == BERTH_OK) {
                rc = file_write_atomic(dpath, sdata, slen, 0600, true);
            }
            if (rc != BERTH_OK) {
                fprintf(stderr, "berth migrate: cannot write %s (%s)\n", dpath, berth_strerror(rc));
                ok = false;
            } else {
                copied++;
            }
        }
        if (sdata != NULL) {
            memset(sdata, 0, slen);
        }
        free(sdata);
        if (ddata != NULL) {
            memset(ddata, 0, dlen);
        }
        free(ddata);
    }
    if (ok && copied > 0) {
        fprintf(stderr, "migrate: %zu signing profile keys copied to %s\n", copied,
                dst->signing_profiles_dir);
    }
out:
    free(pf.names);
    return ok;
}

static bool shared_meta(const struct berth_config *cfg)
{
    return strcmp(cfg->meta_backend, "postgres") == 0;
}

/* Into the shared database of a destination on PostgreSQL: the database
 * at <from_root>/vulndb.db, as its next generation, unless its current
 * one was imported as late. work is a directory of its own. */
static bool publish_vulndb(const char *from_root, struct store *dst, const char *work)
{
    char dst_dir[4300], file[4400], err[512] = "";
    snprintf(dst_dir, sizeof(dst_dir), "%s/dst", work);
    snprintf(file, sizeof(file), "%s/%s", dst_dir, VULNDB_FILE);
    enum vulndb_copied what = VULNDB_COPY_NONE;
    enum berth_err rc = file_mkdir_p(dst_dir, 0750);
    if (rc == BERTH_OK) {
        rc = vulndb_copy(from_root, dst_dir, &what, err, sizeof(err));
    }
    if (rc != BERTH_OK || what == VULNDB_COPY_NONE) {
        goto out;
    }
    int64_t records = 0, imported_at = -1;
    rc = vulndb_seal(dst_dir, &records, &imported_at, err, sizeof(err));
    struct meta *m;
    struct meta_vulndb cur, next;
    memset(&cur, 0, sizeof(cur));
    if (rc == BERTH_OK) {
        rc = store_meta_get(dst, &m);
    }
    if (rc == BERTH_OK) {
        rc = meta_vulndb_get(m, &cur);
        if (rc == BERTH_ENOTFOUND) {
            memset(&cur, 0, sizeof(cur));
            rc = BERTH_OK;
        }
    }
    if (rc == BERTH_OK && cur.generation > 0 && cur.imported_at_ms >= imported_at) {
        /* the copy of the blob table left its blob without a row: the
         * collector would take its bytes */
        int64_t id = 0;
        rc = meta_begin(m);
        if (rc == BERTH_OK) {
            rc = meta_blob_upsert(m, cur.digest, cur.size, time_now_ms(), &id);
            rc = rc == BERTH_OK ? meta_commit(m) : rc;
            meta_rollback(m);
        }
        if (rc == BERTH_OK) {
            fprintf(stderr, "migrate: the destination's shared vulnerability database was "
                            "imported as late as the source's: kept\n");
        }
        goto out;
    }
    if (rc == BERTH_OK) {
        rc = scan_dbsync_publish(dst, file, cur.generation, records, imported_at, &next, err,
                                 sizeof(err));
    }
    if (rc == BERTH_OK) {
        fprintf(stderr,
                "migrate: the vulnerability database published as the destination's shared "
                "generation %lld (%s)\n",
                (long long)next.generation, next.digest);
    }
out:
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth migrate: the vulnerability database: %s\n",
                err[0] != '\0' ? err : berth_strerror(rc));
    }
    return rc == BERTH_OK;
}

/* The scanner's vulnerability database, unless the destination's was
 * imported as late: a single node's <root>/vulndb.db, or the shared
 * database of replicas on PostgreSQL (scan/engine/scan_dbsync.h), either
 * way. False (reported) to stop. */
static bool carry_vulndb(const struct berth_config *src, struct store *src_st,
                         const struct berth_config *dst, struct store *dst_st)
{
    char work[4200], from[4300], err[512] = "";
    snprintf(work, sizeof(work), "%s/vulndb-migrate-%ld", dst->root, (long)getpid());
    (void)file_remove_tree(work);
    const char *from_root = src->root;
    enum berth_err rc = BERTH_OK;
    bool ok = false;
    struct meta *m;
    struct meta_vulndb cur;
    if (shared_meta(src) && store_meta_get(src_st, &m) == BERTH_OK &&
        meta_vulndb_get(m, &cur) == BERTH_OK) {
        /* the source's shared generation, downloaded */
        snprintf(from, sizeof(from), "%s/src", work);
        char file[4400];
        snprintf(file, sizeof(file), "%s/%s", from, VULNDB_FILE);
        rc = file_mkdir_p(from, 0750);
        if (rc == BERTH_OK) {
            rc = scan_dbsync_fetch(src_st, &cur, file, err, sizeof(err));
        }
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth migrate: the source's shared vulnerability database: %s\n",
                    err[0] != '\0' ? err : berth_strerror(rc));
            goto out;
        }
        from_root = from;
    }
    if (shared_meta(dst)) {
        rc = file_mkdir_p(work, 0750);
        ok = rc == BERTH_OK && publish_vulndb(from_root, dst_st, work);
        goto out;
    }
    enum vulndb_copied what = VULNDB_COPY_NONE;
    rc = vulndb_copy(from_root, dst->root, &what, err, sizeof(err));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth migrate: the vulnerability database: %s\n",
                err[0] != '\0' ? err : berth_strerror(rc));
        goto out;
    }
    if (what == VULNDB_COPY_DONE) {
        fprintf(stderr, "migrate: the vulnerability database copied to %s/%s\n", dst->root,
                VULNDB_FILE);
    } else if (what == VULNDB_COPY_KEPT) {
        fprintf(stderr, "migrate: the destination's vulnerability database was imported as late as "
                        "the source's: kept\n");
    }
    ok = true;
out:
    (void)file_remove_tree(work);
    return ok;
}

int cmd_migrate(struct cli *cli)
{
    const char *usage = "usage: berth migrate --from CONFIG --to CONFIG [--force]";
    const char *from = NULL;
    const char *to = NULL;
    bool force = false;
    for (int i = 0; i < cli->argc; i++) {
        const char *a = cli->argv[i];
        if (strcmp(a, "--force") == 0) {
            force = true;
            continue;
        }
        const char **slot = strcmp(a, "--from") == 0 ? &from : strcmp(a, "--to") == 0 ? &to : NULL;
        if (slot != NULL) {
            if (i + 1 >= cli->argc) {
                fprintf(stderr, "berth migrate: %s needs a configuration file\n%s\n", a, usage);
                return 2;
            }
            *slot = cli->argv[++i];
        } else if (str_has_prefix(a, "--from=")) {
            from = a + strlen("--from=");
        } else if (str_has_prefix(a, "--to=")) {
            to = a + strlen("--to=");
        } else {
            fprintf(stderr, "berth migrate: unknown argument '%s'\n%s\n", a, usage);
            return 2;
        }
    }
    if (from == NULL || to == NULL || *from == '\0' || *to == '\0') {
        fprintf(stderr, "berth migrate: both --from and --to are needed\n%s\n", usage);
        return 2;
    }
    struct cli src_cli = *cli;
    struct cli dst_cli = *cli;
    int status = 1;
    bool src_ok = read_one(from, &src_cli.cfg);
    bool dst_ok = src_ok && read_one(to, &dst_cli.cfg);
    struct store *src = NULL;
    struct store *dst = NULL;
    if (!src_ok || !dst_ok) {
        goto out;
    }
    enum log_level level;
    if (log_parse_level(src_cli.cfg.log_level, &level) == 0) {
        log_set_level(level);
    }
    if (strcmp(src_cli.cfg.root, dst_cli.cfg.root) == 0) {
        fprintf(stderr,
                "berth migrate: both configurations use the root %s; the destination "
                "needs a root of its own\n",
                src_cli.cfg.root);
        goto out;
    }
    src = cli_open_store(&src_cli);
    if (src == NULL) {
        goto out;
    }
    dst = cli_open_store(&dst_cli);
    if (dst == NULL) {
        goto out;
    }
    if (!carry_secrets_key(&src_cli, src, &dst_cli, false) ||
        !carry_profiles(to, &src_cli.cfg, &dst_cli.cfg, false)) {
        goto out;
    }
    fprintf(stderr, "migrate: from %s (%s, %s) to %s (%s, %s)\n", from, src_cli.cfg.storage_backend,
            src_cli.cfg.meta_backend, to, dst_cli.cfg.storage_backend, dst_cli.cfg.meta_backend);
    struct migrate_stats stats;
    char why[1024];
    struct shown sh = {.last_ms = 0, .phase = MIGRATE_BLOBS, .kill_after = 0};
    const char *kill_after = getenv("BERTH_TEST_MIGRATE_KILL_AFTER");
    if (kill_after != NULL) {
        sh.kill_after = strtoll(kill_after, NULL, 10);
    }
    enum berth_err rc = migrate_run(src, dst, force, show_progress, &sh, &stats, why, sizeof(why));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth migrate: refused: %s\n", why);
        goto out;
    }
    if (!carry_secrets_key(&src_cli, src, &dst_cli, true) ||
        !carry_profiles(to, &src_cli.cfg, &dst_cli.cfg, true) ||
        !carry_vulndb(&src_cli.cfg, src, &dst_cli.cfg, dst)) {
        goto out;
    }
    printf("migrate: %lld blobs (%lld copied, %lld already there, %lld bytes copied), "
           "%lld rows in %lld tables, %lld blobs verified\n",
           (long long)stats.blobs, (long long)stats.copied, (long long)stats.present,
           (long long)stats.bytes, (long long)stats.rows, (long long)stats.tables,
           (long long)stats.verified);
    status = 0;
out:
    store_close(dst);
    store_close(src);
    if (src_ok) {
        config_fini(&src_cli.cfg);
    }
    if (dst_ok) {
        config_fini(&dst_cli.cfg);
    }
    return status;
}
