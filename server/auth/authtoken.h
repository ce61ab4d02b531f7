/*
 * Auth tokens: berth-signed, expiring bearer strings. A LOGIN token is the
 * `docker login` password GetAuthorizationToken returns (and /v2/ accepts
 * as Basic AWS:<token>); a DOWNLOAD token goes into the pre-signed layer
 * URL GetDownloadUrlForLayer returns and is bound to one repository and
 * digest. A BEARER token is the Docker token protocol's access token (see
 * server/auth/bearer.h): it holds the access granted, as canonical scope
 * text; a REFRESH token is the protocol's refresh token (offline_token),
 * which buys new BEARER tokens for its principal. A token carries its
 * purpose, the principal (access key id, or AUTHTOKEN_ANONYMOUS on a BEARER
 * token), the optional scope and its issue and expiry times, under an HMAC-SHA256 with
 * a server key; it is base64url without padding, so it contains no ':',
 * no whitespace and nothing a URL query must escape. Pure functions;
 * thread-safe; nothing blocks (except authtoken_key_generate, which reads
 * the kernel's random source).
 */
#ifndef BERTH_AUTHTOKEN_H
#define BERTH_AUTHTOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"

#define AUTHTOKEN_KEY_LEN 32 /* generated keys */
#define AUTHTOKEN_KEY_MIN 32 /* accepted key lengths */
#define AUTHTOKEN_KEY_MAX 64
#define AUTHTOKEN_PRINCIPAL_MAX 128               /* access key id */
#define AUTHTOKEN_REPOSITORY_MAX 256              /* ECR repository name limit */
#define AUTHTOKEN_DIGEST_MAX (DIGEST_STR_MAX - 1) /* "sha512:" + 128 hex */
#define AUTHTOKEN_SCOPE_MAX 2048                  /* BEARER access, canonical scope text */
#define AUTHTOKEN_MAX_LEN 1024                    /* encoded LOGIN, DOWNLOAD, REFRESH token */
#define AUTHTOKEN_BEARER_MAX_LEN 3328             /* encoded BEARER token, without NUL */
/* The principal of a BEARER token issued to a caller without credentials. */
#define AUTHTOKEN_ANONYMOUS "-"
/* base64("AWS:" + token), without NUL */
#define AUTHTOKEN_BASIC_MAX_LEN ((AUTHTOKEN_MAX_LEN + 4 + 2) / 3 * 4)
/* Issue times further in the future than this are refused. */
#define AUTHTOKEN_MAX_CLOCK_SKEW 300

#define AUTHTOKEN_BASIC_USER "AWS"
/* What berth answers (403 DENIED) for an authentic but expired token. */
#define AUTHTOKEN_EXPIRED_MESSAGE                                                                  \
    "Your authorization token has expired. Reauthenticate and try again."

enum authtoken_purpose {
    AUTHTOKEN_LOGIN = 1,    /* docker login password; no scope */
    AUTHTOKEN_DOWNLOAD = 2, /* pre-signed blob download; repository + digest */
    AUTHTOKEN_BEARER = 3,   /* Docker token protocol access token; scope (may be empty) */
    AUTHTOKEN_REFRESH = 4,  /* Docker token protocol refresh token; no scope */
};

struct authtoken {
    enum authtoken_purpose purpose;
    char principal[AUTHTOKEN_PRINCIPAL_MAX + 1];   /* 1.. printable ASCII */
    char repository[AUTHTOKEN_REPOSITORY_MAX + 1]; /* "" for LOGIN */
    char digest[AUTHTOKEN_DIGEST_MAX + 1];         /* "" for LOGIN */
    char scope[AUTHTOKEN_SCOPE_MAX + 1];           /* BEARER only: granted access, may be "" */
    int64_t issued;                                /* Unix seconds, >= 0 */
    int64_t expires;                               /* Unix seconds, > issued */
};

/* Fill key with AUTHTOKEN_KEY_LEN random bytes. BERTH_OK or BERTH_EIO. */
enum berth_err authtoken_key_generate(uint8_t key[AUTHTOKEN_KEY_LEN]);

/* Sign tok with key (key_len in AUTHTOKEN_KEY_MIN..AUTHTOKEN_KEY_MAX) and
 * write the NUL-terminated token into out (cap bytes; AUTHTOKEN_MAX_LEN + 1
 * always suffices, AUTHTOKEN_BEARER_MAX_LEN + 1 for a BEARER token).
 * Returns BERTH_OK, BERTH_EINVAL (bad key length; empty or non-printable
 * principal, repository or digest; a field over its limit; repository or
 * digest present on a LOGIN, BEARER or REFRESH token or missing on a
 * DOWNLOAD token; scope on anything but a BEARER token, or a scope with
 * characters other than printable ASCII and spaces; issued < 0 or
 * expires <= issued), BERTH_ETOOBIG (cap too small). */
enum berth_err authtoken_issue(const uint8_t *key, size_t key_len, const struct authtoken *tok,
                               char *out, size_t cap);

/* Check token (NUL-terminated) against key for the given purpose at time
 * now. For AUTHTOKEN_DOWNLOAD, repository and digest are those of the
 * request and must equal the token's scope; for the other purposes pass
 * NULL (a BEARER token's scope is returned in out->scope for the caller to
 * enforce).
 * Returns
 *   BERTH_OK      authentic, for this purpose and scope, unexpired; *out
 *                 filled when out is not NULL;
 *   BERTH_EDENIED authentic, for this purpose and scope, but expired
 *                 (now >= expires): answer AUTHTOKEN_EXPIRED_MESSAGE;
 *   BERTH_EINVAL  anything else: malformed, truncated, over
 *                 AUTHTOKEN_MAX_LEN (AUTHTOKEN_BEARER_MAX_LEN for a
 *                 BEARER token), forged or signed with another key,
 *                 another purpose or scope, or issued more than
 *                 AUTHTOKEN_MAX_CLOCK_SKEW seconds in the future.
 * out is written only on BERTH_OK. */
enum berth_err authtoken_verify(const uint8_t *key, size_t key_len, const char *token,
                                enum authtoken_purpose purpose, const char *repository,
                                const char *digest, int64_t now, struct authtoken *out);

/* The ECR authorizationToken: padded standard base64 of "AWS:" + token,
 * into out (cap bytes, NUL-terminated; AUTHTOKEN_BASIC_MAX_LEN + 1
 * suffices). BERTH_EINVAL if token is over AUTHTOKEN_MAX_LEN or contains
 * ':' or whitespace, BERTH_ETOOBIG if cap is too small. */
enum berth_err authtoken_basic_encode(const char *token, char *out, size_t cap);

/* The inverse, for an "Authorization: Basic <b64>" credential: decode
 * b64 (b64_len characters), require user "AWS", and copy the password into
 * password (cap bytes, NUL-terminated). BERTH_EINVAL when b64 is not
 * padded standard base64, is over AUTHTOKEN_BASIC_MAX_LEN, has no ':', a
 * user other than "AWS", or a password with NUL bytes; BERTH_ETOOBIG when
 * the password does not fit in cap. The password is not verified here. */
enum berth_err authtoken_basic_decode(const char *b64, size_t b64_len, char *password, size_t cap);

#endif
