/* Project-wide result codes. Every function that can fail returns one of
 * these; results go through out-parameters. The table lives in the lowest
 * layer (crypto/) so that every layer above can use it. */
#ifndef SY_ERR_H
#define SY_ERR_H

#include <stddef.h>

enum sy_err {
    SY_OK = 0,
    SY_ENOMEM,      /* allocation failed */
    SY_EINVAL,      /* bad argument from the caller */
    SY_ETOOBIG,     /* input over a size limit */
    SY_ETRUNC,      /* input ended early */
    SY_ETYPE,       /* a field has the wrong msgpack type */
    SY_EFIELD,      /* a required field is missing or out of range */
    SY_ETRAILING,   /* bytes left after a complete message */
    SY_EVERSION,    /* unsupported envelope format version */
    SY_ECLUSTER,    /* envelope for another cluster id */
    SY_ESENDER,     /* sender not a member of the cluster */
    SY_EMSGTYPE,    /* unknown message type */
    SY_ESIG,        /* signature does not verify */
    SY_EIO,         /* operating-system I/O error */
    SY_ECORRUPT,    /* stored data failed its checksum or is impossible */
    SY_ENOTFOUND,   /* no such key, entry or file */
    SY_EPERM,       /* permissions too open or access denied */
    SY_ECONFIG,     /* configuration invalid */
    SY_EEXIST,      /* already exists */
    SY_EFULL,       /* a bounded queue or table is full */
    SY_ENOTLEADER,  /* this node cannot order requests now */
    SY_ETIMEOUT,    /* deadline passed */
    SY_ECLOSED,     /* object closed or shutting down */
    SY_ESTALE,      /* request older than what was already applied */
    SY_ECASFAIL,    /* compare-and-swap found a different value */
    SY_EUNAUTH,     /* client not authorised by the manifest */
    SY_EUNREACH,    /* peer or cluster unreachable */
    SY_EREPLAY,     /* message already seen */
    SY_ECOMPACTED,  /* requested log range was compacted away */
    SY_EFATAL,      /* invariant broken: the node must stop */
    SY_EMEMBERSHIP, /* client's manifest describes another membership (n, f, keys) */
    SY_ERR_COUNT
};

/* Text for a code; never NULL, static storage. */
const char *sy_strerror(int err);
/* Writes a one-line reason into why (when why is non-NULL and whylen > 0)
 * and returns code: how every function that fails with a reason says it. */
int sy_whyf(char *why, size_t whylen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Short stable token ("bad-sig", "too-big") for metrics labels. */
const char *sy_errname(int err);

#endif
