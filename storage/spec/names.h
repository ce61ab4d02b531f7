/*
 * The OCI grammars for repository names and tags. Pure; thread-safe.
 */
#ifndef BERTH_NAMES_H
#define BERTH_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Shortest and longest repository names accepted: ECR's 2..256 (its
 * RepositoryName), on /v2 too, so that both APIs take the same names. (The
 * OCI grammar has no bounds; clients cap host + "/" + name at 255.) */
#define NAMES_REPO_MIN 2
#define NAMES_REPO_MAX 256
/* Longest OCI tag (the grammar allows 128 characters). */
#define NAMES_TAG_MAX 128

/* True when name matches the OCI <name> grammar
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 * and is NAMES_REPO_MIN..NAMES_REPO_MAX bytes. */
bool names_repo_valid(const char *name);

/* Same over exactly len bytes (not necessarily NUL-terminated). */
bool names_repo_valid_n(const char *name, size_t len);

/* The OCI tag grammar, as messages quote it. */
#define NAMES_TAG_REGEX "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"

/* True when tag matches NAMES_TAG_REGEX. */
bool names_tag_valid(const char *tag);

#endif
