/*
 * Authorization: IAM in small. A principal's identity policy (what its
 * access key may do), a repository's policy (SetRepositoryPolicy) and
 * the registry's policy (PutRegistryPolicy) are parsed into struct
 * authz_policy; authz_decide() combines them for one action on one
 * repository: an explicit Deny in any wins, otherwise an Allow in any
 * grants, otherwise the request is denied. Anonymous
 * callers have no identity policy and are granted only by repository
 * policy statements whose Principal is "*" (or {"AWS": "*"}).
 *
 * Policy language (both kinds; JSON as IAM writes it):
 *   {"Version": "2012-10-17" | "2008-10-17" (optional), "Id": string (optional),
 *    "Statement": statement | [statement, ...]}
 *   statement: {"Sid": string (optional, duplicates allowed),
 *               "Effect": "Allow" | "Deny",
 *               "Action" | "NotAction": pattern | [pattern, ...],
 *               "Resource" | "NotResource": pattern | [pattern, ...],
 *               "Principal": "*" | {"AWS" | "Service" | "Federated" |
 *                                   "CanonicalUser": value | [value, ...]}}
 * - Actions: "*" or "ecr:<Name>" with '*' and '?' wildcards, matched
 *   case-insensitively. A name without wildcards must be a known ECR action
 *   (authz_action_lookup); other services' actions are refused.
 * - Resources: "*", a repository name pattern ("app-*", "team/app?") or a
 *   repository ARN pattern ("arn:aws:ecr:*:*:repository/app-*"), '*' and
 *   '?' wildcards, case-sensitive; '*' also matches '/' (so "team" + "/" +
 *   "*" covers every repository under team/). Registry-level
 *   requests (no repository, e.g. GetAuthorizationToken) match only
 *   resources that match the literal string "*". Identity statements need
 *   Resource or NotResource; in a repository policy Resource is optional
 *   and, when absent, means the repository the policy is attached to.
 * - Principal (repository policies only, required there): "*" or
 *   {"AWS": "*"} is everyone including anonymous callers; an AWS value
 *   that is an ARN (arn:<partition>:iam::<account>:user/x, or sts) matches
 *   that principal exactly; a 12-digit account id or
 *   arn:<partition>:iam::<account>:root matches every principal of that
 *   account. "Service", "Federated" and "CanonicalUser" principals are
 *   accepted but match no berth caller.
 * - Not supported, refused at parse time: "Condition" and "NotPrincipal"
 *   (berth cannot evaluate them, and ignoring them would grant or deny
 *   more than the policy says).
 *
 * Parsing allocates; a parsed policy is immutable, so authz_decide may be
 * called on it from any number of threads. Nothing blocks.
 */
#ifndef BERTH_AUTHZ_H
#define BERTH_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define AUTHZ_REPOSITORY_POLICY_MAX_LEN 10240 /* ECR policyText limit */
#define AUTHZ_REGISTRY_POLICY_MAX_LEN 10240   /* ECR RegistryPolicyText limit */
#define AUTHZ_IDENTITY_POLICY_MAX_LEN 65536
#define AUTHZ_STATEMENTS_MAX 128      /* statements in one policy */
#define AUTHZ_LIST_MAX 256            /* entries in one Action/Resource/Principal */
#define AUTHZ_PATTERN_MAX 1024        /* one action, resource or principal string */
#define AUTHZ_DETAIL_MAX 256          /* detail message buffer, with NUL */
#define AUTHZ_SPECS_MAX 32            /* permission specs per key */
#define AUTHZ_SPEC_MAX_LEN 512        /* one permission spec */
#define AUTHZ_DENIED_MESSAGE_MAX 2560 /* authz_denied_message output, with NUL */

/* The InvalidParameterException message ECR gives for any invalid
 * repository policy. */
#define AUTHZ_INVALID_POLICY_MESSAGE                                                               \
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy "  \
    "provided'"

/* ... and for an invalid registry policy (PutRegistryPolicy). */
#define AUTHZ_INVALID_REGISTRY_POLICY_MESSAGE                                                      \
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid registry policy "    \
    "provided'"

enum authz_policy_kind {
    AUTHZ_IDENTITY_POLICY,   /* a principal's permissions: no Principal */
    AUTHZ_REPOSITORY_POLICY, /* SetRepositoryPolicy text: Principal required */
    /* PutRegistryPolicy text: Principal and Resource required; only actions
     * authz_registry_grantable accepts (a pattern must match one) */
    AUTHZ_REGISTRY_POLICY,
};

struct authz_policy;

/* Parse and validate len bytes of policy JSON. On success *out is a new
 * policy (free with authz_policy_free). On failure writes a one-line,
 * berth-specific reason into detail (detail_cap bytes; may be NULL/0),
 * e.g. "statement 2: Condition is not supported by berth", for logs and
 * CLI output; the ECR API answers InvalidParameterException with
 * AUTHZ_INVALID_POLICY_MESSAGE (the detail may be appended).
 * Returns BERTH_OK, BERTH_EINVAL (invalid policy), BERTH_ETOOBIG (len over
 * the kind's maximum, or a statement/list/pattern count or length over
 * the limits above), BERTH_ENOMEM. */
enum berth_err authz_policy_parse(const char *text, size_t len, enum authz_policy_kind kind,
                                  struct authz_policy **out, char *detail, size_t detail_cap);

/* Free a policy; NULL is fine. */
void authz_policy_free(struct authz_policy *p);

enum authz_decision { AUTHZ_DENY = 0, AUTHZ_ALLOW = 1 };

/* Which rule decided. */
enum authz_reason {
    AUTHZ_REASON_NO_ALLOW,         /* nothing allows it (implicit deny) */
    AUTHZ_REASON_IDENTITY_DENY,    /* explicit Deny in the identity policy */
    AUTHZ_REASON_REPOSITORY_DENY,  /* explicit Deny in the repository policy */
    AUTHZ_REASON_IDENTITY_ALLOW,   /* granted by the identity policy */
    AUTHZ_REASON_REPOSITORY_ALLOW, /* granted by the repository policy */
    AUTHZ_REASON_REGISTRY_DENY,    /* explicit Deny in the registry policy */
    AUTHZ_REASON_REGISTRY_ALLOW,   /* granted by the registry policy */
};

/* One authorization question. All borrowed. */
struct authz_request {
    const char *principal_arn;                    /* NULL: anonymous */
    const struct authz_policy *identity;          /* NULL: none; unused if anonymous */
    const struct authz_policy *repository_policy; /* NULL: none */
    const struct authz_policy *registry_policy;   /* NULL: none */
    const char *action;                           /* "ecr:BatchGetImage" */
    const char *repository;     /* repository name; NULL for registry-level actions */
    const char *repository_arn; /* that repository's ARN; NULL if unknown */
};

/* Decide req: an explicit Deny in any of the three policies wins, else an
 * Allow in any grants, else it is denied. The registry policy is read only
 * for the actions it can grant (authz_registry_grantable), on the
 * repository of the request (its Resource patterns as a repository
 * policy's). Never fails: a NULL or empty action is denied. When reason
 * is not NULL it says which rule decided. The policies must be of the
 * matching kinds (an identity policy passed as repository_policy grants
 * nothing, and the reverse). Thread-safe. */
enum authz_decision authz_decide(const struct authz_request *req, enum authz_reason *reason);

/* AWS's AccessDeniedException text, "User: <principal> is not authorized
 * to perform: <action> on resource: <resource>", into out (cap bytes,
 * AUTHZ_DENIED_MESSAGE_MAX suffices for inputs within the limits above).
 * A NULL principal reads "anonymous", a NULL resource "*". Longer inputs
 * are truncated. */
void authz_denied_message(const char *principal_arn, const char *action, const char *resource,
                          char *out, size_t cap);

/* ---- ECR actions ---- */

/* Every ECR action name berth knows, "ecr:<Name>": the 58 operations of
 * the ECR API (reference section 2.1) plus the two permission-only
 * actions ecr:BatchImportUpstreamImage and ecr:ReplicateImage. */
size_t authz_action_count(void);

/* The i-th name (i < authz_action_count()), or NULL. */
const char *authz_action_name(size_t i);

/* Whether a registry policy can grant action (REGISTRY_POLICY_SCOPE V2):
 * ecr:ReplicateImage, ecr:BatchImportUpstreamImage, ecr:CreateRepository
 * and every action on a repository. Case-insensitive. Pure. */
bool authz_registry_grantable(const char *action);

/* The canonical spelling of a known action, matched case-insensitively
 * ("ECR:batchgetimage" -> "ecr:BatchGetImage"), or NULL if unknown. */
const char *authz_action_lookup(const char *action);

/* Named action sets used by permission specs.
 * - PULL: ecr:BatchCheckLayerAvailability, ecr:BatchGetImage,
 *   ecr:GetDownloadUrlForLayer and the read-only actions of AWS's
 *   AmazonEC2ContainerRegistryReadOnly policy: ecr:DescribeImages,
 *   ecr:DescribeImageScanFindings, ecr:DescribeRepositories,
 *   ecr:GetLifecyclePolicy, ecr:GetLifecyclePolicyPreview,
 *   ecr:GetRepositoryPolicy, ecr:ListImages, ecr:ListTagsForResource.
 * - PUSH: PULL + ecr:CompleteLayerUpload, ecr:InitiateLayerUpload,
 *   ecr:PutImage, ecr:UploadLayerPart.
 * - DELETE: ecr:BatchDeleteImage.
 * - ADMIN: ecr:* (one pattern). */
enum authz_action_set { AUTHZ_SET_PULL, AUTHZ_SET_PUSH, AUTHZ_SET_DELETE, AUTHZ_SET_ADMIN };

/* The actions of a set (static storage) and their number in *count. */
const char *const *authz_action_set(enum authz_action_set set, size_t *count);

/* ---- permission specs (`berth keys create NAME [PERMISSION ...]`) ---- */

/* Convert permission specs to an identity policy, as compact JSON text in
 * *json (caller frees). Each spec is one of
 *   pull[:PATTERN]   push[:PATTERN]   delete[:PATTERN]   admin[:PATTERN]
 *   ecr:ACTION[=PATTERN]             (ACTION may use '*' and '?')
 * where PATTERN is a repository name pattern or repository ARN pattern as
 * in policies (default "*"). No specs at all means admin. Each spec
 * becomes one Allow statement over its set's actions; one more statement
 * allows ecr:GetAuthorizationToken on "*" so that every key can
 * `docker login` (what it may then do is still decided per request).
 * The result always parses with authz_policy_parse(AUTHZ_IDENTITY_POLICY).
 * Returns BERTH_OK, BERTH_EINVAL (a spec is malformed, names an unknown
 * verb or action, or an action pattern that matches no known action; err
 * says which), BERTH_ETOOBIG (more than AUTHZ_SPECS_MAX specs or one longer
 * than AUTHZ_SPEC_MAX_LEN), BERTH_ENOMEM. err (err_cap bytes) is written on
 * failure only and may be NULL. */
enum berth_err authz_spec_to_policy(const char *const *specs, size_t count, char **json, char *err,
                                    size_t err_cap);

#endif
