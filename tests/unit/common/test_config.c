/* Every key of the config table (common/config.c, included to reach it) is
 * documented: conf/berth.json has it with its default value (and loads and
 * validates), the help text (config_print_keys, what `berth --help` prints)
 * names it and its environment variable, and README.md's configuration table
 * has a row for it. A new key without its documentation fails here. */
#include "unit.h"

#include "common/config.c"

#include <unistd.h>

#include "common/fileio.h"

#define DOC_MAX (1u << 20)

static char *read_doc(const char *relative)
{
    const char *data = getenv("BERTH_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/../../../%s", data ? data : "tests/unit/data", relative);
    char *text = NULL;
    size_t len = 0;
    if (file_read_bounded(path, DOC_MAX, &text, &len) != BERTH_OK) {
        fprintf(stderr, "cannot read %s\n", path);
        abort();
    }
    return text;
}

/* The JSON value at a dotted path in doc, or NULL. */
static json_t *lookup(json_t *doc, const char *dotted)
{
    json_t *node = doc;
    const char *part = dotted;
    while (node != NULL) {
        const char *dot = strchr(part, '.');
        size_t n = dot ? (size_t)(dot - part) : strlen(part);
        char name[128];
        if (n >= sizeof(name)) {
            return NULL;
        }
        memcpy(name, part, n);
        name[n] = '\0';
        node = json_object_get(node, name);
        if (dot == NULL) {
            break;
        }
        part = dot + 1;
    }
    return node;
}

/* The default as the JSON file spells it: true/false, an integer, a string. */
static bool json_matches_default(json_t *v, const struct config_key *k)
{
    char text[64];
    switch (k->type) {
    case CONFIG_STRING:
        return json_is_string(v) && strcmp(json_string_value(v), k->def) == 0;
    case CONFIG_BOOL:
        return json_is_boolean(v) && strcmp(json_is_true(v) ? "true" : "false", k->def) == 0;
    case CONFIG_INT:
        if (!json_is_integer(v)) {
            return false;
        }
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
        return strcmp(text, k->def) == 0;
    case CONFIG_JSON:
        return json_is_array(v);
    }
    return false;
}

/* The environment variable of a key, as config_load_env derives it. */
static void env_name(const char *path, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "BERTH_");
    for (const char *p = path; *p && o + 1 < cap; p++) {
        out[o++] = (*p == '.') ? '_' : (char)toupper((unsigned char)*p);
    }
    out[o] = '\0';
}

/* True when text has a line "  <path> ..." (config_print_keys' layout) that
 * also holds env (when not NULL) as a blank-delimited word. */
static bool help_has_key(const char *text, const char *path, const char *env)
{
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t plen = strlen(path);
        if (len > plen + 2 && strncmp(line, "  ", 2) == 0 && strncmp(line + 2, path, plen) == 0 &&
            line[2 + plen] == ' ') {
            if (env == NULL) {
                return true;
            }
            size_t elen = strlen(env);
            for (const char *p = line + 2 + plen; p + elen <= line + len; p++) {
                if (p[-1] == ' ' && strncmp(p, env, elen) == 0 &&
                    (p + elen == line + len || p[elen] == ' ')) {
                    return true;
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

/* True when a row of the README's configuration table names `path` in its
 * first cell ("| `log.level`, `log.access` | ..."). */
static bool readme_has_row(const char *readme, const char *path)
{
    char want[300];
    snprintf(want, sizeof(want), "`%s`", path);
    for (const char *line = readme; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > 2 && line[0] == '|' && line[1] == ' ') {
            const char *cell_end = memchr(line + 1, '|', len - 1);
            size_t cell_len = cell_end ? (size_t)(cell_end - line) : len;
            for (const char *p = line; p + strlen(want) <= line + cell_len; p++) {
                if (strncmp(p, want, strlen(want)) == 0) {
                    return true;
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

static void test_example_config_loads(void)
{
    const char *data = getenv("BERTH_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/../../../conf/berth.json", data ? data : "tests/unit/data");
    struct berth_config cfg;
    char err[512] = "";
    CHECK_INT(config_init(&cfg), BERTH_OK);
    enum berth_err rc = config_load_file(&cfg, path, err, sizeof(err));
    if (rc != BERTH_OK) {
        fprintf(stderr, "%s\n", err);
    }
    CHECK_INT(rc, BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK_STR(cfg.listen, "127.0.0.1:5000");
    CHECK_STR(cfg.root, "./berth-data");
    config_fini(&cfg);
}

/* meta.backend is sqlite by default; postgres needs its connection string;
 * another name is refused. */
static void test_meta_backend(void)
{
    struct berth_config cfg;
    char err[512] = "";
    CHECK_INT(config_init(&cfg), BERTH_OK);
    CHECK_STR(cfg.meta_backend, "sqlite");
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_set(&cfg, "meta.backend", "postgres", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "meta.postgres.dsn") != NULL);
    CHECK_INT(config_set(&cfg, "meta.postgres.dsn", "host=/tmp dbname=berth", err, sizeof(err)),
              BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_set(&cfg, "meta.backend", "mysql", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "meta.backend") != NULL);
    config_fini(&cfg);
}

/* storage.backend is filesystem by default; s3 needs a bucket, and an
 * endpoint, when given, is an http(s) URL; another name is refused. */
static void test_storage_backend(void)
{
    struct berth_config cfg;
    char err[512] = "";
    CHECK_INT(config_init(&cfg), BERTH_OK);
    CHECK_STR(cfg.storage_backend, "filesystem");
    CHECK_STR(cfg.storage_s3_region, "us-east-1");
    CHECK(!cfg.storage_s3_path_style);
    CHECK(!cfg.storage_s3_redirect);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_set(&cfg, "storage.backend", "s3", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "storage.s3.bucket") != NULL);
    CHECK_INT(config_set(&cfg, "storage.s3.bucket", "blobs", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_set(&cfg, "storage.s3.endpoint", "minio:9000", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "storage.s3.endpoint") != NULL);
    CHECK_INT(config_set(&cfg, "storage.s3.endpoint", "http://127.0.0.1:9000", err, sizeof(err)),
              BERTH_OK);
    CHECK_INT(config_set(&cfg, "storage.s3.path_style", "true", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK(cfg.storage_s3_path_style);
    CHECK_INT(config_set(&cfg, "storage.s3.redirect", "true", err, sizeof(err)), BERTH_OK);
    CHECK(cfg.storage_s3_redirect);
    CHECK_INT(config_set(&cfg, "storage.backend", "gcs", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "storage.backend") != NULL);
    config_fini(&cfg);
}

/* replica_name is empty by default (the jobs derive host:port); a name is
 * printable ASCII of at most 63 bytes. */
static void test_replica_name(void)
{
    struct berth_config cfg;
    char err[512] = "";
    CHECK_INT(config_init(&cfg), BERTH_OK);
    CHECK_STR(cfg.replica_name, "");
    CHECK_INT(config_set(&cfg, "replica_name", "edge/berth:5000", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK_STR(cfg.replica_name, "edge/berth:5000");
    char name[70];
    memset(name, 'r', 63);
    name[63] = '\0';
    CHECK_INT(config_set(&cfg, "replica_name", name, err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);
    name[63] = 'r';
    name[64] = '\0';
    CHECK_INT(config_set(&cfg, "replica_name", name, err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "replica_name") != NULL);
    CHECK_INT(config_set(&cfg, "replica_name", "tab\there", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK_INT(config_set(&cfg, "replica_name", "caf\xc3\xa9", err, sizeof(err)), BERTH_OK);
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_EINVAL);
    config_fini(&cfg);
}

static void test_every_key_is_documented(void)
{
    char *text = read_doc("conf/berth.json");
    json_error_t jerr;
    json_t *example = json_loads(text, 0, &jerr);
    free(text);
    CHECK(example != NULL);
    char *readme = read_doc("README.md");

    char *help = NULL;
    size_t help_len = 0;
    FILE *f = open_memstream(&help, &help_len);
    CHECK(f != NULL);
    if (f == NULL) {
        abort();
    }
    config_print_keys(f);
    CHECK_INT(fclose(f), 0);

    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &keys[i];
        json_t *v = lookup(example, k->path);
        if (v == NULL) {
            fprintf(stderr, "conf/berth.json lacks %s\n", k->path);
        } else if (!json_matches_default(v, k)) {
            fprintf(stderr, "conf/berth.json: %s is not its default (%s)\n", k->path,
                    k->def ? k->def : "an empty array");
        }
        CHECK(v != NULL && json_matches_default(v, k));

        char env[128];
        env_name(k->path, env, sizeof(env));
        bool help_ok = help_has_key(help, k->path, k->type == CONFIG_JSON ? NULL : env);
        if (!help_ok) {
            fprintf(stderr, "the help text lacks %s (or its variable)\n", k->path);
        }
        CHECK(help_ok);

        if (!readme_has_row(readme, k->path)) {
            fprintf(stderr, "README.md's configuration table has no row for `%s`\n", k->path);
        }
        CHECK(readme_has_row(readme, k->path));
    }
    free(help);
    free(readme);
    json_decref(example);
}

/* A config file's errors name what is wrong: a section given as a value
 * is not an unknown key. */
static void test_file_errors(void)
{
    static const struct {
        const char *json;
        const char *message;
    } cases[] = {
        {"{\"storage\":5}", "storage must be an object (a section of keys)"},
        {"{\"storage\":{\"bogus\":1}}", "unknown key 'storage.bogus'"},
        {"{\"nope\":1}", "unknown key 'nope'"},
        {"{\"listen\":{}}", "listen must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[] = "/tmp/berth-test-config-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK(write(fd, cases[i].json, strlen(cases[i].json)) == (ssize_t)strlen(cases[i].json));
        close(fd);
        struct berth_config cfg;
        char err[512] = "";
        CHECK_INT(config_init(&cfg), BERTH_OK);
        CHECK_INT(config_load_file(&cfg, path, err, sizeof(err)), BERTH_EINVAL);
        if (strstr(err, cases[i].message) == NULL) {
            fprintf(stderr, "%s: got '%s'\n", cases[i].json, err);
        }
        CHECK(strstr(err, cases[i].message) != NULL);
        config_fini(&cfg);
        unlink(path);
    }
}

int main(void)
{
    RUN(test_example_config_loads);
    RUN(test_file_errors);
    RUN(test_every_key_is_documented);
    RUN(test_meta_backend);
    RUN(test_storage_backend);
    RUN(test_replica_name);
    return unit_report("test_conf");
}
