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
};

/* Short, stable name of an error ("EINVAL", ...) for logs. Never NULL. */
const char *berth_strerror(enum berth_err err);

#endif
