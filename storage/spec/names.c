/* Repository name and tag grammars; see names.h. */
#include "storage/spec/names.h"

#include <string.h>

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* over [p, end). */
static bool component_valid(const char *p, const char *end)
{
    if (p == end || !lower_alnum(*p) || !lower_alnum(end[-1])) {
        return false;
    }
    while (p < end) {
        if (lower_alnum(*p)) {
            p++;
            continue;
        }
        /* a separator: ".", "_", "__" or a run of "-", then alnum again */
        if (*p == '.') {
            p++;
        } else if (*p == '_') {
            p++;
            if (p < end && *p == '_') {
                p++;
            }
        } else if (*p == '-') {
            while (p < end && *p == '-') {
                p++;
            }
        } else {
            return false;
        }
        if (p == end || !lower_alnum(*p)) {
            return false;
        }
    }
    return true;
}

bool names_repo_valid_n(const char *name, size_t len)
{
    if (len < NAMES_REPO_MIN || len > NAMES_REPO_MAX) {
        return false;
    }
    const char *end = name + len;
    const char *start = name;
    for (const char *p = name; p <= end; p++) {
        if (p == end || *p == '/') {
            if (!component_valid(start, p)) {
                return false;
            }
            start = p + 1;
        } else if (*p == '\0') {
            return false;
        }
    }
    return true;
}

bool names_repo_valid(const char *name)
{
    return names_repo_valid_n(name, strlen(name));
}

bool names_tag_valid(const char *tag)
{
    size_t len = strlen(tag);
    if (len == 0 || len > NAMES_TAG_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = tag[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (i > 0 && (c == '.' || c == '-'));
        if (!ok) {
            return false;
        }
    }
    return true;
}
