/*
 * Random blob contents for berth-bench: a counter-based stream (word i of
 * stream s is splitmix64(s + (i + 1) * golden)), fast enough (several GB/s
 * per core) that generating bytes while uploading is never the bottleneck.
 * Pure functions; thread-safe.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

uint64_t bench_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t word_at(uint64_t seed, uint64_t index)
{
    return bench_mix64(seed + (index + 1) * GOLDEN);
}

/* Little-endian store, so the stream is the same bytes on any host. */
static void store_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, sizeof(v));
#else
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
#endif
}

void bench_data_fill(uint64_t seed, uint64_t offset, void *buf, size_t len)
{
    unsigned char *p = buf;
    uint64_t index = offset / 8;
    unsigned skip = (unsigned)(offset % 8);

    if (skip != 0 && len > 0) {
        unsigned char w[8];
        store_le64(w, word_at(seed, index));
        size_t n = 8 - skip < len ? 8 - skip : len;
        memcpy(p, w + skip, n);
        p += n;
        len -= n;
        index++;
    }
    while (len >= 8) {
        store_le64(p, word_at(seed, index));
        p += 8;
        len -= 8;
        index++;
    }
    if (len > 0) {
        unsigned char w[8];
        store_le64(w, word_at(seed, index));
        memcpy(p, w, len);
    }
}

enum berth_err bench_data_digest(uint64_t seed, uint64_t size, struct digest *out)
{
    enum berth_err rc = BERTH_ENOMEM;
    const size_t chunk = 1024 * 1024;
    unsigned char *buf = malloc(chunk);
    struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);
    if (buf == NULL || ctx == NULL) {
        goto out;
    }
    for (uint64_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
        bench_data_fill(seed, off, buf, n);
        rc = digest_ctx_update(ctx, buf, n);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    rc = digest_ctx_final(ctx, out);
out:
    digest_ctx_free(ctx);
    free(buf);
    return rc;
}
