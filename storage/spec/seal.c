/* AES-256-GCM sealing of small secrets; see seal.h. */
#include "storage/spec/seal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/base64.h"
#include "common/rand.h"

#define SEAL_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16
#define OVERHEAD (1 + NONCE_LEN + TAG_LEN)

enum berth_err seal_text(const uint8_t key[SEAL_KEY_LEN], const void *plain, size_t len, char **out)
{
    if (len > SEAL_PLAIN_MAX) {
        return BERTH_ETOOBIG;
    }
    uint8_t *raw = malloc(OVERHEAD + len);
    char *text = malloc(base64_encoded_size(OVERHEAD + len) + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    enum berth_err rc = BERTH_OK;
    if (raw == NULL || text == NULL || ctx == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    raw[0] = SEAL_VERSION;
    rc = rand_bytes(raw + 1, NONCE_LEN);
    if (rc != BERTH_OK) {
        goto out;
    }
    int n = 0;
    int fin = 0;
    /* the version byte is authenticated too (additional data) */
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, raw + 1) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, raw, 1) != 1 ||
        EVP_EncryptUpdate(ctx, raw + 1 + NONCE_LEN, &n, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, raw + 1 + NONCE_LEN + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + 1 + NONCE_LEN + len) != 1) {
        rc = BERTH_EIO;
        goto out;
    }
    base64_encode(raw, OVERHEAD + len, text);
    *out = text;
    text = NULL;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (raw != NULL) {
        memset(raw, 0, OVERHEAD + len);
    }
    free(raw);
    free(text);
    return rc;
}

enum berth_err seal_open(const uint8_t key[SEAL_KEY_LEN], const char *sealed, char **out,
                         size_t *len)
{
    size_t slen = strlen(sealed);
    if (slen > base64_encoded_size(OVERHEAD + SEAL_PLAIN_MAX)) {
        return BERTH_EINVAL;
    }
    uint8_t *raw = malloc(slen / 4 * 3 + 3);
    size_t raw_len = 0;
    char *plain = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    enum berth_err rc = BERTH_OK;
    if (raw == NULL) {
        return BERTH_ENOMEM;
    }
    if (base64_decode(sealed, slen, raw, &raw_len) != BERTH_OK || raw_len < OVERHEAD ||
        raw[0] != SEAL_VERSION) {
        rc = BERTH_EINVAL;
        goto out;
    }
    size_t clen = raw_len - OVERHEAD;
    plain = malloc(clen + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (plain == NULL || ctx == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    int n = 0;
    int fin = 0;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw + 1) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, raw, 1) != 1 ||
        EVP_DecryptUpdate(ctx, (uint8_t *)plain, &n, raw + 1 + NONCE_LEN, (int)clen) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + 1 + NONCE_LEN + clen) != 1) {
        rc = BERTH_EIO;
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, (uint8_t *)plain + n, &fin) != 1) {
        rc = BERTH_EINVAL; /* the tag does not match: changed, or another key */
        goto out;
    }
    plain[clen] = '\0';
    *out = plain;
    *len = clen;
    plain = NULL;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (plain != NULL) {
        memset(plain, 0, clen + 1);
    }
    free(plain);
    memset(raw, 0, slen / 4 * 3 + 3);
    free(raw);
    return rc;
}
