/* Standard base64 (RFC 4648 section 4, padded) and base64url (section 5,
 * unpadded). Pure; thread-safe. */
#ifndef BERTH_BASE64_H
#define BERTH_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Bytes needed to encode n input bytes, including the NUL. */
size_t base64_encoded_size(size_t n);

/* Encode n bytes into out (base64_encoded_size(n) bytes, NUL-terminated). */
void base64_encode(const uint8_t *in, size_t n, char *out);

/* Decode len characters of strict padded base64 into out, which must hold
 * len / 4 * 3 bytes; *out_len is the decoded length. BERTH_EINVAL on any
 * character outside the alphabet, bad padding or a length not a multiple
 * of 4. */
enum berth_err base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

/* base64url without padding of n bytes into out (4n/3 + 3 bytes); returns
 * the characters written (out is NUL-terminated). */
size_t base64url_encode(const uint8_t *in, size_t n, char *out);

/* Strict unpadded base64url decode: alphabet only, no padding, unused
 * trailing bits zero, so each byte string has exactly one accepted
 * encoding. out holds len * 3 / 4 bytes. BERTH_EINVAL otherwise. */
enum berth_err base64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

#endif
