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

#include <stdatomic.h>
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
 * Queue the signatures a manifest just pushed to repo (manifest_id) is
 * owed: for every distinct profile the signing configuration's rules pick
 * for repo whose signature of it is not COMPLETE, the status becomes
 * IN_PROGRESS (DescribeImageSigningStatus shows it), and the signing job
 * is woken. An image pushed again is signed again only for profiles that
 * failed (or that a changed configuration picks now). No configuration:
 * nothing. Failures are logged, never returned. Call it after the push
 * committed, outside any transaction; not for manifests that have a
 * subject (so a signature is never signed).
 */
void signing_queue_pushed(struct store *st, const char *repo, int64_t manifest_id);

/*
 * The signing job (server/jobs): make every queued signature, oldest
 * first: each is pushed to the image's repository as an OCI manifest
 * (artifactType application/vnd.cncf.notary.signature, one
 * application/jose+json layer, subject the image) and the status becomes
 * COMPLETE, or FAILED with a code and reason. A signature queued before a
 * crash is made after the restart. Stops early when *cancel (optional)
 * becomes true; *done (optional) counts the signatures tried. BERTH_EDB.
 */
enum berth_err signing_run_pending(struct store *st, const atomic_bool *cancel, int64_t *done);

/* Wake the signing job / wait for a wake-up (after *seen), *stop, or
 * timeout_ms. */
void signing_notify(void);
void signing_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop);

/* Read the profiles' keys again (their files may have changed) before the
 * next signature (SIGHUP). */
void signing_reload(void);

#endif
