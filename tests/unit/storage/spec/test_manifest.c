/* Unit tests for storage/spec/manifest.c: types, references, validation. */
#include "unit.h"

#include "storage/spec/manifest.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static struct manifest_info *parse(const char *json, const char *ct, enum berth_err want)
{
    struct manifest_info *info = NULL;
    char why[256] = "";
    enum berth_err rc = manifest_parse(json, strlen(json), ct, &info, why, sizeof(why));
    CHECK_INT(rc, want);
    if (rc != want) {
        fprintf(stderr, "  why: %s\n  json: %s\n", why, json);
    }
    if (rc == BERTH_EINVAL) {
        CHECK(why[0] != '\0');
    }
    return info;
}

static void test_oci_manifest(void)
{
    const char *j = "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI "\","
                    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                    "\"digest\":\"" D1 "\",\"size\":10},"
                    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                    "\"digest\":\"" D2 "\",\"size\":100},"
                    "{\"mediaType\":\"application/vnd.oci.image.layer.nondistributable.v1.tar\","
                    "\"digest\":\"" D3 "\",\"size\":5,\"urls\":[\"https://x\"]}],"
                    "\"annotations\":{\"b\":\"2\",\"a\":\"1\"}}";
    struct manifest_info *info = parse(j, MANIFEST_OCI, BERTH_OK);
    if (info == NULL) {
        return;
    }
    CHECK(!info->is_index);
    CHECK_STR(info->media_type, MANIFEST_OCI);
    CHECK(info->has_config);
    CHECK_STR(info->config.digest.str, D1);
    CHECK_INT(info->ref_count, 2);
    CHECK(!info->refs[0].non_distributable);
    CHECK(info->refs[1].non_distributable);
    CHECK_INT(info->layers_size, 105);
    CHECK_STR(info->annotations, "{\"a\":\"1\",\"b\":\"2\"}");
    CHECK_STR(manifest_effective_artifact_type(info), "application/vnd.oci.image.config.v1+json");
    manifest_info_free(info);
}

static void test_types(void)
{
    /* no mediaType: taken from Content-Type, else inferred */
    const char *idx = "{\"schemaVersion\":2,\"manifests\":[]}";
    struct manifest_info *info = parse(idx, NULL, BERTH_OK);
    CHECK(info && info->is_index);
    CHECK(info && strcmp(info->media_type, MANIFEST_OCI_INDEX) == 0);
    manifest_info_free(info);
    info = parse(idx, MANIFEST_DOCKER_LIST "; charset=utf-8", BERTH_OK);
    CHECK(info && strcmp(info->media_type, MANIFEST_DOCKER_LIST) == 0);
    manifest_info_free(info);
    /* Content-Type contradicting the body */
    const char *docker = "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_DOCKER "\","
                         "\"config\":{\"mediaType\":\"x\",\"digest\":\"" D1 "\",\"size\":1},"
                         "\"layers\":[]}";
    manifest_info_free(parse(docker, MANIFEST_OCI, BERTH_EINVAL));
    /* a generic Content-Type is tolerated */
    info = parse(docker, "application/json", BERTH_OK);
    CHECK(info && strcmp(info->media_type, MANIFEST_DOCKER) == 0);
    manifest_info_free(info);
    /* artifacts: artifactType and subject */
    const char *art =
        "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI "\","
        "\"artifactType\":\"application/vnd.example+type\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\","
        "\"digest\":\"" D1 "\",\"size\":2},\"layers\":[],"
        "\"subject\":{\"mediaType\":\"" MANIFEST_OCI "\",\"digest\":\"" D2 "\",\"size\":7}}";
    info = parse(art, NULL, BERTH_OK);
    CHECK(info && info->has_subject);
    CHECK(info && strcmp(info->subject.digest.str, D2) == 0);
    CHECK(info &&
          strcmp(manifest_effective_artifact_type(info), "application/vnd.example+type") == 0);
    manifest_info_free(info);
}

static void test_invalid(void)
{
    manifest_info_free(parse("not json", NULL, BERTH_EINVAL));
    manifest_info_free(parse("[]", NULL, BERTH_EINVAL));
    manifest_info_free(parse("{\"schemaVersion\":1}", NULL, BERTH_EINVAL));
    manifest_info_free(parse("{\"schemaVersion\":2}", NULL, BERTH_EINVAL));
    manifest_info_free(parse("{\"schemaVersion\":2,\"mediaType\":\"text/plain\",\"config\":{}}",
                             NULL, BERTH_EINVAL));
    /* bad descriptors */
    manifest_info_free(parse("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a\","
                             "\"digest\":\"sha256:abc\",\"size\":1}}",
                             NULL, BERTH_EINVAL));
    manifest_info_free(parse("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a\","
                             "\"digest\":\"" D1 "\",\"size\":-1}}",
                             NULL, BERTH_EINVAL));
    manifest_info_free(parse("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a\","
                             "\"digest\":\"" D1 "\",\"size\":1},\"layers\":{}}",
                             NULL, BERTH_EINVAL));
    manifest_info_free(
        parse("{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"" D1 "\"}]}", NULL, BERTH_EINVAL));
    manifest_info_free(parse("{\"schemaVersion\":2,\"manifests\":[],\"annotations\":{\"a\":1}}",
                             NULL, BERTH_EINVAL));
    /* duplicate keys are refused: two readers could disagree on them */
    manifest_info_free(
        parse("{\"schemaVersion\":2,\"schemaVersion\":2,\"manifests\":[]}", NULL, BERTH_EINVAL));
}

/* Layer sizes are added up for the image size: a sum past INT64_MAX is
 * refused rather than wrapped (signed overflow). */
static void test_layer_sizes_overflow(void)
{
#define LAYER(d, size)                                                                             \
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" d                    \
    "\",\"size\":" size "}"
#define IMAGE(layers)                                                                              \
    "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI "\",\"config\":{\"mediaType\":"           \
    "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":2},"              \
    "\"layers\":[" layers "]}"
    struct manifest_info *info = NULL;
    char why[256] = "";
    const char *huge = IMAGE(LAYER(D2, "9223372036854775807") "," LAYER(D3, "9223372036854775807"));
    CHECK_INT(manifest_parse(huge, strlen(huge), NULL, &info, why, sizeof(why)), BERTH_EINVAL);
    CHECK(info == NULL);
    CHECK_STR(why, "layer sizes overflow");
    const char *just_over = IMAGE(LAYER(D2, "9223372036854775807") "," LAYER(D3, "1"));
    CHECK_INT(manifest_parse(just_over, strlen(just_over), NULL, &info, why, sizeof(why)),
              BERTH_EINVAL);
    /* the largest sum that fits is fine */
    info = parse(IMAGE(LAYER(D2, "9223372036854775806") "," LAYER(D3, "1")), NULL, BERTH_OK);
    CHECK(info != NULL && info->layers_size == INT64_MAX);
    manifest_info_free(info);
#undef IMAGE
#undef LAYER
}

int main(void)
{
    RUN(test_oci_manifest);
    RUN(test_types);
    RUN(test_invalid);
    RUN(test_layer_sizes_overflow);
    return unit_report("test_manifest");
}
