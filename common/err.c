/* Names of berth_err values for log lines. */
#include "common/err.h"

#include <errno.h>

const char *berth_strerror(enum berth_err err)
{
    switch (err) {
    case BERTH_OK:
        return "OK";
    case BERTH_EINVAL:
        return "EINVAL";
    case BERTH_ENOTFOUND:
        return "ENOTFOUND";
    case BERTH_EEXIST:
        return "EEXIST";
    case BERTH_ETOOBIG:
        return "ETOOBIG";
    case BERTH_EDIGEST:
        return "EDIGEST";
    case BERTH_ERANGE:
        return "ERANGE";
    case BERTH_EDENIED:
        return "EDENIED";
    case BERTH_ENOMEM:
        return "ENOMEM";
    case BERTH_EIO:
        return "EIO";
    case BERTH_EDB:
        return "EDB";
    case BERTH_EBUSY:
        return "EBUSY";
    case BERTH_EUNSUPPORTED:
        return "EUNSUPPORTED";
    case BERTH_ECONFLICT:
        return "ECONFLICT";
    case BERTH_ENOFD:
        return "ENOFD";
    case BERTH_EUNAVAILABLE:
        return "EUNAVAILABLE";
    }
    return "EUNKNOWN";
}

enum berth_err berth_err_from_errno(int err)
{
    switch (err) {
    case ENOENT:
        return BERTH_ENOTFOUND;
    case EMFILE:
    case ENFILE:
        return BERTH_ENOFD;
    case ENOMEM:
        return BERTH_ENOMEM;
    default:
        return BERTH_EIO;
    }
}
