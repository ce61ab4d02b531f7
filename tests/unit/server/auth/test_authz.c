/* Unit tests for server/auth/authz.c: matching, decisions, validation, specs. */
#include "unit.h"

#include "server/auth/authz.c"

#define ACCOUNT "000000000000"
#define ALICE "arn:aws:iam::" ACCOUNT ":user/alice"
#define BOB "arn:aws:iam::" ACCOUNT ":user/bob"
#define MALLORY "arn:aws:iam::999999999999:user/mallory"
#define ARN(repo) "arn:aws:ecr:us-east-1:" ACCOUNT ":repository/" repo

static struct authz_policy *parse(const char *text, enum authz_policy_kind kind)
{
    struct authz_policy *p = NULL;
    char detail[AUTHZ_DETAIL_MAX] = "";
    enum berth_err rc = authz_policy_parse(text, strlen(text), kind, &p, detail, sizeof(detail));
    if (rc != BERTH_OK) {
        fprintf(stderr, "unexpected parse failure: %s\n", detail);
    }
    CHECK_INT(rc, BERTH_OK);
    return p;
}

/* Parse expected to fail: returns the code; the detail goes to *detail. */
static enum berth_err parse_fail(const char *text, enum authz_policy_kind kind, char *detail)
{
    struct authz_policy *p = NULL;
    detail[0] = '\0';
    enum berth_err rc = authz_policy_parse(text, strlen(text), kind, &p, detail, AUTHZ_DETAIL_MAX);
    CHECK(p == NULL);
    CHECK(detail[0] != '\0');
    authz_policy_free(p);
    return rc;
}

/* Decide with the three policies, the repository's ARN derived from its
 * name. */
static enum authz_decision decide3(const char *principal, const struct authz_policy *identity,
                                   const struct authz_policy *repo_policy,
                                   const struct authz_policy *registry_policy, const char *action,
                                   const char *repository, enum authz_reason *why)
{
    char arn[512];
    struct authz_request req = {.principal_arn = principal,
                                .identity = identity,
                                .repository_policy = repo_policy,
                                .registry_policy = registry_policy,
                                .action = action,
                                .repository = repository,
                                .repository_arn = NULL};
    if (repository != NULL) {
        snprintf(arn, sizeof(arn), "arn:aws:ecr:us-east-1:%s:repository/%s", ACCOUNT, repository);
        req.repository_arn = arn;
    }
    return authz_decide(&req, why);
}

static enum authz_decision decide(const char *principal, const struct authz_policy *identity,
                                  const struct authz_policy *repo_policy, const char *action,
                                  const char *repository, enum authz_reason *why)
{
    return decide3(principal, identity, repo_policy, NULL, action, repository, why);
}

static void test_actions(void)
{
    /* The 58 operations of reference section 2.1. */
    static const char *const ops[] = {
        "BatchCheckLayerAvailability",
        "BatchDeleteImage",
        "BatchGetImage",
        "BatchGetRepositoryScanningConfiguration",
        "CompleteLayerUpload",
        "CreatePullThroughCacheRule",
        "CreateRepository",
        "CreateRepositoryCreationTemplate",
        "DeleteLifecyclePolicy",
        "DeletePullThroughCacheRule",
        "DeleteRegistryPolicy",
        "DeleteRepository",
        "DeleteRepositoryCreationTemplate",
        "DeleteRepositoryPolicy",
        "DeleteSigningConfiguration",
        "DeregisterPullTimeUpdateExclusion",
        "DescribeImageReplicationStatus",
        "DescribeImageScanFindings",
        "DescribeImageSigningStatus",
        "DescribeImages",
        "DescribePullThroughCacheRules",
        "DescribeRegistry",
        "DescribeRepositories",
        "DescribeRepositoryCreationTemplates",
        "GetAccountSetting",
        "GetAuthorizationToken",
        "GetDownloadUrlForLayer",
        "GetLifecyclePolicy",
        "GetLifecyclePolicyPreview",
        "GetRegistryPolicy",
        "GetRegistryScanningConfiguration",
        "GetRepositoryPolicy",
        "GetSigningConfiguration",
        "InitiateLayerUpload",
        "ListImageReferrers",
        "ListImages",
        "ListPullTimeUpdateExclusions",
        "ListTagsForResource",
        "PutAccountSetting",
        "PutImage",
        "PutImageScanningConfiguration",
        "PutImageTagMutability",
        "PutLifecyclePolicy",
        "PutRegistryPolicy",
        "PutRegistryScanningConfiguration",
        "PutReplicationConfiguration",
        "PutSigningConfiguration",
        "RegisterPullTimeUpdateExclusion",
        "SetRepositoryPolicy",
        "StartImageScan",
        "StartLifecyclePolicyPreview",
        "TagResource",
        "UntagResource",
        "UpdateImageStorageClass",
        "UpdatePullThroughCacheRule",
        "UpdateRepositoryCreationTemplate",
        "UploadLayerPart",
        "ValidatePullThroughCacheRule",
    };
    CHECK_INT(sizeof(ops) / sizeof(ops[0]), 58);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        char name[128];
        snprintf(name, sizeof(name), "ecr:%s", ops[i]);
        CHECK_STR(authz_action_lookup(name), name);
    }
    CHECK_INT(authz_action_count(), 60);
    CHECK_STR(authz_action_lookup("ecr:ReplicateImage"), "ecr:ReplicateImage");
    CHECK_STR(authz_action_lookup("ecr:BatchImportUpstreamImage"), "ecr:BatchImportUpstreamImage");
    /* Unique, and every name is "ecr:" + letters. */
    int dup = 0, bad = 0;
    for (size_t i = 0; i < authz_action_count(); i++) {
        const char *a = authz_action_name(i);
        bad += !str_has_prefix(a, "ecr:");
        for (size_t k = i + 1; k < authz_action_count(); k++) {
            dup += ieq(a, authz_action_name(k));
        }
    }
    CHECK_INT(dup, 0);
    CHECK_INT(bad, 0);
    CHECK(authz_action_name(authz_action_count()) == NULL);
    CHECK_STR(authz_action_lookup("ECR:batchgetimage"), "ecr:BatchGetImage");
    CHECK(authz_action_lookup("ecr:BatchGetImages") == NULL);
    CHECK(authz_action_lookup("BatchGetImage") == NULL);
    CHECK(authz_action_lookup("ecr:*") == NULL);
    CHECK(authz_action_lookup(NULL) == NULL);

    /* The sets: every member is known; push contains pull. */
    size_t pull_n, push_n, del_n, admin_n;
    const char *const *pull = authz_action_set(AUTHZ_SET_PULL, &pull_n);
    const char *const *push = authz_action_set(AUTHZ_SET_PUSH, &push_n);
    const char *const *del = authz_action_set(AUTHZ_SET_DELETE, &del_n);
    const char *const *admin = authz_action_set(AUTHZ_SET_ADMIN, &admin_n);
    CHECK_INT(push_n, pull_n + 4);
    for (size_t i = 0; i < pull_n; i++) {
        CHECK(authz_action_lookup(pull[i]) == pull[i]);
        bool found = false;
        for (size_t k = 0; k < push_n; k++) {
            found = found || strcmp(pull[i], push[k]) == 0;
        }
        CHECK(found);
    }
    for (size_t i = 0; i < push_n; i++) {
        CHECK(authz_action_lookup(push[i]) == push[i]);
    }
    CHECK_INT(del_n, 1);
    CHECK_STR(del[0], "ecr:BatchDeleteImage");
    CHECK_INT(admin_n, 1);
    CHECK_STR(admin[0], "ecr:*");
}

static void test_identity_decisions(void)
{
    enum authz_reason why;
    struct authz_policy *id =
        parse("{\"Version\":\"2012-10-17\",\"Statement\":["
              "{\"Effect\":\"Allow\",\"Action\":[\"ecr:BatchGetImage\","
              "\"ecr:GetDownloadUrlForLayer\"],\"Resource\":\"team/*\"},"
              "{\"Effect\":\"Allow\",\"Action\":\"ecr:GetAuthorizationToken\","
              "\"Resource\":\"*\"},"
              "{\"Effect\":\"Allow\",\"Action\":\"ECR:put*\",\"Resource\":"
              "\"" ARN("app-?") "\"}]}",
              AUTHZ_IDENTITY_POLICY);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:BatchGetImage", "team/app", &why), AUTHZ_ALLOW);
    CHECK_INT(why, AUTHZ_REASON_IDENTITY_ALLOW);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:BatchGetImage", "team/a/b", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:BatchGetImage", "other/app", &why), AUTHZ_DENY);
    CHECK_INT(why, AUTHZ_REASON_NO_ALLOW);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:BatchDeleteImage", "team/app", &why), AUTHZ_DENY);
    /* Registry-level: only Resource "*" applies. */
    CHECK_INT(decide(ALICE, id, NULL, "ecr:GetAuthorizationToken", NULL, &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:BatchGetImage", NULL, &why), AUTHZ_DENY);
    /* ARN resources, case-insensitive action patterns. */
    CHECK_INT(decide(ALICE, id, NULL, "ecr:PutImage", "app-1", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:PutLifecyclePolicy", "app-2", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:PutImage", "app-10", &why), AUTHZ_DENY);
    struct authz_request no_arn = {
        .principal_arn = ALICE, .identity = id, .action = "ecr:PutImage", .repository = "app-1"};
    CHECK_INT(authz_decide(&no_arn, &why), AUTHZ_DENY);
    /* Anonymous callers never use an identity policy. */
    CHECK_INT(decide(NULL, id, NULL, "ecr:BatchGetImage", "team/app", &why), AUTHZ_DENY);
    /* No action, no identity. */
    CHECK_INT(decide(ALICE, id, NULL, NULL, "team/app", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, id, NULL, "", "team/app", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, NULL, NULL, "ecr:BatchGetImage", "team/app", NULL), AUTHZ_DENY);
    authz_policy_free(id);
}

static void test_deny_precedence(void)
{
    enum authz_reason why;
    struct authz_policy *admin =
        parse("{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"},"
              "{\"Effect\":\"Deny\",\"Action\":\"ecr:BatchDeleteImage\",\"Resource\":\"prod/*\"}]}",
              AUTHZ_IDENTITY_POLICY);
    CHECK_INT(decide(ALICE, admin, NULL, "ecr:BatchDeleteImage", "prod/api", &why), AUTHZ_DENY);
    CHECK_INT(why, AUTHZ_REASON_IDENTITY_DENY);
    CHECK_INT(decide(ALICE, admin, NULL, "ecr:BatchDeleteImage", "dev/api", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, admin, NULL, "ecr:DeleteRepository", "prod/api", &why), AUTHZ_ALLOW);

    /* A repository policy Deny beats an identity Allow ... */
    struct authz_policy *no_push =
        parse("{\"Version\":\"2008-10-17\",\"Statement\":{\"Sid\":\"x\",\"Effect\":\"Deny\","
              "\"Principal\":\"*\",\"Action\":[\"ecr:PutImage\",\"ecr:UploadLayerPart\"]}}",
              AUTHZ_REPOSITORY_POLICY);
    CHECK_INT(decide(ALICE, admin, no_push, "ecr:PutImage", "dev/api", &why), AUTHZ_DENY);
    CHECK_INT(why, AUTHZ_REASON_REPOSITORY_DENY);
    CHECK_INT(decide(ALICE, admin, no_push, "ecr:BatchGetImage", "dev/api", &why), AUTHZ_ALLOW);
    CHECK_INT(why, AUTHZ_REASON_IDENTITY_ALLOW);

    /* ... and an identity Deny beats a repository Allow. */
    struct authz_policy *everyone = parse("{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{"
                                          "\"AWS\":\"*\"},\"Action\":\"ecr:*\"}]}",
                                          AUTHZ_REPOSITORY_POLICY);
    struct authz_policy *deny_all =
        parse("{\"Statement\":[{\"Effect\":\"Deny\",\"Action\":\"ecr:*\",\"Resource\":\"*\"}]}",
              AUTHZ_IDENTITY_POLICY);
    CHECK_INT(decide(BOB, deny_all, everyone, "ecr:BatchGetImage", "dev/api", &why), AUTHZ_DENY);
    CHECK_INT(why, AUTHZ_REASON_IDENTITY_DENY);
    CHECK_INT(decide(BOB, NULL, everyone, "ecr:BatchGetImage", "dev/api", &why), AUTHZ_ALLOW);
    CHECK_INT(why, AUTHZ_REASON_REPOSITORY_ALLOW);
    /* Both Deny: the identity one is reported. */
    CHECK_INT(decide(ALICE, deny_all, no_push, "ecr:PutImage", "dev/api", &why), AUTHZ_DENY);
    CHECK_INT(why, AUTHZ_REASON_IDENTITY_DENY);

    /* NotAction / NotResource. */
    struct authz_policy *not_delete =
        parse("{\"Statement\":[{\"Effect\":\"Allow\",\"NotAction\":\"ecr:BatchDeleteImage\","
              "\"NotResource\":[\"prod/*\",\"" ARN("secret") "\"]}]}",
              AUTHZ_IDENTITY_POLICY);
    CHECK_INT(decide(ALICE, not_delete, NULL, "ecr:PutImage", "dev/api", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, not_delete, NULL, "ecr:BatchDeleteImage", "dev/api", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, not_delete, NULL, "ecr:PutImage", "prod/api", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, not_delete, NULL, "ecr:PutImage", "secret", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, not_delete, NULL, "ecr:GetAuthorizationToken", NULL, &why),
              AUTHZ_ALLOW);

    authz_policy_free(admin);
    authz_policy_free(no_push);
    authz_policy_free(everyone);
    authz_policy_free(deny_all);
    authz_policy_free(not_delete);
}

static void test_repository_policies(void)
{
    enum authz_reason why;
    /* The aws CLI documentation's example, pretty-printed as AWS echoes it. */
    struct authz_policy *cli = parse("{\n  \"Version\" : \"2008-10-17\",\n  \"Statement\" : [ {\n"
                                     "    \"Sid\" : \"allow public pull\",\n"
                                     "    \"Effect\" : \"Allow\",\n"
                                     "    \"Principal\" : \"*\",\n"
                                     "    \"Action\" : [ \"ecr:BatchCheckLayerAvailability\", "
                                     "\"ecr:BatchGetImage\", \"ecr:GetDownloadUrlForLayer\" ]\n"
                                     "  } ]\n}",
                                     AUTHZ_REPOSITORY_POLICY);
    /* Anonymous pull via Principal "*". */
    CHECK_INT(decide(NULL, NULL, cli, "ecr:BatchGetImage", "public/app", &why), AUTHZ_ALLOW);
    CHECK_INT(why, AUTHZ_REASON_REPOSITORY_ALLOW);
    CHECK_INT(decide(NULL, NULL, cli, "ecr:PutImage", "public/app", &why), AUTHZ_DENY);
    CHECK_INT(decide(MALLORY, NULL, cli, "ecr:GetDownloadUrlForLayer", "public/app", &why),
              AUTHZ_ALLOW);
    /* Repository policies do not apply to registry-level requests. */
    CHECK_INT(decide(NULL, NULL, cli, "ecr:BatchGetImage", NULL, &why), AUTHZ_DENY);

    /* Named principals, account-wide principals, duplicate Sids, Resource. */
    struct authz_policy *named =
        parse("{\"Version\":\"2012-10-17\",\"Statement\":["
              "{\"Sid\":\"s\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"" BOB "\"]},"
              "\"Action\":\"ecr:BatchGetImage\"},"
              "{\"Sid\":\"s\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::" ACCOUNT
              ":root\"},\"Action\":\"ecr:ListImages\"},"
              "{\"Sid\":\"t\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"999999999999\"},"
              "\"Action\":\"ecr:DescribeImages\",\"Resource\":\"" ARN(
                  "shared/*") "\"},"
                              "{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"lambda.amazonaws."
                              "com\"},"
                              "\"Action\":\"ecr:*\"}]}",
              AUTHZ_REPOSITORY_POLICY);
    CHECK_INT(decide(BOB, NULL, named, "ecr:BatchGetImage", "x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, NULL, named, "ecr:BatchGetImage", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(NULL, NULL, named, "ecr:BatchGetImage", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, NULL, named, "ecr:ListImages", "x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(MALLORY, NULL, named, "ecr:ListImages", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(MALLORY, NULL, named, "ecr:DescribeImages", "shared/x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(MALLORY, NULL, named, "ecr:DescribeImages", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, NULL, named, "ecr:DescribeImages", "shared/x", &why), AUTHZ_DENY);
    /* The Service principal matches nobody. */
    CHECK_INT(decide(ALICE, NULL, named, "ecr:PutImage", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(NULL, NULL, named, "ecr:PutImage", "x", &why), AUTHZ_DENY);
    /* A principal ARN is matched exactly, not as a prefix or pattern. */
    CHECK_INT(decide(BOB "2", NULL, named, "ecr:BatchGetImage", "x", &why), AUTHZ_DENY);

    /* Anonymous with {"AWS": "*"}; not with an account principal. */
    struct authz_policy *aws_star =
        parse("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"" ALICE "\",\"*\"]},"
              "\"Action\":\"ecr:BatchGetImage\"}}",
              AUTHZ_REPOSITORY_POLICY);
    CHECK_INT(decide(NULL, NULL, aws_star, "ecr:BatchGetImage", "x", &why), AUTHZ_ALLOW);
    struct authz_policy *acct =
        parse("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ACCOUNT "\"},"
              "\"Action\":\"ecr:BatchGetImage\"}}",
              AUTHZ_REPOSITORY_POLICY);
    CHECK_INT(decide(NULL, NULL, acct, "ecr:BatchGetImage", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, NULL, acct, "ecr:BatchGetImage", "x", &why), AUTHZ_ALLOW);

    /* A policy of the wrong kind grants nothing. */
    struct authz_policy *id =
        parse("{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
              AUTHZ_IDENTITY_POLICY);
    CHECK_INT(decide(ALICE, NULL, id, "ecr:BatchGetImage", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, cli, NULL, "ecr:BatchGetImage", "x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, id, NULL, "ecr:BatchGetImage", "x", &why), AUTHZ_ALLOW);

    authz_policy_free(cli);
    authz_policy_free(named);
    authz_policy_free(aws_star);
    authz_policy_free(acct);
    authz_policy_free(id);
    authz_policy_free(NULL);
}

static void test_validation(void)
{
    char d[AUTHZ_DETAIL_MAX];
    const enum authz_policy_kind R = AUTHZ_REPOSITORY_POLICY, I = AUTHZ_IDENTITY_POLICY;
    CHECK_STR(AUTHZ_INVALID_POLICY_MESSAGE, "Invalid parameter at 'PolicyText' failed to satisfy "
                                            "constraint: 'Invalid repository policy provided'");
#define STMT_R "\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"ecr:BatchGetImage\""
    static const struct {
        const char *text;
        const char *detail;
    } bad[] = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {"{\"Statement\":[{" STMT_R "}]} x", "not valid JSON"},
        {"[]", "the policy must be a JSON object"},
        {"{\"Version\":\"2010-01-01\",\"Statement\":{" STMT_R "}}", "Version must be"},
        {"{\"Version\":2012,\"Statement\":{" STMT_R "}}", "Version must be"},
        {"{\"Statement\":{" STMT_R "},\"Foo\":1}", "unknown top-level element 'Foo'"},
        {"{\"Id\":5,\"Statement\":{" STMT_R "}}", "Id must be a string"},
        {"{\"Version\":\"2012-10-17\"}", "Statement must be"},
        {"{\"Statement\":[]}", "Statement must be"},
        {"{\"Statement\":\"x\"}", "Statement must be"},
        {"{\"Statement\":[5]}", "statement 1: must be an object"},
        {"{\"Statement\":[{" STMT_R "},{\"Effect\":\"allow\",\"Principal\":\"*\","
         "\"Action\":\"ecr:BatchGetImage\"}]}",
         "statement 2: Effect must be"},
        {"{\"Statement\":{\"Principal\":\"*\",\"Action\":\"ecr:BatchGetImage\"}}",
         "statement 1: Effect must be"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\"}}",
         "statement 1: needs exactly one of Action and NotAction"},
        {"{\"Statement\":{" STMT_R ",\"NotAction\":\"ecr:PutImage\"}}",
         "statement 1: needs exactly one of Action and NotAction"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\"}}",
         "statement 1: action 's3:GetObject' is not an ECR action"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":"
         "\"ecr:BatchGetImagee\"}}",
         "statement 1: unknown action 'ecr:BatchGetImagee'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"ecr:\"}}",
         "statement 1: invalid action 'ecr:'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"BatchGetImage\"}}",
         "statement 1: invalid action 'BatchGetImage'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"ecr:Put Image\"}}",
         "statement 1: invalid action"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":[]}}",
         "statement 1: Action is an empty list"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":5}}",
         "statement 1: Action must be a string or a list of strings"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":[\"\"]}}",
         "statement 1: Action must be a string or a list of non-empty strings"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"ecr:BatchGetImage\"}}",
         "statement 1: a repository policy statement needs a Principal"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"bob\",\"Action\":"
         "\"ecr:BatchGetImage\"}}",
         "statement 1: Principal must be"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{},\"Action\":"
         "\"ecr:BatchGetImage\"}}",
         "statement 1: Principal must be"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"bob\"},\"Action\":"
         "\"ecr:BatchGetImage\"}}",
         "statement 1: invalid principal 'bob'"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
         "\"arn:aws:iam::12345:user/x\"},\"Action\":\"ecr:BatchGetImage\"}}",
         "statement 1: invalid principal"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
         "\"arn:aws:iam::" ACCOUNT ":user/*\"},\"Action\":\"ecr:BatchGetImage\"}}",
         "statement 1: invalid principal"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
         "\"arn:aws:s3:::" ACCOUNT ":x\"},\"Action\":\"ecr:BatchGetImage\"}}",
         "statement 1: invalid principal"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
         "\"arn:aws:iam::" ACCOUNT ":\"},\"Action\":\"ecr:BatchGetImage\"}}",
         "statement 1: invalid principal"},
        {"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Robot\":\"x\"},\"Action\":"
         "\"ecr:BatchGetImage\"}}",
         "statement 1: unknown principal type 'Robot'"},
        {"{\"Statement\":{" STMT_R
         ",\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"false\"}}}}",
         "statement 1: Condition is not supported by berth"},
        {"{\"Statement\":{\"Effect\":\"Deny\",\"NotPrincipal\":{\"AWS\":\"" ALICE "\"},"
         "\"Action\":\"ecr:*\"}}",
         "statement 1: NotPrincipal is not supported by berth"},
        {"{\"Statement\":{" STMT_R ",\"Foo\":1}}", "statement 1: unknown element 'Foo'"},
        {"{\"Statement\":{" STMT_R ",\"F\u00fc\\t\":1}}", "statement 1: unknown element 'F\?\?\?'"},
        {"{\"Statement\":{" STMT_R ",\"Sid\":5}}", "statement 1: Sid must be a string"},
        {"{\"Statement\":{" STMT_R ",\"Resource\":\"Team/App\"}}",
         "statement 1: invalid resource 'Team/App'"},
        {"{\"Statement\":{" STMT_R ",\"Resource\":\"a\",\"NotResource\":\"b\"}}",
         "statement 1: has both Resource and NotResource"},
        {"{\"Statement\":{" STMT_R ",\"Effect\":\"Deny\"}}", "not valid JSON"}, /* duplicate */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(parse_fail(bad[i].text, R, d), BERTH_EINVAL);
        if (!str_has_prefix(d, bad[i].detail)) {
            fprintf(stderr, "case %zu: detail \"%s\", expected \"%s...\"\n", i, d, bad[i].detail);
            CHECK(false);
        }
    }

    /* Identity policies: Resource needed, Principal refused. */
    CHECK_INT(parse_fail("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\"}}", I, d),
              BERTH_EINVAL);
    CHECK_STR(d, "statement 1: an identity policy statement needs Resource or NotResource");
    CHECK_INT(parse_fail("{\"Statement\":{" STMT_R ",\"Resource\":\"*\"}}", I, d), BERTH_EINVAL);
    CHECK_STR(d, "statement 1: Principal is not allowed in an identity policy");

    /* Limits. */
    char *big = malloc(AUTHZ_IDENTITY_POLICY_MAX_LEN + 64);
    memset(big, ' ', AUTHZ_REPOSITORY_POLICY_MAX_LEN + 1);
    big[AUTHZ_REPOSITORY_POLICY_MAX_LEN + 1] = '\0';
    CHECK_INT(parse_fail(big, R, d), BERTH_ETOOBIG);
    /* ... the same length is fine for an identity policy (and invalid JSON). */
    CHECK_INT(parse_fail(big, I, d), BERTH_EINVAL);
    size_t o = (size_t)snprintf(big, 64, "{\"Statement\":[");
    for (int i = 0; i <= AUTHZ_STATEMENTS_MAX; i++) {
        o += (size_t)snprintf(big + o, 128,
                              "%s{\"Effect\":\"Deny\",\"Action\":\"*\","
                              "\"Resource\":\"*\"}",
                              i ? "," : "");
    }
    snprintf(big + o, 8, "]}");
    CHECK_INT(parse_fail(big, I, d), BERTH_ETOOBIG);
    o = (size_t)snprintf(big, 64, "{\"Statement\":{\"Effect\":\"Deny\",\"Action\":[");
    for (int i = 0; i <= AUTHZ_LIST_MAX; i++) {
        o += (size_t)snprintf(big + o, 16, "%s\"*\"", i ? "," : "");
    }
    snprintf(big + o, 32, "],\"Resource\":\"*\"}}");
    CHECK_INT(parse_fail(big, I, d), BERTH_ETOOBIG);
    free(big);
    CHECK_INT(authz_policy_parse(NULL, 0, R, NULL, NULL, 0), BERTH_EINVAL);
    /* The detail buffer is optional. */
    struct authz_policy *p = NULL;
    CHECK_INT(authz_policy_parse("{}", 2, R, &p, NULL, 0), BERTH_EINVAL);
    CHECK(p == NULL);

    /* Valid shapes: Version optional, Statement a single object, list
     * principals, NotAction, wildcards, ARN resources. */
    static const char *const good[] = {
        "{\"Statement\":{" STMT_R "}}",
        "{\"Version\":\"2012-10-17\",\"Id\":\"p\",\"Statement\":[{" STMT_R "},{" STMT_R "}]}",
        ("{\"Statement\":{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":[\"" ALICE "\",\"" ACCOUNT
         "\",\"arn:aws-cn:sts::" ACCOUNT ":assumed-role/r/s\"]},\"NotAction\":[\"ecr:Get*\","
         "\"ecr:Describe?mages\"],\"Resource\":[\"" ARN("a/*") "\",\"b\"]}}"),
        ("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Service\":[\"codebuild."
         "amazonaws.com\"],\"AWS\":\"*\"},\"Action\":[\"ecr:ReplicateImage\",\"*\"]}}"),
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        authz_policy_free(parse(good[i], R));
    }
}

/* Parse a spec list into an identity policy and decide with it. */
static struct authz_policy *from_specs(const char *const *specs, size_t n)
{
    char *json = NULL;
    char err[256] = "";
    enum berth_err rc = authz_spec_to_policy(specs, n, &json, err, sizeof(err));
    if (rc != BERTH_OK) {
        fprintf(stderr, "spec failure: %s\n", err);
    }
    CHECK_INT(rc, BERTH_OK);
    if (json == NULL) {
        return NULL;
    }
    struct authz_policy *p = parse(json, AUTHZ_IDENTITY_POLICY);
    free(json);
    return p;
}

static void test_specs(void)
{
    enum authz_reason why;
    char *json = NULL;
    char err[256];

    /* Exact output for a small case. */
    const char *const del[] = {"delete:prod/*"};
    CHECK_INT(authz_spec_to_policy(del, 1, &json, err, sizeof(err)), BERTH_OK);
    CHECK_STR(json, "{\"Version\":\"2012-10-17\",\"Statement\":["
                    "{\"Effect\":\"Allow\",\"Action\":[\"ecr:BatchDeleteImage\"],"
                    "\"Resource\":\"prod/*\"},"
                    "{\"Effect\":\"Allow\",\"Action\":[\"ecr:GetAuthorizationToken\"],"
                    "\"Resource\":\"*\"}]}");
    free(json);

    /* No permissions means admin. */
    struct authz_policy *p = from_specs(NULL, 0);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:DeleteRepository", "any/thing", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:PutRegistryPolicy", NULL, &why), AUTHZ_ALLOW);
    authz_policy_free(p);
    const char *const admin[] = {"admin"};
    p = from_specs(admin, 1);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:DeleteRepository", "any/thing", &why), AUTHZ_ALLOW);
    authz_policy_free(p);

    const char *const mixed[] = {"pull:team/*", "push:app-*", "ecr:StartImageScan=scan/*",
                                 "ECR:describe*=desc", "admin:ops/*"};
    p = from_specs(mixed, 5);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:GetAuthorizationToken", NULL, &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:BatchGetImage", "team/a", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:GetDownloadUrlForLayer", "team/a/b", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:BatchCheckLayerAvailability", "team/a", &why),
              AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:DescribeImages", "team/a", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:PutImage", "team/a", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:BatchGetImage", "other", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:PutImage", "app-x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:InitiateLayerUpload", "app-x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:UploadLayerPart", "app-x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:CompleteLayerUpload", "app-x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:BatchGetImage", "app-x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:BatchDeleteImage", "app-x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:PutImage", "app/x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:StartImageScan", "scan/1", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:StartImageScan", "app-x", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:DescribeRepositories", "desc", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:DescribeImageScanFindings", "desc", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:ListImages", "desc", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:DeleteRepository", "ops/x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:DeleteRepository", "team/a", &why), AUTHZ_DENY);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:CreateRepository", NULL, &why), AUTHZ_DENY);
    authz_policy_free(p);

    const char *const del_only[] = {"delete:*", "pull", "ecr:BatchGetImage=" ARN("arn/*")};
    p = from_specs(del_only, 3);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:BatchDeleteImage", "x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:BatchGetImage", "x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide(ALICE, p, NULL, "ecr:PutImage", "x", &why), AUTHZ_DENY);
    authz_policy_free(p);

    static const struct {
        const char *spec;
        enum berth_err rc;
        const char *err;
    } bad[] = {
        {"fetch:x", BERTH_EINVAL, "permission 'fetch:x': expected pull, push, delete or admin"},
        {"Pull:x", BERTH_EINVAL, "permission 'Pull:x': expected"},
        {"pull:", BERTH_EINVAL, "permission 'pull:': the repository pattern must be"},
        {"pull:Team/*", BERTH_EINVAL, "permission 'pull:Team/*': the repository pattern"},
        {"pull:a b", BERTH_EINVAL, "permission 'pull:a b': the repository pattern"},
        {"ecr:", BERTH_EINVAL, "permission 'ecr:': no action after 'ecr:'"},
        {"ecr:Foo", BERTH_EINVAL, "permission 'ecr:Foo': unknown ECR action"},
        {"ecr:Pul*=x", BERTH_EINVAL, "permission 'ecr:Pul*=x': the action pattern matches no"},
        {"ecr:Put-Image", BERTH_EINVAL, "permission 'ecr:Put-Image': invalid character"},
        {"ecr:PutImage=", BERTH_EINVAL, "permission 'ecr:PutImage=': the repository pattern"},
        {"", BERTH_EINVAL, "permission '': expected"},
        {"pull:\xc3\xbc\x01", BERTH_EINVAL, "permission 'pull:\?\?\?': the repository pattern"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json = NULL;
        err[0] = '\0';
        const char *one[] = {"pull", bad[i].spec};
        CHECK_INT(authz_spec_to_policy(one, 2, &json, err, sizeof(err)), bad[i].rc);
        CHECK(json == NULL);
        if (!str_has_prefix(err, bad[i].err)) {
            fprintf(stderr, "spec %zu: err \"%s\", expected \"%s...\"\n", i, err, bad[i].err);
            CHECK(false);
        }
    }
    const char *many[AUTHZ_SPECS_MAX + 1];
    for (size_t i = 0; i <= AUTHZ_SPECS_MAX; i++) {
        many[i] = "pull";
    }
    CHECK_INT(authz_spec_to_policy(many, AUTHZ_SPECS_MAX, &json, err, sizeof(err)), BERTH_OK);
    free(json);
    json = NULL;
    CHECK_INT(authz_spec_to_policy(many, AUTHZ_SPECS_MAX + 1, &json, err, sizeof(err)),
              BERTH_ETOOBIG);
    CHECK(json == NULL);
    char longspec[AUTHZ_SPEC_MAX_LEN + 8];
    memset(longspec, 'a', sizeof(longspec) - 1);
    longspec[sizeof(longspec) - 1] = '\0';
    memcpy(longspec, "pull:", 5);
    const char *const one_long[] = {longspec};
    CHECK_INT(authz_spec_to_policy(one_long, 1, &json, err, sizeof(err)), BERTH_ETOOBIG);
    const char *const with_null[] = {"pull", NULL};
    CHECK_INT(authz_spec_to_policy(with_null, 2, &json, NULL, 0), BERTH_EINVAL);
    CHECK(json == NULL);
}

static void test_denied_message(void)
{
    char msg[AUTHZ_DENIED_MESSAGE_MAX];
    authz_denied_message(ALICE, "ecr:CreateRepository", ARN("x"), msg, sizeof(msg));
    CHECK_STR(msg, "User: " ALICE " is not authorized to perform: ecr:CreateRepository on "
                   "resource: " ARN("x"));
    authz_denied_message(NULL, "ecr:GetAuthorizationToken", NULL, msg, sizeof(msg));
    CHECK_STR(
        msg,
        "User: anonymous is not authorized to perform: ecr:GetAuthorizationToken on resource: *");
    authz_denied_message(ALICE, "ecr:PutImage", ARN("x"), msg, 10);
    CHECK_STR(msg, "User: arn");
}

/* The registry policy: validated as its own kind, read only for what it
 * can grant, and combined with the other two (explicit Deny wins). */
static void test_registry_policies(void)
{
    char detail[AUTHZ_DETAIL_MAX];
    /* Principal and Resource are required; only grantable actions. */
    CHECK_INT(parse_fail("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":"
                         "\"ecr:ReplicateImage\",\"Resource\":\"*\"}}",
                         AUTHZ_REGISTRY_POLICY, detail),
              BERTH_EINVAL);
    CHECK(strstr(detail, "registry policy statement needs a Principal") != NULL);
    CHECK_INT(parse_fail("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
                         "\"Action\":\"ecr:ReplicateImage\"}}",
                         AUTHZ_REGISTRY_POLICY, detail),
              BERTH_EINVAL);
    CHECK(strstr(detail, "needs Resource") != NULL);
    CHECK_INT(parse_fail("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
                         "\"Action\":\"ecr:GetAuthorizationToken\",\"Resource\":\"*\"}}",
                         AUTHZ_REGISTRY_POLICY, detail),
              BERTH_EINVAL);
    CHECK(strstr(detail, "cannot be granted by a registry policy") != NULL);
    CHECK_INT(parse_fail("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
                         "\"Action\":\"ecr:PutRegistry*\",\"Resource\":\"*\"}}",
                         AUTHZ_REGISTRY_POLICY, detail),
              BERTH_EINVAL);
    CHECK(authz_registry_grantable("ecr:ReplicateImage"));
    CHECK(authz_registry_grantable("ECR:batchimportupstreamimage"));
    CHECK(authz_registry_grantable("ecr:CreateRepository"));
    CHECK(authz_registry_grantable("ecr:BatchGetImage"));
    CHECK(!authz_registry_grantable("ecr:PutRegistryPolicy"));
    CHECK(!authz_registry_grantable("ecr:GetAuthorizationToken"));

    struct authz_policy *reg =
        parse("{\"Version\":\"2012-10-17\",\"Statement\":["
              "{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
              "\"Action\":[\"ecr:ReplicateImage\",\"ecr:CreateRepository\","
              "\"ecr:BatchImportUpstreamImage\"],\"Resource\":\"" ARN(
                  "mirror/*") "\"},"
                              "{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" BOB "\"},"
                              "\"Action\":\"ecr:*\",\"Resource\":\"" ARN(
                                  "shared/*") "\"},"
                                              "{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":"
                                              "\"ecr:BatchDeleteImage\","
                                              "\"Resource\":\"" ARN("*") "\"}]}",
              AUTHZ_REGISTRY_POLICY);
    struct authz_policy *admin = parse("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":"
                                       "\"ecr:*\",\"Resource\":\"*\"}}",
                                       AUTHZ_IDENTITY_POLICY);
    enum authz_reason why;
    /* the three permission-only or creation actions, on the repositories named */
    const char *granted[] = {"ecr:ReplicateImage", "ecr:CreateRepository",
                             "ecr:BatchImportUpstreamImage"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_INT(decide3(BOB, NULL, NULL, reg, granted[i], "mirror/app", &why), AUTHZ_ALLOW);
        CHECK_INT(why, AUTHZ_REASON_REGISTRY_ALLOW);
        CHECK_INT(decide3(BOB, NULL, NULL, reg, granted[i], "other/app", &why), AUTHZ_DENY);
        CHECK_INT(decide3(ALICE, NULL, NULL, reg, granted[i], "mirror/app", &why), AUTHZ_DENY);
    }
    /* repository actions registry-wide (scope V2), ecr:* read as what it can grant */
    CHECK_INT(decide3(BOB, NULL, NULL, reg, "ecr:BatchGetImage", "shared/x", &why), AUTHZ_ALLOW);
    CHECK_INT(decide3(BOB, NULL, NULL, reg, "ecr:PutImage", "shared/y/z", &why), AUTHZ_ALLOW);
    CHECK_INT(decide3(BOB, NULL, NULL, reg, "ecr:GetAuthorizationToken", NULL, &why), AUTHZ_DENY);
    CHECK_INT(decide3(BOB, NULL, NULL, reg, "ecr:PutRegistryPolicy", NULL, &why), AUTHZ_DENY);
    /* its explicit Deny beats an identity Allow ... */
    CHECK_INT(decide3(ALICE, admin, NULL, reg, "ecr:BatchDeleteImage", "team/app", &why),
              AUTHZ_DENY);
    CHECK_INT(why, AUTHZ_REASON_REGISTRY_DENY);
    CHECK_INT(decide3(ALICE, admin, NULL, reg, "ecr:BatchGetImage", "team/app", &why), AUTHZ_ALLOW);
    CHECK_INT(why, AUTHZ_REASON_IDENTITY_ALLOW);
    /* ... and a repository policy's Deny beats its Allow */
    struct authz_policy *repo_deny =
        parse("{\"Statement\":{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":"
              "\"ecr:PutImage\"}}",
              AUTHZ_REPOSITORY_POLICY);
    CHECK_INT(decide3(BOB, NULL, repo_deny, reg, "ecr:PutImage", "shared/x", &why), AUTHZ_DENY);
    CHECK_INT(why, AUTHZ_REASON_REPOSITORY_DENY);
    /* a registry policy passed where another kind is expected grants nothing */
    CHECK_INT(decide3(BOB, NULL, reg, NULL, "ecr:PutImage", "shared/x", &why), AUTHZ_DENY);
    authz_policy_free(repo_deny);
    authz_policy_free(admin);
    authz_policy_free(reg);
}

int main(void)
{
    RUN(test_actions);
    RUN(test_identity_decisions);
    RUN(test_deny_precedence);
    RUN(test_repository_policies);
    RUN(test_registry_policies);
    RUN(test_validation);
    RUN(test_specs);
    RUN(test_denied_message);
    return unit_report("test_authz");
}
