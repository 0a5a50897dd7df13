/* Cluster manifest and node file loading (see core/config.h and
 * docs/configuration.md).
 *
 * Parsing is one pass through libinih with a handler per section kind that
 * checks each value where it appears (so the message can carry the line
 * number), followed by whole-file checks: required keys, contiguous node
 * ids, the fault bound, timing relations, duplicates. The first problem wins
 * and becomes the one line the operator sees. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ini.h>
#include "core/config.h"
#include "core/log.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"

#define WHY_MAX 512
#define SECTION_MAX 256

/* ---------------------------------------------------------------- helpers */

const char *sy_protocol_name(int protocol)
{
    switch (protocol) {
    case SY_PROTO_RAFT: return "raft";
    case SY_PROTO_PAXOS: return "paxos";
    case SY_PROTO_PBFT: return "pbft";
    default: return "unknown";
    }
}

int sy_protocol_parse(const char *name, int *out)
{
    static const int all[] = {SY_PROTO_RAFT, SY_PROTO_PAXOS, SY_PROTO_PBFT};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, sy_protocol_name(all[i])) == 0) {
            *out = all[i];
            return SY_OK;
        }
    return SY_ECONFIG;
}

static bool protocol_is_bft(int protocol) { return protocol == SY_PROTO_PBFT; }

uint32_t sy_protocol_max_f(int protocol, uint32_t n)
{
    if (n == 0)
        return 0;
    return protocol_is_bft(protocol) ? (n - 1) / 3 : (n - 1) / 2;
}

uint32_t sy_protocol_min_n(int protocol, uint32_t f)
{
    return protocol_is_bft(protocol) ? 3 * f + 1 : 2 * f + 1;
}

static bool name_char_ok(int c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(s[i]))
            return false;
    return true;
}

/* Digits only, no sign, no spaces, no overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Digits only: a whole number, though perhaps one too large for parse_u64. */
static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Edit distance, for "did you mean" on misspelt keys. Keys are short. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* Writes "; did you mean 'x'?" or, failing a close match, the valid list. */
static void suggest(const char *got, const char *const *valid, size_t nvalid, char *out,
                    size_t cap)
{
    size_t best = 99, bi = 0;
    for (size_t i = 0; i < nvalid; i++) {
        size_t d = edit_distance(got, valid[i]);
        if (d < best) {
            best = d;
            bi = i;
        }
    }
    if (best <= 2) {
        snprintf(out, cap, "; did you mean '%s'?", valid[bi]);
        return;
    }
    size_t off = (size_t)snprintf(out, cap, "; valid keys:");
    for (size_t i = 0; i < nvalid && off < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s %s", i ? "," : "", valid[i]);
}

/* host:port after the scheme. IPv6 hosts go in brackets. */
static int check_hostport(const char *hp, const char *addr, char *why, size_t whylen)
{
    const char *colon;
    if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (!rb || rb == hp + 1 || rb[1] != ':') {
            sy_whyf(why, whylen, 0, "address '%s' has a malformed [IPv6] host; write "
                    "tcp://[::1]:7000", addr);
            return SY_ECONFIG;
        }
        for (const char *p = hp + 1; p < rb; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.') {
                sy_whyf(why, whylen, 0, "address '%s' has a malformed IPv6 host", addr);
                return SY_ECONFIG;
            }
        colon = rb + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon) {
            sy_whyf(why, whylen, 0, "address '%s' has no port; write it as host:port", addr);
            return SY_ECONFIG;
        }
        if (colon == hp) {
            sy_whyf(why, whylen, 0, "address '%s' has no host; write it as host:port", addr);
            return SY_ECONFIG;
        }
        for (const char *p = hp; p < colon; p++) {
            if (*p == ':') {
                sy_whyf(why, whylen, 0, "address '%s': put IPv6 hosts in brackets, like "
                        "[::1]:7000", addr);
                return SY_ECONFIG;
            }
            if (!name_char_ok(*p)) {
                sy_whyf(why, whylen, 0, "address '%s' has an invalid character '%c' in the host",
                        addr, *p);
                return SY_ECONFIG;
            }
        }
    }
    uint64_t port;
    if (!parse_u64(colon + 1, &port) || port < 1 || port > 65535) {
        sy_whyf(why, whylen, 0, "address '%s' has an invalid port '%s'; use 1..65535", addr,
                colon + 1);
        return SY_ECONFIG;
    }
    return SY_OK;
}

int sy_addr_check(const char *addr, bool want_http, char *why, size_t whylen)
{
    if (strlen(addr) >= SY_MAX_ADDR) {
        sy_whyf(why, whylen, 0, "address '%.40s...' is longer than %d characters", addr,
                SY_MAX_ADDR - 1);
        return SY_ECONFIG;
    }
    if (want_http) {
        if (strncmp(addr, "http://", 7) != 0) {
            sy_whyf(why, whylen, 0, "address '%s' must look like http://host:port", addr);
            return SY_ECONFIG;
        }
        return check_hostport(addr + 7, addr, why, whylen);
    }
    if (strncmp(addr, "tcp://", 6) == 0)
        return check_hostport(addr + 6, addr, why, whylen);
    if (strncmp(addr, "tls+tcp://", 10) == 0)
        return check_hostport(addr + 10, addr, why, whylen);
    if (strncmp(addr, "ipc://", 6) == 0) {
        const char *p = addr + 6;
        if (!*p) {
            sy_whyf(why, whylen, 0, "address '%s' has an empty ipc path", addr);
            return SY_ECONFIG;
        }
        for (; *p; p++)
            if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
                sy_whyf(why, whylen, 0, "address '%s' has whitespace in its ipc path", addr);
                return SY_ECONFIG;
            }
        return SY_OK;
    }
    sy_whyf(why, whylen, 0, "address '%s' must be tcp://host:port, tls+tcp://host:port or "
            "ipc://path", addr);
    return SY_ECONFIG;
}

bool sy_addr_is_tls(const char *addr)
{
    return strncmp(addr, "tls+tcp://", 10) == 0;
}

int sy_addr_host(const char *addr, char *out, size_t cap)
{
    static const char *const schemes[] = {"tls+tcp://", "tcp://", "http://"};
    const char *hp = NULL;
    for (size_t i = 0; i < 3 && !hp; i++)
        if (strncmp(addr, schemes[i], strlen(schemes[i])) == 0)
            hp = addr + strlen(schemes[i]);
    if (!hp || !*hp)
        return SY_EINVAL;
    const char *start = hp, *end;
    if (hp[0] == '[') {
        start = hp + 1;
        end = strchr(start, ']');
    } else {
        end = strrchr(hp, ':');
    }
    if (!end || end == start)
        return SY_EINVAL;
    size_t len = (size_t)(end - start);
    if (len >= cap)
        return SY_ETOOBIG;
    memcpy(out, start, len);
    out[len] = 0;
    return SY_OK;
}

/* Directory part of a path ("." for a bare name), for resolving relative
 * paths against the file that names them. */
static void dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == path)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

static int resolve_against(const char *dir, const char *value, char *out, size_t cap)
{
    int w = value[0] == '/' ? snprintf(out, cap, "%s", value)
                            : snprintf(out, cap, "%s/%s", dir, value);
    return (w < 0 || (size_t)w >= cap) ? SY_ECONFIG : SY_OK;
}

/* Checks a TLS file named by `key` in file `ctx`: it exists, is readable,
 * holds a PEM certificate and, with want_key, an unencrypted private key
 * that only its owner can read (as the Ed25519 secret key must be). Only
 * the PEM markers are checked here; the TLS engine parses the contents
 * when the transport starts. */
static int check_pem_file(const char *ctx, const char *key, const char *path, bool want_key,
                          char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            sy_whyf(why, whylen, 0, "%s: %s file %s does not exist; check the path (relative "
                    "paths are relative to %s's directory)", ctx, key, path, ctx);
        else
            sy_whyf(why, whylen, 0, "%s: cannot open %s file %s: %s", ctx, key, path,
                    strerror(e));
        return SY_ECONFIG;
    }
    int rc = SY_ECONFIG;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        sy_whyf(why, whylen, 0, "%s: %s file %s is not a regular file", ctx, key, path);
        goto out_close;
    }
    if ((uint64_t)st.st_size > SY_CFG_MAX_PEM) {
        sy_whyf(why, whylen, 0, "%s: %s file %s is larger than %u bytes; is it a PEM file?", ctx,
                key, path, SY_CFG_MAX_PEM);
        goto out_close;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        sy_whyf(why, whylen, 0, "out of memory reading %s", path);
        rc = SY_ENOMEM;
        goto out_close;
    }
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            sy_whyf(why, whylen, 0, "%s: cannot read %s file %s: %s", ctx, key, path,
                    strerror(errno));
            goto out_free;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = 0;
    if (!strstr(buf, "-----BEGIN CERTIFICATE-----")) {
        sy_whyf(why, whylen, 0, "%s: %s file %s holds no PEM certificate (-----BEGIN "
                "CERTIFICATE-----); see docs/operations.md for making one with openssl", ctx,
                key, path);
        goto out_free;
    }
    if (want_key) {
        if (strstr(buf, "ENCRYPTED PRIVATE KEY-----") || strstr(buf, "Proc-Type: 4,ENCRYPTED")) {
            sy_whyf(why, whylen, 0, "%s: %s file %s holds an encrypted private key; synod cannot "
                    "ask for a passphrase: decrypt it with openssl pkey -in KEY -out KEY", ctx,
                    key, path);
            goto out_free;
        }
        if (!strstr(buf, "PRIVATE KEY-----")) {
            sy_whyf(why, whylen, 0, "%s: %s file %s holds no PEM private key; put the node's "
                    "certificate and its key in one file (cat node.crt node.key > node.pem)",
                    ctx, key, path);
            goto out_free;
        }
        if (st.st_mode & 077) {
            sy_whyf(why, whylen, 0, "%s: %s file %s holds a private key and is readable by others "
                    "(mode 0%o); run chmod 600 %s", ctx, key, path,
                    (unsigned)(st.st_mode & 0777), path);
            goto out_free;
        }
    }
    rc = SY_OK;
out_free:
    free(buf);
out_close:
    close(fd);
    return rc;
}

/* What two addresses collide on: host:port for network schemes (a tcp and
 * an http listener cannot share a port), the path for ipc. */
static const char *addr_endpoint(const char *addr)
{
    static const char *const schemes[] = {"tls+tcp://", "tcp://", "http://"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(schemes[i]);
        if (strncmp(addr, schemes[i], l) == 0)
            return addr + l;
    }
    return addr;
}

/* --------------------------------------------------------- file reading */

typedef struct ini_src {
    const char *file;
    char *text;
    size_t len, pos;
    int lineno;          /* line the handler is being called for */
    bool at_line_start;
    bool indented;       /* the current line starts with whitespace */
    int err;             /* first error (code), its line and text */
    int err_line;
    char why[2 * WHY_MAX];
    const char *value;   /* the value being handled, for src_error's hint */
} ini_src;

static void src_error(ini_src *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void src_error(ini_src *s, const char *fmt, ...)
{
    if (s->err)
        return;
    char msg[WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* libinih ends a value only at " ;": "raft # comment" is the value */
    const char *hash = s->value ? strchr(s->value, '#') : NULL;
    bool comment = hash && hash > s->value && (hash[-1] == ' ' || hash[-1] == '\t');
    snprintf(s->why, sizeof s->why, "%s:%d: %s%s", s->file, s->lineno, msg,
             comment ? "; a comment after a value starts with ' ;' ('#' only at the start of "
                       "a line)" : "");
    s->err = SY_ECONFIG;
    s->err_line = s->lineno;
}

/* fgets-style reader over the in-memory file that counts lines, so handler
 * errors can name their line. */
static char *src_reader(char *str, int num, void *stream)
{
    ini_src *s = stream;
    if (s->pos >= s->len || num < 2)
        return NULL;
    if (s->at_line_start) {
        s->lineno++;
        s->indented = s->text[s->pos] == ' ' || s->text[s->pos] == '\t';
    }
    size_t room = (size_t)num - 1, i = 0;
    while (i < room && s->pos < s->len) {
        char c = s->text[s->pos++];
        str[i++] = c;
        if (c == '\n')
            break;
    }
    str[i] = 0;
    s->at_line_start = str[i - 1] == '\n';
    return str;
}

/* libinih reads an indented line as the continuation of the previous
 * value, which then looks like a repeated key; say what really happened. */
static void dup_key_error(ini_src *s, const char *name, const char *section)
{
    if (s->indented)
        src_error(s, "line is indented, so it continues the value of '%s' in [%s]; remove "
                  "the leading whitespace", name, section);
    else
        src_error(s, "key '%s' is set twice in [%s]; keep one", name, section);
}

static int read_text(const char *path, const char *what, char **out, size_t *len, char *why,
                     size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            sy_whyf(why, whylen, 0, "%s %s does not exist; check the path (synod-keys cluster "
                    "writes one)", what, path);
        else
            sy_whyf(why, whylen, 0, "cannot open %s %s: %s", what, path, strerror(e));
        return SY_ECONFIG;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* `--cluster DIR` for DIR/cluster.ini is an easy slip: name the file */
        char inside[PATH_MAX];
        struct stat ist;
        int dl = (int)strlen(path);
        while (dl > 1 && path[dl - 1] == '/')
            dl--;
        snprintf(inside, sizeof inside, "%.*s/cluster.ini", dl, path);
        if (!strcmp(what, "manifest") && stat(inside, &ist) == 0 && S_ISREG(ist.st_mode))
            sy_whyf(why, whylen, 0, "%s %s is a directory; did you mean %s?", what, path, inside);
        else
            sy_whyf(why, whylen, 0, "%s %s is a directory, not a file", what, path);
        close(fd);
        return SY_ECONFIG;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        sy_whyf(why, whylen, 0, "%s %s is not a regular file", what, path);
        close(fd);
        return SY_ECONFIG;
    }
    if ((uint64_t)st.st_size > SY_CFG_MAX_FILE) {
        sy_whyf(why, whylen, 0, "%s %s is larger than %u bytes", what, path, SY_CFG_MAX_FILE);
        close(fd);
        return SY_ECONFIG;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        sy_whyf(why, whylen, 0, "out of memory reading %s", path);
        return SY_ENOMEM;
    }
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            sy_whyf(why, whylen, 0, "cannot read %s %s: %s", what, path, strerror(errno));
            free(buf);
            close(fd);
            return SY_ECONFIG;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    if (memchr(buf, 0, n)) {
        sy_whyf(why, whylen, 0, "%s %s contains NUL bytes; it is not a text INI file", what,
                path);
        free(buf);
        return SY_ECONFIG;
    }
    *out = buf;
    *len = n;
    return SY_OK;
}

/* Every section header once, and none without a key: libinih calls the
 * handler per key only (an empty section never reaches it: a [client]
 * without public_key vanished, a second empty [cluster] passed) and
 * merges a section repeated back to back (reported as a key set twice). */
static int check_sections(const char *path, const char *text, size_t len, char *why,
                          size_t whylen)
{
    enum { MAXS = 1024 };
    typedef struct { char name[SECTION_MAX]; int line; } sec;
    sec *secs = calloc(MAXS, sizeof *secs);
    if (!secs) {
        sy_whyf(why, whylen, 0, "out of memory parsing %s", path);
        return SY_ENOMEM;
    }
    int ns = 0, cur = -1, line = 0, rc = SY_OK;
    bool has_key = false;
    for (size_t i = 0; i < len && rc == SY_OK;) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        line++;
        size_t b = i;
        while (b < e && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r'))
            b++;
        if (b < e && text[b] == '[') {
            size_t c = b + 1;
            while (c < e && text[c] != ']')
                c++;
            size_t nl = c - b - 1 < SECTION_MAX - 1 ? c - b - 1 : SECTION_MAX - 1;
            /* a repeat first: "[cluster]" on two lines in a row is a section
             * written twice, not an empty one */
            for (int k = 0; k < ns; k++)
                if (strlen(secs[k].name) == nl && !memcmp(secs[k].name, text + b + 1, nl)) {
                    bool node = !strncmp(secs[k].name, "node \"", 6);
                    sy_whyf(why, whylen, 0, "%s:%d: %s%.*s%s[%s] appears twice (first at line %d); "
                            "%s", path, line, node ? "duplicate node id " : "",
                            node ? (int)strcspn(secs[k].name + 6, "\"") : 0,
                            node ? secs[k].name + 6 : "", node ? ": " : "", secs[k].name,
                            secs[k].line, node ? "node ids must be unique" : "merge them");
                    rc = SY_ECONFIG;
                    break;
                }
            if (rc == SY_OK && cur >= 0 && !has_key) {
                sy_whyf(why, whylen, 0, "%s:%d: [%s] has no keys; fill it in or remove it", path,
                        secs[cur].line, secs[cur].name);
                rc = SY_ECONFIG;
                break;
            }
            if (rc == SY_OK && ns < MAXS) {
                memcpy(secs[ns].name, text + b + 1, nl);
                secs[ns].name[nl] = 0;
                secs[ns].line = line;
                cur = ns++;
                has_key = false;
            }
        } else if (b < e && text[b] != ';' && text[b] != '#') {
            has_key = true;
        }
        i = e + 1;
    }
    if (rc == SY_OK && cur >= 0 && !has_key) {
        sy_whyf(why, whylen, 0, "%s:%d: [%s] has no keys; fill it in or remove it", path,
                secs[cur].line, secs[cur].name);
        rc = SY_ECONFIG;
    }
    free(secs);
    return rc;
}

/* Runs libinih over path. Checks line lengths first because libinih would
 * split an overlong line and report a confusing error. */
static int parse_ini(const char *path, const char *what, ini_handler handler, ini_src *s,
                     void *user, char *why, size_t whylen)
{
    (void)user;
    int rc = read_text(path, what, &s->text, &s->len, why, whylen);
    if (rc)
        return rc;
    s->file = path;
    s->at_line_start = true;
    int maxline = ini_max_line - 3;
    int line = 1;
    size_t start = 0;
    for (size_t i = 0; i <= s->len; i++) {
        if (i == s->len || s->text[i] == '\n') {
            if ((int)(i - start) > maxline) {
                sy_whyf(why, whylen, 0, "%s:%d: line is longer than %d characters; shorten it "
                        "(use a relative path?)", path, line, maxline);
                return SY_ECONFIG;
            }
            line++;
            start = i + 1;
        }
    }
    if ((rc = check_sections(path, s->text, s->len, why, whylen)))
        return rc;
    int r = ini_parse_stream(src_reader, s, handler, user);
    if (r == -2) {
        sy_whyf(why, whylen, 0, "out of memory parsing %s", path);
        return SY_ENOMEM;
    }
    if (r > 0 && (!s->err || r < s->err_line)) {
        sy_whyf(why, whylen, 0, "%s:%d: syntax error; expected '[section]', 'key = value' or a "
                "'; comment'", path, r);
        return SY_ECONFIG;
    }
    if (s->err) {
        sy_whyf(why, whylen, 0, "%s", s->why);
        return s->err;
    }
    if (r != 0) {
        sy_whyf(why, whylen, 0, "cannot parse %s %s", what, path);
        return SY_ECONFIG;
    }
    return SY_OK;
}

/* --------------------------------------------------------- the manifest */

enum vkind { V_ID, V_PROTO, V_U32, V_U64, V_BOOL, V_PATH };

typedef struct ckey {
    const char *name;
    int kind;
    size_t off;
    uint64_t min, max;
} ckey;

#define CF(field) offsetof(sy_cluster_cfg, field)
static const ckey cluster_keys[] = {
    {"id", V_ID, CF(id), 0, 0},
    {"protocol", V_PROTO, CF(protocol), 0, 0},
    {"f", V_U32, CF(f), 0, (SY_MAX_NODES - 1) / 2},
    {"batch_max", V_U32, CF(batch_max), 1, SY_MAX_BATCH},
    {"batch_bytes_max", V_U32, CF(batch_bytes_max), 1024, SY_MAX_ENVELOPE / 2},
    {"heartbeat_ms", V_U32, CF(heartbeat_ms), 1, 60000},
    {"election_min_ms", V_U32, CF(election_min_ms), 1, 600000},
    {"election_max_ms", V_U32, CF(election_max_ms), 2, 600000},
    {"request_timeout_ms", V_U32, CF(request_timeout_ms), 1, 600000},
    {"batch_delay_ms", V_U32, CF(batch_delay_ms), 0, 10000},
    {"max_inflight", V_U32, CF(max_inflight), 1, 4096},
    {"max_pending", V_U32, CF(max_pending), 1, 1000000},
    {"snapshot_threshold", V_U64, CF(snapshot_threshold), 1, 1ull << 40},
    /* The PBFT engine keeps at most SY_PBFT_MAX_WINDOW sequence numbers in
     * its log (the certificates a VIEW-CHANGE carries), and the window must
     * hold two checkpoint intervals. */
    {"checkpoint_interval", V_U32, CF(checkpoint_interval), 1, SY_PBFT_MAX_WINDOW / 2},
    {"watermark_window", V_U32, CF(watermark_window), 2, SY_PBFT_MAX_WINDOW},
    {"state_chunk_bytes", V_U32, CF(state_chunk_bytes), 1024, SY_STATE_CHUNK_MAX},
    {"prevote", V_BOOL, CF(prevote), 0, 0},
    {"check_quorum", V_BOOL, CF(check_quorum), 0, 0},
    {"tls_ca", V_PATH, CF(tls_ca), 0, 0},
};
#define N_CLUSTER_KEYS (sizeof cluster_keys / sizeof cluster_keys[0])
static const char *const node_keys[] = {"public_key", "peer", "client", "metrics"};
static const char *const client_keys[] = {"public_key", "admin"};

enum { NK_PUB, NK_PEER, NK_CLIENT, NK_METRICS };
enum { SEC_NONE, SEC_CLUSTER, SEC_NODE, SEC_CLIENT };

typedef struct node_state {
    bool present;
    int line;            /* first line of its section */
    unsigned seen;       /* bit per node_keys entry */
} node_state;

typedef struct man_ctx {
    ini_src src;
    sy_cluster_cfg *cfg;
    bool cluster_seen;
    unsigned cluster_seen_keys; /* bit per cluster_keys entry */
    int cluster_line;
    node_state nodes[SY_MAX_NODES];
    sy_node_entry *tmp_nodes;   /* SY_MAX_NODES slots, indexed by id */
    unsigned *client_seen;      /* per client: bit per client_keys entry */
    int *client_line;
    size_t client_cap;
    char prev_section[SECTION_MAX];
    int cur_kind;
    size_t cur_index;           /* node id or client index */
} man_ctx;

/* `node "3"` -> 3. Leading zeros are refused so "0" and "00" cannot both
 * name node 0. */
static int parse_quoted(const char *section, const char *prefix, char *out, size_t cap)
{
    size_t pl = strlen(prefix);
    if (strncmp(section, prefix, pl) != 0)
        return -1;
    const char *p = section + pl;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '"')
        return 1;
    p++;
    const char *q = strchr(p, '"');
    if (!q || q[1] || (size_t)(q - p) >= cap)
        return 1;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return 0;
}

static int client_add(man_ctx *m, const char *name)
{
    sy_cluster_cfg *c = m->cfg;
    for (size_t i = 0; i < c->n_clients; i++)
        if (strcmp(c->clients[i].name, name) == 0) {
            src_error(&m->src, "duplicate section [client \"%s\"] (first at line %d); client "
                      "names must be unique", name, m->client_line[i]);
            return SY_ECONFIG;
        }
    if (c->n_clients >= SY_MAX_CLIENTS) {
        src_error(&m->src, "more than %u [client] sections; the limit is %u", SY_MAX_CLIENTS,
                  SY_MAX_CLIENTS);
        return SY_ECONFIG;
    }
    if (c->n_clients == m->client_cap) {
        size_t cap = m->client_cap ? m->client_cap * 2 : 8;
        sy_client_entry *ce = realloc(c->clients, cap * sizeof *ce);
        if (!ce)
            return SY_ENOMEM;
        c->clients = ce;
        unsigned *cs = realloc(m->client_seen, cap * sizeof *cs);
        if (!cs)
            return SY_ENOMEM;
        m->client_seen = cs;
        int *cl = realloc(m->client_line, cap * sizeof *cl);
        if (!cl)
            return SY_ENOMEM;
        m->client_line = cl;
        m->client_cap = cap;
    }
    size_t i = c->n_clients++;
    memset(&c->clients[i], 0, sizeof c->clients[i]);
    /* the caller checked the name's length; copy at most what fits */
    size_t nl = strnlen(name, sizeof c->clients[i].name - 1);
    memcpy(c->clients[i].name, name, nl);
    c->clients[i].name[nl] = 0;
    c->clients[i].client_id = SY_CLIENT_ID_BASE + (uint32_t)i;
    m->client_seen[i] = 0;
    m->client_line[i] = m->src.lineno;
    m->cur_index = i;
    return SY_OK;
}

/* Called when the handler sees a section name different from the last. */
static int enter_section(man_ctx *m, const char *section)
{
    char arg[SECTION_MAX];
    snprintf(m->prev_section, sizeof m->prev_section, "%s", section);
    if (strcmp(section, "cluster") == 0) {
        if (m->cluster_seen) {
            src_error(&m->src, "[cluster] appears twice (first at line %d); merge them",
                      m->cluster_line);
            return SY_ECONFIG;
        }
        m->cluster_seen = true;
        m->cluster_line = m->src.lineno;
        m->cur_kind = SEC_CLUSTER;
        return SY_OK;
    }
    int q = parse_quoted(section, "node", arg, sizeof arg);
    if (q == 0 || (q == 1 && strncmp(section, "node", 4) == 0 &&
                   (section[4] == 0 || section[4] == ' '))) {
        uint64_t id;
        if (q != 0 || !parse_u64(arg, &id) || (arg[0] == '0' && arg[1])) {
            src_error(&m->src, "malformed section [%s]; write [node \"ID\"] with a decimal "
                      "node id, like [node \"0\"]", section);
            return SY_ECONFIG;
        }
        if (id >= SY_MAX_NODES) {
            src_error(&m->src, "node id %llu in [%s] is out of range; node ids are 0..n-1 "
                      "and a cluster has at most %u nodes", (unsigned long long)id, section,
                      SY_MAX_NODES);
            return SY_ECONFIG;
        }
        if (m->nodes[id].present) {
            src_error(&m->src, "duplicate node id %llu: [%s] appears twice (first at line "
                      "%d); node ids must be unique", (unsigned long long)id, section,
                      m->nodes[id].line);
            return SY_ECONFIG;
        }
        m->nodes[id].present = true;
        m->nodes[id].line = m->src.lineno;
        m->tmp_nodes[id].id = (uint32_t)id;
        m->cur_kind = SEC_NODE;
        m->cur_index = (size_t)id;
        return SY_OK;
    }
    q = parse_quoted(section, "client", arg, sizeof arg);
    if (q == 0 || (q == 1 && strncmp(section, "client", 6) == 0 &&
                   (section[6] == 0 || section[6] == ' '))) {
        if (q != 0 || !name_ok(arg, SY_MAX_CLIENT_NAME)) {
            src_error(&m->src, "malformed section [%s]; write [client \"NAME\"] with a name of "
                      "1..%d characters from A-Z a-z 0-9 . _ -", section, SY_MAX_CLIENT_NAME);
            return SY_ECONFIG;
        }
        m->cur_kind = SEC_CLIENT;
        return client_add(m, arg);
    }
    if (section[0] == 0)
        src_error(&m->src, "key outside any section; put it under [cluster], [node \"ID\"] "
                  "or [client \"NAME\"]");
    else
        src_error(&m->src, "unknown section [%s]; valid sections are [cluster], [node \"ID\"] "
                  "and [client \"NAME\"]", section);
    return SY_ECONFIG;
}

static int cluster_key(man_ctx *m, const char *name, const char *value)
{
    size_t k;
    for (k = 0; k < N_CLUSTER_KEYS; k++)
        if (strcmp(cluster_keys[k].name, name) == 0)
            break;
    if (k == N_CLUSTER_KEYS) {
        const char *names[N_CLUSTER_KEYS];
        for (size_t i = 0; i < N_CLUSTER_KEYS; i++)
            names[i] = cluster_keys[i].name;
        char hint[WHY_MAX];
        suggest(name, names, N_CLUSTER_KEYS, hint, sizeof hint);
        src_error(&m->src, "unknown key '%s' in [cluster]%s", name, hint);
        return SY_ECONFIG;
    }
    const ckey *ck = &cluster_keys[k];
    if (m->cluster_seen_keys & (1u << k)) {
        dup_key_error(&m->src, name, "cluster");
        return SY_ECONFIG;
    }
    m->cluster_seen_keys |= 1u << k;
    char *base = (char *)m->cfg;
    switch (ck->kind) {
    case V_ID:
        if (!name_ok(value, SY_MAX_CLUSTER_ID)) {
            src_error(&m->src, "cluster id '%s' is invalid; use 1..%u characters from "
                      "A-Z a-z 0-9 . _ -", value, SY_MAX_CLUSTER_ID);
            return SY_ECONFIG;
        }
        snprintf(m->cfg->id, sizeof m->cfg->id, "%s", value);
        return SY_OK;
    case V_PROTO:
        if (sy_protocol_parse(value, &m->cfg->protocol) != SY_OK) {
            src_error(&m->src, "unknown protocol '%s' in [cluster]; valid protocols: raft, "
                      "paxos, pbft", value);
            return SY_ECONFIG;
        }
        return SY_OK;
    case V_PATH: {
        char dir[SY_CFG_MAX_PATH];
        if (!value[0]) {
            src_error(&m->src, "%s in [cluster] is empty; give a path", name);
            return SY_ECONFIG;
        }
        dir_of(m->cfg->path, dir, sizeof dir);
        if (resolve_against(dir, value, base + ck->off, SY_CFG_MAX_PATH) != SY_OK) {
            src_error(&m->src, "%s in [cluster] is too long a path", name);
            return SY_ECONFIG;
        }
        return SY_OK;
    }
    case V_BOOL: {
        bool b;
        if (!parse_bool(value, &b)) {
            src_error(&m->src, "%s = '%s' in [cluster] is not a boolean; use true or false",
                      name, value);
            return SY_ECONFIG;
        }
        *(bool *)(base + ck->off) = b;
        return SY_OK;
    }
    default: {
        uint64_t v;
        if (!parse_u64(value, &v)) {
            src_error(&m->src, "%s = '%s' in [cluster] is %s; expected %llu..%llu", name, value,
                      all_digits(value) ? "out of range" : "not a whole number",
                      (unsigned long long)ck->min, (unsigned long long)ck->max);
            return SY_ECONFIG;
        }
        if (v < ck->min || v > ck->max) {
            src_error(&m->src, "%s = %llu in [cluster] is out of range; expected %llu..%llu",
                      name, (unsigned long long)v, (unsigned long long)ck->min,
                      (unsigned long long)ck->max);
            return SY_ECONFIG;
        }
        if (ck->kind == V_U64)
            *(uint64_t *)(base + ck->off) = v;
        else
            *(uint32_t *)(base + ck->off) = (uint32_t)v;
        return SY_OK;
    }
    }
}

static int pubkey_value(man_ctx *m, const char *section, const char *value, sy_pubkey *out)
{
    if (sy_pubkey_from_b64(value, out) != SY_OK) {
        src_error(&m->src, "public_key in [%s] is not base64 of 32 bytes; copy it from the "
                  "key's .pub file (synod-keys pub FILE)", section);
        return SY_ECONFIG;
    }
    return SY_OK;
}

static int node_key(man_ctx *m, const char *section, const char *name, const char *value)
{
    size_t k;
    for (k = 0; k < 4; k++)
        if (strcmp(node_keys[k], name) == 0)
            break;
    if (k == 4) {
        char hint[WHY_MAX];
        suggest(name, node_keys, 4, hint, sizeof hint);
        src_error(&m->src, "unknown key '%s' in [%s]%s", name, section, hint);
        return SY_ECONFIG;
    }
    node_state *ns = &m->nodes[m->cur_index];
    if (ns->seen & (1u << k)) {
        dup_key_error(&m->src, name, section);
        return SY_ECONFIG;
    }
    ns->seen |= 1u << k;
    sy_node_entry *ne = &m->tmp_nodes[m->cur_index];
    if (k == NK_PUB)
        return pubkey_value(m, section, value, &ne->pubkey);
    char why[WHY_MAX];
    if (sy_addr_check(value, k == NK_METRICS, why, sizeof why) != SY_OK) {
        src_error(&m->src, "%s in [%s]: %s", name, section, why);
        return SY_ECONFIG;
    }
    char *dst = k == NK_PEER ? ne->peer : k == NK_CLIENT ? ne->client : ne->metrics;
    snprintf(dst, SY_MAX_ADDR, "%s", value);
    return SY_OK;
}

static int client_key(man_ctx *m, const char *section, const char *name, const char *value)
{
    unsigned k = strcmp(name, "public_key") == 0 ? 0 : strcmp(name, "admin") == 0 ? 1 : 2;
    if (k == 2) {
        char hint[WHY_MAX];
        suggest(name, client_keys, 2, hint, sizeof hint);
        src_error(&m->src, "unknown key '%s' in [%s]%s", name, section, hint);
        return SY_ECONFIG;
    }
    if (m->client_seen[m->cur_index] & (1u << k)) {
        dup_key_error(&m->src, name, section);
        return SY_ECONFIG;
    }
    m->client_seen[m->cur_index] |= 1u << k;
    sy_client_entry *ce = &m->cfg->clients[m->cur_index];
    if (k == 1) {
        if (!parse_bool(value, &ce->admin)) {
            src_error(&m->src, "admin = '%s' in [%s] is not a boolean; use true or false", value,
                      section);
            return SY_ECONFIG;
        }
        return SY_OK;
    }
    return pubkey_value(m, section, value, &ce->pubkey);
}

static int manifest_handler(void *user, const char *section, const char *name,
                            const char *value)
{
    man_ctx *m = user;
    if (m->src.err)
        return 1; /* only the first problem is reported */
    m->src.value = value;
    int rc = SY_OK;
    if (m->cur_kind == SEC_NONE || strcmp(section, m->prev_section) != 0)
        rc = enter_section(m, section);
    if (rc == SY_OK) {
        switch (m->cur_kind) {
        case SEC_CLUSTER: rc = cluster_key(m, name, value); break;
        case SEC_NODE: rc = node_key(m, section, name, value); break;
        case SEC_CLIENT: rc = client_key(m, section, name, value); break;
        default: rc = SY_ECONFIG; break;
        }
    }
    m->src.value = NULL;   /* libinih's buffer: gone after this call */
    if (rc == SY_ENOMEM && !m->src.err) {
        m->src.err = SY_ENOMEM;
        m->src.err_line = m->src.lineno;
        snprintf(m->src.why, sizeof m->src.why, "out of memory parsing %s", m->src.file);
    }
    return rc == SY_OK;
}

static void set_defaults(sy_cluster_cfg *c)
{
    c->heartbeat_ms = SY_DEF_HEARTBEAT_MS;
    c->election_min_ms = SY_DEF_ELECTION_MIN_MS;
    c->election_max_ms = SY_DEF_ELECTION_MAX_MS;
    c->request_timeout_ms = SY_DEF_REQUEST_TIMEOUT_MS;
    c->batch_delay_ms = SY_DEF_BATCH_DELAY_MS;
    c->batch_max = SY_DEF_BATCH_MAX;
    c->batch_bytes_max = SY_DEF_BATCH_BYTES_MAX;
    c->max_inflight = SY_DEF_MAX_INFLIGHT;
    c->max_pending = SY_DEF_MAX_PENDING;
    c->snapshot_threshold = SY_DEF_SNAPSHOT_THRESHOLD;
    c->checkpoint_interval = SY_DEF_CHECKPOINT_INTERVAL;
    c->state_chunk_bytes = SY_STATE_CHUNK_DEF;
    c->watermark_window = SY_DEF_WATERMARK_WINDOW;
    c->prevote = true;
    c->check_quorum = true;
}

static bool cluster_key_seen(const man_ctx *m, const char *name)
{
    for (size_t k = 0; k < N_CLUSTER_KEYS; k++)
        if (strcmp(cluster_keys[k].name, name) == 0)
            return m->cluster_seen_keys & (1u << k);
    return false;
}

/* TLS is all or nothing: either every peer and client address is
 * tls+tcp:// and [cluster] tls_ca names the CA, or none is. A mix would
 * leave some links unable to talk to others (a TLS listener cannot accept
 * a plain dialer), which is better refused here than debugged at run time. */
static int validate_tls(man_ctx *m, uint32_t n, char *why, size_t whylen)
{
    sy_cluster_cfg *c = m->cfg;
    const char *file = c->path;
    static const char *const lab[2] = {"peer", "client"};
    int tls_node = -1, plain_node = -1, tls_k = 0, plain_k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *list[2] = {m->tmp_nodes[i].peer, m->tmp_nodes[i].client};
        for (int k = 0; k < 2; k++) {
            if (sy_addr_is_tls(list[k])) {
                if (tls_node < 0) {
                    tls_node = (int)i;
                    tls_k = k;
                }
            } else if (plain_node < 0) {
                plain_node = (int)i;
                plain_k = k;
            }
        }
    }
    if (tls_node >= 0 && plain_node >= 0) {
        const sy_node_entry *pe = &m->tmp_nodes[plain_node];
        sy_whyf(why, whylen, 0, "%s: [node \"%d\"] %s is %s but [node \"%d\"] %s is tls+tcp://; "
                "TLS is all or nothing: use tls+tcp:// for every peer and client address, or "
                "for none", file, plain_node, lab[plain_k], plain_k ? pe->client : pe->peer,
                tls_node, lab[tls_k]);
        return SY_ECONFIG;
    }
    if (tls_node >= 0 && !c->tls_ca[0]) {
        sy_whyf(why, whylen, 0, "%s: the addresses are tls+tcp:// but [cluster] has no tls_ca; add "
                "tls_ca = PATH (PEM file of the CA that signed every node's certificate)", file);
        return SY_ECONFIG;
    }
    if (tls_node < 0 && c->tls_ca[0]) {
        sy_whyf(why, whylen, 0, "%s: [cluster] tls_ca is set but no address is tls+tcp://; write "
                "every peer and client address as tls+tcp://host:port, or remove tls_ca", file);
        return SY_ECONFIG;
    }
    if (c->tls_ca[0])
        return check_pem_file(file, "tls_ca", c->tls_ca, false, why, whylen);
    return SY_OK;
}

/* Whole-manifest checks once every line is in. */
static int validate(man_ctx *m, char *why, size_t whylen)
{
    sy_cluster_cfg *c = m->cfg;
    const char *file = c->path;
    if (!m->cluster_seen) {
        sy_whyf(why, whylen, 0, "%s: missing [cluster] section; add one with at least id and "
                "protocol", file);
        return SY_ECONFIG;
    }
    if (!cluster_key_seen(m, "id")) {
        sy_whyf(why, whylen, 0, "%s: [cluster] is missing required key 'id' (a name like "
                "'demo')", file);
        return SY_ECONFIG;
    }
    if (!cluster_key_seen(m, "protocol")) {
        sy_whyf(why, whylen, 0, "%s: [cluster] is missing required key 'protocol' (raft, paxos "
                "or pbft)", file);
        return SY_ECONFIG;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < SY_MAX_NODES; i++)
        n += m->nodes[i].present;
    if (n == 0) {
        sy_whyf(why, whylen, 0, "%s: no [node \"ID\"] sections; a cluster needs at least one node",
                file);
        return SY_ECONFIG;
    }
    for (uint32_t i = 0; i < n; i++)
        if (!m->nodes[i].present) {
            uint32_t hi = 0;
            for (uint32_t j = 0; j < SY_MAX_NODES; j++)
                if (m->nodes[j].present)
                    hi = j;
            sy_whyf(why, whylen, 0, "%s: node ids must be contiguous 0..n-1: the manifest has %u "
                    "nodes (highest id %u) but no [node \"%u\"]; renumber the nodes", file, n,
                    hi, i);
            return SY_ECONFIG;
        }
    for (uint32_t i = 0; i < n; i++) {
        static const char *const hint[] = {
            "copy it from keys/node-ID.key.pub", "like tcp://127.0.0.1:7000",
            "like tcp://127.0.0.1:7100"};
        for (int k = 0; k < 3; k++)
            if (!(m->nodes[i].seen & (1u << k))) {
                sy_whyf(why, whylen, 0, "%s:%d: [node \"%u\"] is missing required key '%s' (%s)",
                        file, m->nodes[i].line, i, node_keys[k], hint[k]);
                return SY_ECONFIG;
            }
    }
    for (size_t i = 0; i < c->n_clients; i++)
        if (!(m->client_seen[i] & 1u)) {
            sy_whyf(why, whylen, 0, "%s:%d: [client \"%s\"] is missing required key 'public_key'",
                    file, m->client_line[i], c->clients[i].name);
            return SY_ECONFIG;
        }

    c->n = n;
    uint32_t min_n = sy_protocol_min_n(c->protocol, c->f);
    if (!cluster_key_seen(m, "f")) {
        c->f = sy_protocol_max_f(c->protocol, n);
    } else if (n < min_n) {
        sy_whyf(why, whylen, 0, "%s: protocol %s with f=%u needs n >= %s = %u nodes, manifest has "
                "%u; add nodes or lower f", file, sy_protocol_name(c->protocol), c->f,
                protocol_is_bft(c->protocol) ? "3f+1" : "2f+1", min_n, n);
        return SY_ECONFIG;
    }
    if (c->protocol == SY_PROTO_PBFT && !cluster_key_seen(m, "max_inflight"))
        c->max_inflight = SY_DEF_PBFT_MAX_INFLIGHT;
    if (c->election_min_ms >= c->election_max_ms) {
        sy_whyf(why, whylen, 0, "%s: [cluster] election_min_ms (%u) must be below "
                "election_max_ms (%u)", file, c->election_min_ms, c->election_max_ms);
        return SY_ECONFIG;
    }
    if (c->heartbeat_ms >= c->election_min_ms) {
        sy_whyf(why, whylen, 0, "%s: [cluster] heartbeat_ms (%u) must be below election_min_ms "
                "(%u), or followers time out between heartbeats", file, c->heartbeat_ms,
                c->election_min_ms);
        return SY_ECONFIG;
    }
    if (c->watermark_window < 2 * c->checkpoint_interval) {
        sy_whyf(why, whylen, 0, "%s: [cluster] watermark_window (%u) must be at least twice "
                "checkpoint_interval (%u) so the window can move at each checkpoint", file,
                c->watermark_window, c->checkpoint_interval);
        return SY_ECONFIG;
    }

    /* Duplicate public keys: one key, one identity, or a signature could be
     * attributed to the wrong member. */
    size_t total = n + c->n_clients;
    for (size_t i = 0; i < total; i++) {
        const sy_pubkey *a = i < n ? &m->tmp_nodes[i].pubkey : &c->clients[i - n].pubkey;
        for (size_t j = i + 1; j < total; j++) {
            const sy_pubkey *b = j < n ? &m->tmp_nodes[j].pubkey : &c->clients[j - n].pubkey;
            if (memcmp(a->b, b->b, SY_PUBKEY_LEN) == 0) {
                char sa[SY_MAX_CLIENT_NAME + 16], sb[SY_MAX_CLIENT_NAME + 16];
                if (i < n)
                    snprintf(sa, sizeof sa, "node \"%zu\"", i);
                else
                    snprintf(sa, sizeof sa, "client \"%s\"", c->clients[i - n].name);
                if (j < n)
                    snprintf(sb, sizeof sb, "node \"%zu\"", j);
                else
                    snprintf(sb, sizeof sb, "client \"%s\"", c->clients[j - n].name);
                sy_whyf(why, whylen, 0, "%s: duplicate public key: [%s] and [%s] have the same "
                        "public_key; every member needs its own key (synod-keys gen)", file,
                        sa, sb);
                return SY_ECONFIG;
            }
        }
    }
    /* Duplicate addresses: two listeners cannot bind one endpoint. */
    const char *addrs[SY_MAX_NODES * 3];
    const char *labels[SY_MAX_NODES * 3];
    uint32_t owner[SY_MAX_NODES * 3];
    size_t na = 0;
    for (uint32_t i = 0; i < n; i++) {
        const sy_node_entry *ne = &m->tmp_nodes[i];
        const char *list[3] = {ne->peer, ne->client, ne->metrics};
        static const char *const lab[3] = {"peer", "client", "metrics"};
        for (int k = 0; k < 3; k++) {
            if (!list[k][0])
                continue;
            addrs[na] = list[k];
            labels[na] = lab[k];
            owner[na] = i;
            na++;
        }
    }
    for (size_t i = 0; i < na; i++)
        for (size_t j = i + 1; j < na; j++)
            if (strcmp(addr_endpoint(addrs[i]), addr_endpoint(addrs[j])) == 0) {
                sy_whyf(why, whylen, 0, "%s: duplicate address %s: %s of [node \"%u\"] and %s of "
                        "[node \"%u\"]; give each endpoint its own port", file,
                        addr_endpoint(addrs[j]), labels[i], owner[i], labels[j], owner[j]);
                return SY_ECONFIG;
            }

    int rc = validate_tls(m, n, why, whylen);
    if (rc != SY_OK)
        return rc;

    c->nodes = calloc(n, sizeof *c->nodes);
    c->node_keys = calloc(n, sizeof *c->node_keys);
    if (!c->nodes || !c->node_keys) {
        sy_whyf(why, whylen, 0, "out of memory loading %s", file);
        return SY_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        c->nodes[i] = m->tmp_nodes[i];
        c->node_keys[i] = m->tmp_nodes[i].pubkey;
    }
    return SY_OK;
}

int sy_cluster_load(const char *path, sy_cluster_cfg *cfg, char *why, size_t whylen)
{
    memset(cfg, 0, sizeof *cfg);
    if (strlen(path) >= sizeof cfg->path) {
        sy_whyf(why, whylen, 0, "manifest path is longer than %d bytes", SY_CFG_MAX_PATH - 1);
        return SY_ECONFIG;
    }
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    set_defaults(cfg);
    man_ctx *m = calloc(1, sizeof *m);
    if (!m) {
        sy_whyf(why, whylen, 0, "out of memory loading %s", path);
        return SY_ENOMEM;
    }
    int rc = SY_ENOMEM;
    m->cfg = cfg;
    m->tmp_nodes = calloc(SY_MAX_NODES, sizeof *m->tmp_nodes);
    if (!m->tmp_nodes) {
        sy_whyf(why, whylen, 0, "out of memory loading %s", path);
        goto out_free_ctx;
    }
    rc = parse_ini(path, "manifest", manifest_handler, &m->src, m, why, whylen);
    if (rc == SY_OK)
        rc = validate(m, why, whylen);
    if (rc == SY_OK) {
        sy_cluster_directory(cfg, &cfg->directory);
        sy_cluster_cfg_membership(cfg, &cfg->membership);
    }
out_free_ctx:
    free(m->src.text);
    free(m->tmp_nodes);
    free(m->client_seen);
    free(m->client_line);
    free(m);
    if (rc != SY_OK) {
        sy_cluster_free(cfg);
        snprintf(cfg->path, sizeof cfg->path, "%s", path);
    }
    return rc;
}

void sy_cluster_cfg_membership(const sy_cluster_cfg *cfg, sy_digest *out)
{
    static const char tag[] = "synod-membership-v1";
    uint8_t hdr[1 + 1 + 4 + 4];
    size_t idlen = strlen(cfg->id);
    hdr[0] = (uint8_t)idlen;   /* <= SY_MAX_CLUSTER_ID */
    hdr[1] = (uint8_t)cfg->protocol;
    for (int i = 0; i < 4; i++) {
        hdr[2 + i] = (uint8_t)(cfg->n >> (8 * i));
        hdr[6 + i] = (uint8_t)(cfg->f >> (8 * i));
    }
    sy_hasher h;
    sy_hash_init(&h);
    sy_hash_update(&h, tag, sizeof tag);
    sy_hash_update(&h, hdr, sizeof hdr);
    sy_hash_update(&h, cfg->id, idlen);
    for (uint32_t i = 0; i < cfg->n; i++)
        sy_hash_update(&h, cfg->node_keys[i].b, sizeof cfg->node_keys[i].b);
    sy_hash_final(&h, out);
}

void sy_cluster_free(sy_cluster_cfg *cfg)
{
    if (!cfg)
        return;
    free(cfg->nodes);
    free(cfg->node_keys);
    free(cfg->clients);
    cfg->nodes = NULL;
    cfg->node_keys = NULL;
    cfg->clients = NULL;
    cfg->n = 0;
    cfg->n_clients = 0;
}

/* ------------------------------------------------------------ node file */

static const char *const nodefile_keys[] = {"id", "secret_key", "data_dir", "cluster",
                                            "log_level", "tls_cert", "commit_interval_ms"};
enum { NF_ID, NF_SECRET, NF_DATA, NF_CLUSTER, NF_LOG, NF_TLS_CERT, NF_COMMIT_MS, NF_COUNT };

typedef struct nf_ctx {
    ini_src src;
    sy_node_cfg *ncfg;
    char dir[SY_CFG_MAX_PATH];
    unsigned seen;
} nf_ctx;

/* Relative paths in a node file are relative to the node file, so a
 * generated cluster directory works wherever it is moved or run from. */
static int resolve(const nf_ctx *c, const char *value, char *out, size_t cap)
{
    return resolve_against(c->dir, value, out, cap);
}

static int nodefile_key(nf_ctx *c, const char *section, const char *name, const char *value)
{
    if (strcmp(section, "node") != 0) {
        if (section[0] == 0)
            src_error(&c->src, "key '%s' outside any section; put it under [node]", name);
        else
            src_error(&c->src, "unknown section [%s] in a node file; the only section is "
                      "[node]", section);
        return 0;
    }
    size_t k;
    for (k = 0; k < NF_COUNT; k++)
        if (strcmp(nodefile_keys[k], name) == 0)
            break;
    if (k == NF_COUNT) {
        char hint[WHY_MAX];
        suggest(name, nodefile_keys, NF_COUNT, hint, sizeof hint);
        src_error(&c->src, "unknown key '%s' in [node]%s", name, hint);
        return 0;
    }
    if (c->seen & (1u << k)) {
        dup_key_error(&c->src, name, "node");
        return 0;
    }
    c->seen |= 1u << k;
    sy_node_cfg *n = c->ncfg;
    switch (k) {
    case NF_ID: {
        uint64_t v;
        if (!parse_u64(value, &v) || v >= SY_MAX_NODES) {
            src_error(&c->src, "id = '%s' in [node] is not a node id; expected 0..%u", value,
                      SY_MAX_NODES - 1);
            return 0;
        }
        n->id = (uint32_t)v;
        return 1;
    }
    case NF_COMMIT_MS: {
        uint64_t v;
        if (!parse_u64(value, &v) || v < 1 || v > 10000) {
            src_error(&c->src, "commit_interval_ms = '%s' in [node] is not a number of "
                      "milliseconds from 1 to 10000", value);
            return 0;
        }
        n->commit_interval_ms = (uint32_t)v;
        return 1;
    }
    case NF_LOG: {
        int lv = sy_log_level_parse(value);
        if (lv < 0) {
            src_error(&c->src, "log_level = '%s' in [node] is not a level; use debug, info, "
                      "warn, error or off", value);
            return 0;
        }
        n->log_level = lv;
        return 1;
    }
    default: {
        char *dst = k == NF_SECRET ? n->secret_key : k == NF_DATA ? n->data_dir
                    : k == NF_TLS_CERT ? n->tls_cert : n->cluster;
        if (!value[0]) {
            src_error(&c->src, "%s in [node] is empty; give a path", name);
            return 0;
        }
        if (resolve(c, value, dst, SY_CFG_MAX_PATH) != SY_OK) {
            src_error(&c->src, "%s in [node] is too long a path", name);
            return 0;
        }
        return 1;
    }
    }
}

static int nodefile_handler(void *user, const char *section, const char *name,
                            const char *value)
{
    nf_ctx *c = user;
    if (c->src.err)
        return 1;
    c->src.value = value;
    int ok = nodefile_key(c, section, name, value);
    c->src.value = NULL;   /* libinih's buffer: gone after this call */
    return ok;
}

int sy_node_load(const char *path, sy_node_cfg *ncfg, sy_cluster_cfg *cluster, char *why,
                 size_t whylen)
{
    memset(ncfg, 0, sizeof *ncfg);
    memset(cluster, 0, sizeof *cluster);
    if (strlen(path) >= sizeof ncfg->path) {
        sy_whyf(why, whylen, 0, "node file path is longer than %d bytes", SY_CFG_MAX_PATH - 1);
        return SY_ECONFIG;
    }
    snprintf(ncfg->path, sizeof ncfg->path, "%s", path);
    ncfg->log_level = SY_LOG_INFO;
    ncfg->commit_interval_ms = SY_DEF_COMMIT_INTERVAL_MS;

    nf_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        sy_whyf(why, whylen, 0, "out of memory loading %s", path);
        return SY_ENOMEM;
    }
    c->ncfg = ncfg;
    dir_of(path, c->dir, sizeof c->dir);

    int rc = parse_ini(path, "node file", nodefile_handler, &c->src, c, why, whylen);
    if (rc)
        goto out_free_ctx;
    static const char *const hint[] = {"this node's id in the manifest",
                                       "like keys/node-0.key", "like data/node-0",
                                       "like cluster.ini"};
    for (int k = 0; k < NF_LOG; k++)
        if (!(c->seen & (1u << k))) {
            sy_whyf(why, whylen, 0, "%s: [node] is missing required key '%s' (%s)", path,
                    nodefile_keys[k], hint[k]);
            rc = SY_ECONFIG;
            goto out_free_ctx;
        }
    rc = sy_cluster_load(ncfg->cluster, cluster, why, whylen);
    if (rc)
        goto out_free_ctx;
    if (ncfg->id >= cluster->n) {
        sy_whyf(why, whylen, 0, "%s: node id %u is not in the manifest %s (it has nodes 0..%u); "
                "fix id or add [node \"%u\"] to the manifest", path, ncfg->id, ncfg->cluster,
                cluster->n - 1, ncfg->id);
        rc = SY_ECONFIG;
        goto out_free_ctx;
    }
    if (cluster->tls_ca[0] && !ncfg->tls_cert[0]) {
        sy_whyf(why, whylen, 0, "%s: the manifest %s uses TLS (tls_ca) but [node] has no tls_cert; "
                "add tls_cert = PATH (PEM file with this node's certificate and private key)",
                path, ncfg->cluster);
        rc = SY_ECONFIG;
        goto out_free_ctx;
    }
    if (!cluster->tls_ca[0] && ncfg->tls_cert[0]) {
        sy_whyf(why, whylen, 0, "%s: tls_cert is set but the manifest %s does not use TLS (no "
                "tls_ca, tcp:// addresses); remove tls_cert or configure TLS in the manifest",
                path, ncfg->cluster);
        rc = SY_ECONFIG;
        goto out_free_ctx;
    }
    if (ncfg->tls_cert[0] &&
        (rc = check_pem_file(path, "tls_cert", ncfg->tls_cert, true, why, whylen)) != SY_OK)
        goto out_free_ctx;
    char kwhy[WHY_MAX];
    rc = sy_keyfile_load_secret(ncfg->secret_key, &ncfg->seckey, kwhy, sizeof kwhy);
    if (rc) {
        sy_whyf(why, whylen, 0, "%s: secret_key: %s", path, kwhy);
        /* Any key-file problem is the operator's configuration to fix. */
        if (rc != SY_ENOMEM)
            rc = SY_ECONFIG;
        goto out_free_ctx;
    }
    sy_pubkey pk;
    sy_seckey_public(ncfg->seckey, &pk);
    if (memcmp(pk.b, cluster->nodes[ncfg->id].pubkey.b, SY_PUBKEY_LEN) != 0) {
        char have[SY_KEY_B64_LEN], want[SY_KEY_B64_LEN];
        sy_pubkey_to_b64(&pk, have);
        sy_pubkey_to_b64(&cluster->nodes[ncfg->id].pubkey, want);
        sy_whyf(why, whylen, 0, "%s: secret key %s belongs to public key %s but the manifest %s "
                "lists %s for [node \"%u\"]; use node %u's key file or fix the manifest",
                path, ncfg->secret_key, have, ncfg->cluster, want, ncfg->id, ncfg->id);
        rc = SY_ECONFIG;
        goto out_free_ctx;
    }
out_free_ctx:
    free(c->src.text);
    free(c);
    if (rc) {
        sy_seckey_free(ncfg->seckey);
        ncfg->seckey = NULL;
        sy_cluster_free(cluster);
    }
    return rc;
}

void sy_node_free(sy_node_cfg *ncfg)
{
    if (!ncfg)
        return;
    sy_seckey_free(ncfg->seckey);
    ncfg->seckey = NULL;
}

/* ------------------------------------------------------- derived views */

void sy_cluster_engine_cfg(const sy_cluster_cfg *cfg, uint32_t self, sy_engine_cfg *out)
{
    out->self = self;
    out->n = cfg->n;
    out->f = cfg->f;
    snprintf(out->cluster_id, sizeof out->cluster_id, "%s", cfg->id);
    out->heartbeat_ms = cfg->heartbeat_ms;
    out->election_min_ms = cfg->election_min_ms;
    out->election_max_ms = cfg->election_max_ms;
    out->request_timeout_ms = cfg->request_timeout_ms;
    out->batch_delay_ms = cfg->batch_delay_ms;
    out->batch_max = cfg->batch_max;
    out->batch_bytes_max = cfg->batch_bytes_max;
    out->max_inflight = cfg->max_inflight;
    out->max_pending = cfg->max_pending;
    out->snapshot_threshold = cfg->snapshot_threshold;
    out->checkpoint_interval = cfg->checkpoint_interval;
    out->watermark_window = cfg->watermark_window;
    out->state_chunk_bytes = cfg->state_chunk_bytes;
    out->prevote = cfg->prevote;
    out->check_quorum = cfg->check_quorum;
    out->node_keys = cfg->node_keys;
    out->clients = &cfg->directory;
}

static const sy_pubkey *dir_key_of(void *ctx, uint32_t sender)
{
    const sy_cluster_cfg *cfg = ctx;
    if (sender < cfg->n)
        return &cfg->nodes[sender].pubkey;
    const sy_client_entry *ce = sy_cluster_client(cfg, sender);
    return ce ? &ce->pubkey : NULL;
}

void sy_cluster_directory(const sy_cluster_cfg *cfg, sy_directory *out)
{
    out->key_of = dir_key_of;
    out->ctx = (void *)cfg;
}

const sy_client_entry *sy_cluster_client(const sy_cluster_cfg *cfg, uint32_t client_id)
{
    if (client_id < SY_CLIENT_ID_BASE || client_id - SY_CLIENT_ID_BASE >= cfg->n_clients)
        return NULL;
    return &cfg->clients[client_id - SY_CLIENT_ID_BASE];
}

int sy_cluster_transfer_allowed(const sy_cluster_cfg *cfg, uint32_t sender, uint32_t self,
                                uint64_t term, const sy_transfer_req *q)
{
    const sy_client_entry *ce = sy_cluster_client(cfg, sender);
    if (!ce || !ce->admin)
        return SY_EUNAUTH;
    if (q->leader != self || q->term != term)
        return SY_ESTALE;
    return SY_OK;
}

int sy_transfer_seen_check(sy_transfer_seen *s, uint64_t term, uint64_t nonce)
{
    if (s->term != term) {
        s->term = term;
        s->n = 0;
    }
    uint32_t have = s->n < SY_TRANSFER_SEEN ? s->n : SY_TRANSFER_SEEN;
    for (uint32_t i = 0; i < have; i++)
        if (s->nonce[i] == nonce)
            return SY_EREPLAY;
    s->nonce[s->n % SY_TRANSFER_SEEN] = nonce;
    s->n++;
    return SY_OK;
}

int sy_cluster_client_by_key(const sy_cluster_cfg *cfg, const sy_pubkey *pk,
                             uint32_t *client_id)
{
    for (size_t i = 0; i < cfg->n_clients; i++)
        if (memcmp(cfg->clients[i].pubkey.b, pk->b, SY_PUBKEY_LEN) == 0) {
            *client_id = cfg->clients[i].client_id;
            return SY_OK;
        }
    return SY_ENOTFOUND;
}

int sy_cluster_node_by_key(const sy_cluster_cfg *cfg, const sy_pubkey *pk, uint32_t *node_id)
{
    for (uint32_t i = 0; i < cfg->n; i++)
        if (memcmp(cfg->nodes[i].pubkey.b, pk->b, SY_PUBKEY_LEN) == 0) {
            *node_id = i;
            return SY_OK;
        }
    return SY_ENOTFOUND;
}
