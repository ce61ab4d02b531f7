/*
 * The images berth-bench pushes: one layer of random bytes (bench_data.c),
 * a config that names it and an OCI manifest, with their digests. Every
 * image is a pure function of its phase and index, so setup code can
 * describe what a setup phase pushed. Thread-safe.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "common/str.h"

#define MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"

enum berth_err bench_image_finish(struct bench_image *img)
{
    int n = snprintf(img->config, sizeof(img->config),
                     "{\"architecture\":\"amd64\",\"os\":\"linux\","
                     "\"config\":{\"Labels\":{\"org.berth.bench.seed\":\"%016llx\"}},"
                     "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                     (unsigned long long)img->layer_seed, img->layer.str);
    if (n < 0 || (size_t)n >= sizeof(img->config)) {
        return BERTH_ETOOBIG;
    }
    img->config_len = (size_t)n;
    enum berth_err rc =
        digest_buffer(DIGEST_SHA256, img->config, img->config_len, &img->config_digest);
    if (rc != BERTH_OK) {
        return rc;
    }
    n = snprintf(img->manifest, sizeof(img->manifest),
                 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_TYPE "\","
                 "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                 "\"digest\":\"%s\",\"size\":%zu},"
                 "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                 "\"digest\":\"%s\",\"size\":%llu}]}",
                 img->config_digest.str, img->config_len, img->layer.str,
                 (unsigned long long)img->layer_size);
    if (n < 0 || (size_t)n >= sizeof(img->manifest)) {
        return BERTH_ETOOBIG;
    }
    img->manifest_len = (size_t)n;
    return digest_buffer(DIGEST_SHA256, img->manifest, img->manifest_len, &img->manifest_digest);
}

enum berth_err bench_phase_image(const struct bench_phase *ph, size_t index,
                                 struct bench_image *img)
{
    int n = snprintf(img->repo, sizeof(img->repo), "%s-%zu", ph->repo_base, index);
    if (n < 0 || (size_t)n >= sizeof(img->repo)) {
        return BERTH_ETOOBIG;
    }
    if (str_copy(img->tag, sizeof(img->tag), ph->tag ? ph->tag : "v1") != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    img->layer_seed = bench_mix64(ph->seed_base + index);
    img->layer_size = ph->layer_size;
    if (ph->digests != NULL) {
        img->layer = ph->digests[index];
    } else {
        enum berth_err rc = bench_data_digest(img->layer_seed, img->layer_size, &img->layer);
        if (rc != BERTH_OK) {
            return rc;
        }
    }
    return bench_image_finish(img);
}
