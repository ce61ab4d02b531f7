/*
 * Repository creation templates, as a registry rule: which template covers
 * a repository name for one use (CREATE_ON_PUSH, REPLICATION,
 * PULL_THROUGH_CACHE), and the settings a template gives the repository it
 * creates. A template's prefix is a namespace: "prod" (or "prod/") covers
 * "prod/app" and "prod/team/app", not "prod" or "production/app"; "ROOT"
 * covers every name. Among the templates that list the use in appliedFor
 * and cover the name, the longest prefix wins, ROOT last. The templates
 * are stored as ECR's JSON (storage/meta, validated by the ECR API).
 * Thread-safe; the calls on a connection block on the database.
 */
#ifndef BERTH_TEMPLATES_H
#define BERTH_TEMPLATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct meta;

#define TEMPLATE_ROOT "ROOT"

/* Whether the template of prefix covers repository name. Pure. */
bool registry_template_covers(const char *prefix, const char *name);

/* The template that applies to name for use (e.g. "CREATE_ON_PUSH"): its
 * body as a new string in *body (caller frees), NULL when none applies.
 * BERTH_OK or a database error / BERTH_ENOMEM. */
enum berth_err registry_template_find(struct meta *m, const char *name, const char *use,
                                      char **body);

/* Give the new repository repo_id the settings of template body: tag
 * mutability and its exclusion filters, repository policy, lifecycle
 * policy, resource tags and encryption configuration. Run it in the
 * transaction that created the repository. BERTH_EINVAL when body is not
 * a template's JSON, or a database error. */
enum berth_err registry_template_apply(struct meta *m, int64_t repo_id, const char *body);

#endif
