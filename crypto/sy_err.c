#include <stdarg.h>
#include <stdio.h>
#include "crypto/sy_err.h"

static const struct {
    const char *name;
    const char *text;
} table[SY_ERR_COUNT] = {
    [SY_OK] = {"ok", "success"},
    [SY_ENOMEM] = {"nomem", "out of memory"},
    [SY_EINVAL] = {"invalid", "invalid argument"},
    [SY_ETOOBIG] = {"too-big", "input exceeds the size limit"},
    [SY_ETRUNC] = {"truncated", "input is truncated"},
    [SY_ETYPE] = {"bad-type", "field has the wrong type"},
    [SY_EFIELD] = {"bad-field", "required field missing or out of range"},
    [SY_ETRAILING] = {"trailing", "trailing bytes after message"},
    [SY_EVERSION] = {"bad-version", "unsupported envelope version"},
    [SY_ECLUSTER] = {"wrong-cluster", "message for another cluster"},
    [SY_ESENDER] = {"unknown-sender", "sender is not a cluster member"},
    [SY_EMSGTYPE] = {"unknown-type", "unknown message type"},
    [SY_ESIG] = {"bad-sig", "signature does not verify"},
    [SY_EIO] = {"io", "I/O error"},
    [SY_ECORRUPT] = {"corrupt", "stored data is corrupt"},
    [SY_ENOTFOUND] = {"not-found", "not found"},
    [SY_EPERM] = {"perm", "permission denied or permissions too open"},
    [SY_ECONFIG] = {"config", "invalid configuration"},
    [SY_EEXIST] = {"exists", "already exists"},
    [SY_EFULL] = {"full", "queue or table is full"},
    [SY_ENOTLEADER] = {"not-leader", "this node is not the leader"},
    [SY_ETIMEOUT] = {"timeout", "deadline passed"},
    [SY_ECLOSED] = {"closed", "closed"},
    [SY_ESTALE] = {"stale", "request is older than one already applied"},
    [SY_ECASFAIL] = {"cas-failed", "compare-and-swap found a different value"},
    [SY_EUNAUTH] = {"unauthorised", "client not authorised by the manifest"},
    [SY_EUNREACH] = {"unreachable", "unreachable"},
    [SY_EREPLAY] = {"replay", "message already seen"},
    [SY_ECOMPACTED] = {"compacted", "log range was compacted"},
    [SY_EFATAL] = {"fatal", "internal invariant broken"},
    [SY_EMEMBERSHIP] = {"wrong-membership", "the client's manifest describes another membership"},
};

const char *sy_strerror(int err)
{
    if (err < 0 || err >= SY_ERR_COUNT || !table[err].text)
        return "unknown error";
    return table[err].text;
}

const char *sy_errname(int err)
{
    if (err < 0 || err >= SY_ERR_COUNT || !table[err].name)
        return "unknown";
    return table[err].name;
}

int sy_whyf(char *why, size_t whylen, int code, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}
