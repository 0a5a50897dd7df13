/* The typed storage layer on top of a backend's ordered tables: log entries,
 * hard state, snapshot metadata, applied index, checksums.
 *
 * Invariant kept: the log holds exactly the entries (log_base, last], with
 * consecutive indexes, each value checksummed together with its index so a
 * value moved to the wrong key is caught too. log_base only grows. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/storage.h"
#include "crypto/sy_err.h"

#define ENTRY_HDR (SY_CHECKSUM_LEN + 8 + 1)  /* checksum, term, type */

int sy_storage_fail(sy_storage *s, int code, const char *fmt, ...)
{
    if (s) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, sizeof s->err, fmt, ap);
        va_end(ap);
    }
    return code;
}

void sy_checksum(const void *a, size_t al, const void *b, size_t bl,
                 uint8_t out[SY_CHECKSUM_LEN])
{
    sy_hasher h;
    sy_digest d;
    sy_hash_init(&h);
    sy_hash_update(&h, a, al);
    if (bl)
        sy_hash_update(&h, b, bl);
    sy_hash_final(&h, &d);
    memcpy(out, d.b, SY_CHECKSUM_LEN);
}

void sy_storage_close(sy_storage *s)
{
    if (s)
        s->ops->close(s);
}

const char *sy_storage_errmsg(const sy_storage *s) { return s->err; }

void sy_storage_view(const sy_storage *s, sy_storage *view)
{
    view->ops = s->ops;
    view->impl = s->impl;
    view->err[0] = '\0';
}

/* ---- transactions ---- */
int sy_txn_begin(sy_storage *s, bool write, sy_txn *t)
{
    t->s = s;
    t->write = write;
    t->impl = NULL;
    return s->ops->begin(s, write, &t->impl);
}

int sy_txn_commit(sy_txn *t)
{
    if (!t->impl)
        return SY_EINVAL;
    int rc = t->s->ops->commit(t->s, t->impl);
    t->impl = NULL;
    return rc;
}

void sy_txn_abort(sy_txn *t)
{
    if (t->impl)
        t->s->ops->abort(t->s, t->impl);
    t->impl = NULL;
}

/* Rows of the state machine's tables (state, sessions) carry a checksum
 * over key and value as their last SY_CHECKSUM_LEN bytes, added on put and
 * checked and stripped on every read, so a rotten row is refused rather
 * than served (the log, meta and ledger have checksums of their own). */
static bool row_checked(int tbl)
{
    return tbl == SY_TBL_STATE || tbl == SY_TBL_SESSIONS || tbl == SY_TBL_ENGINE;
}

static int row_verify(sy_txn *t, int tbl, const void *k, size_t kl, sy_bytes *v)
{
    if (!row_checked(tbl))
        return SY_OK;
    uint8_t ck[SY_CHECKSUM_LEN];
    size_t body = v->len >= SY_CHECKSUM_LEN ? v->len - SY_CHECKSUM_LEN : 0;
    if (v->len >= SY_CHECKSUM_LEN)
        sy_checksum(k, kl, v->p, body, ck);
    if (v->len < SY_CHECKSUM_LEN || memcmp(ck, v->p + body, SY_CHECKSUM_LEN) != 0) {
        char hex[2 * 16 + 1];
        size_t n = kl < 16 ? kl : 16;
        for (size_t i = 0; i < n; i++)
            snprintf(hex + 2 * i, 3, "%02x", ((const uint8_t *)k)[i]);
        hex[2 * n] = 0;
        return sy_storage_fail(t->s, SY_ECORRUPT, "%s row with key %s%s failed its checksum",
                               tbl == SY_TBL_STATE ? "state" : tbl == SY_TBL_SESSIONS ? "session"
                                                                  : "engine record",
                               hex,
                               kl > 16 ? "..." : "");
    }
    v->len = (uint32_t)body;
    return SY_OK;
}

int sy_txn_get(sy_txn *t, int tbl, const void *k, size_t kl, sy_bytes *v)
{
    int rc = t->s->ops->get(t->s, t->impl, tbl, k, kl, v);
    return rc ? rc : row_verify(t, tbl, k, kl, v);
}

int sy_txn_put(sy_txn *t, int tbl, const void *k, size_t kl, const void *v, size_t vl)
{
    if (!t->write)
        return SY_EINVAL;
    if (!row_checked(tbl))
        return t->s->ops->put(t->s, t->impl, tbl, k, kl, v, vl);
    uint8_t stackbuf[1024];
    uint8_t *b = vl + SY_CHECKSUM_LEN <= sizeof stackbuf ? stackbuf : malloc(vl + SY_CHECKSUM_LEN);
    if (!b)
        return SY_ENOMEM;
    if (vl)
        memcpy(b, v, vl);
    sy_checksum(k, kl, v, vl, b + vl);
    int rc = t->s->ops->put(t->s, t->impl, tbl, k, kl, b, vl + SY_CHECKSUM_LEN);
    if (b != stackbuf)
        free(b);
    return rc;
}

int sy_txn_del(sy_txn *t, int tbl, const void *k, size_t kl)
{
    if (!t->write)
        return SY_EINVAL;
    return t->s->ops->del(t->s, t->impl, tbl, k, kl);
}

int sy_txn_clear(sy_txn *t, int tbl)
{
    if (!t->write)
        return SY_EINVAL;
    return t->s->ops->clear(t->s, t->impl, tbl);
}

typedef struct {
    const void *k;
    size_t kl;
    bool after;
    sy_bytes *key, *val;
} seek_ctx;

#define SEEK_FOUND (-1)   /* not an SY_ code: those are >= 0 */

static int seek_row(void *ctx, sy_bytes key, sy_bytes val)
{
    seek_ctx *c = ctx;
    if (c->after && c->k && key.len == c->kl && memcmp(key.p, c->k, c->kl) == 0)
        return SY_OK;   /* key > k wanted: the next one */
    *c->key = key;
    *c->val = val;
    return SEEK_FOUND;
}

/* The first step of a scan (one mechanism for both: each backend walks,
 * none seeks on its own). */
int sy_txn_seek(sy_txn *t, int tbl, const void *k, size_t kl, bool after, sy_bytes *key,
                sy_bytes *val)
{
    seek_ctx c = { k, kl, after, key, val };
    int rc = t->s->ops->scan(t->s, t->impl, tbl, k, kl, seek_row, &c);
    if (rc == SY_OK)
        return SY_ENOTFOUND;
    if (rc != SEEK_FOUND)
        return rc;
    return row_verify(t, tbl, key->p, key->len, val);
}

int sy_txn_last(sy_txn *t, int tbl, sy_bytes *key, sy_bytes *val)
{
    int rc = t->s->ops->last(t->s, t->impl, tbl, key, val);
    return rc ? rc : row_verify(t, tbl, key->p, key->len, val);
}

typedef struct {
    sy_txn *t;
    int tbl;
    int (*cb)(void *ctx, sy_bytes key, sy_bytes val);
    void *ctx;
} scan_ctx;

static int scan_row(void *ctx, sy_bytes key, sy_bytes val)
{
    scan_ctx *c = ctx;
    int rc = row_verify(c->t, c->tbl, key.p, key.len, &val);
    return rc ? rc : c->cb(c->ctx, key, val);
}

int sy_txn_scan(sy_txn *t, int tbl, const void *k, size_t kl,
                int (*cb)(void *ctx, sy_bytes key, sy_bytes val), void *ctx)
{
    scan_ctx c = { t, tbl, cb, ctx };
    return t->s->ops->scan(t->s, t->impl, tbl, k, kl, scan_row, &c);
}

/* ---- checksummed meta ---- */
int sy_txn_meta_get(sy_txn *t, const char *name, sy_bytes *v)
{
    sy_bytes raw;
    int rc = sy_txn_get(t, SY_TBL_META, name, strlen(name), &raw);
    if (rc)
        return rc;
    uint8_t ck[SY_CHECKSUM_LEN];
    if (raw.len < SY_CHECKSUM_LEN)
        return sy_storage_fail(t->s, SY_ECORRUPT, "meta value '%s' is truncated (%u bytes)",
                               name, raw.len);
    sy_checksum(name, strlen(name), raw.p + SY_CHECKSUM_LEN, raw.len - SY_CHECKSUM_LEN, ck);
    if (memcmp(ck, raw.p, SY_CHECKSUM_LEN) != 0)
        return sy_storage_fail(t->s, SY_ECORRUPT, "meta value '%s' failed its checksum", name);
    v->p = raw.p + SY_CHECKSUM_LEN;
    v->len = raw.len - SY_CHECKSUM_LEN;
    return SY_OK;
}

int sy_txn_meta_put(sy_txn *t, const char *name, const void *v, size_t vl)
{
    uint8_t small[SY_CHECKSUM_LEN + 128];
    uint8_t *buf = small;
    if (vl > sizeof small - SY_CHECKSUM_LEN) {
        buf = malloc(SY_CHECKSUM_LEN + vl);
        if (!buf)
            return SY_ENOMEM;
    }
    sy_checksum(name, strlen(name), v, vl, buf);
    if (vl)
        memcpy(buf + SY_CHECKSUM_LEN, v, vl);
    int rc = sy_txn_put(t, SY_TBL_META, name, strlen(name), buf, SY_CHECKSUM_LEN + vl);
    if (buf != small)
        free(buf);
    return rc;
}

int sy_txn_meta_get_u64(sy_txn *t, const char *name, uint64_t *out)
{
    sy_bytes v = {0};
    int rc = sy_txn_meta_get(t, name, &v);
    if (rc == SY_ENOTFOUND) {
        *out = 0;
        return SY_OK;
    }
    if (rc)
        return rc;
    if (v.len != 8)
        return sy_storage_fail(t->s, SY_ECORRUPT, "meta value '%s' has length %u, want 8",
                               name, v.len);
    *out = sy_get_u64be(v.p);
    return SY_OK;
}

int sy_txn_meta_put_u64(sy_txn *t, const char *name, uint64_t v)
{
    uint8_t b[8];
    sy_put_u64be(b, v);
    return sy_txn_meta_put(t, name, b, 8);
}

/* ---- log ---- */
static int log_base(sy_txn *t, uint64_t *base) { return sy_txn_meta_get_u64(t, "log_base", base); }

int sy_txn_log_bounds(sy_txn *t, uint64_t *first, uint64_t *last)
{
    uint64_t base = 0;
    int rc = log_base(t, &base);
    if (rc)
        return rc;
    *first = base + 1;
    sy_bytes k = {0}, v = {0};
    rc = sy_txn_last(t, SY_TBL_LOG, &k, &v);
    if (rc == SY_ENOTFOUND) {
        *last = base;
        return SY_OK;
    }
    if (rc)
        return rc;
    if (k.len != 8)
        return sy_storage_fail(t->s, SY_ECORRUPT, "log key of length %u", k.len);
    *last = sy_get_u64be(k.p);
    if (*last < base)
        return sy_storage_fail(t->s, SY_ECORRUPT, "log entry %llu below compaction point %llu",
                               (unsigned long long)*last, (unsigned long long)base);
    return SY_OK;
}

static int decode_entry(sy_storage *s, uint64_t index, sy_bytes v, sy_entry *e)
{
    if (v.len < ENTRY_HDR)
        return sy_storage_fail(s, SY_ECORRUPT, "log entry %llu is truncated (%u bytes)",
                               (unsigned long long)index, v.len);
    uint8_t key[8], ck[SY_CHECKSUM_LEN];
    sy_put_u64be(key, index);
    sy_checksum(key, 8, v.p + SY_CHECKSUM_LEN, v.len - SY_CHECKSUM_LEN, ck);
    if (memcmp(ck, v.p, SY_CHECKSUM_LEN) != 0)
        return sy_storage_fail(s, SY_ECORRUPT, "log entry %llu failed its checksum",
                               (unsigned long long)index);
    e->index = index;
    e->term = sy_get_u64be(v.p + SY_CHECKSUM_LEN);
    e->type = v.p[SY_CHECKSUM_LEN + 8];
    e->data.p = v.p + ENTRY_HDR;
    e->data.len = v.len - ENTRY_HDR;
    return SY_OK;
}

int sy_txn_entry(sy_txn *t, uint64_t index, sy_entry *e)
{
    uint64_t first, last;
    int rc = sy_txn_log_bounds(t, &first, &last);
    if (rc)
        return rc;
    if (index < first)
        return sy_storage_fail(t->s, SY_ECOMPACTED, "log entry %llu was compacted (first %llu)",
                               (unsigned long long)index, (unsigned long long)first);
    if (index > last)
        return sy_storage_fail(t->s, SY_ENOTFOUND, "log entry %llu past last %llu",
                               (unsigned long long)index, (unsigned long long)last);
    uint8_t key[8];
    sy_put_u64be(key, index);
    sy_bytes v = {0};
    rc = sy_txn_get(t, SY_TBL_LOG, key, 8, &v);
    if (rc == SY_ENOTFOUND)
        return sy_storage_fail(t->s, SY_ECORRUPT, "log entry %llu missing inside [%llu, %llu]",
                               (unsigned long long)index, (unsigned long long)first,
                               (unsigned long long)last);
    if (rc)
        return rc;
    return decode_entry(t->s, index, v, e);
}

int sy_txn_set_hardstate(sy_txn *t, sy_bytes hs)
{
    return sy_txn_meta_put(t, "hardstate", hs.p, hs.len);
}

int sy_txn_records(sy_txn *t, uint64_t drop_below, const sy_record *recs, size_t n)
{
    uint8_t key[8];
    int rc;
    for (;;) {   /* the records below drop_below, lowest first */
        sy_bytes k = {0}, v = {0};
        if (!drop_below)
            break;
        rc = sy_txn_seek(t, SY_TBL_ENGINE, NULL, 0, false, &k, &v);
        if (rc == SY_ENOTFOUND)
            break;
        if (rc)
            return rc;
        if (k.len != 8)
            return sy_storage_fail(t->s, SY_ECORRUPT, "engine record with a %u-byte key", k.len);
        if (sy_get_u64be(k.p) >= drop_below)
            break;
        memcpy(key, k.p, 8);
        if ((rc = sy_txn_del(t, SY_TBL_ENGINE, key, 8)))
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        sy_put_u64be(key, recs[i].key);
        rc = recs[i].val.len ? sy_txn_put(t, SY_TBL_ENGINE, key, 8, recs[i].val.p, recs[i].val.len)
                             : sy_txn_del(t, SY_TBL_ENGINE, key, 8);
        if (rc)
            return rc;
    }
    return SY_OK;
}

/* Deletes log keys in [lo, hi]. */
static int log_delete_range(sy_txn *t, uint64_t lo, uint64_t hi)
{
    uint8_t key[8];
    for (;;) {
        sy_bytes k = {0}, v = {0};
        sy_put_u64be(key, lo);
        int rc = sy_txn_seek(t, SY_TBL_LOG, key, 8, false, &k, &v);
        if (rc == SY_ENOTFOUND)
            return SY_OK;
        if (rc)
            return rc;
        uint64_t idx = sy_get_u64be(k.p);
        if (idx > hi)
            return SY_OK;
        uint8_t del[8];
        sy_put_u64be(del, idx);
        rc = sy_txn_del(t, SY_TBL_LOG, del, 8);
        if (rc)
            return rc;
        lo = idx + 1;
        if (idx == UINT64_MAX)
            return SY_OK;
    }
}

int sy_txn_truncate(sy_txn *t, uint64_t from)
{
    if (from == 0)
        return SY_EINVAL;
    uint64_t first, last;
    int rc = sy_txn_log_bounds(t, &first, &last);
    if (rc)
        return rc;
    if (from < first)
        return sy_storage_fail(t->s, SY_ECOMPACTED,
                               "cannot truncate at %llu: entries below %llu are compacted",
                               (unsigned long long)from, (unsigned long long)first);
    return log_delete_range(t, from, UINT64_MAX);
}

int sy_txn_append(sy_txn *t, const sy_entry *e, size_t n)
{
    if (n == 0)
        return SY_OK;
    uint64_t first, last;
    int rc = sy_txn_log_bounds(t, &first, &last);
    if (rc)
        return rc;
    if (e[0].index < first)
        return sy_storage_fail(t->s, SY_ECOMPACTED, "append at %llu below first index %llu",
                               (unsigned long long)e[0].index, (unsigned long long)first);
    if (e[0].index <= last) {
        /* Overwriting a suffix (a new leader's entries win): drop it first. */
        rc = log_delete_range(t, e[0].index, UINT64_MAX);
        if (rc)
            return rc;
        last = e[0].index - 1;
    }
    if (e[0].index != last + 1) {
        if (last >= first)
            return sy_storage_fail(t->s, SY_EINVAL, "append at %llu leaves a gap after %llu",
                                   (unsigned long long)e[0].index, (unsigned long long)last);
        /* Empty log: the first appended entry defines the new base. */
        rc = sy_txn_meta_put_u64(t, "log_base", e[0].index - 1);
        if (rc)
            return rc;
    }
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && e[i].index != e[i - 1].index + 1) {
            free(buf);
            return sy_storage_fail(t->s, SY_EINVAL, "appended entries not consecutive at %llu",
                                   (unsigned long long)e[i].index);
        }
        size_t need = ENTRY_HDR + e[i].data.len;
        if (need > cap) {
            uint8_t *nb = realloc(buf, need);
            if (!nb) {
                free(buf);
                return SY_ENOMEM;
            }
            buf = nb;
            cap = need;
        }
        uint8_t key[8];
        sy_put_u64be(key, e[i].index);
        sy_put_u64be(buf + SY_CHECKSUM_LEN, e[i].term);
        buf[SY_CHECKSUM_LEN + 8] = e[i].type;
        if (e[i].data.len)
            memcpy(buf + ENTRY_HDR, e[i].data.p, e[i].data.len);
        sy_checksum(key, 8, buf + SY_CHECKSUM_LEN, need - SY_CHECKSUM_LEN, buf);
        rc = sy_txn_put(t, SY_TBL_LOG, key, 8, buf, need);
        if (rc) {
            free(buf);
            return rc;
        }
    }
    free(buf);
    return SY_OK;
}

static int settle_ckpt(sy_txn *t, uint64_t upto);

int sy_txn_compact(sy_txn *t, uint64_t upto)
{
    uint64_t base = 0;
    int rc = log_base(t, &base);
    if (rc)
        return rc;
    if ((rc = settle_ckpt(t, upto)))
        return rc;
    if (upto <= base)
        return SY_OK;
    rc = log_delete_range(t, base + 1, upto);
    if (rc)
        return rc;
    return sy_txn_meta_put_u64(t, "log_base", upto);
}

/* Snapshot meta: index, term, n_voters, voters..., n_learners, learners... */
static int put_meta_of(sy_txn *t, const char *key, uint64_t index, uint64_t term,
                       const sy_members *m)
{
    uint8_t b[16 + 8 + 8 * SY_MAX_NODES];
    size_t o = 0;
    if (m->n_voters > SY_MAX_NODES || m->n_learners > SY_MAX_NODES)
        return SY_EINVAL;
    sy_put_u64be(b + o, index); o += 8;
    sy_put_u64be(b + o, term); o += 8;
    sy_put_u32be(b + o, m->n_voters); o += 4;
    for (uint32_t i = 0; i < m->n_voters; i++) { sy_put_u32be(b + o, m->voters[i]); o += 4; }
    sy_put_u32be(b + o, m->n_learners); o += 4;
    for (uint32_t i = 0; i < m->n_learners; i++) { sy_put_u32be(b + o, m->learners[i]); o += 4; }
    return sy_txn_meta_put(t, key, b, o);
}

static int get_meta_of(sy_txn *t, const char *key, uint64_t *index, uint64_t *term,
                       sy_members *m)
{
    sy_bytes v = {0};
    memset(m, 0, sizeof *m);
    *index = *term = 0;
    int rc = sy_txn_meta_get(t, key, &v);
    if (rc == SY_ENOTFOUND)
        return SY_OK;
    if (rc)
        return rc;
    if (v.len < 24)
        goto bad;
    *index = sy_get_u64be(v.p);
    *term = sy_get_u64be(v.p + 8);
    size_t o = 16;
    m->n_voters = sy_get_u32be(v.p + o); o += 4;
    if (m->n_voters > SY_MAX_NODES || v.len < o + 4ull * m->n_voters + 4)
        goto bad;
    for (uint32_t i = 0; i < m->n_voters; i++) { m->voters[i] = sy_get_u32be(v.p + o); o += 4; }
    m->n_learners = sy_get_u32be(v.p + o); o += 4;
    if (m->n_learners > SY_MAX_NODES || v.len != o + 4ull * m->n_learners)
        goto bad;
    for (uint32_t i = 0; i < m->n_learners; i++) { m->learners[i] = sy_get_u32be(v.p + o); o += 4; }
    return SY_OK;
bad:
    return sy_storage_fail(t->s, SY_ECORRUPT, "%s metadata is malformed",
                           strcmp(key, "snap") ? "checkpoint snapshot" : "snapshot");
}

static int put_snap_meta(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m)
{
    return put_meta_of(t, "snap", index, term, m);
}

static int get_snap_meta(sy_txn *t, uint64_t *index, uint64_t *term, sy_members *m)
{
    return get_meta_of(t, "snap", index, term, m);
}

/* PBFT's pending checkpoint snapshots (sy_txn_checkpoint_snapshot): one
 * per checkpoint executed above the stable one, "ckpt.<index>" (laid out
 * as "snap") and its blob "ckptdata.<index>", the index in 20 decimal
 * digits so that the keys sort by it. When its checkpoint goes stable the
 * pending one becomes the snapshot by a change of metadata -- "snap"
 * rewritten, "snapslot" (u64) naming the index whose blob is in
 * "ckptdata.<index>" -- not by writing the blob a second time, in a
 * write clients wait for. Any other snapshot (an
 * install, Raft's and Paxos's own, one an older synod wrote, which knows
 * only "snapdata") has its blob in "snapdata". */
#define CKPT_KEY_CAP 32

static void ckpt_key(char out[CKPT_KEY_CAP], const char *what, uint64_t index)
{
    snprintf(out, CKPT_KEY_CAP, "%s.%020llu", what, (unsigned long long)index);
}

static int meta_del(sy_txn *t, const char *name)
{
    int rc = sy_txn_del(t, SY_TBL_META, name, strlen(name));
    return rc == SY_ENOTFOUND ? SY_OK : rc;
}

/* The meta key holding the blob of the stored snapshot at snap_index. */
static int snap_blob_key(sy_txn *t, uint64_t snap_index, char out[CKPT_KEY_CAP])
{
    uint64_t at = 0;
    int rc = sy_txn_meta_get_u64(t, "snapslot", &at);
    if (rc)
        return rc;
    if (at && at == snap_index)
        ckpt_key(out, "ckptdata", at);
    else
        strcpy(out, "snapdata");
    return SY_OK;
}

typedef struct {
    const char *prefix;   /* "ckpt." or "ckptdata." */
    uint64_t *at;
    size_t n, cap;
} ckpt_list;

#define CKPT_PREFIX "ckpt."
#define CKPT_ROW_END (-1)   /* past the prefix: not an sy_err */

static int ckpt_row(void *ctx, sy_bytes key, sy_bytes val)
{
    (void)val;
    ckpt_list *l = ctx;
    size_t pl = strlen(l->prefix);
    if (key.len < pl || memcmp(key.p, l->prefix, pl))
        return CKPT_ROW_END;
    uint64_t at = 0;
    if (key.len != pl + 20)
        return SY_ECORRUPT;
    for (size_t i = pl; i < key.len; i++) {
        if (key.p[i] < '0' || key.p[i] > '9' || at > (UINT64_MAX - 9) / 10)
            return SY_ECORRUPT;
        at = at * 10 + (uint64_t)(key.p[i] - '0');
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        uint64_t *p = realloc(l->at, cap * sizeof *p);
        if (!p)
            return SY_ENOMEM;
        l->at = p;
        l->cap = cap;
    }
    l->at[l->n++] = at;
    return 0;
}

/* The indexes of the keys under prefix, ascending; free(l->at). */
static int ckpt_list_of(sy_txn *t, const char *prefix, ckpt_list *l)
{
    memset(l, 0, sizeof *l);
    l->prefix = prefix;
    int rc = sy_txn_scan(t, SY_TBL_META, prefix, strlen(prefix), ckpt_row, l);
    if (rc == CKPT_ROW_END)
        rc = SY_OK;
    else if (rc == SY_ECORRUPT)
        rc = sy_storage_fail(t->s, SY_ECORRUPT, "a checkpoint snapshot key is malformed");
    if (rc) {
        free(l->at);
        l->at = NULL;
        l->n = 0;
    }
    return rc;
}

/* The pending checkpoint snapshots' indexes, ascending. */
static int ckpt_list_get(sy_txn *t, ckpt_list *l)
{
    return ckpt_list_of(t, CKPT_PREFIX, l);
}

static int drop_ckpt(sy_txn *t, uint64_t at)
{
    char k[CKPT_KEY_CAP];
    ckpt_key(k, "ckpt", at);
    int rc = meta_del(t, k);
    ckpt_key(k, "ckptdata", at);
    return rc ? rc : meta_del(t, k);
}

/* Drops the pending ones at or below upto, except the one at keep (0:
 * none). */
static int drop_ckpts_upto(sy_txn *t, uint64_t upto, uint64_t keep)
{
    ckpt_list l;
    int rc = ckpt_list_get(t, &l);
    for (size_t i = 0; !rc && i < l.n && l.at[i] <= upto; i++)
        if (l.at[i] != keep)
            rc = drop_ckpt(t, l.at[i]);
    free(l.at);
    return rc;
}

/* Stores the snapshot (metadata, blob in "snapdata"); the previous one's
 * blob and the pending ones at or below it go. */
static int put_snapshot(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m,
                        sy_bytes data)
{
    uint64_t have, have_term;
    sy_members have_m;
    char old[CKPT_KEY_CAP] = "snapdata";
    int rc = get_snap_meta(t, &have, &have_term, &have_m);
    if (!rc)
        rc = snap_blob_key(t, have, old);
    if (!rc)
        rc = drop_ckpts_upto(t, index, 0);
    if (!rc && strcmp(old, "snapdata"))
        rc = meta_del(t, old);
    if (!rc)
        rc = meta_del(t, "snapslot");
    if (!rc)
        rc = put_snap_meta(t, index, term, m);
    return rc ? rc : sy_txn_meta_put(t, "snapdata", data.p, data.len);
}

/* Blobs under ckptdata.<i>, i < upto, that are neither pending nor the
 * snapshot's: left behind where an older synod replaced a promoted
 * snapshot (it knows only "snapdata"). Few keys; one scan per compaction. */
static int drop_orphan_blobs(sy_txn *t, uint64_t upto)
{
    uint64_t have, have_term, at = 0;
    sy_members have_m;
    ckpt_list l;
    int rc = get_snap_meta(t, &have, &have_term, &have_m);
    if (!rc)
        rc = sy_txn_meta_get_u64(t, "snapslot", &at);
    if (rc || (rc = ckpt_list_of(t, "ckptdata.", &l)))
        return rc;
    for (size_t i = 0; !rc && i < l.n && l.at[i] < upto; i++) {
        char k[CKPT_KEY_CAP];
        uint64_t ck, ck_term;
        sy_members ck_m;
        if (l.at[i] == at && at == have)
            continue;   /* the snapshot's */
        ckpt_key(k, "ckpt", l.at[i]);
        if ((rc = get_meta_of(t, k, &ck, &ck_term, &ck_m)) || ck)
            continue;   /* pending (or an error) */
        ckpt_key(k, "ckptdata", l.at[i]);
        rc = meta_del(t, k);
    }
    free(l.at);
    return rc;
}

/* Compaction through upto (the checkpoint at upto is stable): the pending
 * snapshot at upto becomes the snapshot, the pending ones below it go
 * (their checkpoints will never be stable: a later one is). */
static int settle_ckpt(sy_txn *t, uint64_t upto)
{
    uint64_t have, have_term, ck = 0, ck_term;
    sy_members have_m, ck_m;
    char k[CKPT_KEY_CAP], old[CKPT_KEY_CAP];
    int rc = drop_orphan_blobs(t, upto);
    ckpt_key(k, "ckpt", upto);
    if (!rc)
        rc = get_meta_of(t, k, &ck, &ck_term, &ck_m);
    if (rc || !ck)
        return rc ? rc : drop_ckpts_upto(t, upto, 0);
    if (ck != upto)
        return sy_storage_fail(t->s, SY_ECORRUPT, "checkpoint snapshot %llu names index %llu",
                               (unsigned long long)upto, (unsigned long long)ck);
    if ((rc = get_snap_meta(t, &have, &have_term, &have_m)) ||
        (rc = drop_ckpts_upto(t, upto, have < upto ? upto : 0)) || have >= upto)
        return rc;
    if ((rc = snap_blob_key(t, have, old)) || (rc = meta_del(t, old)) ||
        (rc = put_snap_meta(t, upto, ck_term, &ck_m)) ||
        (rc = sy_txn_meta_put_u64(t, "snapslot", upto)))
        return rc;
    return meta_del(t, k);   /* its blob stays, the snapshot's now */
}

int sy_txn_set_snapshot(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m,
                        sy_bytes data)
{
    uint64_t first, last;
    int rc = sy_txn_log_bounds(t, &first, &last);
    if (rc)
        return rc;
    bool keep_suffix = false;
    if (index >= first && index <= last) {
        sy_entry e;
        rc = sy_txn_entry(t, index, &e);
        if (rc)
            return rc;
        keep_suffix = e.term == term;
    }
    if (keep_suffix) {
        rc = log_delete_range(t, first, index);
    } else {
        rc = log_delete_range(t, first, UINT64_MAX);
    }
    if (rc)
        return rc;
    uint64_t base = first - 1;
    if (index > base || !keep_suffix) {
        /* A snapshot behind our compaction point can only come with a
         * suffix we keep; otherwise the log restarts right after it. */
        rc = sy_txn_meta_put_u64(t, "log_base", index > base ? index : base);
        if (rc)
            return rc;
    }
    return put_snapshot(t, index, term, m, data);
}

int sy_txn_local_snapshot(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m,
                          sy_bytes data)
{
    uint64_t first, last, have, have_term;
    sy_members have_m;
    int rc = get_snap_meta(t, &have, &have_term, &have_m);
    if (rc)
        return rc;
    if (have >= index)
        return SY_ESTALE;   /* one as new was stored meanwhile (an install) */
    if ((rc = sy_txn_log_bounds(t, &first, &last)))
        return rc;
    if (index > last)
        return sy_storage_fail(t->s, SY_EINVAL,
                               "local snapshot at %llu is past the last log index %llu",
                               (unsigned long long)index, (unsigned long long)last);
    /* The state machine applied exactly entries 1..index of this very log,
     * so what lies above index is kept whatever terms it carries (a Paxos
     * entry's stored ballot differs from the origin ballot it commits with;
     * comparing them would wipe a durable suffix the engine still relies
     * on). Entries up to index are covered by the snapshot. */
    if (index >= first && (rc = sy_txn_compact(t, index)))
        return rc;
    return put_snapshot(t, index, term, m, data);
}

int sy_txn_checkpoint_snapshot(sy_txn *t, uint64_t index, uint64_t term, const sy_members *m,
                               sy_bytes data)
{
    uint64_t first, last, have, have_term, ck, ck_term;
    sy_members have_m, ck_m;
    char k[CKPT_KEY_CAP];
    int rc = get_snap_meta(t, &have, &have_term, &have_m);
    if (rc)
        return rc;
    if (have >= index)
        return SY_ESTALE;   /* one as new was stored meanwhile (an install) */
    ckpt_key(k, "ckpt", index);
    if ((rc = get_meta_of(t, k, &ck, &ck_term, &ck_m)))
        return rc;
    if (ck)
        return SY_ESTALE;   /* stored already */
    if ((rc = sy_txn_log_bounds(t, &first, &last)))
        return rc;
    if (index < first - 1)
        return SY_ESTALE;   /* a later checkpoint went stable meanwhile */
    if (index > last)
        return sy_storage_fail(t->s, SY_EINVAL,
                               "checkpoint snapshot at %llu is past the last log index %llu",
                               (unsigned long long)index, (unsigned long long)last);
    if (index == first - 1)   /* its checkpoint went stable before it was stored */
        return put_snapshot(t, index, term, m, data);
    if ((rc = put_meta_of(t, k, index, term, m)))
        return rc;
    ckpt_key(k, "ckptdata", index);
    return sy_txn_meta_put(t, k, data.p, data.len);
}

int sy_txn_set_applied(sy_txn *t, uint64_t applied)
{
    return sy_txn_meta_put_u64(t, "applied", applied);
}

int sy_txn_get_applied(sy_txn *t, uint64_t *applied)
{
    return sy_txn_meta_get_u64(t, "applied", applied);
}

/* ---- reads ---- */
static int copy_entries(sy_txn *t, uint64_t lo, uint64_t hi, sy_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (hi < lo)
        return SY_OK;
    size_t cnt = (size_t)(hi - lo + 1);
    size_t bytes = 0;
    for (uint64_t i = lo; i <= hi; i++) {
        sy_entry e;
        int rc = sy_txn_entry(t, i, &e);
        if (rc)
            return rc;
        bytes += e.data.len;
    }
    sy_entry *arr = malloc(cnt * sizeof *arr + bytes + 1);
    if (!arr)
        return SY_ENOMEM;
    uint8_t *data = (uint8_t *)(arr + cnt);
    for (uint64_t i = lo; i <= hi; i++) {
        sy_entry e;
        int rc = sy_txn_entry(t, i, &e);
        if (rc) {
            free(arr);
            return rc;
        }
        sy_entry *d = &arr[i - lo];
        *d = e;
        if (e.data.len)
            memcpy(data, e.data.p, e.data.len);
        d->data.p = data;
        data += e.data.len;
    }
    *out = arr;
    *n = cnt;
    return SY_OK;
}

int sy_storage_entries(sy_storage *s, uint64_t lo, uint64_t hi, sy_entry **out, size_t *n)
{
    sy_txn t;
    int rc = sy_txn_begin(s, false, &t);
    if (rc)
        return rc;
    rc = copy_entries(&t, lo, hi, out, n);
    sy_txn_abort(&t);
    return rc;
}

static int dup_bytes(sy_bytes in, uint8_t **out)
{
    *out = malloc(in.len + 1);
    if (!*out)
        return SY_ENOMEM;
    if (in.len)
        memcpy(*out, in.p, in.len);
    return SY_OK;
}

typedef struct {
    size_t n, bytes;          /* sizing pass */
    sy_record *recs;          /* copy pass: NULL while sizing */
    uint8_t *data;
    size_t i;
    sy_storage *s;
} rec_walk;

static int rec_row(void *ctx, sy_bytes key, sy_bytes val)
{
    rec_walk *w = ctx;
    if (key.len != 8)
        return sy_storage_fail(w->s, SY_ECORRUPT, "engine record with a %u-byte key", key.len);
    if (!w->recs) {
        w->n++;
        w->bytes += val.len;
        return SY_OK;
    }
    if (w->i == w->n)
        return SY_OK;   /* cannot happen within one read transaction */
    sy_record *r = &w->recs[w->i++];
    r->key = sy_get_u64be(key.p);
    r->val = (sy_bytes){ w->data, val.len };
    if (val.len)
        memcpy(w->data, val.p, val.len);
    w->data += val.len;
    return SY_OK;
}

/* Every engine record, in key order, into one allocation. */
static int copy_records(sy_txn *t, sy_storage_boot *out)
{
    rec_walk w = { .s = t->s };
    int rc = sy_txn_scan(t, SY_TBL_ENGINE, NULL, 0, rec_row, &w);
    if (rc || !w.n)
        return rc;
    out->records = malloc(w.n * sizeof *w.recs + w.bytes);
    if (!out->records)
        return SY_ENOMEM;
    w.recs = out->records;
    w.data = (uint8_t *)(w.recs + w.n);
    if ((rc = sy_txn_scan(t, SY_TBL_ENGINE, NULL, 0, rec_row, &w)))
        return rc;
    out->boot.records = out->records;
    out->boot.n_records = w.i;
    return SY_OK;
}

/* The pending checkpoint snapshots above the snapshot, ascending. */
static int load_ckpts(sy_txn *t, uint64_t snap_index, sy_storage_boot *out)
{
    ckpt_list l;
    int rc = ckpt_list_get(t, &l);
    if (rc || !l.n) {
        free(l.at);
        return rc;
    }
    out->ckpts = calloc(l.n, sizeof *out->ckpts);
    if (!out->ckpts) {
        free(l.at);
        return SY_ENOMEM;
    }
    for (size_t i = 0; !rc && i < l.n; i++) {
        if (l.at[i] <= snap_index)
            continue;   /* left behind by an older synod's compaction: moot */
        char k[CKPT_KEY_CAP];
        uint64_t at, term;
        sy_members m;
        sy_bytes v = {0};
        ckpt_key(k, "ckpt", l.at[i]);
        if ((rc = get_meta_of(t, k, &at, &term, &m)))
            break;
        if (at != l.at[i]) {
            rc = sy_storage_fail(t->s, SY_ECORRUPT, "checkpoint snapshot %llu names index %llu",
                                 (unsigned long long)l.at[i], (unsigned long long)at);
            break;
        }
        ckpt_key(k, "ckptdata", at);
        if ((rc = sy_txn_meta_get(t, k, &v))) {
            if (rc == SY_ENOTFOUND)
                rc = sy_storage_fail(t->s, SY_ECORRUPT, "checkpoint snapshot %llu has no data",
                                     (unsigned long long)at);
            break;
        }
        uint8_t *copy;
        if ((rc = dup_bytes(v, &copy)))
            break;
        out->ckpts[out->boot.n_ckpts].index = at;
        out->ckpts[out->boot.n_ckpts].data = (sy_bytes){ copy, v.len };
        out->boot.n_ckpts++;
    }
    out->boot.ckpts = out->ckpts;
    free(l.at);
    return rc;
}

int sy_storage_load_boot(sy_storage *s, sy_storage_boot *out)
{
    memset(out, 0, sizeof *out);
    sy_txn t;
    int rc = sy_txn_begin(s, false, &t);
    if (rc)
        return rc;
    sy_engine_boot *b = &out->boot;
    sy_bytes v = {0};
    rc = sy_txn_meta_get(&t, "hardstate", &v);
    if (rc == SY_OK) {
        if ((rc = dup_bytes(v, &out->hardstate)))
            goto err_free;
        b->hardstate.p = out->hardstate;
        b->hardstate.len = v.len;
    } else if (rc != SY_ENOTFOUND) {
        goto err_free;
    }
    if ((rc = get_snap_meta(&t, &b->snap_index, &b->snap_term, &b->snap_members)))
        goto err_free;
    char key[CKPT_KEY_CAP];
    if ((rc = snap_blob_key(&t, b->snap_index, key)))
        goto err_free;
    rc = sy_txn_meta_get(&t, key, &v);
    if (rc == SY_OK) {
        if ((rc = dup_bytes(v, &out->snap_data)))
            goto err_free;
        b->snap_data.p = out->snap_data;
        b->snap_data.len = v.len;
    } else if (rc != SY_ENOTFOUND) {
        goto err_free;
    }
    if ((rc = load_ckpts(&t, b->snap_index, out)))
        goto err_free;
    uint64_t first, last;
    if ((rc = sy_txn_log_bounds(&t, &first, &last)))
        goto err_free;
    if ((rc = copy_entries(&t, first, last, &out->entries, &b->n_entries)))
        goto err_free;
    b->entries = out->entries;
    if ((rc = sy_txn_get_applied(&t, &b->applied)))
        goto err_free;
    if ((rc = copy_records(&t, out)))
        goto err_free;
    sy_txn_abort(&t);
    return SY_OK;
err_free:
    sy_txn_abort(&t);
    sy_storage_boot_free(out);
    return rc;
}

void sy_storage_boot_free(sy_storage_boot *b)
{
    free(b->hardstate);
    free(b->snap_data);
    for (size_t i = 0; b->ckpts && i < b->boot.n_ckpts; i++)
        free((void *)b->ckpts[i].data.p);
    free(b->ckpts);
    free(b->entries);
    free(b->records);
    memset(b, 0, sizeof *b);
}

int sy_txn_persist_ready(sy_txn *t, const sy_ready *rd)
{
    int rc;
    if (rd->hardstate_dirty && (rc = sy_txn_set_hardstate(t, rd->hardstate)))
        return rc;
    if ((rd->records_drop_below || rd->n_records) &&
        (rc = sy_txn_records(t, rd->records_drop_below, rd->records, rd->n_records)))
        return rc;
    if (rd->truncate_from) {
        uint64_t from = rd->truncate_from, first, last;
        /* An engine installing a snapshot may discard its whole log
         * (truncate_from at or below our compaction point): everything
         * stored goes. Without a snapshot, truncating compacted (hence
         * committed) entries is an engine bug and sy_txn_truncate refuses. */
        if (rd->snapshot_install) {
            if ((rc = sy_txn_log_bounds(t, &first, &last)))
                return rc;
            if (from < first)
                from = first;
        }
        if ((rc = sy_txn_truncate(t, from)))
            return rc;
    }
    if (rd->snapshot_install &&
        (rc = sy_txn_set_snapshot(t, rd->snap_index, rd->snap_term, &rd->snap_members,
                                  rd->snap_data)))
        return rc;
    if (rd->n_entries && (rc = sy_txn_append(t, rd->entries, rd->n_entries)))
        return rc;
    if (rd->compact_to && (rc = sy_txn_compact(t, rd->compact_to)))
        return rc;
    return SY_OK;
}
