/* Sealed upstream credentials; see secrets.h. */
#include "storage/upstream/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fileio.h"
#include "common/rand.h"
#include "common/str.h"
#include "storage/meta/meta.h"

static bool parse_hex_key(const char *s, size_t len, uint8_t key[SEAL_KEY_LEN])
{
    if (len != 2 * SEAL_KEY_LEN) {
        return false;
    }
    for (size_t i = 0; i < SEAL_KEY_LEN; i++) {
        int hi = str_hex_value(s[2 * i]);
        int lo = str_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Create the key file with a fresh key: written under a temporary name
 * with mode 0600 and renamed, so it never exists half-written. */
static enum berth_err create_key_file(const char *path, uint8_t key[SEAL_KEY_LEN], char *err,
                                      size_t cap)
{
    enum berth_err rc = rand_bytes(key, SEAL_KEY_LEN);
    if (rc != BERTH_OK) {
        snprintf(err, cap, "no random key: %s", berth_strerror(rc));
        return rc;
    }
    char hex[2 * SEAL_KEY_LEN + 2];
    str_hex_encode(key, SEAL_KEY_LEN, hex);
    hex[2 * SEAL_KEY_LEN] = '\n';
    hex[2 * SEAL_KEY_LEN + 1] = '\0';
    rc = file_write_atomic(path, hex, 2 * SEAL_KEY_LEN + 1, 0600, true);
    memset(hex, 0, sizeof(hex));
    if (rc != BERTH_OK) {
        snprintf(err, cap, "cannot create the key file %s: %s", path, berth_strerror(rc));
    }
    return rc;
}

enum berth_err upstream_secret_key(const char *key_hex, const char *key_file, bool create,
                                   uint8_t key[SEAL_KEY_LEN], char *err, size_t cap)
{
    if (key_hex != NULL && *key_hex != '\0') {
        if (!parse_hex_key(key_hex, strlen(key_hex), key)) {
            snprintf(err, cap, "pull_through.secrets_key must be 64 hex digits");
            return BERTH_EINVAL;
        }
        return BERTH_OK;
    }
    struct stat sb;
    if (stat(key_file, &sb) != 0) {
        if (errno != ENOENT) {
            snprintf(err, cap, "cannot read the key file %s: %s", key_file, strerror(errno));
            return BERTH_EIO;
        }
        if (!create) {
            snprintf(err, cap, "no key file %s (no secret was ever stored)", key_file);
            return BERTH_ENOTFOUND;
        }
        return create_key_file(key_file, key, err, cap);
    }
    if ((sb.st_mode & 077) != 0) {
        snprintf(err, cap, "the key file %s is readable by others (chmod 600 it)", key_file);
        return BERTH_EINVAL;
    }
    char *text = NULL;
    size_t len = 0;
    enum berth_err rc = file_read_bounded(key_file, 256, &text, &len);
    if (rc != BERTH_OK) {
        snprintf(err, cap, "cannot read the key file %s: %s", key_file, berth_strerror(rc));
        return rc;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) {
        len--;
    }
    bool ok = parse_hex_key(text, len, key);
    memset(text, 0, len);
    free(text);
    if (!ok) {
        snprintf(err, cap, "the key file %s must hold 64 hex digits", key_file);
        return BERTH_EINVAL;
    }
    return BERTH_OK;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("/_+=.@-", c) != NULL;
}

bool upstream_secret_name(const char *name_or_arn, char *out, size_t cap)
{
    const char *name = name_or_arn;
    if (str_has_prefix(name, "arn:")) {
        const char *s = strstr(name, ":secretsmanager:");
        const char *sec = s != NULL ? strstr(s, ":secret:") : NULL;
        if (sec == NULL) {
            return false;
        }
        name = sec + strlen(":secret:");
    }
    int n =
        snprintf(out, cap, "%s%s",
                 str_has_prefix(name, UPSTREAM_SECRET_PREFIX) ? "" : UPSTREAM_SECRET_PREFIX, name);
    if (n < 0 || (size_t)n >= cap || (size_t)n > META_SECRET_NAME_MAX) {
        return false;
    }
    const char *rest = out + strlen(UPSTREAM_SECRET_PREFIX);
    if (*rest == '\0') {
        return false;
    }
    for (const char *p = rest; *p != '\0'; p++) {
        if (!name_char(*p)) {
            return false;
        }
    }
    return true;
}

void upstream_secret_arn(const char *region, const char *account, const char *name, char *out,
                         size_t cap)
{
    snprintf(out, cap, "arn:aws:secretsmanager:%s:%s:secret:%s", region, account, name);
}

enum berth_err upstream_secret_put(struct meta *m, const uint8_t key[SEAL_KEY_LEN],
                                   const char *name, const char *username, const char *password,
                                   int64_t now)
{
    json_t *doc = json_pack("{s:s, s:s}", "username", username, "accessToken", password);
    char *clear = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (clear == NULL) {
        return BERTH_ENOMEM;
    }
    char *sealed = NULL;
    enum berth_err rc = seal_text(key, clear, strlen(clear), &sealed);
    memset(clear, 0, strlen(clear));
    free(clear);
    if (rc == BERTH_OK) {
        rc = meta_upstream_secret_put(m, name, sealed, now);
    }
    free(sealed);
    return rc;
}

enum berth_err upstream_secret_get(struct meta *m, const uint8_t key[SEAL_KEY_LEN],
                                   const char *name, char **username, char **password)
{
    char *sealed = NULL;
    enum berth_err rc = meta_upstream_secret_get(m, name, &sealed);
    if (rc != BERTH_OK) {
        return rc;
    }
    char *clear = NULL;
    size_t len = 0;
    rc = seal_open(key, sealed, &clear, &len);
    free(sealed);
    if (rc != BERTH_OK) {
        return rc;
    }
    json_t *doc = json_loadb(clear, len, 0, NULL);
    memset(clear, 0, len);
    free(clear);
    const char *u = json_string_value(json_object_get(doc, "username"));
    const char *p = json_string_value(json_object_get(doc, "accessToken"));
    if (u == NULL || p == NULL) {
        json_decref(doc);
        return BERTH_EINVAL;
    }
    char *uc = strdup(u);
    char *pc = strdup(p);
    json_decref(doc);
    if (uc == NULL || pc == NULL) {
        free(uc);
        free(pc);
        return BERTH_ENOMEM;
    }
    *username = uc;
    *password = pc;
    return BERTH_OK;
}
