/*
 * Scopes of the Docker registry token protocol (distribution's
 * docs/spec/auth/scope.md): what a client asks the token endpoint for
 * ("repository:team/app:pull,push", "registry:catalog:*"), the canonical
 * text of what a bearer token grants, and the check of a /v2 request
 * against that text. Pure functions; thread-safe; nothing blocks.
 */
#ifndef BERTH_BEARER_H
#define BERTH_BEARER_H

#include <stdbool.h>
#include <stddef.h>

#include "storage/spec/names.h"

/* Actions on a resource. */
#define BEARER_PULL 1u
#define BEARER_PUSH 2u
#define BEARER_DELETE 4u
#define BEARER_CATALOG 8u /* registry:catalog:* */

#define BEARER_RESOURCES_MAX 32 /* resources in one request; more are dropped */

struct bearer_resource {
    bool is_registry;              /* registry:catalog; otherwise repository:<name> */
    char name[NAMES_REPO_MAX + 1]; /* the repository ("" for the registry) */
    unsigned actions;              /* BEARER_* */
};

/* A set of resources and their actions (a request, or a grant). Zero it
 * before use. */
struct bearer_scope {
    size_t count;
    struct bearer_resource items[BEARER_RESOURCES_MAX];
};

/* Add the space-separated resource scopes of text (len bytes) to s, merging
 * the actions of a resource named twice. What berth cannot grant is
 * dropped, as the protocol prescribes for access not held (never an
 * error): a malformed scope, a type other than repository or
 * registry(catalog), a name that is not a valid repository name (a host
 * name in front included), an unknown action; "*" on a repository means
 * pull, push and delete. Resources past BEARER_RESOURCES_MAX are dropped. */
void bearer_scope_add(struct bearer_scope *s, const char *text, size_t len);

/* The canonical text of s into out (cap bytes, NUL-terminated):
 * "repository:<name>:pull,push,delete" and "registry:catalog:*" entries
 * separated by one space, in s's order; resources without actions are
 * left out, and so is an entry that would not fit. Returns its length. */
size_t bearer_scope_format(const struct bearer_scope *s, char *out, size_t cap);

/* Whether granted (canonical text, as bearer_scope_format writes it)
 * holds every action of actions on repository repo (NULL: the registry's
 * catalog). actions 0 is always held. */
bool bearer_scope_allows(const char *granted, const char *repo, unsigned actions);

/* One resource's challenge scope: "repository:<repo>:<actions>" (repo NULL:
 * "registry:catalog:*"), into out (cap bytes). */
void bearer_scope_text(const char *repo, unsigned actions, char *out, size_t cap);

/* The ECR actions behind one protocol action (BEARER_PULL, BEARER_PUSH or
 * BEARER_DELETE; static storage): the token endpoint grants the action
 * when the caller is allowed any of them, and each /v2 request is then
 * still authorized with the precise ECR actions it needs. */
const char *const *bearer_ecr_actions(unsigned action, size_t *count);

#endif
