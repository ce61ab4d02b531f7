/* Unit tests for storage/lifecycle/lifecycle.c and storage/lifecycle/validate.c:
 * AWS's documented examples (fixtures under data/lifecycle/), the
 * reference's worked examples, evaluation edge cases, the index-keeps-
 * children rule, every validation message, and a timing run over 100,000
 * images and 50 rules. */
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "storage/lifecycle/lifecycle.h"

#define NOW_MS INT64_C(1700000000000)
#define DAY_MS INT64_C(86400000)

#define MSG_VALIDATION LIFECYCLE_MSG_PREFIX "'Lifecycle policy validation failure: "
#define V(detail) MSG_VALIDATION detail "'"
#define ONE_OF MSG_VALIDATION "instance failed to match exactly one schema (matched 0 out of 2)"

/* ---- helpers ------------------------------------------------------------ */

/* The text padded with spaces to at least LIFECYCLE_TEXT_MIN characters
 * (trailing white space is valid JSON), so short shapes reach the validator.
 * Static storage, overwritten by the next call. */
static const char *pad(const char *text)
{
    static char buf[LIFECYCLE_TEXT_MAX + 1];
    size_t n = strlen(text);
    if (n >= sizeof(buf)) {
        abort();
    }
    memcpy(buf, text, n);
    while (n < LIFECYCLE_TEXT_MIN) {
        buf[n++] = ' ';
    }
    buf[n] = '\0';
    return buf;
}

/* A well-formed rule, with its priority, selection and action swapped in. */
static const char *rule_with(char *buf, size_t cap, int priority, const char *selection,
                             const char *action)
{
    snprintf(buf, cap, "{\"rulePriority\":%d,\"selection\":%s,\"action\":%s}", priority, selection,
             action);
    return buf;
}

#define SEL_ANY "{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":1}"
#define SEL_UNTAGGED                                                                               \
    "{\"tagStatus\":\"untagged\",\"countType\":\"imageCountMoreThan\",\"countNumber\":1}"
#define ACT_EXPIRE "{\"type\":\"expire\"}"

/* Expect the policy text to be rejected with exactly msg. */
static void expect_invalid_line(const char *text, const char *msg, int line)
{
    char got[LIFECYCLE_MSG_CAP];
    struct lifecycle_policy *p = NULL;
    enum berth_err rc = lifecycle_policy_parse(text, strlen(text), &p, got, sizeof(got));
    unit_checks++;
    if (rc != BERTH_EINVAL || p != NULL || strcmp(got, msg) != 0) {
        unit_failures++;
        fprintf(stderr, "%s:%d: %s: rc=%d\n  text: %.200s\n  got:  %s\n  want: %s\n", __FILE__,
                line, unit_current, (int)rc, text, got, msg);
    }
    lifecycle_policy_free(p);
}
#define expect_invalid(text, msg) expect_invalid_line(text, msg, __LINE__)

static void expect_valid_line(const char *text, int line)
{
    char got[LIFECYCLE_MSG_CAP];
    struct lifecycle_policy *p = NULL;
    enum berth_err rc = lifecycle_policy_parse(text, strlen(text), &p, got, sizeof(got));
    unit_checks++;
    if (rc != BERTH_OK || p == NULL) {
        unit_failures++;
        fprintf(stderr, "%s:%d: %s: rc=%d\n  text: %.200s\n  got:  %s\n", __FILE__, line,
                unit_current, (int)rc, text, got);
    }
    lifecycle_policy_free(p);
}
#define expect_valid(text) expect_valid_line(text, __LINE__)

/* An image for run(): tags and parents are NULL-terminated name lists. */
struct spec {
    const char *name;
    double days_ago;
    const char *tags[6];
    const char *parents[4];
    const char *digest; /* NULL: "sha256:" + name */
};

static size_t spec_index(const struct spec *specs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(specs[i].name, name) == 0) {
            return i;
        }
    }
    fprintf(stderr, "unknown image name %s\n", name);
    abort();
}

/* A referrer and its subject, by spec name. */
struct subject_of {
    const char *referrer;
    const char *subject;
};

/* Parse policy (padded) and evaluate it over specs at NOW_MS, with the
 * referrers' subjects. Returns the expirations as "A:1 B:2" in image
 * order, "" for none, or "ERR <msg>". Static storage, overwritten by the
 * next call. */
static const char *run_referrers(const char *policy, const struct spec *specs, size_t n,
                                 const struct subject_of *subjects, size_t nsubjects)
{
    static char out[4096];
    char msg[LIFECYCLE_MSG_CAP];
    struct lifecycle_policy *p = NULL;
    struct lifecycle_image images[64];
    size_t parents[64][4];
    char digests[64][80];

    out[0] = '\0';
    policy = pad(policy);
    if (lifecycle_policy_parse(policy, strlen(policy), &p, msg, sizeof(msg)) != BERTH_OK) {
        snprintf(out, sizeof(out), "ERR %s", msg);
        return out;
    }
    if (n > 64) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        const struct spec *s = &specs[i];
        size_t tags = 0, nparents = 0;
        while (s->tags[tags]) {
            tags++;
        }
        while (s->parents[nparents]) {
            parents[i][nparents] = spec_index(specs, n, s->parents[nparents]);
            nparents++;
        }
        snprintf(digests[i], sizeof(digests[i]), "sha256:%s", s->name);
        images[i] = (struct lifecycle_image){
            .digest = s->digest ? s->digest : digests[i],
            .pushed_at_ms = NOW_MS - (int64_t)(s->days_ago * (double)DAY_MS),
            .tags = tags ? s->tags : NULL,
            .tag_count = tags,
            .parents = nparents ? parents[i] : NULL,
            .parent_count = nparents,
        };
    }
    for (size_t k = 0; k < nsubjects; k++) {
        struct lifecycle_image *r = &images[spec_index(specs, n, subjects[k].referrer)];
        r->has_subject = true;
        r->subject = spec_index(specs, n, subjects[k].subject);
    }
    struct lifecycle_expiration *exp = NULL;
    size_t count = 0;
    enum berth_err rc = lifecycle_evaluate(p, images, n, NOW_MS, &exp, &count);
    if (rc != BERTH_OK) {
        snprintf(out, sizeof(out), "ERR evaluate %d", (int)rc);
    }
    size_t used = 0;
    for (size_t k = 0; rc == BERTH_OK && k < count; k++) {
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s:%d", k ? " " : "",
                                 specs[exp[k].image].name, exp[k].rule_priority);
    }
    free(exp);
    lifecycle_policy_free(p);
    return out;
}

static const char *run(const char *policy, const struct spec *specs, size_t n)
{
    return run_referrers(policy, specs, n, NULL, 0);
}

/* ---- AWS documentation examples (fixtures) ------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(data, cap);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + n, 1, 4096, f);
        n += got;
        if (got < 4096) {
            break;
        }
    }
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

static const char *data_path(char *buf, size_t cap, const char *name, const char *suffix)
{
    const char *dir = getenv("BERTH_TEST_DATA");
    snprintf(buf, cap, "%s/lifecycle/%s%s", dir ? dir : "tests/unit/data", name, suffix);
    return buf;
}

/* Run one fixture: NAME.policy.json (the policy text as AWS publishes it) and
 * NAME.case.json (images, expected expirations or expected error). */
static void run_fixture(const char *name)
{
    char path[1024], msg[LIFECYCLE_MSG_CAP];
    size_t text_len = 0, case_len = 0;
    char *text = read_file(data_path(path, sizeof(path), name, ".policy.json"), &text_len);
    char *case_text = read_file(data_path(path, sizeof(path), name, ".case.json"), &case_len);
    json_error_t jerr;
    json_t *c = case_text ? json_loadb(case_text, case_len, 0, &jerr) : NULL;
    struct lifecycle_policy *p = NULL;
    struct lifecycle_image *images = NULL;
    size_t *parents = NULL;
    char **digests = NULL;
    const char **tags = NULL;
    struct lifecycle_expiration *exp = NULL;

    unit_current = name;
    CHECK(text != NULL);
    CHECK(c != NULL);
    if (text == NULL || c == NULL) {
        goto out;
    }
    enum berth_err rc = lifecycle_policy_parse(text, text_len, &p, msg, sizeof(msg));
    const json_t *want_error = json_object_get(c, "error");
    if (want_error != NULL) {
        CHECK_INT(rc, BERTH_EINVAL);
        CHECK_STR(msg, json_string_value(want_error));
        goto out;
    }
    CHECK_INT(rc, BERTH_OK);
    if (rc != BERTH_OK) {
        fprintf(stderr, "  %s\n", msg);
        goto out;
    }

    const json_t *jimages = json_object_get(c, "images");
    size_t n = json_array_size(jimages), total_tags = 0, total_parents = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *img = json_array_get(jimages, i);
        total_tags += json_array_size(json_object_get(img, "tags"));
        total_parents += json_array_size(json_object_get(img, "parents"));
    }
    images = calloc(n, sizeof(*images));
    digests = calloc(n, sizeof(*digests));
    tags = calloc(total_tags + 1, sizeof(*tags));
    parents = calloc(total_parents + 1, sizeof(*parents));
    if (images == NULL || digests == NULL || tags == NULL || parents == NULL) {
        abort();
    }
    size_t ti = 0, pi = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *img = json_array_get(jimages, i);
        const json_t *jd = json_object_get(img, "digest");
        char buf[256];
        snprintf(buf, sizeof(buf), "sha256:%s", json_string_value(json_object_get(img, "name")));
        digests[i] = strdup(jd ? json_string_value(jd) : buf);
        images[i].digest = digests[i];
        double days = json_number_value(json_object_get(img, "pushed_days_ago"));
        images[i].pushed_at_ms = NOW_MS - (int64_t)(days * (double)DAY_MS);
        images[i].tags = &tags[ti];
        size_t k;
        const json_t *v;
        json_array_foreach(json_object_get(img, "tags"), k, v)
        {
            tags[ti++] = json_string_value(v);
        }
        images[i].tag_count = (size_t)(&tags[ti] - images[i].tags);
        images[i].parents = &parents[pi];
        json_array_foreach(json_object_get(img, "parents"), k, v)
        {
            for (size_t j = 0; j < n; j++) {
                const json_t *other = json_array_get(jimages, j);
                if (strcmp(json_string_value(json_object_get(other, "name")),
                           json_string_value(v)) == 0) {
                    parents[pi++] = j;
                }
            }
        }
        images[i].parent_count = (size_t)(&parents[pi] - images[i].parents);
    }

    size_t count = 0;
    CHECK_INT(lifecycle_evaluate(p, images, n, NOW_MS, &exp, &count), BERTH_OK);
    const json_t *want = json_object_get(c, "expired");
    CHECK_INT(count, json_array_size(want));
    for (size_t k = 0; k < count && k < json_array_size(want); k++) {
        const json_t *w = json_array_get(want, k);
        const char *got_name =
            json_string_value(json_object_get(json_array_get(jimages, exp[k].image), "name"));
        CHECK_STR(got_name, json_string_value(json_object_get(w, "image")));
        CHECK_INT(exp[k].rule_priority, json_integer_value(json_object_get(w, "rule")));
    }
out:
    free(exp);
    for (size_t i = 0; digests && i < json_array_size(json_object_get(c, "images")); i++) {
        free(digests[i]);
    }
    free(digests);
    free(parents);
    free(tags);
    free(images);
    lifecycle_policy_free(p);
    json_decref(c);
    free(case_text);
    free(text);
}

static void test_aws_doc_examples(void)
{
    static const char *const fixtures[] = {
        "doc_age_untagged",
        "doc_age_prod_pattern",
        "doc_count_untagged",
        "doc_multiple_rules_a",
        "doc_multiple_rules_a_pattern",
        "doc_multiple_rules_b",
        "doc_multiple_rules_b_pattern",
        "doc_multiple_tags_a",
        "doc_multiple_tags_a_pattern",
        "doc_multiple_tags_b",
        "doc_all_images_a",
        "doc_all_images_b",
        "doc_broken_multiple_rules_a",
    };
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        run_fixture(fixtures[i]);
    }
    unit_current = "test_aws_doc_examples";
}

/* ---- the reference's six worked examples (ecr-api.md 3.2) -------------- */

#define TAGGED_COUNT(prio, key, list, n)                                                           \
    "{\"rulePriority\":" #prio ",\"selection\":{\"tagStatus\":\"tagged\",\"" key "\":" list        \
    ",\"countType\":\"imageCountMoreThan\",\"countNumber\":" #n "},\"action\":{\"type\":"          \
    "\"expire\"}}"

static void test_reference_worked_examples(void)
{
    static const char prod_then_beta[] =
        "{\"rules\":[" TAGGED_COUNT(1, "tagPrefixList", "[\"prod\"]",
                                    1) "," TAGGED_COUNT(2, "tagPrefixList", "[\"beta\"]", 1) "]}";
    static const char beta_then_prod[] =
        "{\"rules\":[" TAGGED_COUNT(1, "tagPrefixList", "[\"beta\"]",
                                    1) "," TAGGED_COUNT(2, "tagPrefixList", "[\"prod\"]", 1) "]}";
    static const struct spec abc[] = {
        {"A", 10, {"beta-1", "prod-1"}, {0}, 0},
        {"B", 9, {"beta-2", "prod-2"}, {0}, 0},
        {"C", 8, {"beta-3"}, {0}, 0},
    };
    CHECK_STR(run(prod_then_beta, abc, 3), "A:1");
    CHECK_STR(run(beta_then_prod, abc, 3), "A:1 B:1");

    static const char alpha_beta_5_days[] =
        "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"tagged\","
        "\"tagPrefixList\":[\"alpha\",\"beta\"],\"countType\":\"sinceImagePushed\","
        "\"countUnit\":\"days\",\"countNumber\":5},\"action\":{\"type\":\"expire\"}}]}";
    static const struct spec six[] = {
        {"A", 12, {"alpha-1"}, {0}, 0},
        {"B", 11, {"beta-1"}, {0}, 0},
        {"C", 10, {"alpha-2", "beta-2"}, {0}, 0},
        {"D", 4, {"alpha-3"}, {0}, 0},
        {"E", 3, {"beta-3"}, {0}, 0},
        {"F", 2, {"alpha-4", "beta-4"}, {0}, 0},
    };
    CHECK_STR(run(alpha_beta_5_days, six, 6), "C:1");

    static const char alpha_beta_keep_1[] =
        "{\"rules\":[" TAGGED_COUNT(1, "tagPrefixList", "[\"alpha\",\"beta\"]", 1) "]}";
    static const struct spec three[] = {
        {"A", 10, {"alpha-1", "beta-1", "gamma-1"}, {0}, 0},
        {"B", 9, {"alpha-2", "beta-2"}, {0}, 0},
        {"C", 8, {"alpha-3", "beta-3", "gamma-2"}, {0}, 0},
    };
    CHECK_STR(run(alpha_beta_keep_1, three, 3), "A:1 B:1");

    static const char any_keep_1[] =
        "{\"rules\":[{\"rulePriority\":1,\"selection\":" SEL_ANY ",\"action\":" ACT_EXPIRE "}]}";
    static const struct spec four[] = {
        {"A", 4, {"alpha-1"}, {0}, 0},
        {"B", 3, {"beta-1"}, {0}, 0},
        {"C", 2, {0}, {0}, 0},
        {"D", 1, {"alpha-2"}, {0}, 0},
    };
    CHECK_STR(run(any_keep_1, four, 4), "A:1 B:1 C:1");

    static const char all_kinds[] = "{\"rules\":[" TAGGED_COUNT(
        1, "tagPrefixList", "[\"alpha\"]",
        1) ","
           "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\",\"countType\":"
           "\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":1},\"action\":"
           "{\"type\":\"expire\"}},"
           "{\"rulePriority\":3,\"selection\":" SEL_ANY ",\"action\":" ACT_EXPIRE "}]}";
    /* D and E are both pushed a day ago; the reference treats E as the
     * younger, which the digest tie-break gives here. */
    static const struct spec five[] = {
        {"A", 4, {"alpha-1", "beta-1"}, {0}, 0}, {"B", 3, {0}, {0}, 0},
        {"C", 2, {"alpha-2"}, {0}, 0},           {"D", 1, {"git hash"}, {0}, "sha256:d"},
        {"E", 1, {0}, {0}, "sha256:e"},
    };
    CHECK_STR(run(all_kinds, five, 5), "A:1 B:2 D:3");
}

/* ---- evaluation edge cases --------------------------------------------- */

static void test_tie_break(void)
{
    /* Equal push times: the smaller digest is older and goes first,
     * whatever the input order. */
    static const struct spec same[] = {
        {"X", 2, {0}, {0}, "sha256:bb"},
        {"Y", 2, {0}, {0}, "sha256:cc"},
        {"Z", 2, {0}, {0}, "sha256:aa"},
    };
    char r[512], policy[1024];
    snprintf(policy, sizeof(policy), "{\"rules\":[%s]}",
             rule_with(r, sizeof(r), 1, SEL_UNTAGGED, ACT_EXPIRE));
    CHECK_STR(run(policy, same, 3), "X:1 Z:1");
    static const struct spec reversed[] = {
        {"Z", 2, {0}, {0}, "sha256:aa"},
        {"Y", 2, {0}, {0}, "sha256:cc"},
        {"X", 2, {0}, {0}, "sha256:bb"},
    };
    CHECK_STR(run(policy, reversed, 3), "Z:1 X:1");
    /* Equal digests too: the lower index is older. */
    static const struct spec twins[] = {
        {"P", 2, {0}, {0}, "sha256:same"},
        {"Q", 2, {0}, {0}, "sha256:same"},
    };
    CHECK_STR(run(policy, twins, 2), "P:1");
    /* Push time always wins over digest order. */
    static const struct spec timed[] = {
        {"OLD", 3, {0}, {0}, "sha256:ff"},
        {"NEW", 1, {0}, {0}, "sha256:00"},
    };
    CHECK_STR(run(policy, timed, 2), "OLD:1");
}

static void test_several_tags_several_rules(void)
{
    /* M carries tags for both rules: rule 1 takes it (and may keep it), so
     * rule 2 counts it but never expires it. */
    static const struct spec imgs[] = {
        {"M", 6, {"prod-1", "beta-1", "latest"}, {0}, 0},
        {"P", 5, {"prod-2"}, {0}, 0},
        {"B1", 4, {"beta-2"}, {0}, 0},
        {"B2", 3, {"beta-3"}, {0}, 0},
    };
    const char *policy =
        "{\"rules\":[" TAGGED_COUNT(1, "tagPatternList", "[\"prod-*\"]", 2) "," TAGGED_COUNT(
            2, "tagPatternList", "[\"beta-*\"]", 1) "]}";
    /* Rule 1 keeps M and P (2 images). Rule 2 sees B2, B1, M youngest
     * first: B1 and M are beyond 1, M is claimed, so only B1 goes. */
    CHECK_STR(run(policy, imgs, 4), "B1:2");
    /* One image matching every pattern of a rule through different tags. */
    const char *both =
        "{\"rules\":[" TAGGED_COUNT(1, "tagPatternList", "[\"prod-*\",\"*-1\"]", 1) "]}";
    static const struct spec two[] = {
        {"S", 5, {"prod-9", "beta-1"}, {0}, 0},
        {"T", 4, {"prod-1"}, {0}, 0},
        {"U", 3, {"prod-2"}, {0}, 0},
    };
    /* S and T match both patterns; U lacks a "*-1" tag. T is the younger. */
    CHECK_STR(run(both, two, 3), "S:1");
}

static void test_patterns_with_several_stars(void)
{
    const char *policy = "{\"rules\":[" TAGGED_COUNT(1, "tagPatternList",
                                                     "[\"*test*1*2*3\",\"test*1*2*3*\"]", 1) "]}";
    static const struct spec imgs[] = {
        {"A", 5, {"test-1-2-3-rc", "mytest-1-2-3"}, {0}, 0},
        {"B", 4, {"test123"}, {0}, 0},
        {"C", 3, {"test-3-2-1"}, {0}, 0},
        {"D", 2, {"mytest-1-2-3"}, {0}, 0},
        {"E", 1, {"test1x2y3"}, {0}, 0},
    };
    /* A, B and E match both patterns; C and D do not ("test*1*2*3*" needs
     * the tag to start with test). Keep E, expire A and B. */
    CHECK_STR(run(policy, imgs, 5), "A:1 B:1");
    /* '*' alone selects every tagged image. */
    const char *star = "{\"rules\":[" TAGGED_COUNT(1, "tagPatternList", "[\"*\"]", 1) "]}";
    CHECK_STR(run(star, imgs, 5), "A:1 B:1 C:1 D:1");
    /* Without '*', a pattern must equal the tag. */
    const char *exact = "{\"rules\":[" TAGGED_COUNT(1, "tagPatternList", "[\"test123\"]", 1) "]}";
    static const struct spec ex[] = {
        {"A", 5, {"test123"}, {0}, 0},
        {"B", 4, {"test1234"}, {0}, 0},
        {"C", 3, {"test123"}, {0}, 0},
    };
    CHECK_STR(run(exact, ex, 3), "A:1");
    /* A prefix list entry is a plain prefix: '*' in it is a literal. */
    const char *prefix = "{\"rules\":[" TAGGED_COUNT(1, "tagPrefixList", "[\"v1.\"]", 1) "]}";
    static const struct spec pv[] = {
        {"A", 5, {"v1.0"}, {0}, 0},
        {"B", 4, {"v10"}, {0}, 0},
        {"C", 3, {"v1.1"}, {0}, 0},
    };
    CHECK_STR(run(prefix, pv, 3), "A:1");
}

static void test_any_and_mixes(void)
{
    static const struct spec imgs[] = {
        {"T1", 40, {"rel-1"}, {0}, 0}, {"T2", 35, {"rel-2"}, {0}, 0}, {"T3", 20, {"rel-3"}, {0}, 0},
        {"X1", 50, {"misc"}, {0}, 0},  {"U1", 60, {0}, {0}, 0},       {"U2", 10, {0}, {0}, 0},
        {"U3", 2, {0}, {0}, 0},
    };
    /* any sinceImagePushed alone: everything older than 30 days. */
    const char *any_age = "{\"rules\":[{\"rulePriority\":7,\"selection\":{\"tagStatus\":\"any\","
                          "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
                          "\"countNumber\":30},\"action\":{\"type\":\"expire\"}}]}";
    CHECK_STR(run(any_age, imgs, 7), "T1:7 T2:7 X1:7 U1:7");
    /* Tagged keep-2 first, untagged keep-1, then any older than 30 days:
     * rel images are claimed by rule 1 (T1 expired there, T2 kept though
     * old), untagged by rule 2, so rule 3 only gets X1. */
    const char *mix = "{\"rules\":[" TAGGED_COUNT(
        1, "tagPrefixList", "[\"rel-\"]",
        2) ","
           "{\"rulePriority\":5,\"selection\":" SEL_UNTAGGED ",\"action\":" ACT_EXPIRE "},"
           "{\"rulePriority\":9,\"selection\":{\"tagStatus\":\"any\",\"countType\":"
           "\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":30},\"action\":"
           "{\"type\":\"expire\"}}]}";
    CHECK_STR(run(mix, imgs, 7), "T1:1 X1:9 U1:5 U2:5");
    /* Rules given out of priority order are applied in priority order. */
    const char *shuffled =
        "{\"rules\":[{\"rulePriority\":9,\"selection\":{\"tagStatus\":\"any\","
        "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
        "\"countNumber\":30},\"action\":{\"type\":\"expire\"}},"
        "{\"rulePriority\":5,\"selection\":" SEL_UNTAGGED ",\"action\":" ACT_EXPIRE
        "}," TAGGED_COUNT(1, "tagPrefixList", "[\"rel-\"]", 2) "]}";
    CHECK_STR(run(shuffled, imgs, 7), "T1:1 X1:9 U1:5 U2:5");
}

static void test_count_after_earlier_rules(void)
{
    /* Rule 1 takes the three prod images, keeps 2 and expires P1. Rule 2,
     * any keep-2, counts them among the youngest but may not expire them:
     * the two youngest overall are P3 and P2, everything else is beyond 2,
     * and of those only the unclaimed D1, D2 and U go. */
    static const struct spec imgs[] = {
        {"P1", 9, {"prod-1"}, {0}, 0}, {"D1", 8, {"dev-1"}, {0}, 0},  {"D2", 7, {"dev-2"}, {0}, 0},
        {"U", 6, {0}, {0}, 0},         {"P2", 2, {"prod-2"}, {0}, 0}, {"P3", 1, {"prod-3"}, {0}, 0},
    };
    const char *policy = "{\"rules\":[" TAGGED_COUNT(
        1, "tagPrefixList", "[\"prod\"]",
        2) ","
           "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"any\",\"countType\":"
           "\"imageCountMoreThan\",\"countNumber\":2},\"action\":{\"type\":"
           "\"expire\"}}]}";
    CHECK_STR(run(policy, imgs, 6), "P1:1 D1:2 D2:2 U:2");
    /* Count equal to the number of matches expires nothing. */
    const char *keep3 = "{\"rules\":[" TAGGED_COUNT(1, "tagPrefixList", "[\"prod\"]", 3) "]}";
    CHECK_STR(run(keep3, imgs, 6), "");
    /* No images at all. */
    CHECK_STR(run(keep3, imgs, 0), "");
}

static void test_age_boundaries(void)
{
    const char *policy =
        "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"untagged\","
        "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
        "\"countNumber\":1},\"action\":{\"type\":\"expire\"}}]}";
    static const struct spec imgs[] = {
        {"EXACT", 1, {0}, {0}, 0},       /* exactly 24 h: not older */
        {"OLDER", 1.00001, {0}, {0}, 0}, /* a little more: older */
        {"FUTURE", -3, {0}, {0}, 0},     /* pushed "in the future" */
    };
    CHECK_STR(run(policy, imgs, 3), "OLDER:1");
}

static void test_index_keeps_children(void)
{
    /* Index I1 (tagged, kept) references two untagged platform images that
     * the untagged rule would expire: they stay. Index I0 is expired by the
     * tagged rule, so its children go with it. */
    static const struct spec imgs[] = {
        {"I0", 20, {"v1"}, {0}, 0}, {"I0a", 20, {0}, {"I0"}, 0}, {"I0b", 20, {0}, {"I0"}, 0},
        {"I1", 10, {"v2"}, {0}, 0}, {"I1a", 10, {0}, {"I1"}, 0}, {"I1b", 10, {0}, {"I1"}, 0},
        {"LOOSE", 15, {0}, {0}, 0},
    };
    const char *policy = "{\"rules\":[" TAGGED_COUNT(
        1, "tagPrefixList", "[\"v\"]",
        1) ","
           "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\","
           "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
           "\"countNumber\":5},\"action\":{\"type\":\"expire\"}}]}";
    CHECK_STR(run(policy, imgs, 7), "I0:1 I0a:2 I0b:2 LOOSE:2");

    /* Nested: a kept top index keeps a mid index (itself untagged and
     * expirable), which keeps its leaves. */
    static const struct spec nested[] = {
        {"TOP", 30, {"release"}, {0}, 0}, {"MID", 30, {0}, {"TOP"}, 0},
        {"LEAF1", 30, {0}, {"MID"}, 0},   {"LEAF2", 30, {0}, {"MID"}, 0},
        {"ORPHAN", 30, {0}, {0}, 0},
    };
    const char *untagged_age = "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":"
                               "\"untagged\",\"countType\":\"sinceImagePushed\",\"countUnit\":"
                               "\"days\",\"countNumber\":1},\"action\":{\"type\":\"expire\"}}]}";
    CHECK_STR(run(untagged_age, nested, 5), "ORPHAN:1");

    /* A child shared by an expired and a kept index stays. A child the
     * policy keeps stays even when its index is expired. */
    static const struct spec shared[] = {
        {"OLDIDX", 9, {"v1"}, {0}, 0},
        {"NEWIDX", 1, {"v2"}, {0}, 0},
        {"SHARED", 9, {0}, {"OLDIDX", "NEWIDX"}, 0},
        {"ONLYOLD", 9, {0}, {"OLDIDX"}, 0},
        {"YOUNG", 0.1, {0}, {"OLDIDX"}, 0},
    };
    CHECK_STR(run(policy, shared, 5), "OLDIDX:1 ONLYOLD:2");

    /* Reference cycles do not hang: both expired stay expired; a cycle
     * reachable from a kept image is kept whole. */
    static const struct spec cycle[] = {
        {"C1", 9, {0}, {"C2"}, 0},
        {"C2", 9, {0}, {"C1"}, 0},
        {"SELF", 9, {0}, {"SELF"}, 0},
    };
    CHECK_STR(run(untagged_age, cycle, 3), "C1:1 C2:1 SELF:1");
    static const struct spec kept_cycle[] = {
        {"K", 9, {"keep"}, {0}, 0},
        {"C1", 9, {0}, {"C2", "K"}, 0},
        {"C2", 9, {0}, {"C1"}, 0},
    };
    CHECK_STR(run(untagged_age, kept_cycle, 3), "");
}

/* Referrers (OCI 1.1 subject) go with their subject when it is deleted, as
 * ECR's lifecycle removes them: untagged ones no index lists, transitively,
 * by the subject's rule. */
static void test_referrers_follow_their_subject(void)
{
    static const struct spec imgs[] = {
        {"V1", 5, {"v1"}, {0}, 0},         {"V2", 1, {"v2"}, {0}, 0},
        {"SIG1", 4, {0}, {0}, 0},          {"SBOM1", 4, {0}, {0}, 0},
        {"SIGSBOM1", 3, {0}, {0}, 0},      {"SIG2", 0.5, {0}, {0}, 0},
        {"TAGGEDSIG", 4, {"sig"}, {0}, 0}, {"IDX", 2, {"idx"}, {0}, 0},
        {"LISTED", 4, {0}, {"IDX"}, 0},
    };
    static const struct subject_of subjects[] = {
        {"SIG1", "V1"}, {"SBOM1", "V1"},     {"SIGSBOM1", "SBOM1"},
        {"SIG2", "V2"}, {"TAGGEDSIG", "V1"}, {"LISTED", "V1"},
    };
    /* keep one v* image: V1 goes, with its signature, its SBOM and the
     * SBOM's signature; the tagged signature and the one an index lists stay */
    const char *keep_one = "{\"rules\":[" TAGGED_COUNT(1, "tagPrefixList", "[\"v\"]", 1) "]}";
    CHECK_STR(run_referrers(keep_one, imgs, 9, subjects, 6), "V1:1 SIG1:1 SBOM1:1 SIGSBOM1:1");
    /* without subjects, only V1 */
    CHECK_STR(run(keep_one, imgs, 9), "V1:1");
    /* a referrer a rule of its own expires keeps that rule's priority (SIG1,
     * SBOM1), and one that follows takes its subject's (SIGSBOM1, 3 days old,
     * follows SBOM1); V2's young signature stays with V2 */
    const char *both = "{\"rules\":[" TAGGED_COUNT(
        1, "tagPrefixList", "[\"v\"]",
        1) ",{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\","
           "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
           "\"countNumber\":3},\"action\":{\"type\":\"expire\"}}]}";
    CHECK_STR(run_referrers(both, imgs, 9, subjects, 6), "V1:1 SIG1:2 SBOM1:2 SIGSBOM1:2");
    /* an image archived (a transition) keeps its referrers */
    const char *archive = "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":"
                          "\"tagged\",\"tagPrefixList\":[\"v1\"],\"countType\":"
                          "\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":1},"
                          "\"action\":{\"type\":\"transition\",\"targetStorageClass\":"
                          "\"archive\"}}]}";
    CHECK_STR(run_referrers(archive, imgs, 9, subjects, 6), "V1:1");
    /* a subject out of range is refused; a referrer of itself does not hang */
    static const struct spec self[] = {{"S", 9, {0}, {0}, 0}, {"T", 9, {"t"}, {0}, 0}};
    static const struct subject_of loop[] = {{"S", "S"}};
    const char *untagged = "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":"
                           "\"untagged\",\"countType\":\"sinceImagePushed\",\"countUnit\":"
                           "\"days\",\"countNumber\":1},\"action\":{\"type\":\"expire\"}}]}";
    CHECK_STR(run_referrers(untagged, self, 2, loop, 1), "S:1");
}

/* An index among the referrers that goes with its subject no longer keeps
 * what only it listed. */
static void test_referrer_index_releases_its_children(void)
{
    static const struct spec imgs[] = {
        {"V1", 5, {"v1"}, {0}, 0},
        {"V2", 1, {"v2"}, {0}, 0},
        {"SIGIDX", 1, {0}, {0}, 0},
        {"SIGPART", 4, {0}, {"SIGIDX"}, 0},
    };
    static const struct subject_of subjects[] = {{"SIGIDX", "V1"}};
    const char *policy = "{\"rules\":[" TAGGED_COUNT(
        1, "tagPrefixList", "[\"v\"]",
        1) ",{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\","
           "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
           "\"countNumber\":30},\"action\":{\"type\":\"expire\"}}]}";
    /* rule 2 selects nothing (too young); SIGPART stays, listed by nothing left */
    CHECK_STR(run_referrers(policy, imgs, 4, subjects, 1), "V1:1 SIGIDX:1");
    const char *young = "{\"rules\":[" TAGGED_COUNT(
        1, "tagPrefixList", "[\"v\"]",
        1) ",{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\","
           "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
           "\"countNumber\":3},\"action\":{\"type\":\"expire\"}}]}";
    /* rule 2 selects SIGPART (4 days old), which the young SIGIDX kept; with
     * SIGIDX gone after V1, SIGPART is the rule's again */
    CHECK_STR(run_referrers(young, imgs, 4, subjects, 1), "V1:1 SIGIDX:1 SIGPART:2");
    CHECK_STR(run(young, imgs, 4), "V1:1");
}

/* Storage classes: a transition rule archives standard images by last pull
 * (push time when never pulled), an archive rule expires images archived
 * long enough, and neither class's rules see the other's images; "any"
 * and "untagged" are per class. */
static void test_storage_classes(void)
{
    const char *policy =
        pad("{\"rules\":["
            "{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":"
            "\"sinceImagePulled\",\"countUnit\":\"days\",\"countNumber\":30},"
            "\"action\":{\"type\":\"transition\",\"targetStorageClass\":\"archive\"}},"
            "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"any\",\"storageClass\":"
            "\"archive\",\"countType\":\"sinceImageTransitioned\",\"countUnit\":\"days\","
            "\"countNumber\":90},\"action\":{\"type\":\"expire\"}}]}");
    struct lifecycle_policy *p = NULL;
    char msg[LIFECYCLE_MSG_CAP];
    CHECK_INT(lifecycle_policy_parse(policy, strlen(policy), &p, msg, sizeof(msg)), BERTH_OK);
    if (p == NULL) {
        return;
    }
    struct lifecycle_image imgs[] = {
        /* pushed long ago, pulled yesterday: stays */
        {"sha256:a", NOW_MS - 100 * DAY_MS, NULL, 0, NULL, 0, NOW_MS - DAY_MS, 0, false, false, 0},
        /* pushed long ago, pulled 31 days ago: archived */
        {"sha256:b", NOW_MS - 100 * DAY_MS, NULL, 0, NULL, 0, NOW_MS - 31 * DAY_MS, 0, false, false,
         0},
        /* never pulled, pushed 40 days ago: archived */
        {"sha256:c", NOW_MS - 40 * DAY_MS, NULL, 0, NULL, 0, 0, 0, false, false, 0},
        /* never pulled, pushed 10 days ago: stays */
        {"sha256:d", NOW_MS - 10 * DAY_MS, NULL, 0, NULL, 0, 0, 0, false, false, 0},
        /* archived 91 days ago: expired */
        {"sha256:e", NOW_MS - 200 * DAY_MS, NULL, 0, NULL, 0, 0, NOW_MS - 91 * DAY_MS, true, false,
         0},
        /* archived 10 days ago (old pull): stays archived, not archived again */
        {"sha256:f", NOW_MS - 200 * DAY_MS, NULL, 0, NULL, 0, NOW_MS - 150 * DAY_MS,
         NOW_MS - 10 * DAY_MS, true, false, 0},
    };
    struct lifecycle_expiration *exp = NULL;
    size_t n = 0;
    CHECK_INT(lifecycle_evaluate(p, imgs, 6, NOW_MS, &exp, &n), BERTH_OK);
    CHECK_INT((long long)n, 3);
    if (n == 3) {
        CHECK_INT((long long)exp[0].image, 1);
        CHECK(exp[0].transition && exp[0].rule_priority == 1);
        CHECK_INT((long long)exp[1].image, 2);
        CHECK(exp[1].transition && exp[1].rule_priority == 1);
        CHECK_INT((long long)exp[2].image, 4);
        CHECK(!exp[2].transition && exp[2].rule_priority == 2);
    }
    free(exp);
    lifecycle_policy_free(p);

    /* one untagged rule and "any" last, per storage class */
    expect_valid(
        pad("{\"rules\":["
            "{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"untagged\",\"countType\":"
            "\"sinceImagePulled\",\"countUnit\":\"days\",\"countNumber\":30},"
            "\"action\":{\"type\":\"transition\",\"targetStorageClass\":\"archive\"}},"
            "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\",\"storageClass\":"
            "\"archive\",\"countType\":\"sinceImageTransitioned\",\"countUnit\":\"days\","
            "\"countNumber\":90},\"action\":{\"type\":\"expire\"}},"
            "{\"rulePriority\":3,\"selection\":{\"tagStatus\":\"any\",\"storageClass\":"
            "\"archive\",\"countType\":\"sinceImageTransitioned\",\"countUnit\":\"days\","
            "\"countNumber\":365},\"action\":{\"type\":\"expire\"}},"
            "{\"rulePriority\":4,\"selection\":{\"tagStatus\":\"any\",\"countType\":"
            "\"imageCountMoreThan\",\"countNumber\":10},\"action\":{\"type\":\"expire\"}}]}"));
    expect_invalid(
        pad("{\"rules\":["
            "{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":"
            "\"imageCountMoreThan\",\"countNumber\":10},\"action\":{\"type\":\"expire\"}},"
            "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\",\"countType\":"
            "\"sinceImagePulled\",\"countUnit\":\"days\",\"countNumber\":30},"
            "\"action\":{\"type\":\"transition\",\"targetStorageClass\":\"archive\"}}]}"),
        V("Rule for tagStatus=ANY must have the lowest priority per storage class."));
}

static void test_evaluate_inputs(void)
{
    char msg[LIFECYCLE_MSG_CAP];
    struct lifecycle_policy *p = NULL;
    char r[512], policy[1024];
    snprintf(policy, sizeof(policy), "{\"rules\":[%s]}",
             rule_with(r, sizeof(r), 1, SEL_ANY, ACT_EXPIRE));
    const char *text = pad(policy);
    CHECK_INT(lifecycle_policy_parse(text, strlen(text), &p, msg, sizeof(msg)), BERTH_OK);
    if (p == NULL) {
        return;
    }
    CHECK_INT(lifecycle_policy_rule_count(p), 1);

    const char *tag[] = {"a"};
    size_t bad_parent[] = {5};
    struct lifecycle_image imgs[2] = {
        {"sha256:1", NOW_MS - 10, tag, 1, NULL, 0, 0, 0, false, false, 0},
        {"sha256:2", NOW_MS - 20, NULL, 0, bad_parent, 1, 0, 0, false, false, 0},
    };
    static struct lifecycle_expiration sentinel;
    struct lifecycle_expiration *exp = &sentinel;
    size_t count = 99;
    CHECK_INT(lifecycle_evaluate(p, imgs, 2, NOW_MS, &exp, &count), BERTH_EINVAL);
    /* Outputs untouched on failure. */
    CHECK(exp == &sentinel);
    CHECK_INT(count, 99);
    imgs[1].parent_count = 0;
    imgs[1].parents = NULL;
    imgs[0].tags = NULL; /* tag_count 1 with no array */
    CHECK_INT(lifecycle_evaluate(p, imgs, 2, NOW_MS, &exp, &count), BERTH_EINVAL);
    const char *null_tag[] = {NULL};
    imgs[0].tags = null_tag;
    CHECK_INT(lifecycle_evaluate(p, imgs, 2, NOW_MS, &exp, &count), BERTH_EINVAL);
    imgs[0].tags = tag;
    CHECK_INT(lifecycle_evaluate(p, NULL, 3, NOW_MS, &exp, &count), BERTH_EINVAL);
    CHECK_INT(lifecycle_evaluate(p, imgs, (size_t)LIFECYCLE_IMAGES_MAX + 1, NOW_MS, &exp, &count),
              BERTH_ETOOBIG);
    /* NULL digests sort as "". Deterministic and repeatable. */
    imgs[0].digest = NULL;
    imgs[1].digest = NULL;
    for (int round = 0; round < 2; round++) {
        CHECK_INT(lifecycle_evaluate(p, imgs, 2, NOW_MS, &exp, &count), BERTH_OK);
        CHECK_INT(count, 1);
        if (count == 1) {
            CHECK_INT(exp[0].image, 1);
            CHECK_INT(exp[0].rule_priority, 1);
        }
        free(exp);
    }
    CHECK_INT(lifecycle_evaluate(p, NULL, 0, NOW_MS, &exp, &count), BERTH_OK);
    CHECK(exp == NULL);
    CHECK_INT(count, 0);
    /* Extreme clock values do not overflow. */
    imgs[1].pushed_at_ms = INT64_MIN;
    const char *age = pad("{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\","
                          "\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
                          "\"countNumber\":2147483647},\"action\":{\"type\":\"expire\"}}]}");
    struct lifecycle_policy *pa = NULL;
    CHECK_INT(lifecycle_policy_parse(age, strlen(age), &pa, msg, sizeof(msg)), BERTH_OK);
    if (pa != NULL) {
        CHECK_INT(lifecycle_evaluate(pa, imgs, 2, INT64_MIN + 5, &exp, &count), BERTH_OK);
        CHECK_INT(count, 0);
        free(exp);
        CHECK_INT(lifecycle_evaluate(pa, imgs, 2, INT64_MAX, &exp, &count), BERTH_OK);
        CHECK_INT(count, 2);
        free(exp);
    }
    lifecycle_policy_free(pa);
    lifecycle_policy_free(p);
    lifecycle_policy_free(NULL);
}

/* ---- validation ---------------------------------------------------------- */

static void test_valid_policies(void)
{
    char r1[512], r2[512], r3[512], policy[2048];
    /* The wildcard example from AWS's parameter page. */
    expect_valid(pad("{\"rules\":[" TAGGED_COUNT(1, "tagPatternList",
                                                 "[\"*test*1*2*3\", \"test*1*2*3*\"]", 1) "]}"));
    /* Untagged, tagged and any together, priorities not contiguous. */
    snprintf(policy, sizeof(policy), "{\"rules\":[%s,%s,%s]}",
             rule_with(r1, sizeof(r1), 10, SEL_UNTAGGED, ACT_EXPIRE),
             rule_with(r2, sizeof(r2), 3,
                       "{\"tagStatus\":\"tagged\",\"tagPrefixList\":[\"v\"],\"countType\":"
                       "\"imageCountMoreThan\",\"countNumber\":5,\"storageClass\":\"standard\"}",
                       ACT_EXPIRE),
             rule_with(r3, sizeof(r3), 99, SEL_ANY, ACT_EXPIRE));
    expect_valid(pad(policy));
    /* Description up to the bound, counted in characters. */
    static char big[LIFECYCLE_TEXT_MAX + 1];
    char desc[LIFECYCLE_DESCRIPTION_MAX * 2 + 1];
    for (int i = 0; i < LIFECYCLE_DESCRIPTION_MAX; i++) {
        memcpy(desc + 2 * i, "\xc3\xa9", 2); /* é */
    }
    desc[LIFECYCLE_DESCRIPTION_MAX * 2] = '\0';
    snprintf(big, sizeof(big),
             "{\"rules\":[{\"rulePriority\":1,\"description\":\"%s\",\"selection\":" SEL_ANY
             ",\"action\":" ACT_EXPIRE "}]}",
             desc);
    expect_valid(big);
    /* Exactly LIFECYCLE_TEXT_MAX characters. */
    snprintf(policy, sizeof(policy), "{\"rules\":[%s]}",
             rule_with(r1, sizeof(r1), 1, SEL_ANY, ACT_EXPIRE));
    memset(big, ' ', LIFECYCLE_TEXT_MAX);
    memcpy(big, policy, strlen(policy));
    big[LIFECYCLE_TEXT_MAX] = '\0';
    expect_valid(big);
    /* Validate only (out == NULL). */
    char msg[LIFECYCLE_MSG_CAP];
    const char *t = pad(policy);
    CHECK_INT(lifecycle_policy_parse(t, strlen(t), NULL, msg, sizeof(msg)), BERTH_OK);
    /* 50 rules. */
    size_t used = (size_t)snprintf(big, sizeof(big), "{\"rules\":[");
    for (int i = 1; i <= LIFECYCLE_RULES_MAX; i++) {
        char sel[256];
        snprintf(sel, sizeof(sel),
                 "{\"tagStatus\":\"tagged\",\"tagPatternList\":[\"r%d-*\"],\"countType\":"
                 "\"imageCountMoreThan\",\"countNumber\":%d}",
                 i, i);
        used += (size_t)snprintf(big + used, sizeof(big) - used, "%s%s", i > 1 ? "," : "",
                                 rule_with(r1, sizeof(r1), i, sel, ACT_EXPIRE));
    }
    snprintf(big + used, sizeof(big) - used, "]}");
    expect_valid(big);
}

static void test_invalid_length_and_syntax(void)
{
    char r1[512], policy[1024];
    snprintf(policy, sizeof(policy), "{\"rules\":[%s]}",
             rule_with(r1, sizeof(r1), 1, SEL_ANY, ACT_EXPIRE));
    char short_text[LIFECYCLE_TEXT_MIN];
    memset(short_text, ' ', sizeof(short_text) - 1);
    memcpy(short_text, policy, strlen(policy) < 99 ? strlen(policy) : 99);
    short_text[99] = '\0';
    expect_invalid(short_text,
                   LIFECYCLE_MSG_PREFIX "'Member must have length greater than or equal to 100'");
    expect_invalid("",
                   LIFECYCLE_MSG_PREFIX "'Member must have length greater than or equal to 100'");
    /* 120 bytes but 60 characters: too short. */
    char wide[256];
    size_t n = 0;
    for (int i = 0; i < 60; i++) {
        memcpy(wide + n, "\xc3\xa9", 2);
        n += 2;
    }
    wide[n] = '\0';
    expect_invalid(wide,
                   LIFECYCLE_MSG_PREFIX "'Member must have length greater than or equal to 100'");
    static char big[LIFECYCLE_TEXT_MAX + 2];
    memset(big, ' ', LIFECYCLE_TEXT_MAX + 1);
    memcpy(big, policy, strlen(policy));
    big[LIFECYCLE_TEXT_MAX + 1] = '\0';
    expect_invalid(big,
                   LIFECYCLE_MSG_PREFIX "'Member must have length less than or equal to 30720'");

    const char *map = V("Could not map policyString into LifecyclePolicy.");
    /* Exactly 100 characters passes the length check. */
    char hundred[LIFECYCLE_TEXT_MIN + 1];
    memset(hundred, 'x', LIFECYCLE_TEXT_MIN);
    hundred[LIFECYCLE_TEXT_MIN] = '\0';
    expect_invalid(hundred, map);
    expect_invalid(pad("this is not JSON"), map);
    expect_invalid(pad("[1, 2, 3]"), map);
    expect_invalid(pad("\"rules\""), map);
    expect_invalid(pad("{\"rules\": [}"), map);
    expect_invalid(pad("{\"rules\": []} trailing"), map);
    expect_invalid(pad("{\"rules\": [{\"rulePriority\": 99999999999999999999999}]}"), map);
    /* Invalid UTF-8 is not JSON either. */
    expect_invalid(pad("{\"rules\": [], \"x\": \"\xff\xfe\"}"), map);
    /* A NUL byte inside the text. */
    char nul[128];
    memset(nul, ' ', sizeof(nul));
    memcpy(nul, "{\"rules\":[]}", 12);
    nul[5] = '\0';
    char msg[LIFECYCLE_MSG_CAP];
    CHECK_INT(lifecycle_policy_parse(nul, sizeof(nul), NULL, msg, sizeof(msg)), BERTH_EINVAL);
    CHECK_STR(msg, map);
}

static void test_invalid_top_level(void)
{
    char r1[512], policy[1024];
    rule_with(r1, sizeof(r1), 1, SEL_ANY, ACT_EXPIRE);
    expect_invalid(pad("{}"), V("object has missing required properties ([\"rules\"])"));
    expect_invalid(pad("{\"Rules\": []}"),
                   V("object has missing required properties ([\"rules\"])"));
    snprintf(policy, sizeof(policy), "{\"rules\":[%s],\"zeta\":1,\"alpha\":2}", r1);
    expect_invalid(pad(policy),
                   V("object instance has properties which are not allowed by the schema: "
                     "([\"alpha\",\"zeta\"])"));
    expect_invalid(pad("{\"rules\": {}}"),
                   V("instance type (object) does not match any allowed primitive type "
                     "(allowed: [\"array\"])"));
    expect_invalid(pad("{\"rules\": null}"),
                   V("instance type (null) does not match any allowed primitive type "
                     "(allowed: [\"array\"])"));
    expect_invalid(pad("{\"rules\": []}"),
                   V("array is too short: must have at least 1 elements but instance has 0 "
                     "elements"));
    static char big[LIFECYCLE_TEXT_MAX + 1];
    size_t used = (size_t)snprintf(big, sizeof(big), "{\"rules\":[");
    for (int i = 1; i <= LIFECYCLE_RULES_MAX + 1; i++) {
        used += (size_t)snprintf(big + used, sizeof(big) - used, "%s%s", i > 1 ? "," : "",
                                 rule_with(r1, sizeof(r1), i, SEL_UNTAGGED, ACT_EXPIRE));
    }
    snprintf(big + used, sizeof(big) - used, "]}");
    expect_invalid(big, V("array is too long: must have at most 50 elements but instance has 51 "
                          "elements"));
}

static void test_invalid_rule(void)
{
    char policy[2048];
#define ONE_RULE(body) pad("{\"rules\":[" body "]}")
    expect_invalid(ONE_RULE("1"), V("instance type (integer) does not match any allowed primitive "
                                    "type (allowed: [\"object\"])"));
    expect_invalid(ONE_RULE("\"rule\""), V("instance type (string) does not match any allowed "
                                           "primitive type (allowed: [\"object\"])"));
    expect_invalid(ONE_RULE("{}"), V("object has missing required properties "
                                     "([\"action\",\"rulePriority\",\"selection\"])"));
    expect_invalid(ONE_RULE("{\"rulePriority\":1,\"action\":" ACT_EXPIRE "}"),
                   V("object has missing required properties ([\"selection\"])"));
    expect_invalid(ONE_RULE("{\"rulePriority\":1,\"selection\":" SEL_ANY ",\"action\":" ACT_EXPIRE
                            ",\"name\":\"x\",\"enabled\":true}"),
                   V("object instance has properties which are not allowed by the schema: "
                     "([\"enabled\",\"name\"])"));
    /* rulePriority */
#define WITH_PRIORITY(prio)                                                                        \
    ONE_RULE("{\"rulePriority\":" prio ",\"selection\":" SEL_ANY ",\"action\":" ACT_EXPIRE "}")
    expect_invalid(WITH_PRIORITY("0"), V("numeric instance is lower than the required minimum "
                                         "(minimum: 1, found: 0)"));
    expect_invalid(WITH_PRIORITY("-3"), V("numeric instance is lower than the required minimum "
                                          "(minimum: 1, found: -3)"));
    expect_invalid(WITH_PRIORITY("2147483648"),
                   V("numeric instance is greater than the required maximum (maximum: "
                     "2147483647, found: 2147483648)"));
    expect_invalid(WITH_PRIORITY("\"1\""), V("instance type (string) does not match any allowed "
                                             "primitive type (allowed: [\"integer\"])"));
    expect_invalid(WITH_PRIORITY("1.5"), V("instance type (number) does not match any allowed "
                                           "primitive type (allowed: [\"integer\"])"));
    expect_invalid(WITH_PRIORITY("null"), V("instance type (null) does not match any allowed "
                                            "primitive type (allowed: [\"integer\"])"));
    expect_invalid(WITH_PRIORITY("true"), V("instance type (boolean) does not match any allowed "
                                            "primitive type (allowed: [\"integer\"])"));
    expect_valid(WITH_PRIORITY("2147483647"));
    /* description */
    expect_invalid(ONE_RULE("{\"rulePriority\":1,\"description\":5,\"selection\":" SEL_ANY
                            ",\"action\":" ACT_EXPIRE "}"),
                   V("instance type (integer) does not match any allowed primitive type "
                     "(allowed: [\"string\"])"));
    char desc[LIFECYCLE_DESCRIPTION_MAX + 2];
    memset(desc, 'd', LIFECYCLE_DESCRIPTION_MAX + 1);
    desc[LIFECYCLE_DESCRIPTION_MAX + 1] = '\0';
    snprintf(policy, sizeof(policy),
             "{\"rules\":[{\"rulePriority\":1,\"description\":\"%s\",\"selection\":" SEL_ANY
             ",\"action\":" ACT_EXPIRE "}]}",
             desc);
    expect_invalid(policy, V("description is too long (length: 1025, maximum allowed: 1024)"));
    /* The first problem in a rule wins: action is checked before selection. */
    expect_invalid(ONE_RULE("{\"rulePriority\":0,\"selection\":{},\"action\":{}}"),
                   V("object has missing required properties ([\"type\"])"));
}

static void test_invalid_action(void)
{
#define WITH_ACTION(action)                                                                        \
    pad("{\"rules\":[{\"rulePriority\":1,\"selection\":" SEL_ANY ",\"action\":" action "}]}")
    expect_invalid(WITH_ACTION("\"expire\""), V("instance type (string) does not match any allowed "
                                                "primitive type (allowed: [\"object\"])"));
    expect_invalid(WITH_ACTION("{}"), V("object has missing required properties ([\"type\"])"));
    expect_invalid(WITH_ACTION("{\"type\":\"expire\",\"days\":3}"),
                   V("object instance has properties which are not allowed by the schema: "
                     "([\"days\"])"));
    expect_invalid(WITH_ACTION("{\"type\":\"delete\"}"),
                   V("instance value (delete) not found in enum :(possible values: "
                     "[\"expire\",\"transition\"])"));
    expect_invalid(WITH_ACTION("{\"type\":\"EXPIRE\"}"),
                   V("instance value (EXPIRE) not found in enum :(possible values: "
                     "[\"expire\",\"transition\"])"));
    expect_invalid(WITH_ACTION("{\"type\":5}"),
                   V("instance type (integer) does not match any "
                     "allowed primitive type (allowed: [\"string\"])"));
    /* What cloudposse/terraform-aws-ecr#158 sent to AWS. */
    expect_invalid(WITH_ACTION("{\"type\":\"expire\",\"targetStorageClass\":null}"), ONE_OF);
    expect_invalid(WITH_ACTION("{\"type\":\"expire\",\"targetStorageClass\":\"archive\"}"), ONE_OF);
    /* Transitions: to the archive class, which must be named. */
    expect_valid(WITH_ACTION("{\"type\":\"transition\",\"targetStorageClass\":\"archive\"}"));
    expect_invalid(WITH_ACTION("{\"type\":\"transition\"}"), ONE_OF);
    expect_invalid(WITH_ACTION("{\"type\":\"transition\",\"targetStorageClass\":null}"), ONE_OF);
    expect_invalid(WITH_ACTION("{\"type\":\"transition\",\"targetStorageClass\":\"standard\"}"),
                   V("instance value (standard) not found in enum :(possible values: "
                     "[\"archive\"])"));
}

static void test_invalid_selection(void)
{
#define WITH_SEL(sel)                                                                              \
    pad("{\"rules\":[{\"rulePriority\":1,\"selection\":" sel ",\"action\":" ACT_EXPIRE "}]}")
    expect_invalid(WITH_SEL("[]"), V("instance type (array) does not match any allowed primitive "
                                     "type (allowed: [\"object\"])"));
    expect_invalid(WITH_SEL("{}"), V("object has missing required properties "
                                     "([\"countNumber\",\"countType\",\"tagStatus\"])"));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countNumber\":1}"),
                   V("object has missing required properties ([\"countType\"])"));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                            "\"countNumber\":1,\"tagSuffixList\":[\"x\"]}"),
                   V("object instance has properties which are not allowed by the schema: "
                     "([\"tagSuffixList\"])"));
    /* tagStatus */
    expect_invalid(WITH_SEL("{\"tagStatus\":\"TAGGED\",\"countType\":\"imageCountMoreThan\","
                            "\"countNumber\":1}"),
                   V("instance value (TAGGED) not found in enum :(possible values: "
                     "[\"any\",\"tagged\",\"untagged\"])"));
    expect_invalid(WITH_SEL("{\"tagStatus\":null,\"countType\":\"imageCountMoreThan\","
                            "\"countNumber\":1}"),
                   V("instance type (null) does not match any allowed primitive type (allowed: "
                     "[\"string\"])"));
    /* countNumber */
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                            "\"countNumber\":0}"),
                   V("numeric instance is lower than the required minimum (minimum: 1, found: "
                     "0)"));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                            "\"countNumber\":\"5\"}"),
                   V("instance type (string) does not match any allowed primitive type "
                     "(allowed: [\"integer\"])"));
    /* countType / countUnit: ECR's oneOf */
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"imageCountLessThan\","
                            "\"countNumber\":1}"),
                   ONE_OF);
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":null,\"countNumber\":1}"),
                   ONE_OF);
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":7,\"countNumber\":1}"), ONE_OF);
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                            "\"countUnit\":\"days\",\"countNumber\":1}"),
                   ONE_OF);
    /* What cloudposse/terraform-aws-ecr#132 sent to AWS. */
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                            "\"countUnit\":null,\"countNumber\":1}"),
                   ONE_OF);
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"sinceImagePushed\","
                            "\"countNumber\":1}"),
                   ONE_OF);
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"sinceImagePushed\","
                            "\"countUnit\":null,\"countNumber\":1}"),
                   ONE_OF);
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"sinceImagePushed\","
                            "\"countUnit\":\"hours\",\"countNumber\":1}"),
                   V("instance value (hours) not found in enum :(possible values: [\"days\"])"));
    /* Archive features. */
    expect_valid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"sinceImagePulled\","
                          "\"countUnit\":\"days\",\"countNumber\":30}"));
    expect_valid(WITH_SEL("{\"tagStatus\":\"any\",\"storageClass\":\"archive\",\"countType\":"
                          "\"sinceImageTransitioned\",\"countUnit\":\"days\",\"countNumber\":"
                          "90}"));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":\"sinceImagePulled\","
                            "\"countNumber\":30}"),
                   ONE_OF);
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"storageClass\":\"archive\",\"countType\":"
                            "\"sinceImageTransitioned\",\"countUnit\":\"days\",\"countNumber\":"
                            "89}"),
                   V("Images must stay in the archive storage class for at least 90 days: "
                     "countNumber for sinceImageTransitioned must be at least 90."));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"storageClass\":\"archive\",\"countType\":"
                            "\"imageCountMoreThan\",\"countNumber\":1}"),
                   V("countType sinceImageTransitioned must be used with storageClass=archive, "
                     "and storageClass=archive only with countType sinceImageTransitioned."));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"countType\":"
                            "\"sinceImageTransitioned\",\"countUnit\":\"days\",\"countNumber\":"
                            "90}"),
                   V("countType sinceImageTransitioned must be used with storageClass=archive, "
                     "and storageClass=archive only with countType sinceImageTransitioned."));
    /* a transition selects standard images */
    expect_invalid(
        pad("{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\","
            "\"storageClass\":\"archive\",\"countType\":\"sinceImageTransitioned\","
            "\"countUnit\":\"days\",\"countNumber\":90},\"action\":{\"type\":\"transition\","
            "\"targetStorageClass\":\"archive\"}}]}"),
        V("A rule with action type transition must select images in storageClass=standard."));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"storageClass\":\"cold\",\"countType\":"
                            "\"imageCountMoreThan\",\"countNumber\":1}"),
                   V("instance value (cold) not found in enum :(possible values: "
                     "[\"archive\",\"standard\"])"));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"storageClass\":null,\"countType\":"
                            "\"imageCountMoreThan\",\"countNumber\":1}"),
                   V("instance type (null) does not match any allowed primitive type (allowed: "
                     "[\"string\"])"));
}

static void test_invalid_tag_lists(void)
{
#define TAGGED_SEL(lists)                                                                          \
    WITH_SEL("{\"tagStatus\":\"tagged\"," lists "\"countType\":\"imageCountMoreThan\","            \
             "\"countNumber\":1}")
    expect_invalid(TAGGED_SEL(""),
                   V("Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED."));
    expect_invalid(TAGGED_SEL("\"tagPrefixList\":[\"a\"],\"tagPatternList\":[\"b*\"],"),
                   V("Cannot specify both tagPrefixList and tagPatternList in one rule."));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"untagged\",\"tagPrefixList\":[\"a\"],\"countType\":"
                            "\"imageCountMoreThan\",\"countNumber\":1}"),
                   V("Cannot specify tagPrefixList or tagPatternList when tagStatus=UNTAGGED."));
    expect_invalid(WITH_SEL("{\"tagStatus\":\"any\",\"tagPatternList\":[\"a*\"],\"countType\":"
                            "\"imageCountMoreThan\",\"countNumber\":1}"),
                   V("Cannot specify tagPrefixList or tagPatternList when tagStatus=ANY."));
    /* AWS's own example of a pattern with too many wildcards. */
    expect_invalid(TAGGED_SEL("\"tagPatternList\":[\"ok*\",\"test*1*2*3*4*5*6\"],"),
                   V("tagPatternList value (test*1*2*3*4*5*6) contains more than 4 wildcards "
                     "(*)."));
    expect_invalid(TAGGED_SEL("\"tagPatternList\":[\"*****\"],"),
                   V("tagPatternList value (*****) contains more than 4 wildcards (*)."));
    /* Stars in a prefix list are literal characters, not counted. */
    expect_valid(TAGGED_SEL("\"tagPrefixList\":[\"*****\"],"));
    /* What simple-container-com/api#34 sent to AWS. */
    expect_invalid(TAGGED_SEL("\"tagPrefixList\":null,"),
                   V("instance type (null) does not match any allowed primitive type (allowed: "
                     "[\"array\"])"));
    expect_invalid(TAGGED_SEL("\"tagPatternList\":\"prod*\","),
                   V("instance type (string) does not match any allowed primitive type (allowed: "
                     "[\"array\"])"));
    expect_invalid(TAGGED_SEL("\"tagPrefixList\":[],"),
                   V("array is too short: must have at least 1 elements but instance has 0 "
                     "elements"));
    expect_invalid(TAGGED_SEL("\"tagPrefixList\":[\"a\",1],"),
                   V("instance type (integer) does not match any allowed primitive type (allowed: "
                     "[\"string\"])"));
}

static void test_invalid_rule_set(void)
{
    char r1[512], r2[512], r3[512], policy[2048];
    const char *tagged = "{\"tagStatus\":\"tagged\",\"tagPrefixList\":[\"v\"],\"countType\":"
                         "\"imageCountMoreThan\",\"countNumber\":1}";
    snprintf(policy, sizeof(policy), "{\"rules\":[%s,%s]}",
             rule_with(r1, sizeof(r1), 4, tagged, ACT_EXPIRE),
             rule_with(r2, sizeof(r2), 4, SEL_UNTAGGED, ACT_EXPIRE));
    expect_invalid(policy,
                   V("Duplicate rulePriority (4): each rule must have a unique rulePriority."));
    snprintf(policy, sizeof(policy), "{\"rules\":[%s,%s]}",
             rule_with(r1, sizeof(r1), 1, SEL_UNTAGGED, ACT_EXPIRE),
             rule_with(r2, sizeof(r2), 2,
                       "{\"tagStatus\":\"untagged\",\"countType\":\"sinceImagePushed\","
                       "\"countUnit\":\"days\",\"countNumber\":3}",
                       ACT_EXPIRE));
    expect_invalid(policy, V("Only one rule can select Untagged images per storage class."));
    snprintf(policy, sizeof(policy), "{\"rules\":[%s,%s]}",
             rule_with(r1, sizeof(r1), 1, SEL_ANY, ACT_EXPIRE),
             rule_with(r2, sizeof(r2), 2, tagged, ACT_EXPIRE));
    expect_invalid(policy,
                   V("Rule for tagStatus=ANY must have the lowest priority per storage class."));
    snprintf(policy, sizeof(policy), "{\"rules\":[%s,%s,%s]}",
             rule_with(r1, sizeof(r1), 7, SEL_ANY, ACT_EXPIRE),
             rule_with(r2, sizeof(r2), 1, tagged, ACT_EXPIRE),
             rule_with(r3, sizeof(r3), 8, SEL_ANY, ACT_EXPIRE));
    expect_invalid(policy,
                   V("Rule for tagStatus=ANY must have the lowest priority per storage class."));
    /* Rules are checked one by one before the set: an invalid second rule
     * is reported even when priorities also clash. */
    snprintf(policy, sizeof(policy), "{\"rules\":[%s,%s]}",
             rule_with(r1, sizeof(r1), 1, SEL_UNTAGGED, ACT_EXPIRE),
             rule_with(r2, sizeof(r2), 1, SEL_ANY, "{\"type\":\"purge\"}"));
    expect_invalid(policy, V("instance value (purge) not found in enum :(possible values: "
                             "[\"expire\",\"transition\"])"));
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                return false;
            }
        }
        p += n;
    }
    return true;
}

static void test_message_bounds(void)
{
    char msg[LIFECYCLE_MSG_CAP];
    /* A long unknown property name is clipped in the message. */
    char name[301];
    memset(name, 'n', 300);
    name[300] = '\0';
    char policy[1024], want[LIFECYCLE_MSG_CAP];
    snprintf(policy, sizeof(policy),
             "{\"rules\":[{\"rulePriority\":1,\"selection\":" SEL_ANY ",\"action\":" ACT_EXPIRE
             ",\"%s\":1}]}",
             name);
    CHECK_INT(lifecycle_policy_parse(policy, strlen(policy), NULL, msg, sizeof(msg)), BERTH_EINVAL);
    snprintf(want, sizeof(want),
             MSG_VALIDATION "object instance has properties which are not allowed by the schema: "
                            "([\"%.128s...\"])'",
             name);
    CHECK_STR(msg, want);
    const char *rule = pad("{\"rules\":[{\"rulePriority\":1,\"selection\":" SEL_ANY
                           ",\"action\":" ACT_EXPIRE ",\"\xc3\xa9\xc3\xa9\xc3\xa9\":1}]}");
    CHECK_INT(lifecycle_policy_parse(rule, strlen(rule), NULL, msg, sizeof(msg)), BERTH_EINVAL);
    CHECK_STR(msg, V("object instance has properties which are not allowed by the schema: "
                     "([\"\xc3\xa9\xc3\xa9\xc3\xa9\"])"));
    /* Cut at every length: always NUL-terminated valid UTF-8, a prefix of
     * the whole message. */
    char whole[LIFECYCLE_MSG_CAP];
    snprintf(whole, sizeof(whole), "%s", msg);
    for (size_t cap = 1; cap <= strlen(whole) + 1; cap++) {
        char small[LIFECYCLE_MSG_CAP];
        memset(small, 'x', sizeof(small));
        CHECK_INT(lifecycle_policy_parse(rule, strlen(rule), NULL, small, cap), BERTH_EINVAL);
        CHECK(strlen(small) < cap);
        CHECK(utf8_valid(small));
        CHECK(strncmp(small, whole, strlen(small)) == 0);
    }
    /* Long user values are clipped to 128 bytes plus "...". */
    char value[400];
    memset(value, 'v', 300);
    value[300] = '\0';
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"rules\":[{\"rulePriority\":1,\"selection\":" SEL_ANY
             ",\"action\":{\"type\":\"%s\"}}]}",
             value);
    CHECK_INT(lifecycle_policy_parse(text, strlen(text), NULL, msg, sizeof(msg)), BERTH_EINVAL);
    snprintf(want, sizeof(want),
             MSG_VALIDATION "instance value (%.128s...) not found in enum "
                            ":(possible values: [\"expire\",\"transition\"])'",
             value);
    CHECK_STR(msg, want);
    /* No message buffer at all. */
    CHECK_INT(lifecycle_policy_parse(text, strlen(text), NULL, NULL, 0), BERTH_EINVAL);
    /* A NULL text is an empty one. */
    CHECK_INT(lifecycle_policy_parse(NULL, 0, NULL, msg, sizeof(msg)), BERTH_EINVAL);
    CHECK_STR(msg, LIFECYCLE_MSG_PREFIX "'Member must have length greater than or equal to 100'");
}

/* ---- timing ---------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timing_100k_images_50_rules(void)
{
    enum { N = 100000, TAGGED_RULES = 48, KEEP = 100 };
    static char tagbuf[N][2][48];
    static size_t rank[N]; /* position among its service's images, youngest first */
    static const char *tagptr[N][2];
    static char digests[N][32];
    struct lifecycle_image *images = calloc(N, sizeof(*images));
    static char text[LIFECYCLE_TEXT_MAX + 1];
    char r[512], r2[512];
    if (images == NULL) {
        abort();
    }

    /* Rules 1..48: tagged, both patterns svc<k>-* and build-*, keep 100;
     * rule 49: untagged older than 30 days; rule 50: any, keep 1. */
    size_t used = (size_t)snprintf(text, sizeof(text), "{\"rules\":[");
    for (int k = 0; k < TAGGED_RULES; k++) {
        char sel[256];
        snprintf(sel, sizeof(sel),
                 "{\"tagStatus\":\"tagged\",\"tagPatternList\":[\"svc%d-*\",\"build-*\"],"
                 "\"countType\":\"imageCountMoreThan\",\"countNumber\":%d}",
                 k, KEEP);
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s,",
                                 rule_with(r, sizeof(r), k + 1, sel, ACT_EXPIRE));
    }
    used += (size_t)snprintf(text + used, sizeof(text) - used, "%s,%s]}",
                             rule_with(r, sizeof(r), 49,
                                       "{\"tagStatus\":\"untagged\",\"countType\":"
                                       "\"sinceImagePushed\",\"countUnit\":\"days\","
                                       "\"countNumber\":30}",
                                       ACT_EXPIRE),
                             rule_with(r2, sizeof(r2), 50, SEL_ANY, ACT_EXPIRE));
    char msg[LIFECYCLE_MSG_CAP];
    struct lifecycle_policy *p = NULL;
    CHECK_INT(lifecycle_policy_parse(text, used, &p, msg, sizeof(msg)), BERTH_OK);
    if (p == NULL) {
        fprintf(stderr, "%s\n", msg);
        free(images);
        return;
    }
    CHECK_INT(lifecycle_policy_rule_count(p), 50);

    /* Image i is pushed i minutes ago; every tenth is untagged; the others
     * belong to service i % 48. */
    size_t per_service[TAGGED_RULES] = {0};
    size_t want_untagged = 0;
    for (size_t i = 0; i < N; i++) {
        snprintf(digests[i], sizeof(digests[i]), "sha256:%08zx", i);
        images[i].digest = digests[i];
        images[i].pushed_at_ms = NOW_MS - (int64_t)i * 60000;
        if (i % 10 == 0) {
            want_untagged += (int64_t)i * 60000 > 30 * DAY_MS;
            continue;
        }
        snprintf(tagbuf[i][0], sizeof(tagbuf[i][0]), "svc%zu-%zu", i % TAGGED_RULES, i);
        snprintf(tagbuf[i][1], sizeof(tagbuf[i][1]), "build-%zu", i);
        tagptr[i][0] = tagbuf[i][0];
        tagptr[i][1] = tagbuf[i][1];
        images[i].tags = tagptr[i];
        images[i].tag_count = 2;
        rank[i] = per_service[i % TAGGED_RULES]++;
    }
    size_t want_tagged = 0;
    for (int k = 0; k < TAGGED_RULES; k++) {
        want_tagged += per_service[k] > KEEP ? per_service[k] - KEEP : 0;
    }

    struct lifecycle_expiration *exp = NULL;
    size_t count = 0;
    double t0 = now_seconds();
    CHECK_INT(lifecycle_evaluate(p, images, N, NOW_MS, &exp, &count), BERTH_OK);
    double elapsed = now_seconds() - t0;
    fprintf(stderr, "lifecycle: %d images x %zu rules evaluated in %.1f ms (%zu expirations)\n", N,
            lifecycle_policy_rule_count(p), elapsed * 1000.0, count);
    CHECK(elapsed < 5.0);
    CHECK_INT(count, want_tagged + want_untagged);
    size_t bad = 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = exp[k].image;
        int want_rule = i % 10 == 0 ? 49 : (int)(i % TAGGED_RULES) + 1;
        bad += exp[k].rule_priority != want_rule;
        /* Within a service, the KEEP youngest are kept. */
        bad += i % 10 != 0 && rank[i] < KEEP;
    }
    CHECK_INT(bad, 0);
    free(exp);
    lifecycle_policy_free(p);
    free(images);
}

int main(void)
{
    RUN(test_aws_doc_examples);
    RUN(test_reference_worked_examples);
    RUN(test_tie_break);
    RUN(test_several_tags_several_rules);
    RUN(test_patterns_with_several_stars);
    RUN(test_any_and_mixes);
    RUN(test_count_after_earlier_rules);
    RUN(test_age_boundaries);
    RUN(test_index_keeps_children);
    RUN(test_referrers_follow_their_subject);
    RUN(test_referrer_index_releases_its_children);
    RUN(test_storage_classes);
    RUN(test_evaluate_inputs);
    RUN(test_valid_policies);
    RUN(test_invalid_length_and_syntax);
    RUN(test_invalid_top_level);
    RUN(test_invalid_rule);
    RUN(test_invalid_action);
    RUN(test_invalid_selection);
    RUN(test_invalid_tag_lists);
    RUN(test_invalid_rule_set);
    RUN(test_message_bounds);
    RUN(test_timing_100k_images_50_rules);
    return unit_report("test_lifecycle");
}
