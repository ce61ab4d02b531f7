/*
 * Notary Project (Notation) signatures, as ECR's managed signing stores
 * them: a JWS envelope (JSON serialization, media type
 * application/jose+json) whose payload is the signed image's descriptor
 * ({"targetArtifact": {mediaType, digest, size}}), signed under the
 * notary.x509 scheme with the signer's key, its certificate chain in the
 * unprotected x5c header. Also generates the self-signed code-signing
 * certificate berth uses for a signing profile that has no configured
 * key. Pure (OpenSSL, no I/O); a loaded signer is immutable and may be
 * shared between threads.
 */
#ifndef BERTH_NOTATION_H
#define BERTH_NOTATION_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define NOTATION_ARTIFACT_TYPE "application/vnd.cncf.notary.signature"
#define NOTATION_ENVELOPE_TYPE "application/jose+json"
#define NOTATION_PAYLOAD_TYPE "application/vnd.cncf.notary.payload.v1+json"
/* The manifest annotation listing the chain's SHA-256 thumbprints. */
#define NOTATION_THUMBPRINT_ANNOTATION "io.cncf.notary.x509chain.thumbprint#S256"

/* A private key and its certificate chain, leaf first. */
struct notation_signer;

/*
 * Generate an ECDSA P-256 key and a self-signed certificate for it
 * (subject CN=common_name, O=berth; valid from now_ms for ten years;
 * basicConstraints CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
 * codeSigning, as Notary Project certificates must be), as PEM text: the
 * key, then the certificate. *pem_out is malloc'd and NUL-terminated
 * (caller frees). BERTH_OK, BERTH_EINVAL (common_name empty or over 64
 * bytes), BERTH_ENOMEM, BERTH_EIO (OpenSSL failed).
 */
enum berth_err notation_generate(const char *common_name, int64_t now_ms, char **pem_out);

/*
 * Load a signer from PEM text (len bytes): one private key (EC P-256,
 * P-384, P-521, or RSA 2048, 3072, 4096 bits) and its certificate chain,
 * leaf first, in any order of blocks. *out is new (notation_signer_free).
 * BERTH_EINVAL with a reason in msg (msg_cap bytes, NUL-terminated) when
 * there is no key, no certificate, a key type or size Notary does not
 * sign with, or a leaf certificate that is not the key's; BERTH_ENOMEM.
 */
enum berth_err notation_signer_load(const char *pem, size_t len, struct notation_signer **out,
                                    char *msg, size_t msg_cap);

/* Free a signer; NULL is fine. */
void notation_signer_free(struct notation_signer *s);

/* The JWS algorithm the signer signs with ("ES256", "PS256", ...). */
const char *notation_signer_alg(const struct notation_signer *s);

/*
 * Sign the descriptor {media_type, digest, size} at signing time now_ms:
 * *envelope_out is the JWS envelope's JSON text (malloc'd,
 * NUL-terminated, *len_out bytes; caller frees). The protected header has
 * alg, crit ["io.cncf.notary.signingScheme"], cty NOTATION_PAYLOAD_TYPE,
 * io.cncf.notary.signingScheme "notary.x509" and
 * io.cncf.notary.signingTime; the unprotected header x5c (standard base64
 * DER, leaf first) and io.cncf.notary.signingAgent. ECDSA signatures are
 * r || s, each padded to the curve's size (RFC 7518); RSA is RSASSA-PSS
 * with a salt as long as the hash. BERTH_OK, BERTH_ENOMEM, BERTH_EIO.
 */
enum berth_err notation_sign(const struct notation_signer *s, const char *media_type,
                             const char *digest, int64_t size, int64_t now_ms, char **envelope_out,
                             size_t *len_out);

/* NOTATION_THUMBPRINT_ANNOTATION's value: a JSON array text of the
 * lowercase hex SHA-256 of each certificate's DER, leaf first (malloc'd;
 * caller frees). BERTH_OK, BERTH_ENOMEM, BERTH_EIO. */
enum berth_err notation_thumbprints(const struct notation_signer *s, char **out);

#endif
