/* LMDB storage backend: one environment per node data dir, five named
 * sub-databases (meta, log, state, sessions, ledger).
 *
 * Durability: the environment is opened WITHOUT MDB_NOSYNC and WITHOUT
 * MDB_NOMETASYNC, so mdb_txn_commit() returns only after the data pages
 * and then the meta page that points at them are flushed. MDB_NOMETASYNC
 * would save one flush per commit, but a crash could then roll back the
 * last acknowledged commit — which breaks "acknowledged writes survive", so
 * we pay for it and win it back by group commit (one commit per sy_ready).
 * Copy-on-write plus the meta page switch make every commit atomic: after a
 * crash the store is exactly the last durable commit, never part of one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <lmdb.h>
#include "core/storage.h"
#include "crypto/sy_err.h"

static const char *const tbl_names[SY_TBL_COUNT] = {
    [SY_TBL_META] = "meta",
    [SY_TBL_LOG] = "log",
    [SY_TBL_STATE] = "state",
    [SY_TBL_SESSIONS] = "sessions",
    [SY_TBL_LEDGER] = "ledger",
    [SY_TBL_ENGINE] = "engine",
};

/* A failed write on a file system with less than this available is
 * reported as a full disk (map_err). */
#define SY_STORAGE_FULL_BELOW (16ull << 20)

typedef struct lm {
    MDB_env *env;
    MDB_dbi dbi[SY_TBL_COUNT];
    /* A table a read-only open did not find (the engine table in a data
     * dir written before it existed): reads as empty. */
    bool absent[SY_TBL_COUNT];
    uint64_t map_size;
    bool read_only;
} lm;

static int map_err(sy_storage *s, int mrc, const char *what)
{
    /* only writes (and the commit that flushes them) can fill a disk */
    bool writes = !strcmp(what, "commit") || !strcmp(what, "put") || !strcmp(what, "del") ||
                  !strcmp(what, "clear");
    switch (mrc) {
    case 0:
        return SY_OK;
    case MDB_NOTFOUND:
        return SY_ENOTFOUND;
    case MDB_MAP_FULL: {
        lm *l = s->impl;
        return sy_storage_fail(s, SY_EFULL,
                               "LMDB map full during %s (map size %llu bytes): raise storage "
                               "map_size or compact",
                               what, (unsigned long long)l->map_size);
    }
    case MDB_BAD_VALSIZE:
        return sy_storage_fail(s, SY_ETOOBIG, "LMDB %s: key or value size not accepted", what);
    case ENOMEM:
        return SY_ENOMEM;
    case EACCES:
        return sy_storage_fail(s, SY_EPERM, "LMDB %s: %s", what, mdb_strerror(mrc));
    case ENOSPC:
    case EIO: {
        /* LMDB reports a short write as EIO ("Input/output error"), which
         * is what a file system that has only a few bytes left gives it:
         * say so when that is the case, an operator reads EIO as a dying
         * disk (tests/integration/test_disk_full.sh) */
        lm *l = s->impl;
        const char *path = NULL;
        struct statvfs fs;
        if (writes && mdb_env_get_path(l->env, &path) == 0 && path && statvfs(path, &fs) == 0) {
            unsigned long long avail = (unsigned long long)fs.f_bavail * fs.f_frsize;
            if (mrc == ENOSPC || avail < SY_STORAGE_FULL_BELOW)
                return sy_storage_fail(s, SY_EIO,
                                       "LMDB %s: %s: the file system holding %s is full "
                                       "(%llu bytes available)",
                                       what, mdb_strerror(mrc), path, avail);
        }
        return sy_storage_fail(s, SY_EIO, "LMDB %s: %s", what, mdb_strerror(mrc));
    }
    default:
        return sy_storage_fail(s, SY_EIO, "LMDB %s: %s", what, mdb_strerror(mrc));
    }
}

static int lm_begin(sy_storage *s, bool write, void **out)
{
    lm *l = s->impl;
    if (write && l->read_only)
        return sy_storage_fail(s, SY_EPERM, "storage opened read-only");
    MDB_txn *t;
    int mrc = mdb_txn_begin(l->env, NULL, write ? 0 : MDB_RDONLY, &t);
    if (mrc)
        return map_err(s, mrc, "txn begin");
    *out = t;
    return SY_OK;
}

static int lm_commit(sy_storage *s, void *txn)
{
    /* A read txn's commit is just its end; mdb_txn_commit works for both. */
    return map_err(s, mdb_txn_commit(txn), "commit");
}

static void lm_abort(sy_storage *s, void *txn) { mdb_txn_abort(txn); }

static MDB_val mv(const void *p, size_t l) { return (MDB_val){ .mv_size = l, .mv_data = (void *)p }; }

static int lm_get(sy_storage *s, void *txn, int tbl, const void *k, size_t kl, sy_bytes *v)
{
    lm *l = s->impl;
    MDB_val key = mv(k, kl), val;
    if (l->absent[tbl])
        return SY_ENOTFOUND;
    int mrc = mdb_get(txn, l->dbi[tbl], &key, &val);
    if (mrc)
        return map_err(s, mrc, "get");
    v->p = val.mv_data;
    v->len = (uint32_t)val.mv_size;
    return SY_OK;
}

static int lm_put(sy_storage *s, void *txn, int tbl, const void *k, size_t kl, const void *v,
                  size_t vl)
{
    lm *l = s->impl;
    MDB_val key = mv(k, kl), val = mv(v, vl);
    return map_err(s, mdb_put(txn, l->dbi[tbl], &key, &val, 0), "put");
}

static int lm_del(sy_storage *s, void *txn, int tbl, const void *k, size_t kl)
{
    lm *l = s->impl;
    MDB_val key = mv(k, kl);
    int mrc = mdb_del(txn, l->dbi[tbl], &key, NULL);
    if (mrc == MDB_NOTFOUND)
        return SY_OK;
    return map_err(s, mrc, "del");
}

static int lm_clear(sy_storage *s, void *txn, int tbl)
{
    lm *l = s->impl;
    return map_err(s, mdb_drop(txn, l->dbi[tbl], 0), "clear");
}

static int lm_scan(sy_storage *s, void *txn, int tbl, const void *k, size_t kl,
                   int (*cb)(void *ctx, sy_bytes key, sy_bytes val), void *ctx)
{
    lm *l = s->impl;
    MDB_cursor *c;
    if (l->absent[tbl])
        return SY_OK;
    int mrc = mdb_cursor_open(txn, l->dbi[tbl], &c);
    if (mrc)
        return map_err(s, mrc, "cursor");
    MDB_val mk = mv(k, kl), mval;
    int rc = SY_OK;
    /* an empty key sorts before every key (and LMDB refuses one as a key) */
    mrc = mdb_cursor_get(c, &mk, &mval, k && kl ? MDB_SET_RANGE : MDB_FIRST);
    while (mrc == 0) {
        rc = cb(ctx, (sy_bytes){ mk.mv_data, (uint32_t)mk.mv_size },
                (sy_bytes){ mval.mv_data, (uint32_t)mval.mv_size });
        if (rc)
            break;
        mrc = mdb_cursor_get(c, &mk, &mval, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc)
        return rc;
    return mrc == MDB_NOTFOUND ? SY_OK : map_err(s, mrc, "scan");
}

static int lm_last(sy_storage *s, void *txn, int tbl, sy_bytes *key, sy_bytes *val)
{
    lm *l = s->impl;
    MDB_cursor *c;
    if (l->absent[tbl])
        return SY_ENOTFOUND;
    int mrc = mdb_cursor_open(txn, l->dbi[tbl], &c);
    if (mrc)
        return map_err(s, mrc, "cursor");
    MDB_val mk, mval;
    mrc = mdb_cursor_get(c, &mk, &mval, MDB_LAST);
    mdb_cursor_close(c);
    if (mrc)
        return map_err(s, mrc, "last");
    key->p = mk.mv_data;
    key->len = (uint32_t)mk.mv_size;
    val->p = mval.mv_data;
    val->len = (uint32_t)mval.mv_size;
    return SY_OK;
}

static void lm_close(sy_storage *s)
{
    lm *l = s->impl;
    mdb_env_close(l->env);
    free(l);
    free(s);
}

static const sy_storage_ops lmdb_ops = {
    .name = "lmdb",
    .begin = lm_begin,
    .commit = lm_commit,
    .abort = lm_abort,
    .get = lm_get,
    .put = lm_put,
    .del = lm_del,
    .clear = lm_clear,
    .scan = lm_scan,
    .last = lm_last,
    .close = lm_close,
};

static int open_fail(char *errmsg, int code, const char *dir, const char *what, int mrc)
{
    if (errmsg)
        snprintf(errmsg, SY_STORAGE_ERRMSG, "storage %s: %s: %s", dir, what, mdb_strerror(mrc));
    return code;
}

int sy_storage_lmdb_open(const char *data_dir, const sy_storage_lmdb_opts *opts,
                         sy_storage **out, char *errmsg)
{
    bool ro = opts && opts->read_only;
    uint64_t map_size = opts && opts->map_size ? opts->map_size : SY_STORAGE_DEFAULT_MAP_SIZE;
    int rc = SY_EIO;
    if (!ro && mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return open_fail(errmsg, errno == EACCES ? SY_EPERM : SY_EIO, data_dir,
                         "cannot create directory", errno);
    sy_storage *s = calloc(1, sizeof *s);
    lm *l = calloc(1, sizeof *l);
    if (!s || !l) {
        rc = SY_ENOMEM;
        goto err_free;
    }
    s->ops = &lmdb_ops;
    s->impl = l;
    l->map_size = map_size;
    l->read_only = ro;
    int mrc = mdb_env_create(&l->env);
    if (mrc) {
        rc = open_fail(errmsg, SY_EIO, data_dir, "mdb_env_create", mrc);
        goto err_free;
    }
    mdb_env_set_maxdbs(l->env, SY_TBL_COUNT + 2);
    mdb_env_set_maxreaders(l->env, 126);
    if ((mrc = mdb_env_set_mapsize(l->env, (size_t)map_size))) {
        rc = open_fail(errmsg, SY_ECONFIG, data_dir, "map size", mrc);
        goto err_env;
    }
    /* MDB_NOTLS: read txns are not tied to threads (the runtime may hand
     * them around); durability flags deliberately left at the safe default. */
    unsigned flags = MDB_NOTLS | (ro ? MDB_RDONLY : 0);
    if ((mrc = mdb_env_open(l->env, data_dir, flags, 0600))) {
        rc = open_fail(errmsg, mrc == ENOENT ? SY_ENOTFOUND : mrc == EACCES ? SY_EPERM : SY_EIO,
                       data_dir, "cannot open LMDB environment", mrc);
        goto err_env;
    }
    int dead;
    mdb_reader_check(l->env, &dead);  /* readers left by a killed process */
    MDB_txn *t;
    if ((mrc = mdb_txn_begin(l->env, NULL, ro ? MDB_RDONLY : 0, &t))) {
        rc = open_fail(errmsg, SY_EIO, data_dir, "txn begin", mrc);
        goto err_env;
    }
    for (int i = 0; i < SY_TBL_COUNT; i++) {
        mrc = mdb_dbi_open(t, tbl_names[i], ro ? 0 : MDB_CREATE, &l->dbi[i]);
        if (mrc == MDB_NOTFOUND && ro && i == SY_TBL_ENGINE) {
            l->absent[i] = true;   /* older data dir; the next writer creates it */
            continue;
        }
        if (mrc) {
            mdb_txn_abort(t);
            if (mrc == MDB_NOTFOUND && errmsg)
                snprintf(errmsg, SY_STORAGE_ERRMSG,
                         "storage %s: sub-database '%s' missing: not a synod data dir", data_dir,
                         tbl_names[i]);
            rc = mrc == MDB_NOTFOUND ? SY_ENOTFOUND : open_fail(errmsg, SY_EIO, data_dir,
                                                                 "mdb_dbi_open", mrc);
            goto err_env;
        }
    }
    if ((mrc = mdb_txn_commit(t))) {
        rc = open_fail(errmsg, mrc == MDB_MAP_FULL ? SY_EFULL : SY_EIO, data_dir, "open commit",
                       mrc);
        goto err_env;
    }
    *out = s;
    return SY_OK;
err_env:
    mdb_env_close(l->env);
err_free:
    free(l);
    free(s);
    return rc;
}
