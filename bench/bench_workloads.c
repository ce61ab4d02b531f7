/* The workload table of berth-bench: stable names, kinds, layer sizes. */
#include <string.h>

#include "bench.h"

/* Fixed, so that every server sees the same sequence of pulls and pushes. */
#define MIX_SEED 0x6d69782d37352d32ULL

const struct bench_workload bench_workloads[] = {
    {"push-monolithic-1m", BENCH_KIND_PUSH_MONO, 1 * BENCH_MIB,
     "POST, PUT with a 1 MiB layer, config, manifest; a new repository each"},
    {"push-monolithic-10m", BENCH_KIND_PUSH_MONO, 10 * BENCH_MIB, "the same with 10 MiB"},
    {"push-monolithic-100m", BENCH_KIND_PUSH_MONO, 100 * BENCH_MIB, "the same with 100 MiB"},
    {"push-streamed-1m", BENCH_KIND_PUSH_STREAMED, 1 * BENCH_MIB,
     "POST, one PATCH with the 1 MiB layer (no Content-Range), PUT without body, config, manifest"},
    {"push-streamed-10m", BENCH_KIND_PUSH_STREAMED, 10 * BENCH_MIB, "the same with 10 MiB"},
    {"push-streamed-100m", BENCH_KIND_PUSH_STREAMED, 100 * BENCH_MIB, "the same with 100 MiB"},
    {"pull-1m", BENCH_KIND_PULL, 1 * BENCH_MIB,
     "HEAD manifest, GET manifest, GET config, GET 1 MiB layer of one image"},
    {"pull-10m", BENCH_KIND_PULL, 10 * BENCH_MIB, "the same with 10 MiB"},
    {"pull-100m", BENCH_KIND_PULL, 100 * BENCH_MIB, "the same with 100 MiB"},
    {"mix-10m", BENCH_KIND_MIX, 10 * BENCH_MIB, "75% pull-10m, 25% push-monolithic-10m"},
    {"head-manifest", BENCH_KIND_HEAD, 0, "HEAD of one manifest by tag"},
    {"tags-list", BENCH_KIND_TAGS, 0, "GET tags/list?n=1000 of a repository with 1,000 tags"},
    {"catalog", BENCH_KIND_CATALOG, 0, "GET /v2/_catalog?n=100 (setup: --catalog-repos images)"},
};
const size_t bench_workload_count = sizeof(bench_workloads) / sizeof(bench_workloads[0]);

const struct bench_workload *bench_workload_find(const char *name)
{
    for (size_t i = 0; i < bench_workload_count; i++) {
        if (strcmp(bench_workloads[i].name, name) == 0) {
            return &bench_workloads[i];
        }
    }
    return NULL;
}

bool bench_mix_is_push(size_t index)
{
    /* exactly one push in every four operations, at a random place */
    return bench_mix64(MIX_SEED + index / 4) % 4 == index % 4;
}
