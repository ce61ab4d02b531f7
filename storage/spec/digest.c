/* Digests: parsing, streaming hashing, HMAC. Thread-safe per ctx.
 *
 * The streaming hashers use OpenSSL's SHA256_CTX and SHA512_CTX directly
 * (deprecated in OpenSSL 3 in favour of EVP, hence the suppression below)
 * because their state is a plain structure that can be saved and restored
 * (digest_ctx_export/import: an upload session continued on another
 * replica), which EVP's provider contexts cannot. They run the same
 * assembly as EVP (SHA-NI where the CPU has it): measured the same speed. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "storage/spec/digest.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "common/str.h"

struct digest_ctx {
    enum digest_alg alg;
    union {
        SHA256_CTX s256;
        SHA512_CTX s512;
    } u;
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

static bool ctx_init(struct digest_ctx *ctx)
{
    switch (ctx->alg) {
    case DIGEST_SHA256:
        return SHA256_Init(&ctx->u.s256) == 1;
    case DIGEST_SHA512:
        return SHA512_Init(&ctx->u.s512) == 1;
    case DIGEST_NONE:
        break;
    }
    return false;
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
    if (evp_of(alg) == NULL) {
        return NULL;
    }
    struct digest_ctx *ctx = hash_failing() ? NULL : calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->alg = alg;
    if (!ctx_init(ctx)) {
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
    OPENSSL_cleanse(ctx, sizeof(*ctx));
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
    if (hash_failing()) {
        return BERTH_ENOMEM;
    }
    int ok = ctx->alg == DIGEST_SHA256 ? SHA256_Update(&ctx->u.s256, p, n)
                                       : SHA512_Update(&ctx->u.s512, p, n);
    return ok == 1 ? BERTH_OK : BERTH_ENOMEM;
}

enum berth_err digest_ctx_final(struct digest_ctx *ctx, struct digest *out)
{
    unsigned char raw[SHA512_DIGEST_LENGTH];
    size_t len = ctx->alg == DIGEST_SHA256 ? SHA256_DIGEST_LENGTH : SHA512_DIGEST_LENGTH;
    if (hash_failing()) {
        return BERTH_ENOMEM; /* the state stays as it was */
    }
    int ok = ctx->alg == DIGEST_SHA256 ? SHA256_Final(raw, &ctx->u.s256)
                                       : SHA512_Final(raw, &ctx->u.s512);
    if (ok != 1) {
        return BERTH_ENOMEM;
    }
    const char *name = digest_alg_name(ctx->alg);
    size_t nlen = strlen(name);
    memcpy(out->str, name, nlen);
    out->str[nlen] = ':';
    str_hex_encode(raw, len, out->str + nlen + 1);
    out->alg = ctx->alg;
    return ctx_init(ctx) ? BERTH_OK : BERTH_ENOMEM;
}

struct digest_ctx *digest_ctx_dup(const struct digest_ctx *ctx)
{
    struct digest_ctx *copy = hash_failing() ? NULL : malloc(sizeof(*copy));
    if (copy != NULL) {
        memcpy(copy, ctx, sizeof(*copy));
    }
    return copy;
}

/* The saved form: "<alg>:<version>:<size>:<hex of the structure>", where
 * version is OpenSSL's (the structure's layout is its own) and size the
 * structure's; both must match on import. */
static size_t state_size(enum digest_alg alg)
{
    return alg == DIGEST_SHA256 ? sizeof(SHA256_CTX) : sizeof(SHA512_CTX);
}

enum berth_err digest_ctx_export(const struct digest_ctx *ctx, char *out, size_t cap)
{
    size_t size = state_size(ctx->alg);
    int n = snprintf(out, cap, "%s:%lx:%zu:", digest_alg_name(ctx->alg),
                     (unsigned long)OpenSSL_version_num(), size);
    if (n < 0 || (size_t)n + 2 * size + 1 > cap) {
        return BERTH_ETOOBIG;
    }
    str_hex_encode((const uint8_t *)&ctx->u, size, out + n);
    return BERTH_OK;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

enum berth_err digest_ctx_import(const char *text, struct digest_ctx **out)
{
    char alg_name[16];
    unsigned long version = 0;
    size_t size = 0;
    int used = 0;
    if (sscanf(text, "%15[a-z0-9]:%lx:%zu:%n", alg_name, &version, &size, &used) != 3 ||
        used == 0) {
        return BERTH_EINVAL;
    }
    enum digest_alg alg = digest_alg_from_name(alg_name);
    if (alg == DIGEST_NONE || size != state_size(alg) || strlen(text + used) != 2 * size) {
        return BERTH_EINVAL;
    }
    if (version != (unsigned long)OpenSSL_version_num()) {
        /* another OpenSSL may lay the structure out otherwise */
        return BERTH_EUNSUPPORTED;
    }
    struct digest_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return BERTH_ENOMEM;
    }
    ctx->alg = alg;
    unsigned char *raw = (unsigned char *)&ctx->u;
    const char *hex = text + used;
    for (size_t i = 0; i < size; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            digest_ctx_free(ctx);
            return BERTH_EINVAL;
        }
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    *out = ctx;
    return BERTH_OK;
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

enum berth_err digest_md5_raw(const void *p, size_t n, uint8_t out[16])
{
    unsigned int len = 16;
    if (hash_failing() || EVP_Digest(p, n, out, &len, EVP_md5(), NULL) != 1 || len != 16) {
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
