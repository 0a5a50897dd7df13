/* `synod-keys cluster`: one command from nothing to a runnable cluster
 * directory. Every file is checked for existence before anything is written,
 * so a refusal leaves the directory as it was, and the result is loaded back
 * with the same code the daemon uses, so what we write is what it accepts. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/config.h"
#include "crypto/keyfile.h"
#include "crypto/sy_err.h"
#include "keys/keys.h"

#define PATH_CAP 4096

int sy_keys_cluster_check(sy_keys_cluster_opts *o, char *why, size_t whylen)
{
    if (!o->out_dir || !o->out_dir[0])
        return sy_whyf(why, whylen, SY_ECONFIG, "missing --out DIR (where to write the cluster)");
    if (o->protocol == SY_PROTO_NONE)
        return sy_whyf(why, whylen, SY_ECONFIG,
                     "missing --protocol; choose raft, paxos or pbft");
    if (o->nodes < 1 || o->nodes > SY_MAX_NODES)
        return sy_whyf(why, whylen, SY_ECONFIG, "--nodes must be 1..%u", SY_MAX_NODES);
    uint32_t maxf = sy_protocol_max_f(o->protocol, o->nodes);
    if (!o->f_set) {
        o->f = maxf;
    } else if (o->f > maxf) {
        uint32_t need = sy_protocol_min_n(o->protocol, o->f);
        return sy_whyf(why, whylen, SY_ECONFIG,
                     "protocol %s with f=%u needs n >= %s = %u nodes, --nodes is %u; raise "
                     "--nodes or lower --f",
                     sy_protocol_name(o->protocol), o->f,
                     o->protocol == SY_PROTO_PBFT ? "3f+1" : "2f+1", need, o->nodes);
    }
    if (o->clients > SY_KEYS_MAX_CLIENTS)
        return sy_whyf(why, whylen, SY_ECONFIG, "--clients must be 0..%u", SY_KEYS_MAX_CLIENTS);
    if (o->base_port < 1)
        return sy_whyf(why, whylen, SY_ECONFIG, "--base-port must be 1..%u for %u nodes",
                     65535 - SY_KEYS_METRICS_PORT_OFFSET - (o->nodes - 1), o->nodes);
    if (o->base_port + SY_KEYS_METRICS_PORT_OFFSET + o->nodes - 1 > 65535)
        return sy_whyf(why, whylen, SY_ECONFIG,
                     "--base-port %u leaves no room for %u nodes (ports up to base+%u+n-1 must "
                     "be <= 65535); use a lower base port",
                     o->base_port, o->nodes, SY_KEYS_METRICS_PORT_OFFSET);
    char addr[SY_MAX_ADDR + 32], awhy[512];
    bool v6 = strchr(o->host, ':') != NULL;
    snprintf(addr, sizeof addr, v6 ? "tcp://[%s]:%u" : "tcp://%s:%u", o->host, o->base_port);
    if (sy_addr_check(addr, false, awhy, sizeof awhy) != SY_OK)
        return sy_whyf(why, whylen, SY_ECONFIG, "--host '%s' is not a valid host: %s", o->host,
                     awhy);
    if (o->cluster_id) {
        size_t l = strlen(o->cluster_id);
        bool ok = l > 0 && l <= SY_MAX_CLUSTER_ID;
        for (size_t i = 0; ok && i < l; i++) {
            char c = o->cluster_id[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        }
        if (!ok)
            return sy_whyf(why, whylen, SY_ECONFIG,
                         "--id '%s' is invalid; use 1..%u characters from A-Z a-z 0-9 . _ -",
                         o->cluster_id, SY_MAX_CLUSTER_ID);
    }
    return SY_OK;
}

static int join(char *out, const char *dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int join(char *out, const char *dir, const char *fmt, ...)
{
    char rel[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    int w = snprintf(out, PATH_CAP, "%s/%s", dir, rel);
    return (w < 0 || w >= PATH_CAP) ? SY_EINVAL : SY_OK;
}

static int make_dir(const char *path, mode_t mode, char *why, size_t whylen)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return sy_whyf(why, whylen, SY_EIO, "%s exists and is not a directory; remove it or "
                         "choose another --out", path);
        return SY_OK;
    }
    return sy_whyf(why, whylen, SY_EIO, "cannot create directory %s: %s", path, strerror(errno));
}

/* mkdir -p for the output directory: parents 0755. */
static int make_dirs(const char *path, char *why, size_t whylen)
{
    char tmp[PATH_CAP];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = make_dir(tmp, 0755, why, whylen);
        *p = '/';
        if (rc)
            return rc;
    }
    return make_dir(tmp, 0755, why, whylen);
}

static int write_text(const char *path, const char *text, char *why, size_t whylen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sy_whyf(why, whylen, SY_EIO, "cannot create %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int rc = SY_OK;
    if (w < 0 || (size_t)w != len || fsync(fd) != 0)
        rc = sy_whyf(why, whylen, SY_EIO, "cannot write %s: %s", path,
                   w < 0 ? strerror(errno) : "short write or sync failure");
    if (close(fd) != 0 && rc == SY_OK)
        rc = sy_whyf(why, whylen, SY_EIO, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

/* Appends to a heap string; sticky on allocation failure. */
typedef struct text {
    char *p;
    size_t len, cap;
    bool oom;
} text;

static void tprintf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tprintf(text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
        t->oom = true;
        return;
    }
    if (t->len + (size_t)need + 1 > t->cap) {
        size_t cap = (t->cap ? t->cap * 2 : 1024) + (size_t)need;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)need;
}

/* Everything the command would write, so it can refuse before writing. */
static int check_existing(const sy_keys_cluster_opts *o, char *why, size_t whylen)
{
    char p[PATH_CAP];
    struct stat st;
    for (uint32_t i = 0; i < o->nodes + o->clients; i++) {
        bool node = i < o->nodes;
        uint32_t k = node ? i : i - o->nodes;
        for (int pub = 0; pub < 2; pub++) {
            if (join(p, o->out_dir, "keys/%s-%u.key%s", node ? "node" : "client", k,
                     pub ? ".pub" : ""))
                return sy_whyf(why, whylen, SY_EINVAL, "--out path is too long");
            if (lstat(p, &st) == 0)
                return sy_whyf(why, whylen, SY_EEXIST,
                             "key file %s already exists; pass --force to replace the "
                             "cluster's keys, or choose another --out",
                             p);
        }
    }
    if (join(p, o->out_dir, "cluster.ini"))
        return sy_whyf(why, whylen, SY_EINVAL, "--out path is too long");
    if (lstat(p, &st) == 0)
        return sy_whyf(why, whylen, SY_EEXIST,
                     "manifest %s already exists; pass --force to replace the cluster, or "
                     "choose another --out",
                     p);
    for (uint32_t i = 0; i < o->nodes; i++) {
        if (join(p, o->out_dir, "node-%u.ini", i))
            return sy_whyf(why, whylen, SY_EINVAL, "--out path is too long");
        if (lstat(p, &st) == 0)
            return sy_whyf(why, whylen, SY_EEXIST,
                         "node file %s already exists; pass --force to replace the cluster, "
                         "or choose another --out",
                         p);
    }
    return SY_OK;
}

static int gen_key(const char *path, bool force, sy_pubkey *pub, char *why, size_t whylen)
{
    sy_seckey *sk = NULL;
    int rc = sy_seckey_generate(&sk);
    if (rc)
        return sy_whyf(why, whylen, rc, "cannot generate a key: %s", sy_strerror(rc));
    rc = sy_keyfile_save(path, sk, force ? SY_KEYFILE_FORCE : 0, why, whylen);
    sy_seckey_public(sk, pub);
    sy_seckey_free(sk);
    return rc;
}

static void write_manifest_header(text *t, const sy_keys_cluster_opts *o)
{
    tprintf(t,
            "; synod cluster manifest, generated by synod-keys.\n"
            "; Shared by every node and client. Reference: docs/configuration.md\n"
            "[cluster]\n"
            "id = %s\n"
            "protocol = %s\n"
            "f = %u                        ; %s needs n >= %s\n"
            "batch_max = %u\n"
            "heartbeat_ms = %u\n"
            "election_min_ms = %u\n"
            "election_max_ms = %u\n"
            "request_timeout_ms = %u\n"
            "batch_delay_ms = %u\n\n",
            o->cluster_id ? o->cluster_id : SY_KEYS_DEFAULT_CLUSTER_ID,
            sy_protocol_name(o->protocol), o->f, sy_protocol_name(o->protocol),
            o->protocol == SY_PROTO_PBFT ? "3f+1" : "2f+1", SY_DEF_BATCH_MAX,
            SY_DEF_HEARTBEAT_MS, SY_DEF_ELECTION_MIN_MS, SY_DEF_ELECTION_MAX_MS,
            SY_DEF_REQUEST_TIMEOUT_MS, SY_DEF_BATCH_DELAY_MS);
}

int sy_keys_cluster(const sy_keys_cluster_opts *o, char *why, size_t whylen)
{
    int rc;
    if (strlen(o->out_dir) > PATH_CAP - 300)
        return sy_whyf(why, whylen, SY_ECONFIG, "--out path is too long");
    if (!o->force && (rc = check_existing(o, why, whylen)) != SY_OK)
        return rc;
    char p[PATH_CAP];
    if ((rc = make_dirs(o->out_dir, why, whylen)))
        return rc;
    if ((rc = join(p, o->out_dir, "keys")) || (rc = make_dir(p, 0700, why, whylen)))
        return rc;
    if ((rc = join(p, o->out_dir, "data")) || (rc = make_dir(p, 0700, why, whylen)))
        return rc;
    for (uint32_t i = 0; i < o->nodes; i++)
        if ((rc = join(p, o->out_dir, "data/node-%u", i)) ||
            (rc = make_dir(p, 0700, why, whylen)))
            return rc;

    text man = {0};
    write_manifest_header(&man, o);
    bool v6 = strchr(o->host, ':') != NULL;
    const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
    for (uint32_t i = 0; i < o->nodes; i++) {
        sy_pubkey pk;
        char b64[SY_KEY_B64_LEN];
        if ((rc = join(p, o->out_dir, "keys/node-%u.key", i)) ||
            (rc = gen_key(p, o->force, &pk, why, whylen)))
            goto out_free_text;
        sy_pubkey_to_b64(&pk, b64);
        tprintf(&man,
                "[node \"%u\"]\n"
                "public_key = %s\n"
                "peer = tcp://%s%s%s:%u\n"
                "client = tcp://%s%s%s:%u\n"
                "metrics = http://%s%s%s:%u\n\n",
                i, b64, lb, o->host, rb, o->base_port + i, lb, o->host, rb,
                o->base_port + SY_KEYS_CLIENT_PORT_OFFSET + i, lb, o->host, rb,
                o->base_port + SY_KEYS_METRICS_PORT_OFFSET + i);
    }
    for (uint32_t k = 0; k < o->clients; k++) {
        sy_pubkey pk;
        char b64[SY_KEY_B64_LEN];
        if ((rc = join(p, o->out_dir, "keys/client-%u.key", k)) ||
            (rc = gen_key(p, o->force, &pk, why, whylen)))
            goto out_free_text;
        sy_pubkey_to_b64(&pk, b64);
        /* client-0, synodctl's default key, is the operator's: it may move
         * leadership (synodctl transfer); the others are applications' */
        tprintf(&man, "[client \"client-%u\"]\npublic_key = %s\n%s\n", k, b64,
                k == 0 ? "admin = true\n" : "");
    }
    if (man.oom) {
        rc = sy_whyf(why, whylen, SY_ENOMEM, "out of memory writing the manifest");
        goto out_free_text;
    }
    if ((rc = join(p, o->out_dir, "cluster.ini")) || (rc = write_text(p, man.p, why, whylen)))
        goto out_free_text;
    for (uint32_t i = 0; i < o->nodes; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "; synod node file, generated by synod-keys. Relative paths are relative\n"
                 "; to this file. Run: synod --config node-%u.ini\n"
                 "[node]\n"
                 "id = %u\n"
                 "secret_key = keys/node-%u.key\n"
                 "data_dir = data/node-%u\n"
                 "cluster = cluster.ini\n"
                 "log_level = info\n",
                 i, i, i, i);
        if ((rc = join(p, o->out_dir, "node-%u.ini", i)) ||
            (rc = write_text(p, body, why, whylen)))
            goto out_free_text;
    }

    /* Load back what we wrote, exactly as synod will. */
    char lwhy[1024];
    sy_cluster_cfg cfg;
    if ((rc = join(p, o->out_dir, "cluster.ini")))
        goto out_free_text;
    rc = sy_cluster_load(p, &cfg, lwhy, sizeof lwhy);
    sy_cluster_free(&cfg);
    if (rc) {
        sy_whyf(why, whylen, rc, "generated manifest does not load (a bug): %s", lwhy);
        goto out_free_text;
    }
    for (uint32_t i = 0; i < o->nodes; i++) {
        sy_node_cfg ncfg;
        if ((rc = join(p, o->out_dir, "node-%u.ini", i)))
            goto out_free_text;
        rc = sy_node_load(p, &ncfg, &cfg, lwhy, sizeof lwhy);
        sy_node_free(&ncfg);
        sy_cluster_free(&cfg);
        if (rc) {
            sy_whyf(why, whylen, rc, "generated node file does not load: %s", lwhy);
            goto out_free_text;
        }
    }
out_free_text:
    free(man.p);
    return rc;
}
