/* Standard padded base64. */
#include "common/base64.h"

#include <stdbool.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t base64_encoded_size(size_t n)
{
    return (n + 2) / 3 * 4 + 1;
}

/* Encode with the given alphabet; with pad, '=' fills the last quantum.
 * Returns the number of characters written (out is NUL-terminated). */
static size_t encode(const char *abc, bool pad, const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n) {
            out[o++] = abc[(v >> 6) & 63];
        } else if (pad) {
            out[o++] = '=';
        }
        if (pad) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return o;
}

void base64_encode(const uint8_t *in, size_t n, char *out)
{
    encode(alphabet, true, in, n, out);
}

size_t base64url_encode(const uint8_t *in, size_t n, char *out)
{
    return encode(url_alphabet, false, in, n, out);
}

static int value_of(char c);

static int url_value_of(char c)
{
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    if (c == '+' || c == '/') {
        return -1;
    }
    return value_of(c);
}

static int value_of(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

enum berth_err base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    if (len % 4 != 0) {
        return BERTH_EINVAL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=') {
                /* padding only in the last quantum, in positions 2 and 3 */
                if (i + 4 != len || k < 2) {
                    return BERTH_EINVAL;
                }
                pad++;
                v[k] = 0;
            } else {
                if (pad) {
                    return BERTH_EINVAL;
                }
                v[k] = value_of(c);
                if (v[k] < 0) {
                    return BERTH_EINVAL;
                }
            }
        }
        uint32_t q = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                     (uint32_t)v[3];
        out[o++] = (uint8_t)(q >> 16);
        if (pad < 2) {
            out[o++] = (uint8_t)(q >> 8);
        }
        if (pad < 1) {
            out[o++] = (uint8_t)q;
        }
    }
    *out_len = o;
    return BERTH_OK;
}

enum berth_err base64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    if (len % 4 == 1) {
        return BERTH_EINVAL;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = url_value_of(in[i]);
        if (v < 0) {
            return BERTH_EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* unused trailing bits must be zero: one accepted encoding per value */
    if (acc != 0) {
        return BERTH_EINVAL;
    }
    *out_len = o;
    return BERTH_OK;
}
