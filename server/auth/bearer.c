/* Token protocol scopes; see server/auth/bearer.h. Pure functions. */
#include "server/auth/bearer.h"

#include <stdio.h>
#include <string.h>

static const char *const pull_actions[] = {
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:ListImages",
};
static const char *const push_actions[] = {
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
};
static const char *const delete_actions[] = {"ecr:BatchDeleteImage"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *const *bearer_ecr_actions(unsigned action, size_t *count)
{
    switch (action) {
    case BEARER_PULL:
        *count = COUNT(pull_actions);
        return pull_actions;
    case BEARER_PUSH:
        *count = COUNT(push_actions);
        return push_actions;
    case BEARER_DELETE:
        *count = COUNT(delete_actions);
        return delete_actions;
    default:
        *count = 0;
        return NULL;
    }
}

static bool word_is(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* The actions of a comma-separated list (unknown ones dropped). */
static unsigned parse_actions(const char *s, size_t len, bool is_registry)
{
    unsigned out = 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != ',') {
            j++;
        }
        const char *w = s + i;
        size_t wl = j - i;
        if (is_registry) {
            if (word_is(w, wl, "*")) {
                out |= BEARER_CATALOG;
            }
        } else if (word_is(w, wl, "pull")) {
            out |= BEARER_PULL;
        } else if (word_is(w, wl, "push")) {
            out |= BEARER_PUSH;
        } else if (word_is(w, wl, "delete")) {
            out |= BEARER_DELETE;
        } else if (word_is(w, wl, "*")) {
            out |= BEARER_PULL | BEARER_PUSH | BEARER_DELETE;
        }
        i = j + 1;
    }
    return out;
}

/* One resource scope "type[(class)]:name:actions" (len bytes). */
static void add_one(struct bearer_scope *s, const char *text, size_t len)
{
    const char *first = memchr(text, ':', len);
    const char *last = NULL;
    for (size_t i = len; i-- > 0;) {
        if (text[i] == ':') {
            last = text + i;
            break;
        }
    }
    if (first == NULL || last == first) {
        return;
    }
    size_t tlen = (size_t)(first - text);
    const char *paren = memchr(text, '(', tlen);
    if (paren != NULL) {
        if (text[tlen - 1] != ')') {
            return;
        }
        tlen = (size_t)(paren - text); /* the class is deprecated and ignored */
    }
    bool is_registry;
    if (word_is(text, tlen, "repository")) {
        is_registry = false;
    } else if (word_is(text, tlen, "registry")) {
        is_registry = true;
    } else {
        return;
    }
    const char *name = first + 1;
    size_t nlen = (size_t)(last - name);
    if (is_registry ? !word_is(name, nlen, "catalog") : !names_repo_valid_n(name, nlen)) {
        return;
    }
    unsigned actions = parse_actions(last + 1, len - (size_t)(last + 1 - text), is_registry);
    if (actions == 0) {
        return;
    }
    for (size_t i = 0; i < s->count; i++) {
        struct bearer_resource *r = &s->items[i];
        if (r->is_registry == is_registry && word_is(name, nlen, r->name)) {
            r->actions |= actions;
            return;
        }
    }
    if (s->count >= BEARER_RESOURCES_MAX) {
        return;
    }
    struct bearer_resource *r = &s->items[s->count++];
    r->is_registry = is_registry;
    memcpy(r->name, is_registry ? "" : name, is_registry ? 0 : nlen);
    r->name[is_registry ? 0 : nlen] = '\0';
    r->actions = actions;
}

void bearer_scope_add(struct bearer_scope *s, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && text[i] == ' ') {
            i++;
        }
        size_t j = i;
        while (j < len && text[j] != ' ') {
            j++;
        }
        if (j > i) {
            add_one(s, text + i, j - i);
        }
        i = j;
    }
}

/* "pull,push,delete" for a repository's actions. */
static void actions_text(unsigned actions, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s%s%s", (actions & BEARER_PULL) ? "pull" : "",
             (actions & BEARER_PULL) && (actions & (BEARER_PUSH | BEARER_DELETE)) ? "," : "",
             (actions & BEARER_PUSH) ? "push" : "",
             (actions & BEARER_PUSH) && (actions & BEARER_DELETE) ? "," : "",
             (actions & BEARER_DELETE) ? "delete" : "");
}

void bearer_scope_text(const char *repo, unsigned actions, char *out, size_t cap)
{
    if (repo == NULL) {
        snprintf(out, cap, "registry:catalog:*");
        return;
    }
    char acts[32];
    actions_text(actions, acts, sizeof(acts));
    snprintf(out, cap, "repository:%s:%s", repo, acts);
}

size_t bearer_scope_format(const struct bearer_scope *s, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) {
        return 0;
    }
    out[0] = '\0';
    for (size_t i = 0; i < s->count; i++) {
        const struct bearer_resource *r = &s->items[i];
        unsigned acts = r->actions & (r->is_registry ? BEARER_CATALOG
                                                     : (BEARER_PULL | BEARER_PUSH | BEARER_DELETE));
        if (acts == 0) {
            continue;
        }
        char entry[NAMES_REPO_MAX + 64];
        bearer_scope_text(r->is_registry ? NULL : r->name, acts, entry, sizeof(entry));
        size_t n = strlen(entry) + (o > 0 ? 1 : 0);
        if (o + n + 1 > cap) {
            continue;
        }
        if (o > 0) {
            out[o++] = ' ';
        }
        memcpy(out + o, entry, strlen(entry) + 1);
        o += strlen(entry);
    }
    return o;
}

bool bearer_scope_allows(const char *granted, const char *repo, unsigned actions)
{
    if (actions == 0) {
        return true;
    }
    struct bearer_scope s;
    memset(&s, 0, sizeof(s));
    unsigned held = 0;
    /* Entries are parsed one at a time so that any number of them is read. */
    const char *p = granted;
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        const char *e = p;
        while (*e != '\0' && *e != ' ') {
            e++;
        }
        if (e > p) {
            s.count = 0;
            add_one(&s, p, (size_t)(e - p));
            if (s.count == 1) {
                const struct bearer_resource *r = &s.items[0];
                if (repo == NULL ? r->is_registry
                                 : (!r->is_registry && strcmp(r->name, repo) == 0)) {
                    held |= r->actions;
                }
            }
        }
        p = e;
    }
    return (held & actions) == actions;
}
