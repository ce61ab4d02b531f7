/*
 * Notary Project JWS signatures and the self-signed certificates of
 * berth's signing profiles, with OpenSSL; see notation.h. Pure; thread-safe.
 */
#include "storage/spec/notation.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/base64.h"
#include "common/rand.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/spec/digest.h"

#define SIGNING_AGENT "berth/0.1.0"
#define TEN_YEARS_S (10LL * 365 * 24 * 3600)

struct notation_signer {
    EVP_PKEY *key;
    STACK_OF(X509) * chain; /* leaf first */
    const char *alg;        /* JWS alg */
    const EVP_MD *md;
    bool is_ec;
    size_t coord_len; /* bytes of r and of s (EC) */
};

/* A memory BIO's contents as a new NUL-terminated string. */
static enum berth_err bio_string(BIO *bio, char **out)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0) {
        return BERTH_EIO;
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    *out = s;
    return BERTH_OK;
}

static bool add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        return false;
    }
    bool ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

enum berth_err notation_generate(const char *common_name, int64_t now_ms, char **pem_out)
{
    if (common_name == NULL || common_name[0] == '\0' || strlen(common_name) > 64) {
        return BERTH_EINVAL;
    }
    enum berth_err rc = BERTH_EIO;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    uint8_t serial[16];
    BIGNUM *bn = NULL;
    if (key == NULL || x == NULL || bio == NULL) {
        goto out;
    }
    if (rand_bytes(serial, sizeof(serial)) != BERTH_OK) {
        goto out;
    }
    serial[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    time_t now = (time_t)(now_ms / 1000);
    X509_NAME *name = X509_get_subject_name(x);
    if (bn == NULL || X509_set_version(x, 2) != 1 ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
        X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)TEN_YEARS_S, &now) == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name,
                                   -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"berth", -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1 ||
        !add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, NID_ext_key_usage, "codeSigning") ||
        !add_ext(x, NID_subject_key_identifier, "hash") || X509_sign(x, key, EVP_sha256()) <= 0 ||
        PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(bio, x) != 1) {
        goto out;
    }
    rc = bio_string(bio, pem_out);
out:
    ERR_clear_error();
    BN_free(bn);
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static enum berth_err load_fail(char *msg, size_t cap, const char *why)
{
    if (cap > 0) {
        snprintf(msg, cap, "%s", why);
    }
    ERR_clear_error();
    return BERTH_EINVAL;
}

/* The JWS algorithm for a key, as Notary Project pairs them. */
static bool pick_alg(struct notation_signer *s)
{
    int bits = EVP_PKEY_get_bits(s->key);
    switch (EVP_PKEY_get_base_id(s->key)) {
    case EVP_PKEY_EC:
        s->is_ec = true;
        if (bits == 256) {
            s->alg = "ES256", s->md = EVP_sha256(), s->coord_len = 32;
        } else if (bits == 384) {
            s->alg = "ES384", s->md = EVP_sha384(), s->coord_len = 48;
        } else if (bits == 521) {
            s->alg = "ES512", s->md = EVP_sha512(), s->coord_len = 66;
        }
        break;
    case EVP_PKEY_RSA:
        if (bits == 2048) {
            s->alg = "PS256", s->md = EVP_sha256();
        } else if (bits == 3072) {
            s->alg = "PS384", s->md = EVP_sha384();
        } else if (bits == 4096) {
            s->alg = "PS512", s->md = EVP_sha512();
        }
        break;
    default:
        break;
    }
    return s->alg != NULL;
}

enum berth_err notation_signer_load(const char *pem, size_t len, struct notation_signer **out,
                                    char *msg, size_t msg_cap)
{
    if (msg_cap > 0) {
        msg[0] = '\0';
    }
    if (len > INT32_MAX) {
        return load_fail(msg, msg_cap, "the PEM text is too long");
    }
    struct notation_signer *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_ENOMEM;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    s->chain = sk_X509_new_null();
    if (bio == NULL || s->chain == NULL) {
        goto fail;
    }
    s->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (s->key == NULL) {
        rc = load_fail(msg, msg_cap, "no private key in the PEM text");
        goto fail;
    }
    BIO_free(bio);
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        goto fail;
    }
    X509 *cert;
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(s->chain, cert) <= 0) {
            X509_free(cert);
            goto fail;
        }
    }
    ERR_clear_error(); /* the end of the text */
    if (sk_X509_num(s->chain) == 0) {
        rc = load_fail(msg, msg_cap, "no certificate in the PEM text");
        goto fail;
    }
    if (X509_check_private_key(sk_X509_value(s->chain, 0), s->key) != 1) {
        rc = load_fail(msg, msg_cap, "the first certificate is not the private key's");
        goto fail;
    }
    if (!pick_alg(s)) {
        rc = load_fail(msg, msg_cap,
                       "Notary Project signs with EC P-256/P-384/P-521 or RSA 2048/3072/4096 keys");
        goto fail;
    }
    BIO_free(bio);
    *out = s;
    return BERTH_OK;
fail:
    BIO_free(bio);
    notation_signer_free(s);
    return rc;
}

void notation_signer_free(struct notation_signer *s)
{
    if (s == NULL) {
        return;
    }
    EVP_PKEY_free(s->key);
    sk_X509_pop_free(s->chain, X509_free);
    free(s);
}

const char *notation_signer_alg(const struct notation_signer *s)
{
    return s->alg;
}

/* base64url of n bytes into a new string. */
static char *b64url(const void *p, size_t n)
{
    char *out = malloc(base64_encoded_size(n) + 1);
    if (out != NULL) {
        size_t len = base64url_encode(p, n, out);
        out[len] = '\0';
    }
    return out;
}

/* A certificate's DER into a new buffer. */
static enum berth_err cert_der(X509 *cert, uint8_t **der, size_t *len)
{
    int n = i2d_X509(cert, NULL);
    if (n <= 0) {
        return BERTH_EIO;
    }
    uint8_t *buf = malloc((size_t)n);
    if (buf == NULL) {
        return BERTH_ENOMEM;
    }
    uint8_t *p = buf;
    if (i2d_X509(cert, &p) != n) {
        free(buf);
        return BERTH_EIO;
    }
    *der = buf;
    *len = (size_t)n;
    return BERTH_OK;
}

/* The raw JWS signature of the signing input. */
static enum berth_err sign_input(const struct notation_signer *s, const char *input, uint8_t **sig,
                                 size_t *sig_len)
{
    enum berth_err rc = BERTH_EIO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t *der = NULL, *raw = NULL;
    size_t der_len = 0;
    ECDSA_SIG *ec = NULL;
    if (ctx == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (EVP_DigestSignInit(ctx, &pctx, s->md, NULL, s->key) != 1) {
        goto out;
    }
    if (!s->is_ec && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0)) {
        goto out;
    }
    const uint8_t *in = (const uint8_t *)input;
    size_t in_len = strlen(input);
    if (EVP_DigestSign(ctx, NULL, &der_len, in, in_len) != 1) {
        goto out;
    }
    der = malloc(der_len);
    if (der == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (EVP_DigestSign(ctx, der, &der_len, in, in_len) != 1) {
        goto out;
    }
    if (!s->is_ec) {
        *sig = der;
        *sig_len = der_len;
        der = NULL;
        rc = BERTH_OK;
        goto out;
    }
    /* ECDSA: DER SEQUENCE {r, s} to r || s, each coord_len bytes */
    const uint8_t *p = der;
    ec = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    raw = malloc(2 * s->coord_len);
    if (ec == NULL || raw == NULL) {
        goto out;
    }
    const BIGNUM *r = NULL, *sv = NULL;
    ECDSA_SIG_get0(ec, &r, &sv);
    if (BN_bn2binpad(r, raw, (int)s->coord_len) < 0 ||
        BN_bn2binpad(sv, raw + s->coord_len, (int)s->coord_len) < 0) {
        goto out;
    }
    *sig = raw;
    *sig_len = 2 * s->coord_len;
    raw = NULL;
    rc = BERTH_OK;
out:
    ERR_clear_error();
    ECDSA_SIG_free(ec);
    free(raw);
    free(der);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* json_dumps compact into a new string. */
static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
}

enum berth_err notation_sign(const struct notation_signer *s, const char *media_type,
                             const char *digest, int64_t size, int64_t now_ms, char **envelope_out,
                             size_t *len_out)
{
    enum berth_err rc = BERTH_ENOMEM;
    char signing_time[32];
    /* seconds, as Notation writes it: 2026-12-06T10:30:00Z */
    time_format_rfc3339(now_ms - now_ms % 1000, signing_time, sizeof(signing_time));
    char *dot = strchr(signing_time, '.');
    if (dot != NULL) {
        dot[0] = 'Z';
        dot[1] = '\0';
    }
    json_t *payload = json_pack("{s:{s:s, s:s, s:I}}", "targetArtifact", "mediaType", media_type,
                                "digest", digest, "size", (json_int_t)size);
    json_t *header = json_pack("{s:s, s:[s], s:s, s:s, s:s}", "alg", s->alg, "crit",
                               "io.cncf.notary.signingScheme", "cty", NOTATION_PAYLOAD_TYPE,
                               "io.cncf.notary.signingScheme", "notary.x509",
                               "io.cncf.notary.signingTime", signing_time);
    json_t *x5c = json_array();
    json_t *env = NULL;
    char *payload_text = NULL, *header_text = NULL, *payload_b64 = NULL, *header_b64 = NULL;
    char *input = NULL, *sig_b64 = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if (payload == NULL || header == NULL || x5c == NULL) {
        goto out;
    }
    for (int i = 0; i < sk_X509_num(s->chain); i++) {
        uint8_t *der = NULL;
        size_t der_len = 0;
        rc = cert_der(sk_X509_value(s->chain, i), &der, &der_len);
        if (rc != BERTH_OK) {
            goto out;
        }
        char *b64 = malloc(base64_encoded_size(der_len) + 1);
        if (b64 != NULL) {
            base64_encode(der, der_len, b64);
        }
        free(der);
        if (b64 == NULL || json_array_append_new(x5c, json_string(b64)) != 0) {
            free(b64);
            rc = BERTH_ENOMEM;
            goto out;
        }
        free(b64);
    }
    rc = BERTH_ENOMEM;
    payload_text = dump(payload);
    header_text = dump(header);
    if (payload_text == NULL || header_text == NULL) {
        goto out;
    }
    payload_b64 = b64url(payload_text, strlen(payload_text));
    header_b64 = b64url(header_text, strlen(header_text));
    if (payload_b64 == NULL || header_b64 == NULL) {
        goto out;
    }
    size_t input_len = strlen(header_b64) + 1 + strlen(payload_b64) + 1;
    input = malloc(input_len);
    if (input == NULL) {
        goto out;
    }
    snprintf(input, input_len, "%s.%s", header_b64, payload_b64);
    rc = sign_input(s, input, &sig, &sig_len);
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = BERTH_ENOMEM;
    sig_b64 = b64url(sig, sig_len);
    if (sig_b64 == NULL) {
        goto out;
    }
    env = json_pack("{s:s, s:s, s:{s:O, s:s}, s:s}", "payload", payload_b64, "protected",
                    header_b64, "header", "x5c", x5c, "io.cncf.notary.signingAgent", SIGNING_AGENT,
                    "signature", sig_b64);
    char *text = env ? dump(env) : NULL;
    if (text == NULL) {
        goto out;
    }
    *envelope_out = text;
    *len_out = strlen(text);
    rc = BERTH_OK;
out:
    json_decref(env);
    json_decref(payload);
    json_decref(header);
    json_decref(x5c);
    free(payload_text);
    free(header_text);
    free(payload_b64);
    free(header_b64);
    free(input);
    free(sig);
    free(sig_b64);
    return rc;
}

enum berth_err notation_thumbprints(const struct notation_signer *s, char **out)
{
    json_t *list = json_array();
    if (list == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    for (int i = 0; rc == BERTH_OK && i < sk_X509_num(s->chain); i++) {
        uint8_t *der = NULL;
        size_t der_len = 0;
        rc = cert_der(sk_X509_value(s->chain, i), &der, &der_len);
        if (rc != BERTH_OK) {
            break;
        }
        uint8_t sum[32];
        char hex[65];
        rc = digest_sha256_raw(der, der_len, sum);
        free(der);
        if (rc != BERTH_OK) {
            break;
        }
        str_hex_encode(sum, sizeof(sum), hex);
        if (json_array_append_new(list, json_string(hex)) != 0) {
            rc = BERTH_ENOMEM;
        }
    }
    char *text = rc == BERTH_OK ? dump(list) : NULL;
    json_decref(list);
    if (rc == BERTH_OK && text == NULL) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK) {
        *out = text;
    }
    return rc;
}
