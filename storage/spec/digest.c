/* Digests: parsing, streaming EVP hashing, HMAC. Thread-safe per ctx. */
#include "storage/spec/digest.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/str.h"

struct digest_ctx {
    enum digest_alg alg;
    EVP_MD_CTX *md;
};

/* digest_fault_hash: every hash computation fails while it is on. */
static atomic_bool hash_fault;

void digest_fault_hash(bool on)
{
    atomic_store(&hash_fault, on);
}

static bool hash_failing(void)
{
    return atomic_load(&hash_fault);
}

static const EVP_MD *evp_of(enum digest_alg alg)
{
    switch (alg) {
    case DIGEST_SHA256:
        return EVP_sha256();
    case DIGEST_SHA512:
        return EVP_sha512();
    case DIGEST_NONE:
        break;
    }
    return NULL;
}

static size_t hex_len(enum digest_alg alg)
{
    return alg == DIGEST_SHA256 ? 64 : alg == DIGEST_SHA512 ? 128 : 0;
}

enum digest_alg digest_alg_from_name(const char *name)
{
    if (strcmp(name, "sha256") == 0) {
        return DIGEST_SHA256;
    }
    if (strcmp(name, "sha512") == 0) {
        return DIGEST_SHA512;
    }
    return DIGEST_NONE;
}

const char *digest_alg_name(enum digest_alg alg)
{
    switch (alg) {
    case DIGEST_SHA256:
        return "sha256";
    case DIGEST_SHA512:
        return "sha512";
    case DIGEST_NONE:
        break;
    }
    return "";
}

const char *digest_hex(const struct digest *d)
{
    const char *colon = strchr(d->str, ':');
    return colon ? colon + 1 : d->str;
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

enum berth_err digest_parse(const char *s, struct digest *out)
{
    /* algorithm ::= component ([+._-] component)*, component ::= [a-z0-9]+ */
    const char *p = s;
    size_t alen = 0;
    int need_component = 1;
    for (; *p && *p != ':'; p++, alen++) {
        if (is_lower_alnum(*p)) {
            need_component = 0;
        } else if ((*p == '+' || *p == '.' || *p == '_' || *p == '-') && !need_component) {
            need_component = 1;
        } else {
            return BERTH_EINVAL;
        }
    }
    if (*p != ':' || alen == 0 || need_component || alen > 32) {
        return BERTH_EINVAL;
    }
    /* encoded ::= [a-zA-Z0-9=_-]+ */
    const char *enc = p + 1;
    size_t elen = 0;
    for (const char *q = enc; *q; q++, elen++) {
        char c = *q;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '=' || c == '_' || c == '-')) {
            return BERTH_EINVAL;
        }
    }
    if (elen == 0) {
        return BERTH_EINVAL;
    }
    char alg_name[33];
    memcpy(alg_name, s, alen);
    alg_name[alen] = '\0';
    enum digest_alg alg = digest_alg_from_name(alg_name);
    if (alg == DIGEST_NONE) {
        return BERTH_EUNSUPPORTED;
    }
    if (elen != hex_len(alg)) {
        return BERTH_EINVAL;
    }
    for (const char *q = enc; *q; q++) {
        if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))) {
            return BERTH_EINVAL;
        }
    }
    out->alg = alg;
    memcpy(out->str, s, alen + 1 + elen + 1);
    return BERTH_OK;
}

struct digest_ctx *digest_ctx_new(enum digest_alg alg)
{
    const EVP_MD *md = evp_of(alg);
    if (md == NULL) {
        return NULL;
    }
    struct digest_ctx *ctx = hash_failing() ? NULL : calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->alg = alg;
    ctx->md = EVP_MD_CTX_new();
    if (ctx->md == NULL || EVP_DigestInit_ex(ctx->md, md, NULL) != 1) {
        digest_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

void digest_ctx_free(struct digest_ctx *ctx)
{
    if (ctx == NULL) {
        return;
    }
    EVP_MD_CTX_free(ctx->md);
    free(ctx);
}

enum digest_alg digest_ctx_alg(const struct digest_ctx *ctx)
{
    return ctx->alg;
}

enum berth_err digest_ctx_update(struct digest_ctx *ctx, const void *p, size_t n)
{
    if (n == 0) {
        return BERTH_OK;
    }
    return !hash_failing() && EVP_DigestUpdate(ctx->md, p, n) == 1 ? BERTH_OK : BERTH_ENOMEM;
}

enum berth_err digest_ctx_final(struct digest_ctx *ctx, struct digest *out)
{
    unsigned char raw[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (hash_failing() || EVP_DigestFinal_ex(ctx->md, raw, &len) != 1) {
        return BERTH_ENOMEM;
    }
    const char *name = digest_alg_name(ctx->alg);
    size_t nlen = strlen(name);
    memcpy(out->str, name, nlen);
    out->str[nlen] = ':';
    str_hex_encode(raw, len, out->str + nlen + 1);
    out->alg = ctx->alg;
    if (EVP_DigestInit_ex(ctx->md, evp_of(ctx->alg), NULL) != 1) {
        return BERTH_ENOMEM;
    }
    return BERTH_OK;
}

struct digest_ctx *digest_ctx_dup(const struct digest_ctx *ctx)
{
    struct digest_ctx *copy = hash_failing() ? NULL : calloc(1, sizeof(*copy));
    if (copy == NULL) {
        return NULL;
    }
    copy->alg = ctx->alg;
    copy->md = EVP_MD_CTX_new();
    if (copy->md == NULL || EVP_MD_CTX_copy_ex(copy->md, ctx->md) != 1) {
        digest_ctx_free(copy);
        return NULL;
    }
    return copy;
}

enum berth_err digest_ctx_update_fd(struct digest_ctx *ctx, int fd, off_t len)
{
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (buf == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    off_t off = 0;
    while (off < len) {
        size_t want = (len - off) < CHUNK ? (size_t)(len - off) : CHUNK;
        ssize_t r = pread(fd, buf, want, off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rc = BERTH_EIO;
            break;
        }
        rc = digest_ctx_update(ctx, buf, (size_t)r);
        if (rc != BERTH_OK) {
            break;
        }
        off += r;
    }
    free(buf);
    return rc;
}

enum berth_err digest_buffer(enum digest_alg alg, const void *p, size_t n, struct digest *out)
{
    struct digest_ctx *ctx = digest_ctx_new(alg);
    if (ctx == NULL) {
        return alg == DIGEST_NONE ? BERTH_EINVAL : BERTH_ENOMEM;
    }
    enum berth_err rc = digest_ctx_update(ctx, p, n);
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, out);
    }
    digest_ctx_free(ctx);
    return rc;
}

enum berth_err digest_sha256_raw(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    if (hash_failing() || EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        return BERTH_ENOMEM;
    }
    return BERTH_OK;
}

static atomic_bool hmac_fault;

void digest_fault_hmac(bool on)
{
    atomic_store(&hmac_fault, on);
}

enum berth_err digest_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                                  uint8_t out[32])
{
    unsigned int len = 32;
    if (atomic_load(&hmac_fault) || key_len > INT_MAX ||
        HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &len) == NULL || len != 32) {
        return BERTH_ENOMEM;
    }
    return BERTH_OK;
}
