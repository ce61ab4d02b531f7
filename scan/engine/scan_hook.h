/*
 * The external scan hook (scan.hook): an operator-configured command that
 * is given one image as an OCI image layout directory and prints its
 * findings as JSON in ECR's ImageScanFinding shape. The command is run
 * with fork/exec, never through a shell: its words are split here with
 * shell-like quoting but no expansion (a command that needs pipes or
 * variables is written as `/bin/sh -c '...'` or as a script; a relative
 * program path is taken from berth's working directory). It runs in
 * its own process group with a timeout (the whole group is killed), stdin
 * from /dev/null, bounded stdout, and the environment of berth plus:
 *   BERTH_SCAN_LAYOUT      the layout directory, an absolute path (also the
 *                          working directory)
 *   BERTH_SCAN_REF         the image's name in index.json (its tag, or "image")
 *   BERTH_SCAN_REPOSITORY  the repository name
 *   BERTH_SCAN_DIGEST      the manifest digest
 *   BERTH_SCAN_MEDIA_TYPE  the manifest media type
 *   BERTH_SCAN_TAG         one tag of the image, or empty
 * The layout holds oci-layout, index.json and blobs/<alg>/<hex> for the
 * manifest, config and layers: hard links to the registry's blob files
 * (copies when linking is impossible), which the hook must only read. It
 * is removed when the hook ends. See docs/scanning.md for the contract.
 * Thread-safe (no shared state); blocks for as long as the hook runs.
 */
#ifndef BERTH_SCAN_HOOK_H
#define BERTH_SCAN_HOOK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

/* Longest command line, and most words in it. */
#define SCAN_HOOK_COMMAND_MAX 4096
#define SCAN_HOOK_MAX_ARGS 64
/* Most findings one hook may report. */
#define SCAN_HOOK_MAX_FINDINGS 100000
/* Longest finding name (bytes). */
#define SCAN_HOOK_NAME_MAX 256
/* ECR's limits on a finding's attributes. */
#define SCAN_HOOK_MAX_ATTRIBUTES 50
#define SCAN_HOOK_ATTRIBUTE_KEY_MAX 128
#define SCAN_HOOK_ATTRIBUTE_VALUE_MAX 256
/* Longest scan description (status text). */
#define SCAN_HOOK_DESCRIPTION_MAX 1024

/*
 * Split a command line into words: blanks separate words; '...' keeps
 * everything literally; "..." keeps everything but \" and \\ escapes;
 * outside quotes a backslash keeps the next character. No other
 * expansion. *argv_out is a NULL-terminated array (free with
 * scan_hook_argv_free) with *argc_out words. BERTH_EINVAL with a reason
 * (cap bytes) for an empty command, an unterminated quote or a trailing
 * backslash; BERTH_ETOOBIG over SCAN_HOOK_COMMAND_MAX or
 * SCAN_HOOK_MAX_ARGS; BERTH_ENOMEM.
 */
enum berth_err scan_hook_split(const char *command, char ***argv_out, size_t *argc_out,
                               char *reason, size_t cap);
void scan_hook_argv_free(char **argv);

/*
 * Validate the hook's output: a JSON object with a "findings" array (ECR's
 * imageScanFindings shape; an optional "vulnerabilitySourceUpdatedAt" in
 * epoch seconds is used, other members are ignored) or a bare array of
 * findings. Each finding needs "name" (1..SCAN_HOOK_NAME_MAX bytes) and
 * "severity" (one of ECR's six levels); "description" (cut to 2048 bytes),
 * "uri" (dropped over 2048 bytes) and "attributes" ([{key, value}], at
 * most 50, key 1..128 and value 1..256 characters) are optional; other
 * members are ignored. *findings receives a new array of normalized
 * finding objects in the hook's order; *source_updated_at_ms the time, or
 * -1. BERTH_EINVAL with a reason naming the finding for anything else;
 * BERTH_ETOOBIG past SCAN_HOOK_MAX_FINDINGS; BERTH_ENOMEM.
 */
enum berth_err scan_hook_parse_output(const char *text, size_t len, json_t **findings,
                                      int64_t *source_updated_at_ms, char *reason, size_t cap);

/* A blob to place in the layout (borrowed strings). */
struct scan_hook_blob {
    const char *digest; /* "sha256:<hex>" */
    const char *path;   /* the blob file */
};

/* The image given to the hook (borrowed). */
struct scan_hook_image {
    const char *repo;
    const char *digest;     /* the manifest digest */
    const char *media_type; /* the manifest media type */
    const char *tag;        /* a tag of the image, or NULL */
    int64_t manifest_size;
    const struct scan_hook_blob *blobs; /* the manifest, its config and layers */
    size_t blob_count;
};

struct scan_hook_options {
    const char *command;       /* scan.hook */
    const char *work_dir;      /* where layout directories are made (created if missing) */
    int64_t timeout_ms;        /* scan.hook_timeout_seconds */
    size_t max_output;         /* scan.hook_max_output_bytes: most stdout bytes */
    const atomic_bool *cancel; /* set by another thread to stop the hook; may be NULL */
};

struct scan_hook_result {
    bool complete; /* COMPLETE, else FAILED */
    /* ECR's status description; it may quote the hook's stderr as it is
     * (scan_run_image makes every description printable) */
    char description[SCAN_HOOK_DESCRIPTION_MAX];
    json_t *findings;             /* COMPLETE: the findings (owned), else NULL */
    int64_t source_updated_at_ms; /* -1 when the hook gave none */
};

/*
 * Run the hook for one image. Whatever the hook does ends as a result:
 * COMPLETE with the findings, or FAILED with "HookError: <why>" in the
 * description (cannot run, non-zero exit or signal with the last line of
 * its stderr, timeout, too much output, invalid output, the layout could
 * not be made). Returns BERTH_OK with *out filled (free with
 * scan_hook_result_fini); BERTH_EBUSY when opt->cancel was set (the hook
 * was killed); BERTH_ENOMEM. Leaves no process and no directory behind.
 */
enum berth_err scan_hook_run(const struct scan_hook_options *opt, const struct scan_hook_image *img,
                             struct scan_hook_result *out);

void scan_hook_result_fini(struct scan_hook_result *r);

#endif
