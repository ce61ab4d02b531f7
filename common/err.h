/*
 * berth's one error type. Every fallible function returns enum berth_err;
 * results go out through pointers, written only on success. Each API maps
 * these to its own wire errors in one table (server/oci/oci.c for /v2, server/ecr/ecr.c for ECR).
 */
#ifndef BERTH_ERR_H
#define BERTH_ERR_H

enum berth_err {
    BERTH_OK = 0,
    BERTH_EINVAL,       /* malformed input */
    BERTH_ENOTFOUND,    /* the named thing does not exist */
    BERTH_EEXIST,       /* it exists already */
    BERTH_ETOOBIG,      /* over a stated limit */
    BERTH_EDIGEST,      /* content does not match its digest */
    BERTH_ERANGE,       /* offset or range not satisfiable / out of order */
    BERTH_EDENIED,      /* not allowed (policy, immutability, configuration) */
    BERTH_ENOMEM,       /* allocation failed */
    BERTH_EIO,          /* file system error */
    BERTH_EDB,          /* metadata database error */
    BERTH_EBUSY,        /* in use by someone else right now; retry */
    BERTH_EUNSUPPORTED, /* valid but not supported by this build or config */
    BERTH_ECONFLICT,    /* refused because of a reference (e.g. image in an index) */
    BERTH_ENOFD,        /* out of file descriptors (EMFILE or ENFILE): transient, retry */
    BERTH_EUNAVAILABLE, /* a service the store relies on (the object store, the
                         * PostgreSQL server) cannot be
                         * reached or fails for now: transient, retry */
};

/* Short, stable name of an error ("EINVAL", ...) for logs. Never NULL. */
const char *berth_strerror(enum berth_err err);

/* The berth_err for a failed system call's errno: ENOENT is BERTH_ENOTFOUND,
 * EMFILE and ENFILE BERTH_ENOFD, ENOMEM BERTH_ENOMEM, anything else BERTH_EIO.
 * A resource running out is never "not found". */
enum berth_err berth_err_from_errno(int err);

#endif
