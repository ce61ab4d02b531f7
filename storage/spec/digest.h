/*
 * Content digests (OCI "algorithm:encoded"), streaming hashing with OpenSSL
 * (whose state can be saved and carried elsewhere), and the HMAC-SHA256
 * the auth code needs. The only module that includes OpenSSL's digest
 * headers. Pure functions are thread-safe; a
 * digest_ctx has one owner at a time.
 */
#ifndef BERTH_DIGEST_H
#define BERTH_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

enum digest_alg { DIGEST_NONE = 0, DIGEST_SHA256, DIGEST_SHA512 };

/* "sha512:" + 128 hex digits + NUL */
#define DIGEST_STR_MAX 136

/* A parsed, canonical digest: str is "alg:hex" in lower case. */
struct digest {
    enum digest_alg alg;
    char str[DIGEST_STR_MAX];
};

/* Parse a digest string. BERTH_EINVAL when it does not follow the OCI
 * digest grammar or its encoded part is not the algorithm's exact lower-case
 * hex length; BERTH_EUNSUPPORTED for a well-formed digest with an
 * algorithm berth does not implement. */
enum berth_err digest_parse(const char *s, struct digest *out);

/* Algorithm from its name ("sha256", "sha512"); DIGEST_NONE if unknown. */
enum digest_alg digest_alg_from_name(const char *name);

/* Name of an algorithm ("sha256"); "" for DIGEST_NONE. */
const char *digest_alg_name(enum digest_alg alg);

/* The hex part of a parsed digest (borrowed from d). */
const char *digest_hex(const struct digest *d);

/* Streaming hasher. digest_ctx_new (and _dup) return NULL when out of
 * memory or when OpenSSL cannot set the hash up; digest_ctx_update and
 * digest_ctx_final return BERTH_ENOMEM when OpenSSL fails (an allocation or
 * provider failure): the result is then unset, and the caller must fail as
 * a server error, never as a digest mismatch. */
struct digest_ctx;
struct digest_ctx *digest_ctx_new(enum digest_alg alg);
void digest_ctx_free(struct digest_ctx *ctx);
enum digest_alg digest_ctx_alg(const struct digest_ctx *ctx);
enum berth_err digest_ctx_update(struct digest_ctx *ctx, const void *p, size_t n);
/* Finish into out. The ctx is reset and may be reused for a new hash. */
enum berth_err digest_ctx_final(struct digest_ctx *ctx, struct digest *out);
/* Copy of the running state (NULL when out of memory). */
struct digest_ctx *digest_ctx_dup(const struct digest_ctx *ctx);

/* The running state as text (NUL-terminated, at most DIGEST_STATE_MAX
 * bytes with the NUL) into out, to be carried elsewhere (the shared
 * metadata of an upload session) and continued with digest_ctx_import,
 * by this build against the same OpenSSL. BERTH_ETOOBIG when cap is
 * short. */
#define DIGEST_STATE_MAX 512
enum berth_err digest_ctx_export(const struct digest_ctx *ctx, char *out, size_t cap);

/* A new hasher continuing the state text from digest_ctx_export (caller
 * frees *out). BERTH_EINVAL for text that is not one, BERTH_EUNSUPPORTED
 * for a state another OpenSSL version saved, BERTH_ENOMEM. */
enum berth_err digest_ctx_import(const char *text, struct digest_ctx **out);

/* Feed the first len bytes of the file open at fd into ctx (pread, so the
 * file offset is untouched). BERTH_EIO on read errors or a short file. */
enum berth_err digest_ctx_update_fd(struct digest_ctx *ctx, int fd, off_t len);

/* One-shot digest of a buffer. */
enum berth_err digest_buffer(enum digest_alg alg, const void *p, size_t n, struct digest *out);

/* Raw SHA-256 (32-byte output). BERTH_OK, or BERTH_ENOMEM when OpenSSL
 * cannot compute it: out is then unset. */
enum berth_err digest_sha256_raw(const void *p, size_t n, uint8_t out[32]);

/* MD5 of n bytes (S3's Content-MD5, which multi-object delete requires;
 * never for content addressing). BERTH_ENOMEM. */
enum berth_err digest_md5_raw(const void *p, size_t n, uint8_t out[16]);

/* HMAC-SHA256 of msg under key into out (32 bytes). BERTH_OK, or
 * BERTH_ENOMEM when OpenSSL cannot compute it (an allocation or provider
 * failure): out is then unset, and a MAC check must fail as a server
 * error, not as a bad MAC. */
enum berth_err digest_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                                  uint8_t out[32]);

/* Fault injection for tests: while on, every digest_hmac_sha256 fails as
 * an OpenSSL failure would. `berth serve` turns it on when the variable
 * BERTH_TEST_FAULTS names "hmac". Thread-safe. */
void digest_fault_hmac(bool on);

/* Fault injection for tests: while on, every hash fails as an OpenSSL
 * failure would: digest_sha256_raw and digest_buffer return BERTH_ENOMEM,
 * digest_ctx_new and digest_ctx_dup NULL, digest_ctx_update and
 * digest_ctx_final BERTH_ENOMEM (HMACs are digest_fault_hmac's). `berth
 * serve` turns it on when BERTH_TEST_FAULTS names "digest". Thread-safe. */
void digest_fault_hash(bool on);

#endif
