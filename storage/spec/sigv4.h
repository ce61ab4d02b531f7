/*
 * AWS Signature Version 4: parse the Authorization header, canonicalise a
 * request exactly as AWS does for non-S3 services, verify the signature
 * against a secret in constant time (the ECR JSON API's verifier, used by
 * server/auth), and sign requests, for non-S3 services (tests, clients) and
 * for S3 (the S3 blob backend, storage/blob/s3_client.c;
 * sigv4_credentials.s3). No HTTP library types: the caller describes the
 * request. Pure functions on caller-owned memory; thread-safe; nothing
 * blocks.
 *
 * Verification is split in two so that the caller can look the secret up
 * by access key id in between:
 *
 *   sigv4_parse(req, &auth, &refusal)        -> refuse, or auth.access_key_id
 *   auth.has_security_token                   -> refuse (session tokens unsupported)
 *   look up the secret of auth.access_key_id  -> unknown: sigv4_refuse(UNRECOGNIZED_CLIENT)
 *   sigv4_verify(req, &auth, secret, &opts, &refusal)
 *
 * A refusal names the AWS error (sigv4_error_name) and carries AWS's
 * message text; the HTTP layer sends both as a 400 awsJson error.
 */
#ifndef BERTH_SIGV4_H
#define BERTH_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_SERVICE "ecr" /* the ECR signing name */
#define SIGV4_MAX_SKEW_SECONDS 300

/* Limits. Inputs beyond them are refused (never truncated silently). */
#define SIGV4_AUTH_MAX_LEN 4096          /* Authorization header value */
#define SIGV4_AKID_MAX 128               /* access key id */
#define SIGV4_SCOPE_PART_MAX 32          /* date, region, service, terminator */
#define SIGV4_SIGNED_HEADERS_MAX 1024    /* the SignedHeaders list, bytes */
#define SIGV4_SIGNED_HEADER_COUNT_MAX 64 /* names in SignedHeaders */
#define SIGV4_SECRET_MAX 128             /* secret access key */
#define SIGV4_PATH_MAX 8192              /* request path */
#define SIGV4_QUERY_MAX 8192             /* query string */
#define SIGV4_QUERY_PARAMS_MAX 128       /* parameters in the query string */
#define SIGV4_CANONICAL_MAX (256 * 1024) /* canonical request, bytes */
#define SIGV4_MESSAGE_MAX 512            /* refusal message, with NUL */
#define SIGV4_AMZ_DATE_LEN 16            /* "YYYYMMDDTHHMMSSZ" */
#define SIGV4_SIGNATURE_HEX_LEN 64

/* Which AWS error a refusal is. */
enum sigv4_error {
    SIGV4_ERR_NONE = 0,
    SIGV4_ERR_MISSING_TOKEN,       /* MissingAuthenticationTokenException */
    SIGV4_ERR_INCOMPLETE,          /* IncompleteSignatureException */
    SIGV4_ERR_INVALID_SIGNATURE,   /* InvalidSignatureException */
    SIGV4_ERR_UNRECOGNIZED_CLIENT, /* UnrecognizedClientException */
};

/* One request header as received. Both strings are borrowed and
 * NUL-terminated; names compare case-insensitively. A header that appears
 * several times is passed several times, in the order received. */
struct sigv4_header {
    const char *name;
    const char *value;
};

/* The request as received, all borrowed. */
struct sigv4_request {
    const char *method; /* "POST" */
    /* The path exactly as on the request line, still percent-encoded
     * ("/" or "/some/prefix"); without the query. NULL or "" means "/". */
    const char *path;
    const char *query; /* raw text after '?', or NULL */
    const struct sigv4_header *headers;
    size_t header_count;
    const void *body; /* may be NULL when body_len is 0 */
    size_t body_len;
    /* Optional lower-case hex SHA-256 of the body, computed while it was
     * received; NULL to have body/body_len hashed here. */
    const char *body_sha256;
};

/* A parsed Authorization header plus the request date. */
struct sigv4_auth {
    char access_key_id[SIGV4_AKID_MAX + 1];
    char scope_date[SIGV4_SCOPE_PART_MAX + 1];
    char region[SIGV4_SCOPE_PART_MAX + 1];
    char service[SIGV4_SCOPE_PART_MAX + 1];
    char terminator[SIGV4_SCOPE_PART_MAX + 1];
    /* SignedHeaders, lower-case, sorted, duplicates removed, ';'-joined. */
    char signed_headers[SIGV4_SIGNED_HEADERS_MAX + 1];
    /* Lower-case hex; "" when the header's value was not 64 hex digits
     * (verification then fails with InvalidSignatureException). */
    char signature[SIGV4_SIGNATURE_HEX_LEN + 1];
    char amz_date[SIGV4_AMZ_DATE_LEN + 1]; /* from X-Amz-Date, else Date */
    int64_t request_time;                  /* amz_date as Unix seconds */
    bool has_security_token;               /* X-Amz-Security-Token was sent */
};

/* Why a request was refused: the AWS error and its message. */
struct sigv4_refusal {
    enum sigv4_error error;
    char message[SIGV4_MESSAGE_MAX];
};

/* What verification accepts. */
struct sigv4_verify_opts {
    int64_t now;         /* current time, Unix seconds */
    const char *service; /* expected scope service; NULL means SIGV4_SERVICE */
    /* Accepted scope regions; regions NULL or region_count 0 accepts any. */
    const char *const *regions;
    size_t region_count;
    /* Accept a signed "x-amz-content-sha256: UNSIGNED-PAYLOAD" (the body is
     * then not covered by the signature). Off: such requests are refused. */
    bool allow_unsigned_payload;
};

/* What signing needs. All borrowed. */
struct sigv4_credentials {
    const char *access_key_id;
    const char *secret;
    const char *region;
    const char *service; /* NULL means SIGV4_SERVICE */
    /* S3's canonicalisation: the request's path is used as given (the
     * caller encoded it once, as on the request line), without the
     * normalisation and second encoding of other services. */
    bool s3;
};

/* The AWS error code for e ("InvalidSignatureException", ...); "" for
 * SIGV4_ERR_NONE. Never NULL. */
const char *sigv4_error_name(enum sigv4_error e);

/* Fill r with error e and AWS's standard message for it
 * ("The security token included in the request is invalid." for
 * SIGV4_ERR_UNRECOGNIZED_CLIENT, "Missing Authentication Token",
 * the signature-mismatch text, ...). For unknown access keys and for
 * requests carrying a session token. */
void sigv4_refuse(struct sigv4_refusal *r, enum sigv4_error e);

/* Parse the request's Authorization, X-Amz-Date (or Date) and
 * X-Amz-Security-Token headers into auth. Checks syntax only; nothing
 * about keys, scope values, time or the signature.
 * Returns BERTH_OK (auth filled) or BERTH_EDENIED (refusal filled:
 * MissingAuthenticationToken when there is no Authorization header,
 * IncompleteSignature when it or the date is malformed, incomplete or over
 * a limit, InvalidSignature when `host` is not among the signed headers,
 * as AWS answers). refusal is written only on BERTH_EDENIED, auth only on
 * BERTH_OK. */
enum berth_err sigv4_parse(const struct sigv4_request *req, struct sigv4_auth *auth,
                           struct sigv4_refusal *refusal);

/* Verify a request parsed by sigv4_parse against the secret of
 * auth->access_key_id (secret_len bytes, at most SIGV4_SECRET_MAX).
 * Checks, in order: that Content-Type and X-Amz-Target are among the
 * signed headers when the request carries them (refused otherwise with
 * "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."), the credential scope
 * (service, region, terminator "aws4_request", scope date == X-Amz-Date day), clock skew within
 * SIGV4_MAX_SKEW_SECONDS of opts->now, a signed x-amz-content-sha256
 * against the body, then the signature (constant-time compare).
 * Returns BERTH_OK when the signature is good, BERTH_EDENIED with refusal
 * filled (InvalidSignature, or IncompleteSignature when the request is
 * too large to canonicalise) otherwise, BERTH_EINVAL for a secret over the
 * limit, BERTH_ENOMEM. Does not look at auth->has_security_token. */
enum berth_err sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth,
                            const char *secret, size_t secret_len,
                            const struct sigv4_verify_opts *opts, struct sigv4_refusal *refusal);

/* Sign req and write the Authorization header value into out (cap bytes).
 * Every header of req is signed except Authorization and the ones botocore
 * never signs (user-agent, expect, connection, ...); req must carry a Host
 * header and an X-Amz-Date header (YYYYMMDDTHHMMSSZ), which is the signing
 * time. The body is hashed unless req->body_sha256 is set or a
 * x-amz-content-sha256 header is present (its value is used, as botocore
 * does). Returns BERTH_OK, BERTH_EINVAL (missing Host/X-Amz-Date, bad
 * date, NULL or oversized credentials or inputs), BERTH_ETOOBIG (out too
 * small), BERTH_ENOMEM. */
enum berth_err sigv4_sign(const struct sigv4_request *req, const struct sigv4_credentials *cred,
                          char *out, size_t cap);

/* Query-string authentication (a presigned URL, as botocore's
 * S3SigV4QueryAuth makes them): the query to put after path on a request
 * to host, signed at now for expires_seconds (1..604800), with only Host
 * signed and an unsigned payload. path is encoded as on the request line
 * (cred->s3: used as given). Written into out (cap bytes): X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
 * X-Amz-Signature. BERTH_EINVAL, BERTH_ETOOBIG (out too small),
 * BERTH_ENOMEM. */
enum berth_err sigv4_presign(const char *method, const char *path, const char *host,
                             const struct sigv4_credentials *cred, int64_t now,
                             int64_t expires_seconds, char *out, size_t cap);

/* Format Unix seconds as "YYYYMMDDTHHMMSSZ" into out
 * (SIGV4_AMZ_DATE_LEN + 1 bytes). For clients building X-Amz-Date. */
void sigv4_format_amz_date(int64_t t, char out[SIGV4_AMZ_DATE_LEN + 1]);

#endif
