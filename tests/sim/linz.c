/* Linearizability checker: per-key Wing & Gong search with memoisation of
 * (linearized set, model state), see linz.h.
 *
 * Invariant of the search: the ops removed ("lifted") from the event list,
 * in stack order, form a legal sequential execution from the empty store
 * that respects real-time order (an op is only lifted while no return event
 * precedes its call in the list, i.e. no unlinearized op finished before it
 * started). A state already reached with the same set of linearized ops is
 * never explored twice, which is what makes the search practical. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/sim/linz.h"
#include "core/msg.h"
#include "crypto/sy_err.h"

#define LINZ_DEFAULT_STEPS 10000000ull
#define LINZ_MAX_MEMO_BYTES (512ull << 20) /* past this the verdict is unknown */

typedef struct {
    uint8_t *p;
    size_t len;
} lz_bytes;

typedef struct {
    uint32_t client;
    uint8_t op, flags;
    int status;
    bool returned;
    uint64_t call_t, ret_t;
    lz_bytes key, val, old, out;
} lz_op;

struct sy_linz {
    lz_op *ops;
    size_t n, cap;
};

static int dup_bytes(lz_bytes *b, const void *p, size_t len)
{
    b->len = len;
    b->p = NULL;
    if (!len)
        return SY_OK;
    b->p = malloc(len);
    if (!b->p)
        return SY_ENOMEM;
    memcpy(b->p, p, len);
    return SY_OK;
}

int sy_linz_new(sy_linz **out)
{
    sy_linz *h = calloc(1, sizeof *h);
    if (!h)
        return SY_ENOMEM;
    *out = h;
    return SY_OK;
}

void sy_linz_free(sy_linz *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->ops[i].key.p);
        free(h->ops[i].val.p);
        free(h->ops[i].old.p);
        free(h->ops[i].out.p);
    }
    free(h->ops);
    free(h);
}

size_t sy_linz_count(const sy_linz *h) { return h->n; }

int sy_linz_invoke(sy_linz *h, uint32_t client, uint64_t t, uint8_t op, uint8_t flags,
                   const void *key, size_t klen, const void *val, size_t vlen,
                   const void *old, size_t olen, size_t *id)
{
    if (op != SY_OP_PUT && op != SY_OP_GET && op != SY_OP_DEL && op != SY_OP_CAS)
        return SY_EINVAL;
    if (h->n >= SY_LINZ_MAX_OPS)
        return SY_EFULL;
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        lz_op *no = realloc(h->ops, nc * sizeof *no);
        if (!no)
            return SY_ENOMEM;
        h->ops = no;
        h->cap = nc;
    }
    lz_op *o = &h->ops[h->n];
    memset(o, 0, sizeof *o);
    o->client = client;
    o->op = op;
    o->flags = flags;
    o->call_t = t;
    o->ret_t = SY_LINZ_PENDING;
    if (dup_bytes(&o->key, key, klen) || dup_bytes(&o->val, val, vlen) ||
        dup_bytes(&o->old, old, olen)) {
        free(o->key.p);
        free(o->val.p);
        free(o->old.p);
        return SY_ENOMEM;
    }
    *id = h->n++;
    return SY_OK;
}

int sy_linz_return(sy_linz *h, size_t id, uint64_t t, int status, const void *val,
                   size_t vlen)
{
    if (id >= h->n || h->ops[id].returned || t < h->ops[id].call_t ||
        t == SY_LINZ_PENDING)
        return SY_EINVAL;
    lz_op *o = &h->ops[id];
    int rc = dup_bytes(&o->out, val, vlen);
    if (rc)
        return rc;
    o->returned = true;
    o->ret_t = t;
    o->status = status;
    return SY_OK;
}

static const char *op_name(uint8_t op)
{
    switch (op) {
    case SY_OP_PUT: return "put";
    case SY_OP_GET: return "get";
    case SY_OP_DEL: return "del";
    case SY_OP_CAS: return "cas";
    default: return "?";
    }
}

static void printable(const lz_bytes *b, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < b->len && j + 1 < cap; i++)
        out[j++] = (b->p[i] >= 0x20 && b->p[i] < 0x7f) ? (char)b->p[i] : '.';
    out[j] = 0;
}

void sy_linz_describe(const sy_linz *h, size_t id, char *buf, size_t cap)
{
    if (id >= h->n) {
        snprintf(buf, cap, "(no op %zu)", id);
        return;
    }
    const lz_op *o = &h->ops[id];
    char k[40], v[40], old[40], out[40], ret[24];
    printable(&o->key, k, sizeof k);
    printable(&o->val, v, sizeof v);
    printable(&o->old, old, sizeof old);
    printable(&o->out, out, sizeof out);
    if (o->returned)
        snprintf(ret, sizeof ret, "%llu", (unsigned long long)o->ret_t);
    else
        snprintf(ret, sizeof ret, "inf");
    const char *res = !o->returned ? "pending" : sy_errname(o->status);
    switch (o->op) {
    case SY_OP_PUT:
        snprintf(buf, cap, "#%zu c%u put %s=%s [%llu,%s] -> %s", id, o->client, k, v,
                 (unsigned long long)o->call_t, ret, res);
        break;
    case SY_OP_CAS:
        snprintf(buf, cap, "#%zu c%u cas %s %s->%s [%llu,%s] -> %s %s", id, o->client, k,
                 (o->flags & SY_CAS_EXPECT_ABSENT) ? "(absent)" : old, v,
                 (unsigned long long)o->call_t, ret, res, out);
        break;
    default:
        snprintf(buf, cap, "#%zu c%u %s %s [%llu,%s] -> %s %s", id, o->client,
                 op_name(o->op), k, (unsigned long long)o->call_t, ret, res, out);
        break;
    }
}

/* ---- per-partition search ---- */

/* Op of one partition with values interned: 0 = absent, 1.. = distinct
 * values, so the model state of one key is a single integer. */
typedef struct {
    size_t hid;             /* id in the history */
    uint8_t op, flags;
    bool pending;
    int status;
    uint32_t val, old, out; /* interned */
    /* failed cas that reported an empty value: the key was absent, or it
     * held the empty value (id out_empty, 0 if nobody wrote one): the
     * store's reply does not tell the two apart */
    uint32_t out_empty;
    uint64_t call_t, ret_t;
} pop;

typedef struct ev {
    struct ev *prev, *next;
    struct ev *match;       /* call -> its return */
    uint32_t op;            /* index in the partition */
    bool is_call;
    uint64_t t;
} ev;

typedef struct {
    const lz_bytes **vals;
    size_t n, cap;
} interner;

static int intern(interner *in, const lz_bytes *b, uint32_t *out)
{
    for (size_t i = 0; i < in->n; i++) {
        if (in->vals[i]->len == b->len && (b->len == 0 || memcmp(in->vals[i]->p, b->p, b->len) == 0)) {
            *out = (uint32_t)(i + 1);
            return SY_OK;
        }
    }
    if (in->n == in->cap) {
        size_t nc = in->cap ? in->cap * 2 : 16;
        const lz_bytes **nv = realloc(in->vals, nc * sizeof *nv);
        if (!nv)
            return SY_ENOMEM;
        in->vals = nv;
        in->cap = nc;
    }
    in->vals[in->n++] = b;
    *out = (uint32_t)in->n;
    return SY_OK;
}

/* Sequential key-value model of one key. Returns whether op is legal in
 * state s with its observed result, and the state after it. */
static bool model_step(const pop *o, uint32_t s, uint32_t *ns)
{
    switch (o->op) {
    case SY_OP_PUT:
        *ns = o->val;
        return true;
    case SY_OP_GET:
        *ns = s;
        if (o->pending)
            return true;
        if (o->status == SY_ENOTFOUND)
            return s == 0;
        return s != 0 && s == o->out;
    case SY_OP_DEL:
        *ns = 0;
        if (!o->pending && o->status == SY_ENOTFOUND)
            return s == 0;
        return true;
    case SY_OP_CAS: {
        uint32_t expect = (o->flags & SY_CAS_EXPECT_ABSENT) ? 0 : o->old;
        if (o->pending) {
            *ns = (s == expect) ? o->val : s;
            return true;
        }
        if (o->status == SY_OK) {
            *ns = o->val;
            return s == expect;
        }
        *ns = s;
        if (s == expect)
            return false;
        /* the store reports the current value of a failed cas (core/kv.c):
         * it must be the model's; empty means absent, or the empty value */
        return s == o->out || (o->out == 0 && o->out_empty != 0 && s == o->out_empty);
    }
    default:
        return false;
    }
}

/* Memo set of (state, bitset) records, open hashing by chains. */
typedef struct {
    size_t words;           /* uint64 per record: 1 (state) + bitset words */
    uint64_t *pool;
    size_t n, cap;
    uint32_t *buckets;      /* record index + 1, 0 = empty */
    uint32_t *next;
    size_t nbuckets;
} memo;

static uint64_t rec_hash(const uint64_t *r, size_t words)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < words; i++) {
        h ^= r[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

static int memo_grow(memo *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 1024;
    uint32_t *b = calloc(nb, sizeof *b);
    if (!b)
        return SY_ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        uint64_t h = rec_hash(m->pool + i * m->words, m->words) & (nb - 1);
        m->next[i] = b[h];
        b[h] = (uint32_t)(i + 1);
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return SY_OK;
}

/* Inserts rec; *added false if it was already present. */
static int memo_add(memo *m, const uint64_t *rec, bool *added)
{
    if (!m->nbuckets || m->n * 4 >= m->nbuckets * 3) {
        int rc = memo_grow(m);
        if (rc)
            return rc;
    }
    uint64_t h = rec_hash(rec, m->words) & (m->nbuckets - 1);
    for (uint32_t i = m->buckets[h]; i; i = m->next[i - 1]) {
        if (memcmp(m->pool + (size_t)(i - 1) * m->words, rec, m->words * 8) == 0) {
            *added = false;
            return SY_OK;
        }
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        if (nc >= UINT32_MAX)
            return SY_ENOMEM;
        uint64_t *np = realloc(m->pool, nc * m->words * sizeof *np);
        if (!np)
            return SY_ENOMEM;
        m->pool = np;
        uint32_t *nn = realloc(m->next, nc * sizeof *nn);
        if (!nn)
            return SY_ENOMEM;
        m->next = nn;
        m->cap = nc;
    }
    memcpy(m->pool + m->n * m->words, rec, m->words * 8);
    m->next[m->n] = m->buckets[h];
    m->buckets[h] = (uint32_t)(m->n + 1);
    m->n++;
    *added = true;
    return SY_OK;
}

static void memo_free(memo *m)
{
    free(m->pool);
    free(m->buckets);
    free(m->next);
}

static int ev_cmp(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->is_call != y->is_call)
        return x->is_call ? -1 : 1;      /* calls first: permissive on ties */
    return x->op < y->op ? -1 : x->op > y->op;
}

static void lift(ev *call)
{
    call->prev->next = call->next;
    call->next->prev = call->prev;
    ev *r = call->match;
    r->prev->next = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

static void unlift(ev *call)
{
    ev *r = call->match;
    r->prev->next = r;
    if (r->next)
        r->next->prev = r;
    call->prev->next = call;
    call->next->prev = call;
}

typedef struct {
    ev *call;
    uint32_t state;
} frame;

/* Searches one partition. *verdict gets OK / VIOLATION / UNKNOWN; *bad the
 * partition index of the first op that could not be placed at the deepest
 * point the search reached. */
static int check_partition(const pop *ops, size_t n, uint64_t *budget, int *verdict,
                           size_t *bad)
{
    int rc = SY_ENOMEM;
    ev *evs = calloc(2 * n + 1, sizeof *evs);
    frame *stack = calloc(n + 1, sizeof *stack);
    size_t words = 1 + (n + 63) / 64;
    uint64_t *rec = calloc(words, sizeof *rec);
    memo m = { .words = words };
    if (!evs || !stack || !rec)
        goto out_free;

    ev *sorted = evs + 1;
    for (size_t i = 0; i < n; i++) {
        sorted[2 * i] = (ev){ .op = (uint32_t)i, .is_call = true, .t = ops[i].call_t };
        sorted[2 * i + 1] = (ev){ .op = (uint32_t)i, .is_call = false, .t = ops[i].ret_t };
    }
    qsort(sorted, 2 * n, sizeof *sorted, ev_cmp);
    /* qsort moved the events: link calls to returns by op index */
    ev **call_of = calloc(n ? n : 1, sizeof *call_of);
    if (!call_of)
        goto out_free;
    for (size_t i = 0; i < 2 * n; i++)
        if (sorted[i].is_call)
            call_of[sorted[i].op] = &sorted[i];
    for (size_t i = 0; i < 2 * n; i++)
        if (!sorted[i].is_call)
            call_of[sorted[i].op]->match = &sorted[i];
    free(call_of);
    ev *head = &evs[0];
    head->prev = NULL;
    head->next = n ? &sorted[0] : NULL;
    for (size_t i = 0; i < 2 * n; i++) {
        sorted[i].prev = i ? &sorted[i - 1] : head;
        sorted[i].next = i + 1 < 2 * n ? &sorted[i + 1] : NULL;
    }

    uint64_t *bits = rec + 1;
    uint32_t state = 0;
    size_t depth = 0, best = 0;
    *bad = n ? head->next->op : 0;
    ev *cur = head->next;
    rc = SY_OK;
    *verdict = SY_LINZ_OK;
    while (head->next) {
        if (*budget == 0) {
            *verdict = SY_LINZ_UNKNOWN;
            break;
        }
        (*budget)--;
        if (cur->is_call) {
            uint32_t ns;
            if (model_step(&ops[cur->op], state, &ns)) {
                bits[cur->op / 64] |= 1ull << (cur->op % 64);
                rec[0] = ns;
                bool added;
                rc = memo_add(&m, rec, &added);
                if (rc)
                    break;
                if ((uint64_t)m.n * words * 8 > LINZ_MAX_MEMO_BYTES) {
                    *verdict = SY_LINZ_UNKNOWN;
                    break;
                }
                if (added) {
                    stack[depth++] = (frame){ .call = cur, .state = state };
                    state = ns;
                    lift(cur);
                    if (depth > best && head->next) {
                        best = depth;
                        *bad = head->next->op;
                    }
                    cur = head->next;
                    continue;
                }
                bits[cur->op / 64] &= ~(1ull << (cur->op % 64));
            }
            cur = cur->next;
        } else {
            /* an unlinearized op returned here: everything after it started
             * later, so this branch is dead; backtrack */
            if (depth == 0) {
                *verdict = SY_LINZ_VIOLATION;
                break;
            }
            frame f = stack[--depth];
            bits[f.call->op / 64] &= ~(1ull << (f.call->op % 64));
            state = f.state;
            unlift(f.call);
            cur = f.call->next;
        }
    }
out_free:
    memo_free(&m);
    free(evs);
    free(stack);
    free(rec);
    return rc;
}

static int key_cmp(const lz_op *a, const lz_op *b)
{
    size_t l = a->key.len < b->key.len ? a->key.len : b->key.len;
    int c = l ? memcmp(a->key.p, b->key.p, l) : 0;
    if (c)
        return c;
    return a->key.len < b->key.len ? -1 : a->key.len > b->key.len;
}

/* qsort has no context argument in C11: sort (op pointer, id) pairs. */
typedef struct {
    const lz_op *o;
    size_t id;
} op_ref;

static int ref_cmp(const void *a, const void *b)
{
    const op_ref *x = a, *y = b;
    int c = key_cmp(x->o, y->o);
    if (c)
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

int sy_linz_check(const sy_linz *h, uint64_t max_steps, sy_linz_result *res)
{
    memset(res, 0, sizeof *res);
    res->verdict = SY_LINZ_OK;
    uint64_t budget = max_steps ? max_steps : LINZ_DEFAULT_STEPS;
    const uint64_t start_budget = budget;
    int rc = SY_OK;
    op_ref *refs = calloc(h->n ? h->n : 1, sizeof *refs);
    pop *ops = calloc(h->n ? h->n : 1, sizeof *ops);
    interner in = { 0 };
    if (!refs || !ops) {
        rc = SY_ENOMEM;
        goto out_free;
    }
    for (size_t i = 0; i < h->n; i++)
        refs[i] = (op_ref){ .o = &h->ops[i], .id = i };
    qsort(refs, h->n, sizeof *refs, ref_cmp);

    int unknown_verdict = SY_LINZ_OK;
    for (size_t lo = 0; lo < h->n;) {
        size_t hi = lo + 1;
        while (hi < h->n && key_cmp(refs[lo].o, refs[hi].o) == 0)
            hi++;
        in.n = 0;
        size_t np = 0;
        for (size_t i = lo; i < hi; i++) {
            const lz_op *o = refs[i].o;
            /* a read that never returned observed nothing: drop it */
            if (o->op == SY_OP_GET && !o->returned)
                continue;
            pop *p = &ops[np++];
            memset(p, 0, sizeof *p);
            p->hid = refs[i].id;
            p->op = o->op;
            p->flags = o->flags;
            p->pending = !o->returned;
            p->status = o->status;
            p->call_t = o->call_t;
            p->ret_t = o->returned ? o->ret_t : SY_LINZ_PENDING;
            if ((o->op == SY_OP_PUT || o->op == SY_OP_CAS) && (rc = intern(&in, &o->val, &p->val)))
                goto out_free;
            if (o->op == SY_OP_CAS && !(o->flags & SY_CAS_EXPECT_ABSENT) &&
                (rc = intern(&in, &o->old, &p->old)))
                goto out_free;
            if (o->returned && o->status == SY_OK && o->op == SY_OP_GET &&
                (rc = intern(&in, &o->out, &p->out)))
                goto out_free;
            if (o->returned && o->status == SY_ECASFAIL && o->out.len &&
                (rc = intern(&in, &o->out, &p->out)))
                goto out_free;
        }
        /* the id of the empty value, if this key ever held it */
        uint32_t empty = 0;
        for (size_t v = 0; v < in.n; v++)
            if (in.vals[v]->len == 0)
                empty = (uint32_t)(v + 1);
        for (size_t i = 0; i < np; i++)
            if (ops[i].op == SY_OP_CAS && !ops[i].pending && ops[i].status == SY_ECASFAIL &&
                ops[i].out == 0)
                ops[i].out_empty = empty;
        res->partitions++;
        int verdict = SY_LINZ_OK;
        size_t bad = 0;
        rc = check_partition(ops, np, &budget, &verdict, &bad);
        if (rc)
            goto out_free;
        if (verdict != SY_LINZ_OK && res->key_ops == 0) {
            lz_bytes k = refs[lo].o->key;
            printable(&k, res->key, sizeof res->key);
            res->key_ops = np;
            res->bad_op = np ? ops[bad].hid : 0;
        }
        if (verdict == SY_LINZ_VIOLATION) {
            res->verdict = SY_LINZ_VIOLATION;
            break;
        }
        if (verdict == SY_LINZ_UNKNOWN) {
            unknown_verdict = SY_LINZ_UNKNOWN;
            break;
        }
        lo = hi;
    }
    if (res->verdict == SY_LINZ_OK)
        res->verdict = unknown_verdict;
    res->steps = start_budget - budget;
out_free:
    free(in.vals);
    free(refs);
    free(ops);
    return rc;
}
