/* Unit tests for storage/spec/digest.c: grammar, streaming, HMAC vectors. */
#include "unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "storage/spec/digest.h"
#include "common/fileio.h"
#include "common/str.h"

#define EMPTY256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void test_parse(void)
{
    struct digest d;
    CHECK_INT(digest_parse(EMPTY256, &d), BERTH_OK);
    CHECK_INT(d.alg, DIGEST_SHA256);
    CHECK_STR(d.str, EMPTY256);
    CHECK_STR(digest_hex(&d), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* upper-case hex is forbidden for sha256 */
    CHECK_INT(
        digest_parse("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", &d),
        BERTH_EINVAL);
    CHECK_INT(digest_parse("sha256:abc", &d), BERTH_EINVAL);
    CHECK_INT(digest_parse("sha256:baddigeststring", &d), BERTH_EINVAL);
    CHECK_INT(digest_parse("sha256", &d), BERTH_EINVAL);
    CHECK_INT(digest_parse(":abc", &d), BERTH_EINVAL);
    CHECK_INT(digest_parse("SHA256:abc", &d), BERTH_EINVAL);
    CHECK_INT(digest_parse("sha256:", &d), BERTH_EINVAL);
    CHECK_INT(digest_parse("sha256+:abc", &d), BERTH_EINVAL);
    CHECK_INT(digest_parse("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", &d),
              BERTH_EUNSUPPORTED);
    CHECK_INT(
        digest_parse("blake3:0000000000000000000000000000000000000000000000000000000000000000", &d),
        BERTH_EUNSUPPORTED);
    CHECK_INT(digest_parse("sha256:../../../../etc/passwd", &d), BERTH_EINVAL);
}

static void test_hashes(void)
{
    struct digest d;
    CHECK_INT(digest_buffer(DIGEST_SHA256, "", 0, &d), BERTH_OK);
    CHECK_STR(d.str, EMPTY256);
    CHECK_INT(digest_buffer(DIGEST_SHA256, "{}", 2, &d), BERTH_OK);
    CHECK_STR(d.str, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    CHECK_INT(digest_buffer(DIGEST_SHA512, "abc", 3, &d), BERTH_OK);
    CHECK_STR(d.str, "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");

    /* streaming in pieces equals one shot; dup keeps an independent state */
    struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);
    CHECK(ctx != NULL);
    CHECK_INT(digest_ctx_update(ctx, "hello ", 6), BERTH_OK);
    struct digest_ctx *copy = digest_ctx_dup(ctx);
    CHECK_INT(digest_ctx_update(ctx, "world", 5), BERTH_OK);
    struct digest whole, streamed, partial;
    CHECK_INT(digest_ctx_final(ctx, &streamed), BERTH_OK);
    CHECK_INT(digest_buffer(DIGEST_SHA256, "hello world", 11, &whole), BERTH_OK);
    CHECK_STR(streamed.str, whole.str);
    CHECK_INT(digest_ctx_final(copy, &partial), BERTH_OK);
    CHECK_INT(digest_buffer(DIGEST_SHA256, "hello ", 6, &whole), BERTH_OK);
    CHECK_STR(partial.str, whole.str);
    digest_ctx_free(ctx);
    digest_ctx_free(copy);
    digest_ctx_free(NULL);
}

static void test_update_fd(void)
{
    const char *dir = unit_tmpdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/f", dir);
    CHECK_INT(file_write_atomic(path, "hello world", 11, 0600, false), BERTH_OK);
    int fd = open(path, O_RDONLY);
    struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);
    CHECK_INT(digest_ctx_update_fd(ctx, fd, 5), BERTH_OK);
    struct digest got, want;
    digest_ctx_final(ctx, &got);
    digest_buffer(DIGEST_SHA256, "hello", 5, &want);
    CHECK_STR(got.str, want.str);
    CHECK_INT(digest_ctx_update_fd(ctx, fd, 100), BERTH_EIO);
    digest_ctx_free(ctx);
    close(fd);
    file_remove_tree(dir);
}

static void test_hmac(void)
{
    /* RFC 4231 test case 2 */
    uint8_t mac[32];
    char hex[65];
    CHECK_INT(digest_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), BERTH_OK);
    str_hex_encode(mac, 32, hex);
    CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* an OpenSSL failure is an error, not a MAC (the fault hook stands in for it) */
    digest_fault_hmac(true);
    CHECK_INT(digest_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), BERTH_ENOMEM);
    digest_fault_hmac(false);
    CHECK_INT(digest_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), BERTH_OK);
    CHECK_INT(digest_sha256_raw("abc", 3, mac), BERTH_OK);
    str_hex_encode(mac, 32, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* A hash OpenSSL cannot compute is an error from every entry point (the
 * fault hook stands in for an allocation or provider failure), never a
 * digest; HMACs are not affected, and all works again once it clears. */
static void test_hash_failure(void)
{
    uint8_t raw[32];
    struct digest d;
    struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);
    CHECK(ctx != NULL);
    CHECK_INT(digest_ctx_update(ctx, "ab", 2), BERTH_OK);
    digest_fault_hash(true);
    CHECK_INT(digest_sha256_raw("abc", 3, raw), BERTH_ENOMEM);
    CHECK_INT(digest_buffer(DIGEST_SHA256, "abc", 3, &d), BERTH_ENOMEM);
    CHECK_INT(digest_buffer(DIGEST_SHA512, "abc", 3, &d), BERTH_ENOMEM);
    CHECK(digest_ctx_new(DIGEST_SHA256) == NULL);
    CHECK(digest_ctx_dup(ctx) == NULL);
    CHECK_INT(digest_ctx_update(ctx, "c", 1), BERTH_ENOMEM);
    CHECK_INT(digest_ctx_final(ctx, &d), BERTH_ENOMEM);
    CHECK_INT(digest_hmac_sha256("k", 1, "m", 1, raw), BERTH_OK);
    digest_fault_hash(false);
    /* the failed update added nothing */
    CHECK_INT(digest_ctx_update(ctx, "c", 1), BERTH_OK);
    CHECK_INT(digest_ctx_final(ctx, &d), BERTH_OK);
    CHECK_STR(d.str, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest_ctx_free(ctx);
    CHECK_INT(digest_sha256_raw("abc", 3, raw), BERTH_OK);
}

/* Hashing split at every offset, the state exported there and imported
 * into a new hasher that finishes the rest, equals one-shot hashing (both
 * algorithms, across block boundaries: 0..300 bytes covers SHA-512's
 * 128-byte blocks twice); malformed states are refused. */
static void test_export_import(void)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (unsigned char)(i * 7 + 3);
    }
    enum digest_alg algs[] = {DIGEST_SHA256, DIGEST_SHA512};
    for (size_t a = 0; a < 2; a++) {
        struct digest want;
        CHECK_INT(digest_buffer(algs[a], data, sizeof(data), &want), BERTH_OK);
        for (size_t cut = 0; cut <= sizeof(data); cut++) {
            struct digest_ctx *ctx = digest_ctx_new(algs[a]);
            CHECK(ctx != NULL);
            CHECK_INT(digest_ctx_update(ctx, data, cut), BERTH_OK);
            char state[DIGEST_STATE_MAX];
            CHECK_INT(digest_ctx_export(ctx, state, sizeof(state)), BERTH_OK);
            digest_ctx_free(ctx);
            struct digest_ctx *back = NULL;
            CHECK_INT(digest_ctx_import(state, &back), BERTH_OK);
            CHECK_INT(digest_ctx_alg(back), algs[a]);
            /* and once more halfway through the rest */
            size_t mid = cut + (sizeof(data) - cut) / 2;
            CHECK_INT(digest_ctx_update(back, data + cut, mid - cut), BERTH_OK);
            CHECK_INT(digest_ctx_export(back, state, sizeof(state)), BERTH_OK);
            digest_ctx_free(back);
            CHECK_INT(digest_ctx_import(state, &back), BERTH_OK);
            CHECK_INT(digest_ctx_update(back, data + mid, sizeof(data) - mid), BERTH_OK);
            struct digest got;
            CHECK_INT(digest_ctx_final(back, &got), BERTH_OK);
            CHECK_STR(got.str, want.str);
            digest_ctx_free(back);
        }
    }
    struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);
    char state[DIGEST_STATE_MAX], bad[DIGEST_STATE_MAX];
    CHECK_INT(digest_ctx_export(ctx, state, sizeof(state)), BERTH_OK);
    CHECK_INT(digest_ctx_export(ctx, bad, 40), BERTH_ETOOBIG);
    struct digest_ctx *back = NULL;
    CHECK_INT(digest_ctx_import("", &back), BERTH_EINVAL);
    CHECK_INT(digest_ctx_import("sha256:1:2:abcd", &back), BERTH_EINVAL);
    /* cut short, a non-hex digit, another algorithm's name */
    str_copy(bad, sizeof(bad), state);
    bad[strlen(bad) - 1] = '\0';
    CHECK_INT(digest_ctx_import(bad, &back), BERTH_EINVAL);
    str_copy(bad, sizeof(bad), state);
    bad[strlen(bad) - 1] = 'x';
    CHECK_INT(digest_ctx_import(bad, &back), BERTH_EINVAL);
    str_copy(bad, sizeof(bad), state);
    memcpy(bad, "sha512", 6);
    CHECK_INT(digest_ctx_import(bad, &back), BERTH_EINVAL);
    /* another OpenSSL version's state */
    const char *colon = strchr(state, ':');
    snprintf(bad, sizeof(bad), "sha256:1%s", strchr(colon + 1, ':'));
    CHECK_INT(digest_ctx_import(bad, &back), BERTH_EUNSUPPORTED);
    digest_ctx_free(ctx);
}

int main(void)
{
    RUN(test_parse);
    RUN(test_hashes);
    RUN(test_update_fd);
    RUN(test_hmac);
    RUN(test_hash_failure);
    RUN(test_export_import);
    return unit_report("test_digest");
}
