/* Memory storage backend for the simulator.
 *
 * Each table is a sorted array of items, ordered like LMDB's default
 * (memcmp, then shorter first), so both backends iterate identically.
 *
 * Crash model: a write transaction applies in place and keeps an undo
 * record per write (the item it replaced, or "absent"). Abort replays the
 * undo records backwards. A commit either makes the transaction durable at
 * once (undo dropped) or, in manual-sync mode, parks its undo records on the
 * "unsynced" list; sy_storage_mem_sync() drops them (now durable) and
 * sy_storage_mem_crash() replays them backwards, newest transaction first,
 * which leaves exactly the synced image: the unsynced part vanishes whole. */
#include <stdlib.h>
#include <string.h>
#include "core/storage.h"
#include "crypto/sy_err.h"

typedef struct item {
    uint32_t kl;
    size_t vl;
    uint8_t data[];   /* key then value */
} item;

typedef struct table {
    item **v;
    size_t n, cap;
} table;

typedef struct undo {
    int tbl;
    item *old;        /* replaced item (owned), or NULL: key was absent */
    uint8_t *key;     /* key written (owned) */
    uint32_t kl;
} undo;

typedef struct undo_log {
    undo *v;
    size_t n, cap;
    bool deferred;         /* left unsynced by sy_storage_mem_sync */
} undo_log;

typedef struct mem_txn {
    bool write;
    undo_log log;
} mem_txn;

typedef struct mem {
    table t[SY_TBL_COUNT];
    bool manual_sync;
    bool writer;           /* a write txn is open */
    undo_log *pending;     /* committed, unsynced transactions, oldest first */
    size_t n_pending, cap_pending;
    uint64_t syncs;
    bool defer_next;       /* sy_storage_mem_defer_next */
} mem;

static int cmp_key(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* Index of the first item with key >= k; *found when equal. */
static size_t lower_bound(const table *t, const uint8_t *k, size_t kl, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const item *it = t->v[mid];
        if (cmp_key(it->data, it->kl, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < t->n && cmp_key(t->v[lo]->data, t->v[lo]->kl, k, kl) == 0;
    return lo;
}

static item *item_new(const void *k, size_t kl, const void *v, size_t vl)
{
    item *it = malloc(sizeof *it + kl + vl);
    if (!it)
        return NULL;
    it->kl = (uint32_t)kl;
    it->vl = vl;
    if (kl)
        memcpy(it->data, k, kl);
    if (vl)
        memcpy(it->data + kl, v, vl);
    return it;
}

/* Puts it in place of the item with the same key; returns the old one. */
static int table_set(table *t, item *it, item **old)
{
    bool found;
    size_t i = lower_bound(t, it->data, it->kl, &found);
    if (found) {
        *old = t->v[i];
        t->v[i] = it;
        return SY_OK;
    }
    *old = NULL;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        item **nv = realloc(t->v, nc * sizeof *nv);
        if (!nv)
            return SY_ENOMEM;
        t->v = nv;
        t->cap = nc;
    }
    memmove(t->v + i + 1, t->v + i, (t->n - i) * sizeof *t->v);
    t->v[i] = it;
    t->n++;
    return SY_OK;
}

static item *table_remove(table *t, const uint8_t *k, size_t kl)
{
    bool found;
    size_t i = lower_bound(t, k, kl, &found);
    if (!found)
        return NULL;
    item *it = t->v[i];
    memmove(t->v + i, t->v + i + 1, (t->n - i - 1) * sizeof *t->v);
    t->n--;
    return it;
}

static int undo_push(undo_log *l, int tbl, item *old, const void *k, size_t kl)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        undo *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return SY_ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    uint8_t *key = malloc(kl ? kl : 1);
    if (!key)
        return SY_ENOMEM;
    if (kl)
        memcpy(key, k, kl);
    l->v[l->n++] = (undo){ .tbl = tbl, .old = old, .key = key, .kl = (uint32_t)kl };
    return SY_OK;
}

/* Reverts every write in l, newest first, and empties it. */
static void undo_replay(mem *m, undo_log *l)
{
    while (l->n > 0) {
        undo *u = &l->v[--l->n];
        table *t = &m->t[u->tbl];
        free(table_remove(t, u->key, u->kl));
        if (u->old) {
            item *dummy;
            /* Cannot fail: the slot was freed just above or existed before. */
            if (table_set(t, u->old, &dummy) != SY_OK)
                abort();
        }
        free(u->key);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Forgets l (its writes stay): frees the replaced items. */
static void undo_drop(undo_log *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].old);
        free(l->v[i].key);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int mem_begin(sy_storage *s, bool write, void **out)
{
    mem *m = s->impl;
    if (write && m->writer)
        return sy_storage_fail(s, SY_EINVAL, "memory storage: a write transaction is open");
    mem_txn *t = calloc(1, sizeof *t);
    if (!t)
        return SY_ENOMEM;
    t->write = write;
    if (write)
        m->writer = true;
    *out = t;
    return SY_OK;
}

static int mem_commit(sy_storage *s, void *txn)
{
    mem *m = s->impl;
    mem_txn *t = txn;
    if (t->write) {
        bool defer = m->defer_next;
        m->defer_next = false;
        m->writer = false;
        if (m->manual_sync && t->log.n > 0) {
            if (m->n_pending == m->cap_pending) {
                size_t nc = m->cap_pending ? m->cap_pending * 2 : 8;
                undo_log *np = realloc(m->pending, nc * sizeof *np);
                if (!np) {
                    undo_replay(m, &t->log);
                    free(t);
                    return SY_ENOMEM;
                }
                m->pending = np;
                m->cap_pending = nc;
            }
            t->log.deferred = defer;
            m->pending[m->n_pending++] = t->log;
        } else {
            undo_drop(&t->log);
            m->syncs++;
        }
    }
    free(t);
    return SY_OK;
}

static void mem_abort(sy_storage *s, void *txn)
{
    mem *m = s->impl;
    mem_txn *t = txn;
    if (t->write) {
        undo_replay(m, &t->log);
        m->writer = false;
        m->defer_next = false;
    }
    free(t);
}

static int mem_get(sy_storage *s, void *txn, int tbl, const void *k, size_t kl, sy_bytes *v)
{
    mem *m = s->impl;
    bool found;
    table *t = &m->t[tbl];
    size_t i = lower_bound(t, k, kl, &found);
    if (!found)
        return SY_ENOTFOUND;
    v->p = t->v[i]->data + t->v[i]->kl;
    v->len = (uint32_t)t->v[i]->vl;
    return SY_OK;
}

static int mem_put(sy_storage *s, void *txn, int tbl, const void *k, size_t kl, const void *v,
                   size_t vl)
{
    mem *m = s->impl;
    mem_txn *t = txn;
    if (vl > UINT32_MAX || kl > UINT32_MAX)
        return SY_ETOOBIG;
    item *it = item_new(k, kl, v, vl);
    if (!it)
        return SY_ENOMEM;
    /* Reserve the undo slot first so a failure leaves the table untouched. */
    int rc = undo_push(&t->log, tbl, NULL, k, kl);
    if (rc) {
        free(it);
        return rc;
    }
    item *old;
    rc = table_set(&m->t[tbl], it, &old);
    if (rc) {
        t->log.n--;
        free(t->log.v[t->log.n].key);
        free(it);
        return rc;
    }
    t->log.v[t->log.n - 1].old = old;
    return SY_OK;
}

static int mem_del(sy_storage *s, void *txn, int tbl, const void *k, size_t kl)
{
    mem *m = s->impl;
    mem_txn *t = txn;
    bool found;
    lower_bound(&m->t[tbl], k, kl, &found);
    if (!found)
        return SY_OK;
    int rc = undo_push(&t->log, tbl, NULL, k, kl);
    if (rc)
        return rc;
    t->log.v[t->log.n - 1].old = table_remove(&m->t[tbl], k, kl);
    return SY_OK;
}

static int mem_clear(sy_storage *s, void *txn, int tbl)
{
    mem *m = s->impl;
    table *tb = &m->t[tbl];
    while (tb->n > 0) {
        item *it = tb->v[tb->n - 1];
        int rc = mem_del(s, txn, tbl, it->data, it->kl);
        if (rc)
            return rc;
    }
    return SY_OK;
}

static int mem_scan(sy_storage *s, void *txn, int tbl, const void *k, size_t kl,
                    int (*cb)(void *ctx, sy_bytes key, sy_bytes val), void *ctx)
{
    (void)txn;
    mem *m = s->impl;
    table *t = &m->t[tbl];
    size_t i = 0;
    if (k) {
        bool found;
        i = lower_bound(t, k, kl, &found);
    }
    for (; i < t->n; i++) {
        const item *it = t->v[i];
        int rc = cb(ctx, (sy_bytes){ it->data, it->kl },
                    (sy_bytes){ it->data + it->kl, (uint32_t)it->vl });
        if (rc)
            return rc;
    }
    return SY_OK;
}

static int mem_last(sy_storage *s, void *txn, int tbl, sy_bytes *key, sy_bytes *val)
{
    mem *m = s->impl;
    table *t = &m->t[tbl];
    if (t->n == 0)
        return SY_ENOTFOUND;
    item *it = t->v[t->n - 1];
    key->p = it->data;
    key->len = it->kl;
    val->p = it->data + it->kl;
    val->len = (uint32_t)it->vl;
    return SY_OK;
}

static void mem_close(sy_storage *s)
{
    mem *m = s->impl;
    for (size_t i = 0; i < m->n_pending; i++)
        undo_drop(&m->pending[i]);
    free(m->pending);
    for (int i = 0; i < SY_TBL_COUNT; i++) {
        for (size_t j = 0; j < m->t[i].n; j++)
            free(m->t[i].v[j]);
        free(m->t[i].v);
    }
    free(m);
    free(s);
}

static const sy_storage_ops mem_ops = {
    .name = "memory",
    .begin = mem_begin,
    .commit = mem_commit,
    .abort = mem_abort,
    .get = mem_get,
    .put = mem_put,
    .del = mem_del,
    .clear = mem_clear,
    .scan = mem_scan,
    .last = mem_last,
    .close = mem_close,
};

int sy_storage_mem_new(const sy_storage_mem_opts *opts, sy_storage **out)
{
    sy_storage *s = calloc(1, sizeof *s);
    mem *m = calloc(1, sizeof *m);
    if (!s || !m) {
        free(s);
        free(m);
        return SY_ENOMEM;
    }
    m->manual_sync = opts && opts->manual_sync;
    s->ops = &mem_ops;
    s->impl = m;
    *out = s;
    return SY_OK;
}

void sy_storage_mem_sync(sy_storage *s)
{
    mem *m = s->impl;
    size_t keep = 0;
    bool any = false;
    for (size_t i = 0; i < m->n_pending; i++) {
        if (m->pending[i].deferred) {
            m->pending[keep++] = m->pending[i];
        } else {
            undo_drop(&m->pending[i]);
            any = true;
        }
    }
    m->n_pending = keep;
    m->syncs += any;
}

void sy_storage_mem_sync_all(sy_storage *s)
{
    mem *m = s->impl;
    if (m->n_pending)
        m->syncs++;
    for (size_t i = 0; i < m->n_pending; i++)
        undo_drop(&m->pending[i]);
    m->n_pending = 0;
}

void sy_storage_mem_defer_next(sy_storage *s)
{
    mem *m = s->impl;
    m->defer_next = true;
}

size_t sy_storage_mem_crash(sy_storage *s)
{
    mem *m = s->impl;
    size_t lost = m->n_pending;
    while (m->n_pending > 0)
        undo_replay(m, &m->pending[--m->n_pending]);
    return lost;
}

int sy_storage_mem_corrupt(sy_storage *s, int tbl, const void *k, size_t kl, size_t offset)
{
    mem *m = s->impl;
    bool found;
    table *t = &m->t[tbl];
    size_t i = lower_bound(t, k, kl, &found);
    if (!found || offset >= t->v[i]->vl)
        return SY_ENOTFOUND;
    t->v[i]->data[t->v[i]->kl + offset] ^= 0x5a;
    return SY_OK;
}

uint64_t sy_storage_mem_syncs(const sy_storage *s)
{
    const mem *m = s->impl;
    return m->syncs;
}
