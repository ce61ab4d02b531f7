/*
 * Sealing small secrets at rest with AES-256-GCM (OpenSSL EVP): a sealed
 * value is the base64 text of a version byte, a random 12-byte nonce, the
 * ciphertext and the 16-byte tag, so that a stored secret can be read back
 * only with the key and any change to it is detected. Pure apart from the
 * random nonce; thread-safe.
 */
#ifndef BERTH_SEAL_H
#define BERTH_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SEAL_KEY_LEN 32
/* Largest clear value sealed (upstream credentials are small). */
#define SEAL_PLAIN_MAX 65536

/* Seal len bytes of plain with key into a new NUL-terminated string in
 * *out (caller frees). BERTH_ETOOBIG past SEAL_PLAIN_MAX, BERTH_ENOMEM,
 * BERTH_EIO when the cipher or the random source fails. */
enum berth_err seal_text(const uint8_t key[SEAL_KEY_LEN], const void *plain, size_t len,
                         char **out);

/* Open a value seal_text made: the clear bytes as a new NUL-terminated
 * string in *out (caller frees; *len its length without the NUL).
 * BERTH_EINVAL when sealed is not a sealed value, or was changed, or was
 * sealed with another key; BERTH_ENOMEM; BERTH_EIO. */
enum berth_err seal_open(const uint8_t key[SEAL_KEY_LEN], const char *sealed, char **out,
                         size_t *len);

#endif
