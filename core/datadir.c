/* Data directory guard: see core/datadir.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "core/datadir.h"
#include "crypto/sy_err.h"

int sy_datadir_lock(const char *dir, int *fd, char *why, size_t whylen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, SY_DATADIR_LOCK);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) {
        int e = errno;
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(e));
        /* a directory owned by another user is a deployment error that
         * no restart cures: the caller exits as for configuration */
        return e == EACCES || e == EPERM ? SY_EPERM : SY_EIO;
    }
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = e == EWOULDBLOCK ? pread(f, pid, sizeof pid - 1, 0) : -1;
        close(f);
        if (e != EWOULDBLOCK) {
            snprintf(why, whylen, "cannot lock %s: %s", path, strerror(e));
            return SY_EIO;
        }
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        snprintf(why, whylen, "data directory %s is in use by another synod process%s%s%s", dir,
                 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        return SY_EEXIST;
    }
    /* the holder's pid, for the message above; best effort */
    char pid[32];
    int pl = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) == 0 && pwrite(f, pid, (size_t)pl, 0) == pl) {
        /* written */
    }
    *fd = f;
    return SY_OK;
}

/* u8 version (1) | u32be node | u8 len | protocol | u8 len | cluster id |
 * 32-byte public key */
#define ID_VERSION 1

static size_t id_encode(const sy_datadir_id *id, uint8_t *b, size_t cap)
{
    size_t pl = strlen(id->protocol), cl = strlen(id->cluster_id);
    if (pl > 255 || cl > 255 || 1 + 4 + 1 + pl + 1 + cl + SY_PUBKEY_LEN > cap)
        return 0;
    size_t o = 0;
    b[o++] = ID_VERSION;
    sy_put_u32be(b + o, id->node);
    o += 4;
    b[o++] = (uint8_t)pl;
    memcpy(b + o, id->protocol, pl);
    o += pl;
    b[o++] = (uint8_t)cl;
    memcpy(b + o, id->cluster_id, cl);
    o += cl;
    memcpy(b + o, id->key->b, SY_PUBKEY_LEN);
    return o + SY_PUBKEY_LEN;
}

/* The stored identity, for the message; false: not one we can read. */
static bool id_decode(sy_bytes v, uint32_t *node, char *proto, char *cluster, sy_pubkey *key)
{
    const uint8_t *b = v.p;
    size_t o = 0, n = v.len;
    if (n < 1 + 4 + 1 || b[0] != ID_VERSION)
        return false;
    *node = sy_get_u32be(b + 1);
    o = 5;
    size_t pl = b[o++];
    if (n - o < pl + 1)
        return false;
    memcpy(proto, b + o, pl);
    proto[pl] = 0;
    o += pl;
    size_t cl = b[o++];
    if (n - o != cl + SY_PUBKEY_LEN)
        return false;
    memcpy(cluster, b + o, cl);
    cluster[cl] = 0;
    o += cl;
    memcpy(key->b, b + o, SY_PUBKEY_LEN);
    return true;
}

int sy_datadir_identity(sy_storage *s, const sy_datadir_id *id, char *why, size_t whylen)
{
    uint8_t want[600];
    size_t wl = id_encode(id, want, sizeof want);
    if (!wl) {
        snprintf(why, whylen, "cluster id or protocol name too long");
        return SY_EINVAL;
    }
    sy_txn t;
    int rc = sy_txn_begin(s, true, &t);
    if (rc)
        return rc;
    sy_bytes v;
    rc = sy_txn_meta_get(&t, "identity", &v);
    if (rc == SY_ENOTFOUND) {
        /* a new directory, or one from before identities were recorded */
        if ((rc = sy_txn_meta_put(&t, "identity", want, wl)))
            goto err_abort;
        return sy_txn_commit(&t);
    }
    if (rc)
        goto err_abort;
    if (v.len == wl && memcmp(v.p, want, wl) == 0) {
        sy_txn_abort(&t);
        return SY_OK;
    }
    uint32_t node = 0;
    char proto[256], cluster[256];
    sy_pubkey key;
    if (!id_decode(v, &node, proto, cluster, &key)) {
        sy_txn_abort(&t);
        snprintf(why, whylen, "the data directory's recorded identity is not readable");
        return SY_ECORRUPT;
    }
    sy_txn_abort(&t);
    bool same_node = node == id->node && !strcmp(cluster, id->cluster_id) &&
                     !strcmp(proto, id->protocol);
    if (same_node)
        snprintf(why, whylen, "the data directory belongs to node %u of cluster '%s' (%s) with "
                 "another public key: were the keys regenerated? A node with a new key starts "
                 "from an empty data directory", node, cluster, proto);
    else if (node == id->node && !strcmp(proto, id->protocol) && strcmp(cluster, id->cluster_id) &&
             memcmp(&key, id->key, sizeof key) == 0)
        /* the same node and key under a renamed [cluster] id: "give every
         * node its own data_dir" would send the operator the wrong way */
        snprintf(why, whylen, "the data directory belongs to cluster '%s'; the manifest now "
                 "says '%s': a node's data stays with its cluster (put id = %s back in "
                 "[cluster] on every node, or start every node on an empty data directory)",
                 cluster, id->cluster_id, cluster);
    else if (node == id->node && !strcmp(cluster, id->cluster_id) &&
             memcmp(&key, id->key, sizeof key) == 0)
        snprintf(why, whylen, "the data directory holds node %u's %s state, and its manifest "
                 "now says %s: a cluster switches protocol only on empty data directories "
                 "(docs/operations.md, section 1)", node, proto, id->protocol);
    else
        snprintf(why, whylen, "the data directory belongs to node %u of cluster '%s' (%s), not "
                 "to node %u of cluster '%s' (%s): give every node its own data_dir",
                 node, cluster, proto, id->node, id->cluster_id, id->protocol);
    return SY_ECONFIG;
err_abort:
    sy_txn_abort(&t);
    return rc;
}

int sy_datadir_identity_get(sy_storage *s, char cluster[256], char proto[256], uint32_t *node,
                            sy_pubkey *key)
{
    sy_txn t;
    int rc = sy_txn_begin(s, false, &t);
    if (rc)
        return rc;
    sy_bytes v;
    sy_pubkey k;
    rc = sy_txn_meta_get(&t, "identity", &v);
    if (rc == SY_OK && !id_decode(v, node, proto, cluster, &k))
        rc = SY_ECORRUPT;
    if (rc == SY_OK && key)
        *key = k;
    sy_txn_abort(&t);
    return rc;
}

int sy_dir_sync(const char *dir)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = d < 0 ? errno : fsync(d) != 0 ? errno : 0;
    if (d >= 0)
        close(d);
    return e;
}

static int sync_dir(const char *dir, char *why, size_t whylen)
{
    int e = sy_dir_sync(dir);
    if (e) {
        snprintf(why, whylen, "cannot sync directory %s: %s", dir, strerror(e));
        return SY_EIO;
    }
    return SY_OK;
}

int sy_datadir_rejoin_mark(const char *dir, char *why, size_t whylen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, SY_DATADIR_REJOIN);
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f < 0) {
        snprintf(why, whylen, "cannot create %s: %s", path, strerror(errno));
        return SY_EIO;
    }
    static const char text[] = "this node was started with --rejoin on an empty data "
                               "directory and has not caught up yet; it votes in no "
                               "election until it has (docs/operations.md, section 7)\n";
    bool ok = write(f, text, sizeof text - 1) == (ssize_t)(sizeof text - 1) && fsync(f) == 0;
    int e = errno;
    close(f);
    if (!ok) {
        snprintf(why, whylen, "cannot write %s: %s", path, strerror(e));
        return SY_EIO;
    }
    return sync_dir(dir, why, whylen);
}

int sy_datadir_rejoin_clear(const char *dir, char *why, size_t whylen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, SY_DATADIR_REJOIN);
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(why, whylen, "cannot remove %s: %s", path, strerror(errno));
        return SY_EIO;
    }
    return sync_dir(dir, why, whylen);
}

bool sy_datadir_rejoin_marked(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, SY_DATADIR_REJOIN);
    return access(path, F_OK) == 0;
}
