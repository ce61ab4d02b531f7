/* Registry credentials from a docker config.json; see authfile.h. */
#include "storage/upstream/authfile.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/base64.h"
#include "common/str.h"

/* The registry a key or host names: scheme and path dropped, Docker Hub's
 * names made one. */
static void registry_of(const char *key, char *out, size_t cap)
{
    if (str_has_prefix(key, "https://")) {
        key += strlen("https://");
    } else if (str_has_prefix(key, "http://")) {
        key += strlen("http://");
    }
    size_t n = strcspn(key, "/");
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, key, n);
    out[n] = '\0';
    if (strcmp(out, "index.docker.io") == 0 || strcmp(out, "registry-1.docker.io") == 0 ||
        strcmp(out, "registry.hub.docker.com") == 0) {
        str_copy(out, cap, "docker.io");
    }
}

static enum berth_err from_entry(json_t *entry, const char *key, char **user, char **password,
                                 char *why, size_t why_cap)
{
    const char *auth = json_string_value(json_object_get(entry, "auth"));
    const char *u = json_string_value(json_object_get(entry, "username"));
    const char *p = json_string_value(json_object_get(entry, "password"));
    if (auth != NULL && auth[0] != '\0') {
        size_t len = strlen(auth);
        uint8_t *raw = malloc(len + 1);
        size_t raw_len = 0;
        if (raw == NULL) {
            return BERTH_ENOMEM;
        }
        char *colon = NULL;
        if (base64_decode(auth, len, raw, &raw_len) == BERTH_OK) {
            raw[raw_len] = '\0';
            colon = memchr(raw, ':', raw_len);
        }
        if (colon == NULL || memchr(raw, '\0', raw_len) != NULL) {
            memset(raw, 0, len + 1);
            free(raw);
            snprintf(why, why_cap, "auths.%s.auth is not base64 of user:password", key);
            return BERTH_EINVAL;
        }
        *colon = '\0';
        *user = strdup((char *)raw);
        *password = strdup(colon + 1);
        memset(raw, 0, len + 1);
        free(raw);
    } else if (u != NULL && p != NULL) {
        *user = strdup(u);
        *password = strdup(p);
    } else {
        return BERTH_ENOTFOUND; /* an entry a credential helper fills */
    }
    if (*user == NULL || *password == NULL) {
        free(*user);
        free(*password);
        *user = *password = NULL;
        return BERTH_ENOMEM;
    }
    return BERTH_OK;
}

static bool helper_name_ok(const char *name)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 64) {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-')) {
            return false;
        }
    }
    return true;
}

/* Parse a docker config.json (an object, or why not) and name the registry
 * `host` is in the form its keys are compared in. */
static json_t *load_config(const char *text, size_t len, const char *host, char *want,
                           size_t want_cap, char *why, size_t why_cap)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        snprintf(why, why_cap, "not a docker config.json (%s)", jerr.text);
        return NULL;
    }
    registry_of(host, want, want_cap);
    return doc;
}

enum berth_err upstream_authfile_helper(const char *text, size_t len, const char *host,
                                        char *helper, size_t helper_cap, char *server,
                                        size_t server_cap, char *why, size_t why_cap)
{
    why[0] = '\0';
    char want[512];
    json_t *doc = load_config(text, len, host, want, sizeof(want), why, why_cap);
    if (doc == NULL) {
        return BERTH_EINVAL;
    }
    const char *name = NULL;
    const char *key;
    json_t *entry;
    json_object_foreach(json_object_get(doc, "credHelpers"), key, entry)
    {
        char have[512];
        registry_of(key, have, sizeof(have));
        if (strcmp(have, want) == 0 && json_is_string(entry)) {
            name = json_string_value(entry);
            break;
        }
    }
    if (name == NULL) {
        name = json_string_value(json_object_get(doc, "credsStore"));
    }
    enum berth_err rc = BERTH_OK;
    if (name == NULL || name[0] == '\0') {
        rc = BERTH_ENOTFOUND;
    } else if (!helper_name_ok(name)) {
        snprintf(why, why_cap, "'%.64s' is not a credential helper's name", name);
        rc = BERTH_EINVAL;
    } else {
        str_copy(helper, helper_cap, name);
        str_copy(server, server_cap,
                 strcmp(want, "docker.io") == 0 ? "https://index.docker.io/v1/" : host);
    }
    json_decref(doc);
    return rc;
}

enum berth_err upstream_authfile_helper_output(const char *out, size_t len, char **user,
                                               char **password, char *why, size_t why_cap)
{
    *user = *password = NULL;
    why[0] = '\0';
    json_t *doc = json_loadb(out, len, 0, NULL);
    const char *u = json_string_value(json_object_get(doc, "Username"));
    const char *p = json_string_value(json_object_get(doc, "Secret"));
    enum berth_err rc = BERTH_OK;
    if (u == NULL || p == NULL) {
        snprintf(why, why_cap, "the helper's answer has no Username and Secret");
        rc = BERTH_EINVAL;
    } else if (strcmp(u, "<token>") == 0) {
        snprintf(why, why_cap, "the helper holds an identity token, which berth mirror cannot use");
        rc = BERTH_EINVAL;
    } else {
        *user = strdup(u);
        *password = strdup(p);
        if (*user == NULL || *password == NULL) {
            free(*user);
            free(*password);
            *user = *password = NULL;
            rc = BERTH_ENOMEM;
        }
    }
    json_decref(doc); /* the secret's copy in doc: freed (jansson does not wipe) */
    return rc;
}

enum berth_err upstream_authfile_find(const char *text, size_t len, const char *host, char **user,
                                      char **password, char *why, size_t why_cap)
{
    *user = *password = NULL;
    why[0] = '\0';
    char want[512];
    json_t *doc = load_config(text, len, host, want, sizeof(want), why, why_cap);
    if (doc == NULL) {
        return BERTH_EINVAL;
    }
    enum berth_err rc = BERTH_ENOTFOUND;
    const char *key;
    json_t *entry;
    json_object_foreach(json_object_get(doc, "auths"), key, entry)
    {
        char have[512];
        registry_of(key, have, sizeof(have));
        if (strcmp(have, want) == 0 && json_is_object(entry)) {
            rc = from_entry(entry, key, user, password, why, why_cap);
            if (rc != BERTH_ENOTFOUND) {
                break;
            }
        }
    }
    json_decref(doc);
    return rc;
}
