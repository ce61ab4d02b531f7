/*
 * Private to server/ecr/: the ECR JSON API (awsJson1_1) framework. A call
 * is routed on X-Amz-Target, its body buffered (bounded), authenticated,
 * parsed, validated by the operation with the helpers below (which write
 * AWS-shaped errors), and answered with call->out. Operations live in
 * server/ecr/<area>.c files, each exporting a table of struct ecr_op. Pool threads.
 */
#ifndef BERTH_ECR_INT_H
#define BERTH_ECR_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "server/ecr/ecr.h"

#include "storage/meta/meta.h"
#include "storage/registry/registry.h"

#define ECR_TARGET_PREFIX "AmazonEC2ContainerRegistry_V20150921."
/* Largest JSON body: UploadLayerPart carries up to 20 MiB as base64. */
#define ECR_BODY_MAX (28u << 20)
/* Largest UploadLayerPart part, as ECR: 20 MiB. */
#define ECR_PART_MAX 20971520

struct ecr_call {
    struct request *req;
    const char *op; /* operation name, e.g. "CreateRepository" */
    json_t *in;     /* the request object (owned) */
    json_t *out;    /* the response object (owned); operations add members */
    char request_id[40];
    bool failed;
    unsigned status; /* 400, or 500 for ServerException */
    char type[64];   /* __type */
    char message[1024];
    json_t *extra; /* extra error members (InvalidLayerPartException), or NULL */
    /* the authenticated caller (filled before the operation runs), with its
     * identity policy for ecr_authorize */
    struct auth_identity ident;
};

typedef void (*ecr_op_fn)(struct ecr_call *call);

/* What an operation is authorized against before it runs: the member of
 * its input that names the resource it acts on, and only that member (the
 * JSON protocol ignores members an operation does not define, so another
 * one must never decide what is authorized). */
enum ecr_scope {
    /* ecr:<name> on the registry */
    ECR_SCOPE_REGISTRY = 0,
    /* ecr:<name> on the repository repositoryName names */
    ECR_SCOPE_REPOSITORY_NAME,
    /* ecr:<name> on the repository whose ARN is resourceArn */
    ECR_SCOPE_RESOURCE_ARN,
    /* nothing before it runs: the operation authorizes itself with
     * ecr_authorize/ecr_may (e.g. per repository of a list) */
    ECR_SCOPE_SELF,
};

struct ecr_op {
    const char *name; /* NULL ends a table */
    ecr_op_fn fn;     /* the implementation */
    enum ecr_scope scope;
};

/* RepositoryName's pattern in ECR's model (the OCI distribution grammar:
 * "__" and runs of "-" separate too), as validation messages quote it. */
#define ECR_REPO_NAME_PATTERN                                                                      \
    "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*"

/* The tables, one per server/ecr/<area>.c. */
extern const struct ecr_op ecr_repo_ops[];
extern const struct ecr_op ecr_image_ops[];    /* ecr_images.c */
extern const struct ecr_op ecr_layer_ops[];    /* ecr_layers.c */
extern const struct ecr_op ecr_settings_ops[]; /* ecr_settings.c */
extern const struct ecr_op ecr_auth_ops[];
extern const struct ecr_op ecr_policy_ops[];
extern const struct ecr_op ecr_scan_ops[];            /* ecr_scan.c */
extern const struct ecr_op ecr_lifecycle_ops[];       /* ecr_lifecycle.c */
extern const struct ecr_op ecr_account_ops[];         /* account.c */
extern const struct ecr_op ecr_registry_policy_ops[]; /* registry_policy.c */
extern const struct ecr_op ecr_pull_exclusion_ops[];  /* pull_exclusions.c */
extern const struct ecr_op ecr_template_ops[];        /* templates.c */
extern const struct ecr_op ecr_archive_ops[];         /* archive.c */
extern const struct ecr_op ecr_pull_through_ops[];    /* pullthrough.c */
extern const struct ecr_op ecr_signing_ops[];         /* signing.c */
extern const struct ecr_op ecr_replication_ops[];     /* replication.c */

/* ---- errors ---- */

/* Fail the call with an AWS error (400; 500 for ServerException). Only the
 * first failure counts. Returns false so validators can `return ecr_fail()`. */
bool ecr_fail(struct ecr_call *call, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* InvalidParameterException "Invalid parameter at '<field>' failed to
 * satisfy constraint: '<detail>'". */
bool ecr_invalid(struct ecr_call *call, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* RepositoryNotFoundException for repository name of this registry.
 * Returns false, as ecr_fail. */
bool ecr_repo_not_found(struct ecr_call *call, const char *name);

/* Fail a call on repository name whose metadata step returned rc (not
 * BERTH_OK): RepositoryNotFoundException when the repository is gone
 * (BERTH_ENOTFOUND), a ServerException for the rest. */
void ecr_fail_repo_step(struct ecr_call *call, const char *name, enum berth_err rc);

/* Map a registry status to the ECR exception an operation reports: the
 * one table from registry reasons to ECR errors. Client conditions are
 * 400s; REG_INTERNAL is a ServerException with its message logged. */
void ecr_fail_registry(struct ecr_call *call, const struct registry_status *s);

/* ImageNotFoundException for an image id (tag and/or digest as given,
 * NULL when absent) in repository repo, in AWS's words. */
void ecr_image_not_found(struct ecr_call *call, const char *repo, const char *tag,
                         const char *digest);

/* Fail a call about one image (tag and/or digest as given, NULL when
 * absent) whose registry_image_find failed: ImageNotFoundException in
 * AWS's words, saying so when the tag points at another image; other
 * reasons as ecr_fail_registry. */
void ecr_fail_image(struct ecr_call *call, const char *repo, const char *tag, const char *digest,
                    const struct registry_status *s);

/* ServerException for an unexpected internal failure (logged). */
void ecr_server_error(struct ecr_call *call, enum berth_err rc);

/* This thread's metadata connection; NULL after failing the call with a
 * ServerException. */
struct meta *ecr_meta(struct ecr_call *call);

/* ---- authorization ---- */

/* Whether the caller may perform action ("ecr:DescribeRepositories") on
 * repository repo (NULL: the registry). Always true while auth is off.
 * When the policies cannot be read, false after failing the call with a
 * ServerException. */
bool ecr_may(struct ecr_call *call, const char *action, const char *repo);

/* As ecr_may, failing the call with AccessDeniedException when not. */
bool ecr_authorize(struct ecr_call *call, const char *action, const char *repo);

/* ---- input validation: each returns false after failing the call ---- */

enum ecr_need { ECR_OPTIONAL = 0, ECR_REQUIRED = 1 };

/* A string member with a length range (characters). *out is NULL when an
 * optional member is absent. */
bool ecr_string(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, size_t min,
                size_t max, const char **out);

/* A string member that must be one of values (NULL-terminated). */
bool ecr_enum(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need,
              const char *const *values, const char **out);

/* An integer member in [min, max]. *present tells whether it was given. */
bool ecr_int(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, int64_t min,
             int64_t max, int64_t *out, bool *present);

/* A boolean member. */
bool ecr_bool(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, bool *out,
              bool *present);

/* An array member with an item-count range. *out is NULL when absent. */
bool ecr_array(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, size_t min,
               size_t max, json_t **out);

/* An object member. *out is NULL when absent. */
bool ecr_object(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need,
                json_t **out);

/* The members every operation on one repository starts with, checked in
 * ECR's order: registryId (optional, as ecr_registry_id), then
 * repositoryName (required): length 2..256 and the ECR pattern. */
bool ecr_repo_name(struct ecr_call *call, const char **out);

/* registryId (optional): 12 digits; a registry other than ours is
 * reported as the repository (or registry) not existing. */
bool ecr_registry_id(struct ecr_call *call);

/* maxResults (1..max) and nextToken; *after is the decoded position
 * (static storage in call->req is not used: the caller owns buf). */
bool ecr_pagination(struct ecr_call *call, int64_t max, int64_t *limit, char *after,
                    size_t after_cap);

/* An opaque, advancing token for the position after `last`. */
json_t *ecr_next_token(const char *last);

/* A JSON array a metadata listing's callback fills (list borrowed), and
 * whether an item could not be made or added. */
struct ecr_json_list {
    json_t *list;
    bool out_of_memory;
};

/* Append item (takes ownership; NULL: making it ran out of memory) to
 * l->list: 0, or 1 (stop the listing) after setting l->out_of_memory. */
int ecr_json_list_add(struct ecr_json_list *l, json_t *item);

/* What a listing into l that returned rc comes to: BERTH_ENOMEM when it
 * returned BERTH_OK but an item could not be added, else rc. */
enum berth_err ecr_json_list_rc(const struct ecr_json_list *l, enum berth_err rc);

/* A single imageId as given (StartImageScan, UpdateImageStorageClass, ...):
 * the tag and the digest text (NULL when absent). Borrowed from call->in. */
struct ecr_image_id {
    const char *tag;
    const char *digest_text;
    struct digest digest; /* parsed digest_text */
};

/* imageId (required): at least one of imageDigest and imageTag, a digest
 * berth can parse. False after failing the call. */
bool ecr_image_id_parse(struct ecr_call *call, struct ecr_image_id *out);

/* The imageId echoed in responses: the digest, and the tag if asked by
 * tag. A new reference, NULL when out of memory. */
json_t *ecr_image_id_json(const char *digest, const char *tag);

/* True when s matches ECR's digest pattern [a-zA-Z0-9-_+.]+:[a-fA-F0-9]+
 * (whole string). In ecr_images.c. */
bool ecr_digest_syntax_ok(const char *s);

/* Whether s matches the pattern of a template's prefix and a pull-through
 * cache rule's ecrRepositoryPrefix: "ROOT", or a repository namespace with
 * at most one trailing '/' (ECR_PREFIX_PATTERN). Pure. In templates.c. */
bool ecr_prefix_pattern_ok(const char *s);

/* That pattern as ECR's validation messages quote it. */
#define ECR_PREFIX_PATTERN                                                                         \
    "^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$"

/* ---- stored documents (documents.c); each blocks on the database ---- */

/* Registry setting key (a META_*_SETTING) as stored: true with *text the
 * text (the caller frees it; NULL when never set), false after failing the
 * call (ServerException). take: read and remove it (meta_setting_take). */
bool ecr_setting_read(struct ecr_call *call, const char *key, bool take, char **text);

/* Store text as registry setting key; false after failing the call. */
bool ecr_setting_write(struct ecr_call *call, const char *key, const char *text);

/* Store {"rules": rules} as registry setting key (takes ownership of
 * rules): the text stored (the caller frees it), or NULL after failing the
 * call. */
char *ecr_setting_write_rules(struct ecr_call *call, const char *key, json_t *rules);

/* A stored prefix-keyed document (a template, a pull-through cache rule)
 * as its ECR structure: its prefix under prefix_key, the body's members,
 * registryId when registry is not NULL, createdAt and updatedAt. A new
 * reference; NULL when out of memory or the body is not a JSON object. */
json_t *ecr_prefix_doc_json(const struct meta_prefix_doc *d, const char *prefix_key,
                            const char *registry);

/* What the errors of creating one kind of prefix-keyed document say. */
struct ecr_prefix_kind {
    const char *exists_type; /* "TemplateAlreadyExistsException" */
    const char *one;         /* "The repository creation template" */
    const char *many;        /* "repository creation templates" */
    int max;                 /* how many a registry may hold */
};

/* Whether meta's create of the document of prefix returned BERTH_OK;
 * otherwise false after failing the call: kind->exists_type ("<one> with
 * prefix '<prefix>' already exists in the registry with id '<id>'") for
 * BERTH_EEXIST, LimitExceededException ("... already has the maximum of
 * <max> <many>") for BERTH_ETOOBIG, ServerException for the rest. */
bool ecr_prefix_doc_created(struct ecr_call *call, enum berth_err rc, const char *prefix,
                            const struct ecr_prefix_kind *kind);

/* ---- response helpers ---- */

/* Epoch seconds with milliseconds, as AWS timestamps are. */
json_t *ecr_time(int64_t ms);

/* "arn:aws:ecr:<region>:<registry>:repository/<name>" into out. */
void ecr_repo_arn(struct ecr_call *call, const char *name, char *out, size_t cap);

/* Part of a string: len bytes at p (not NUL-terminated). */
struct ecr_span {
    const char *p;
    size_t len;
};

/* A repository ARN split into its parts, pointing into the text parsed. */
struct ecr_arn {
    struct ecr_span partition;
    struct ecr_span region;
    struct ecr_span account;
    const char *name; /* everything after "repository/", to the end */
};

/* Split "arn:<partition>:ecr:<region>:<account>:repository/<name>": the
 * pattern ^arn:[^:]+:ecr:[^:]+:[^:]+:repository/.+$ (the name may hold
 * colons). False when arn is not a repository ARN of that shape; the
 * fields are not otherwise checked. Pure. */
bool ecr_repo_arn_parse(const char *arn, struct ecr_arn *out);

/* Whether a span is exactly the string s. */
bool ecr_span_is(struct ecr_span span, const char *s);

/* imageTagMutability's values (CreateRepository, PutImageTagMutability). */
extern const char *const ecr_mutability_values[];

/* The Repository structure for a repository row. NULL when out of memory. */
json_t *ecr_repo_json(struct ecr_call *call, const struct meta_repo *repo);

/* Look up the repository named by repositoryName; RepositoryNotFound. */
bool ecr_find_repo(struct ecr_call *call, const char *name, struct meta_repo *out);

/* The repository named and the image id names in it (registry_image_find),
 * on this thread's connection: inside the caller's transaction, if any.
 * False after failing the call (RepositoryNotFound, ImageNotFound, ...). */
bool ecr_find_image(struct ecr_call *call, const char *name, const struct ecr_image_id *id,
                    struct meta_repo *repo, struct meta_manifest *out);

/* Fill list (a JSON array) with the statuses of manifest_id; BERTH_ENOMEM
 * or the database's error. */
typedef enum berth_err (*ecr_status_read_fn)(struct meta *m, int64_t manifest_id, json_t *list);

/* The per-image status operations (DescribeImageReplicationStatus,
 * DescribeImageSigningStatus): the image repositoryName and imageId name,
 * its statuses as read fills them, and the answer repositoryName, imageId,
 * registryId (with_registry) and the list under key. */
void ecr_image_statuses(struct ecr_call *call, const char *key, bool with_registry,
                        ecr_status_read_fn read);

/* Validate a request's list of resource tags ({Key, Value}) and rewrite
 * it in place as the map it stands for (ecr_tags_collapse), which may hold
 * at most 50 (TooManyTagsException). */
bool ecr_validate_resource_tags(struct ecr_call *call, json_t *tags);

/* Resource tags as a map: a new array with one {Key, Value} per key, the
 * last value given for a key in the place of its first; entries without a
 * string Key and Value are left out. NULL when out of memory. */
json_t *ecr_tags_collapse(json_t *tags);

/* Whether text parses as a valid policy of kind (a repository or registry
 * policy); otherwise the call fails with ECR's InvalidParameterException
 * for that kind, with berth's reason appended (ServerException when out of
 * memory). */
bool ecr_valid_policy(struct ecr_call *call, const char *text, enum authz_policy_kind kind);

/* Validate imageTagMutability with its exclusion filters. */
bool ecr_validate_mutability(struct ecr_call *call, const char *mutability, json_t *filters);

/* Add DescribeImages' imageScanStatus and, once a scan completed,
 * imageScanFindingsSummary to an ImageDetail object (nothing for a
 * never-scanned image). BERTH_ENOMEM, or a database error. In ecr_scan.c. */
enum berth_err ecr_scan_decorate_image(struct ecr_call *call, const struct meta_manifest *mf,
                                       json_t *detail);

/* The image an enhanced finding is about (all borrowed). */
struct ecr_enhanced_image {
    const char *account;      /* registry id */
    const char *region;       /* the registry's region */
    const char *repo;         /* repository name */
    const char *repo_arn;     /* the repository's ARN */
    const char *digest;       /* the image's manifest digest */
    const json_t *tags;       /* its tags (array of strings), or NULL */
    int64_t pushed_at_ms;     /* when it was pushed, 0: unknown */
    int64_t observed_at_ms;   /* when its scan ended (first/last observed) */
    const char *architecture; /* the image config's architecture, or NULL */
    const char *author;       /* the image config's author, or NULL */
};

/* One stored basic finding (ImageScanFinding JSON: name, description, uri,
 * severity, attributes package_name, package_version, fixed_in_version,
 * CVSS3_VECTOR/SCORE or CVSS2_VECTOR/SCORE, package_manager, package_arch,
 * platform) as ECR's EnhancedImageScanFinding: packageVulnerabilityDetails
 * (the package, its version and fixedInVersion, for a dpkg, apk or rpm
 * package packageManager OS and the version split into epoch, version and
 * release, its arch; the CVSS scores), the resource's architecture, author
 * and platform, fixAvailable YES when a
 * fixed version is known else NO, score, severity (UNDEFINED is
 * Inspector's UNTRIAGED), title, findingArn, resources and remediation.
 * New reference; NULL when out of memory or basic lacks name or severity.
 * Pure. In enhanced.c. */
json_t *ecr_enhanced_finding(const json_t *basic, const struct ecr_enhanced_image *img);

/* The configured registry id and region. */
const char *ecr_registry(struct ecr_call *call);
const char *ecr_region(struct ecr_call *call);

#endif
