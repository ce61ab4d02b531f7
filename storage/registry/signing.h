/*
 * ECR's managed signing, offline: the registry's signing configuration
 * (rules that pick AWS Signer profile ARNs for repositories by wildcard
 * filters, stored in registry_settings), and the signing of a pushed image
 * for each profile a rule picks. A profile's key and certificate chain
 * come from <signing.profiles_dir>/<profile>.pem, or else from a key and
 * self-signed certificate berth generates once per profile and keeps in
 * the metadata (server_secrets), so every replica signs alike. The
 * signature is a Notary Project JWS envelope (storage/spec/notation.h)
 * stored as an OCI referrer of the image, as ECR stores it, and each
 * outcome is recorded for DescribeImageSigningStatus. Thread-safe; the
 * calls block on the database and the blob store.
 */
#ifndef BERTH_SIGNING_H
#define BERTH_SIGNING_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/spec/digest.h"

struct store;

/* ECR's WILDCARD_MATCH of a repository filter ('*': any run). Pure. */
bool signing_filter_match(const char *filter, const char *repo);

/* The profile name of a signing profile ARN (what follows
 * "/signing-profiles/"), or NULL when it has none. Pure. */
const char *signing_profile_name(const char *arn);

/*
 * Sign a manifest just pushed to repo (manifest_id, its digest, media type
 * and size in bytes) for every distinct profile the signing configuration's
 * rules pick for repo, in rule order: each signature is pushed to repo as
 * an OCI manifest (artifactType application/vnd.cncf.notary.signature, one
 * application/jose+json layer, subject the image) and the status COMPLETE
 * or FAILED (with a code and reason) is recorded for the image and profile.
 * No configuration, or no rule for repo: nothing happens. Failures are
 * recorded and logged, never returned. Call it after the push committed,
 * outside any transaction; not for manifests that have a subject (so a
 * signature is never signed).
 */
void signing_sign_pushed(struct store *st, const char *repo, int64_t manifest_id,
                         const struct digest *d, const char *media_type, int64_t size);

#endif
