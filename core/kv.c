/* The KV state machine, its client sessions and its state digest, applied
 * through a storage write transaction.
 *
 * Invariants kept (all updated in the same transaction):
 *   - meta "applied" = index of the last applied entry;
 *   - meta "digest" = sum mod 2^256 of H(u32be klen || key || value) over
 *     the live keys in the state table;
 *   - every session row 'C'+client has exactly one LRU row
 *     'L'+last_used+client, and meta "sessions_n" counts them;
 *   - the ledger tip is the block of the last applied NORMAL entry.
 * Nothing depends on time, randomness or memory addresses: two replicas fed
 * the same entries reach byte-identical storage. */
#include <stdlib.h>
#include <string.h>
#include "core/kv.h"
#include "core/ledger.h"
#include "core/buf.h"
#include "crypto/sy_err.h"

#define LONG_KEY_HASH 16
#define SESS_C 'C'
#define SESS_L 'L'

int sy_kv_init(sy_kvm *kv, sy_storage *s, const sy_env_opts *dec, uint32_t max_sessions)
{
    memset(kv, 0, sizeof *kv);
    if (!s || !dec || !dec->cluster_id || strlen(dec->cluster_id) > SY_MAX_CLUSTER_ID)
        return SY_EINVAL;
    kv->s = s;
    kv->dec = *dec;
    kv->dec.verifier = NULL;
    strcpy(kv->cluster_id, dec->cluster_id);
    kv->dec.cluster_id = kv->cluster_id;
    kv->max_sessions = max_sessions ? max_sessions : SY_KV_MAX_SESSIONS;
    return SY_OK;
}

/* ---- state digest: 256-bit little-endian accumulator ---- */
static void key_hash(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, sy_digest *d)
{
    sy_hasher h;
    uint8_t l[4];
    sy_put_u32be(l, (uint32_t)kl);
    sy_hash_init(&h);
    sy_hash_update(&h, l, 4);
    sy_hash_update(&h, k, kl);
    sy_hash_update(&h, v, vl);
    sy_hash_final(&h, d);
}

static void digest_add(sy_digest *acc, const sy_digest *x, bool sub)
{
    unsigned carry = 0;
    for (int i = 0; i < SY_DIGEST_LEN; i++) {
        int r = sub ? (int)acc->b[i] - (int)x->b[i] - (int)carry
                    : (int)acc->b[i] + (int)x->b[i] + (int)carry;
        if (sub) {
            carry = r < 0;
            r += carry ? 256 : 0;
        } else {
            carry = r > 255;
            r -= carry ? 256 : 0;
        }
        acc->b[i] = (uint8_t)r;
    }
}

static int load_digest(sy_txn *t, sy_digest *d)
{
    sy_bytes v;
    int rc = sy_txn_meta_get(t, "digest", &v);
    memset(d, 0, sizeof *d);
    if (rc == SY_ENOTFOUND)
        return SY_OK;
    if (rc)
        return rc;
    if (v.len != SY_DIGEST_LEN)
        return sy_storage_fail(t->s, SY_ECORRUPT, "state digest malformed");
    memcpy(d->b, v.p, SY_DIGEST_LEN);
    return SY_OK;
}

/* ---- stored key encoding (order-preserving for long keys) ---- */
typedef struct {
    uint8_t b[SY_KV_KEY_PREFIX + LONG_KEY_HASH];
    size_t len;
    bool long_key;
} skey;

static void make_skey(const uint8_t *k, size_t kl, skey *out)
{
    if (kl <= SY_KV_KEY_PREFIX) {
        memcpy(out->b, k, kl);
        out->len = kl;
        out->long_key = false;
        return;
    }
    sy_digest d;
    sy_hash(k, kl, &d);
    memcpy(out->b, k, SY_KV_KEY_PREFIX);
    memcpy(out->b + SY_KV_KEY_PREFIX, d.b, LONG_KEY_HASH);
    out->len = SY_KV_KEY_PREFIX + LONG_KEY_HASH;
    out->long_key = true;
}

/* Decodes a stored pair into full key and value (borrowed; the full key of
 * a long key is rebuilt into kbuf). */
static int decode_pair(sy_storage *s, sy_bytes sk, sy_bytes sv, uint8_t *kbuf, sy_bytes *key,
                       sy_bytes *val)
{
    if (sk.len <= SY_KV_KEY_PREFIX) {
        *key = sk;
        *val = sv;
        return SY_OK;
    }
    if (sk.len != SY_KV_KEY_PREFIX + LONG_KEY_HASH || sv.len < 2)
        return sy_storage_fail(s, SY_ECORRUPT, "state: malformed long-key row");
    uint32_t sl = (uint32_t)sv.p[0] << 8 | sv.p[1];
    if (sl > sv.len - 2 || SY_KV_KEY_PREFIX + sl > SY_MAX_KEY)
        return sy_storage_fail(s, SY_ECORRUPT, "state: malformed long-key row");
    memcpy(kbuf, sk.p, SY_KV_KEY_PREFIX);
    memcpy(kbuf + SY_KV_KEY_PREFIX, sv.p + 2, sl);
    key->p = kbuf;
    key->len = SY_KV_KEY_PREFIX + sl;
    val->p = sv.p + 2 + sl;
    val->len = sv.len - 2 - sl;
    return SY_OK;
}

/* Looks key up; *found false when absent. *val borrowed. */
static int state_get(sy_txn *t, const uint8_t *k, size_t kl, bool *found, sy_bytes *val)
{
    skey sk;
    make_skey(k, kl, &sk);
    sy_bytes sv;
    *found = false;
    int rc = sy_txn_get(t, SY_TBL_STATE, sk.b, sk.len, &sv);
    if (rc == SY_ENOTFOUND)
        return SY_OK;
    if (rc)
        return rc;
    uint8_t kbuf[SY_MAX_KEY];
    sy_bytes fk;
    if ((rc = decode_pair(t->s, (sy_bytes){ sk.b, (uint32_t)sk.len }, sv, kbuf, &fk, val)))
        return rc;
    if (fk.len != kl || memcmp(fk.p, k, kl) != 0)
        return sy_storage_fail(t->s, SY_ECORRUPT, "state: long-key hash collision");
    *found = true;
    return SY_OK;
}

static int state_put(sy_txn *t, sy_digest *dg, const uint8_t *k, size_t kl, const uint8_t *v,
                     size_t vl)
{
    bool found;
    sy_bytes old;
    int rc = state_get(t, k, kl, &found, &old);
    if (rc)
        return rc;
    sy_digest h;
    if (found) {
        key_hash(k, kl, old.p, old.len, &h);
        digest_add(dg, &h, true);
    }
    key_hash(k, kl, v, vl, &h);
    digest_add(dg, &h, false);
    skey sk;
    make_skey(k, kl, &sk);
    if (!sk.long_key)
        return sy_txn_put(t, SY_TBL_STATE, sk.b, sk.len, v, vl);
    size_t sl = kl - SY_KV_KEY_PREFIX;
    uint8_t *buf = malloc(2 + sl + vl);
    if (!buf)
        return SY_ENOMEM;
    buf[0] = (uint8_t)(sl >> 8);
    buf[1] = (uint8_t)sl;
    memcpy(buf + 2, k + SY_KV_KEY_PREFIX, sl);
    if (vl)
        memcpy(buf + 2 + sl, v, vl);
    rc = sy_txn_put(t, SY_TBL_STATE, sk.b, sk.len, buf, 2 + sl + vl);
    free(buf);
    return rc;
}

static int state_del(sy_txn *t, sy_digest *dg, const uint8_t *k, size_t kl, bool *found)
{
    sy_bytes old;
    int rc = state_get(t, k, kl, found, &old);
    if (rc || !*found)
        return rc;
    sy_digest h;
    key_hash(k, kl, old.p, old.len, &h);
    digest_add(dg, &h, true);
    skey sk;
    make_skey(k, kl, &sk);
    return sy_txn_del(t, SY_TBL_STATE, sk.b, sk.len);
}

/* ---- reply encoding ----
 * u32 client_id, u64 req_no, u8 status, u64 index, u32 val_len, val,
 * u32 n_kvs, n_kvs x (u32 klen, key, u32 vlen, value); all big-endian. */
static void put32(sy_buf *b, uint32_t v)
{
    uint8_t x[4];
    sy_put_u32be(x, v);
    sy_buf_append(b, x, 4);
}

static void put64(sy_buf *b, uint64_t v)
{
    uint8_t x[8];
    sy_put_u64be(x, v);
    sy_buf_append(b, x, 8);
}

static void reply_head(sy_buf *b, uint32_t client, uint64_t req_no, int status, uint64_t index)
{
    put32(b, client);
    put64(b, req_no);
    uint8_t st = (uint8_t)status;
    sy_buf_append(b, &st, 1);
    put64(b, index);
}

/* A reply with a value and no kvs. */
static void reply_simple(sy_buf *b, uint32_t client, uint64_t req_no, int status, uint64_t index,
                         const uint8_t *v, size_t vl)
{
    reply_head(b, client, req_no, status, index);
    put32(b, (uint32_t)vl);
    sy_buf_append(b, v, vl);
    put32(b, 0);
}

int sy_kv_reply_decode(const uint8_t *buf, size_t len, size_t *off, sy_client_reply *out)
{
    size_t o = *off;
    memset(out, 0, sizeof *out);
#define NEED(n) do { if (len - o < (size_t)(n) || o > len) goto trunc; } while (0)
    NEED(4 + 8 + 1 + 8 + 4);
    out->client_id = sy_get_u32be(buf + o); o += 4;
    out->req_no = sy_get_u64be(buf + o); o += 8;
    out->status = buf[o++];
    out->index = sy_get_u64be(buf + o); o += 8;
    out->leader = SY_NO_NODE;
    uint32_t vl = sy_get_u32be(buf + o); o += 4;
    NEED(vl);
    out->val.p = buf + o;
    out->val.len = vl;
    o += vl;
    NEED(4);
    uint32_t n = sy_get_u32be(buf + o); o += 4;
    if (n > SY_MAX_SCAN)
        goto trunc;
    if (n) {
        out->kvs = calloc(n, sizeof *out->kvs);
        if (!out->kvs)
            return SY_ENOMEM;
        out->n_kvs = n;
        for (uint32_t i = 0; i < n; i++) {
            NEED(4);
            uint32_t kl = sy_get_u32be(buf + o); o += 4;
            NEED(kl);
            out->kvs[i].key = (sy_bytes){ buf + o, kl };
            o += kl;
            NEED(4);
            uint32_t l = sy_get_u32be(buf + o); o += 4;
            NEED(l);
            out->kvs[i].val = (sy_bytes){ buf + o, l };
            o += l;
        }
    }
#undef NEED
    *off = o;
    return SY_OK;
trunc:
    free(out->kvs);
    out->kvs = NULL;
    out->n_kvs = 0;
    return SY_ECORRUPT;
}

void sy_kv_results_free(sy_kv_results *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->replies[i].kvs);
    free(r->replies);
    free(r->blob);
    memset(r, 0, sizeof *r);
}

/* Turns a blob (u32 n, n replies) into r's reply array. Takes the blob. */
static int results_finish(sy_buf *blob, sy_kv_results *r)
{
    if (blob->err)
        return blob->err;
    r->blob = sy_buf_take(blob, &r->blob_len);
    sy_hash(r->blob, r->blob_len, &r->digest);
    uint32_t n = sy_get_u32be(r->blob);
    if (n == 0)
        return SY_OK;
    r->replies = calloc(n, sizeof *r->replies);
    if (!r->replies)
        return SY_ENOMEM;
    size_t off = 4;
    for (uint32_t i = 0; i < n; i++) {
        int rc = sy_kv_reply_decode(r->blob, r->blob_len, &off, &r->replies[i]);
        if (rc)
            return SY_EFATAL;  /* we just encoded it */
        r->n++;
    }
    return SY_OK;
}

/* ---- scan ---- */
typedef struct {
    uint8_t *k;
    size_t kl;
    const uint8_t *v;
    size_t vl;
} full_pair;

static int cmp_full(const void *a, const void *b)
{
    const full_pair *x = a, *y = b;
    size_t m = x->kl < y->kl ? x->kl : y->kl;
    int c = memcmp(x->k, y->k, m);
    if (c)
        return c;
    return x->kl < y->kl ? -1 : x->kl > y->kl;
}

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

typedef struct {
    sy_buf *b;
    size_t count_off;
    uint32_t count, limit;
    size_t bytes;
    bool stop;
    sy_bytes from, to;
} scan_ctx;

/* Emits one pair if in range; sets stop when past `to` or at a limit. */
static void scan_emit(scan_ctx *c, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    if (c->stop)
        return;
    if (key_cmp(k, kl, c->from.p, c->from.len) < 0)
        return;
    if (c->to.len && key_cmp(k, kl, c->to.p, c->to.len) >= 0) {
        c->stop = true;
        return;
    }
    if (c->count >= c->limit || c->bytes + kl + vl > SY_MAX_SCAN_BYTES) {
        c->stop = true;
        return;
    }
    put32(c->b, (uint32_t)kl);
    sy_buf_append(c->b, k, kl);
    put32(c->b, (uint32_t)vl);
    sy_buf_append(c->b, v, vl);
    c->count++;
    c->bytes += kl + vl;
}

static int do_scan(sy_txn *t, scan_ctx *c)
{
    skey start;
    make_skey(c->from.p, c->from.len, &start);
    /* A long `from` may have smaller group members: start at its prefix. */
    size_t slen = start.long_key ? SY_KV_KEY_PREFIX : start.len;
    sy_bytes sk, sv;
    uint8_t last[SY_KV_KEY_PREFIX + LONG_KEY_HASH];
    size_t last_len = slen;
    memcpy(last, start.b, slen);
    bool after = false;
    full_pair *grp = NULL;
    size_t gcap = 0;
    int rc = SY_OK;
    while (!c->stop) {
        rc = sy_txn_seek(t, SY_TBL_STATE, last, last_len, after, &sk, &sv);
        if (rc == SY_ENOTFOUND) {
            rc = SY_OK;
            break;
        }
        if (rc)
            break;
        after = true;
        if (sk.len <= SY_KV_KEY_PREFIX) {
            memcpy(last, sk.p, sk.len);
            last_len = sk.len;
            scan_emit(c, sk.p, sk.len, sv.p, sv.len);
            continue;
        }
        /* A group of long keys sharing a prefix: gather, sort by full key. */
        uint8_t prefix[SY_KV_KEY_PREFIX];
        memcpy(prefix, sk.p, SY_KV_KEY_PREFIX);
        size_t gn = 0;
        for (;;) {
            if (gn == gcap) {
                size_t nc = gcap ? gcap * 2 : 8;
                full_pair *ng = realloc(grp, nc * sizeof *ng);
                if (!ng) {
                    rc = SY_ENOMEM;
                    goto out;
                }
                grp = ng;
                gcap = nc;
            }
            uint8_t kbuf[SY_MAX_KEY];
            sy_bytes fk, fv;
            if ((rc = decode_pair(t->s, sk, sv, kbuf, &fk, &fv)))
                goto out;
            grp[gn].k = malloc(fk.len);
            if (!grp[gn].k) {
                rc = SY_ENOMEM;
                goto out;
            }
            memcpy(grp[gn].k, fk.p, fk.len);
            grp[gn].kl = fk.len;
            /* Values stay valid: the txn does not write during a scan. */
            grp[gn].v = fv.p;
            grp[gn].vl = fv.len;
            gn++;
            memcpy(last, sk.p, sk.len);
            last_len = sk.len;
            rc = sy_txn_seek(t, SY_TBL_STATE, last, last_len, true, &sk, &sv);
            if (rc == SY_ENOTFOUND || (rc == SY_OK && (sk.len != SY_KV_KEY_PREFIX + LONG_KEY_HASH ||
                                                       memcmp(sk.p, prefix, SY_KV_KEY_PREFIX))))
                break;
            if (rc)
                goto out_group;
        }
        rc = SY_OK;
        qsort(grp, gn, sizeof *grp, cmp_full);
        for (size_t i = 0; i < gn; i++)
            scan_emit(c, grp[i].k, grp[i].kl, grp[i].v, grp[i].vl);
    out_group:
        for (size_t i = 0; i < gn; i++)
            free(grp[i].k);
        if (rc)
            break;
    }
out:
    free(grp);
    return rc;
}

/* Appends the reply to req (read-only ops) or executes it (writes). */
static int exec_req(sy_txn *t, sy_digest *dg, const sy_client_req *q, uint64_t index, sy_buf *b)
{
    uint32_t cl = q->client_id;
    uint64_t rn = q->req_no;
    int status = SY_OK;
    bool needs_key = q->op == SY_OP_PUT || q->op == SY_OP_GET || q->op == SY_OP_DEL ||
                     q->op == SY_OP_CAS;
    if (needs_key && q->key.len == 0)
        status = SY_EINVAL;
    else if (q->key.len > SY_MAX_KEY || q->val.len > SY_MAX_VALUE || q->old.len > SY_MAX_VALUE ||
             (q->op == SY_OP_SCAN && q->val.len > SY_MAX_KEY))
        status = SY_ETOOBIG;
    if (status) {
        reply_simple(b, cl, rn, status, index, NULL, 0);
        return SY_OK;
    }
    bool found;
    sy_bytes cur;
    int rc;
    switch (q->op) {
    case SY_OP_NOOP:
        reply_simple(b, cl, rn, SY_OK, index, NULL, 0);
        return SY_OK;
    case SY_OP_PUT:
        if (!t->write)
            return SY_EINVAL;
        if ((rc = state_put(t, dg, q->key.p, q->key.len, q->val.p, q->val.len)))
            return rc;
        reply_simple(b, cl, rn, SY_OK, index, NULL, 0);
        return SY_OK;
    case SY_OP_GET:
        if ((rc = state_get(t, q->key.p, q->key.len, &found, &cur)))
            return rc;
        if (found)
            reply_simple(b, cl, rn, SY_OK, index, cur.p, cur.len);
        else
            reply_simple(b, cl, rn, SY_ENOTFOUND, index, NULL, 0);
        return SY_OK;
    case SY_OP_DEL:
        if (!t->write)
            return SY_EINVAL;
        if ((rc = state_del(t, dg, q->key.p, q->key.len, &found)))
            return rc;
        reply_simple(b, cl, rn, found ? SY_OK : SY_ENOTFOUND, index, NULL, 0);
        return SY_OK;
    case SY_OP_CAS: {
        if (!t->write)
            return SY_EINVAL;
        if ((rc = state_get(t, q->key.p, q->key.len, &found, &cur)))
            return rc;
        bool ok = (q->flags & SY_CAS_EXPECT_ABSENT)
                      ? !found
                      : found && cur.len == q->old.len &&
                            (cur.len == 0 || memcmp(cur.p, q->old.p, cur.len) == 0);
        if (!ok) {
            reply_simple(b, cl, rn, SY_ECASFAIL, index, found ? cur.p : NULL,
                         found ? cur.len : 0);
            return SY_OK;
        }
        if ((rc = state_put(t, dg, q->key.p, q->key.len, q->val.p, q->val.len)))
            return rc;
        reply_simple(b, cl, rn, SY_OK, index, NULL, 0);
        return SY_OK;
    }
    case SY_OP_SCAN: {
        reply_head(b, cl, rn, SY_OK, index);
        put32(b, 0);  /* no val */
        scan_ctx c = {
            .b = b, .count_off = b->len, .from = q->key, .to = q->val,
            .limit = q->limit == 0 || q->limit > SY_MAX_SCAN ? SY_MAX_SCAN : q->limit,
        };
        put32(b, 0);  /* n_kvs, patched below */
        if ((rc = do_scan(t, &c)))
            return rc;
        if (b->err)
            return b->err;
        sy_put_u32be(b->p + c.count_off, c.count);
        return SY_OK;
    }
    default:
        reply_simple(b, cl, rn, SY_EINVAL, index, NULL, 0);
        return SY_OK;
    }
}

/* ---- sessions ---- */
static void sess_ckey(uint8_t k[5], uint32_t client)
{
    k[0] = SESS_C;
    sy_put_u32be(k + 1, client);
}

static void sess_lkey(uint8_t k[13], uint64_t used, uint32_t client)
{
    k[0] = SESS_L;
    sy_put_u64be(k + 1, used);
    sy_put_u32be(k + 9, client);
}

/* Session row: u64 req_no, u64 last_used, cached reply encoding. */
typedef struct {
    bool found;
    uint64_t req_no, used;
    sy_bytes reply;
} session;

static int sess_get(sy_txn *t, uint32_t client, session *s)
{
    uint8_t k[5];
    sess_ckey(k, client);
    sy_bytes v;
    memset(s, 0, sizeof *s);
    int rc = sy_txn_get(t, SY_TBL_SESSIONS, k, 5, &v);
    if (rc == SY_ENOTFOUND)
        return SY_OK;
    if (rc)
        return rc;
    if (v.len < 16)
        return sy_storage_fail(t->s, SY_ECORRUPT, "session of client %u malformed", client);
    s->found = true;
    s->req_no = sy_get_u64be(v.p);
    s->used = sy_get_u64be(v.p + 8);
    s->reply = (sy_bytes){ v.p + 16, v.len - 16 };
    return SY_OK;
}

/* Writes (req_no, used, reply) for client, keeping the LRU row in step.
 * reply may point into storage: it is copied before any write. */
static int sess_put(sy_txn *t, uint32_t client, const session *old, uint64_t req_no,
                    uint64_t used, const uint8_t *reply, size_t rl, uint64_t *count)
{
    uint8_t *v = malloc(16 + rl);
    if (!v)
        return SY_ENOMEM;
    sy_put_u64be(v, req_no);
    sy_put_u64be(v + 8, used);
    if (rl)
        memcpy(v + 16, reply, rl);
    uint8_t ck[5], lk[13];
    int rc;
    if (old->found) {
        sess_lkey(lk, old->used, client);
        if ((rc = sy_txn_del(t, SY_TBL_SESSIONS, lk, 13)))
            goto out;
    } else {
        (*count)++;
    }
    sess_ckey(ck, client);
    if ((rc = sy_txn_put(t, SY_TBL_SESSIONS, ck, 5, v, 16 + rl)))
        goto out;
    sess_lkey(lk, used, client);
    rc = sy_txn_put(t, SY_TBL_SESSIONS, lk, 13, "", 0);
out:
    free(v);
    return rc;
}

/* Evicts least recently used sessions (lowest last_used, then client id)
 * until count <= max: deterministic because last_used is a log index. */
static int sess_evict(sy_txn *t, uint64_t *count, uint32_t max)
{
    while (*count > max) {
        uint8_t lo = SESS_L;
        sy_bytes k, v;
        int rc = sy_txn_seek(t, SY_TBL_SESSIONS, &lo, 1, false, &k, &v);
        if (rc || k.len != 13 || k.p[0] != SESS_L)
            return sy_storage_fail(t->s, SY_ECORRUPT, "session LRU index inconsistent");
        uint8_t lk[13], ck[5];
        memcpy(lk, k.p, 13);
        sess_ckey(ck, sy_get_u32be(lk + 9));
        if ((rc = sy_txn_del(t, SY_TBL_SESSIONS, lk, 13)) ||
            (rc = sy_txn_del(t, SY_TBL_SESSIONS, ck, 5)))
            return rc;
        (*count)--;
    }
    return SY_OK;
}

/* ---- apply ---- */
static int apply_batch(sy_kvm *kv, sy_txn *t, const sy_entry *e, sy_digest *dg, sy_buf *b,
                       bool *decoded)
{
    sy_bytes *reqs = NULL;
    uint32_t n = 0;
    *decoded = false;
    if (sy_batch_decode(e->data.p, e->data.len, &reqs, &n) != SY_OK)
        return SY_OK;  /* agreed-on garbage: applies nothing, everywhere */
    *decoded = true;
    uint64_t count;
    int rc = sy_txn_meta_get_u64(t, "sessions_n", &count);
    if (rc)
        goto out;
    put32(b, n);
    for (uint32_t i = 0; i < n; i++) {
        sy_env env;
        memset(&env, 0, sizeof env);
        int drc = sy_env_decode(&kv->dec, reqs[i].p, reqs[i].len, &env, NULL);
        if (drc == SY_OK && env.type != SY_MSG_CLIENT_REQ) {
            sy_env_free(&env);
            drc = SY_EMSGTYPE;
        }
        if (drc) {
            uint32_t who = env.sender >= SY_CLIENT_ID_BASE ? env.sender : 0;
            reply_simple(b, who, 0, drc, e->index, NULL, 0);
            continue;
        }
        const sy_client_req *q = &env.msg.u.req;
        session s;
        if ((rc = sess_get(t, q->client_id, &s))) {
            sy_env_free(&env);
            goto out;
        }
        if (s.found && q->req_no <= s.req_no) {
            if (q->req_no == s.req_no) {
                /* The retry gets the very bytes the first attempt got. */
                size_t rl = s.reply.len;
                if ((rc = sy_buf_append(b, s.reply.p, rl)) == SY_OK)
                    rc = sess_put(t, q->client_id, &s, s.req_no, e->index, b->p + b->len - rl,
                                  rl, &count);
            } else {
                reply_simple(b, q->client_id, q->req_no, SY_ESTALE, e->index, NULL, 0);
            }
            sy_env_free(&env);
            if (rc)
                goto out;
            continue;
        }
        size_t start = b->len;
        rc = exec_req(t, dg, q, e->index, b);
        if (rc == SY_OK && b->err)
            rc = b->err;
        if (rc == SY_OK)
            rc = sess_put(t, q->client_id, &s, q->req_no, e->index, b->p + start,
                          b->len - start, &count);
        sy_env_free(&env);
        if (rc)
            goto out;
    }
    if ((rc = sess_evict(t, &count, kv->max_sessions)))
        goto out;
    rc = sy_txn_meta_put_u64(t, "sessions_n", count);
out:
    free(reqs);
    return rc;
}

int sy_kv_apply(sy_kvm *kv, sy_txn *t, const sy_committed *c, sy_kv_results *out)
{
    memset(out, 0, sizeof *out);
    if (!t->write)
        return SY_EINVAL;
    const sy_entry *e = &c->entry;
    uint64_t applied;
    int rc = sy_txn_get_applied(t, &applied);
    if (rc)
        return rc;
    if (e->index <= applied) {
        out->skipped = true;
        return SY_OK;
    }
    sy_buf b;
    sy_buf_init(&b);
    sy_digest dg;
    bool decoded = false;
    if (e->type == SY_ENTRY_NORMAL) {
        if ((rc = load_digest(t, &dg)))
            goto err_buf;
        if ((rc = apply_batch(kv, t, e, &dg, &b, &decoded)))
            goto err_buf;
        if ((rc = sy_txn_meta_put(t, "digest", dg.b, SY_DIGEST_LEN)))
            goto err_buf;
    }
    if (!decoded)
        put32(&b, 0);
    if ((rc = results_finish(&b, out)))
        goto err_results;
    if (decoded) {
        sy_ledger_block blk;
        if ((rc = sy_ledger_append(t, e->index, e->term, e->data, &out->digest, c->evidence,
                                   &blk)))
            goto err_results;
        out->block = true;
        out->height = blk.height;
    }
    if ((rc = sy_txn_set_applied(t, e->index)))
        goto err_results;
    return SY_OK;
err_results:
    sy_kv_results_free(out);
err_buf:
    sy_buf_free(&b);
    return rc;
}

int sy_kv_read(sy_kvm *kv, const sy_client_req *req, sy_kv_results *out)
{
    memset(out, 0, sizeof *out);
    if (req->op != SY_OP_GET && req->op != SY_OP_SCAN)
        return SY_EINVAL;
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    uint64_t applied;
    sy_buf b;
    sy_buf_init(&b);
    if ((rc = sy_txn_get_applied(&t, &applied)))
        goto out;
    put32(&b, 1);
    if ((rc = exec_req(&t, NULL, req, applied, &b)))
        goto out;
    rc = results_finish(&b, out);
    if (rc)
        sy_kv_results_free(out);
out:
    sy_buf_free(&b);
    sy_txn_abort(&t);
    return rc;
}

int sy_kv_get(sy_kvm *kv, const void *key, size_t kl, uint8_t **val, size_t *vl)
{
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    bool found;
    sy_bytes v;
    *val = NULL;
    *vl = 0;
    if ((rc = state_get(&t, key, kl, &found, &v)) == SY_OK) {
        if (!found) {
            rc = SY_ENOTFOUND;
        } else if (!(*val = malloc(v.len + 1))) {
            rc = SY_ENOMEM;
        } else {
            memcpy(*val, v.p, v.len);
            *vl = v.len;
        }
    }
    sy_txn_abort(&t);
    return rc;
}

int sy_kv_digest_txn(sy_txn *t, sy_digest *out)
{
    return load_digest(t, out);
}

int sy_kv_digest(sy_kvm *kv, sy_digest *out)
{
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    rc = load_digest(&t, out);
    sy_txn_abort(&t);
    return rc;
}

int sy_kv_applied(sy_kvm *kv, uint64_t *applied)
{
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    rc = sy_txn_get_applied(&t, applied);
    sy_txn_abort(&t);
    return rc;
}

int sy_kv_session(sy_kvm *kv, uint32_t client_id, uint64_t *req_no)
{
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    session s;
    rc = sess_get(&t, client_id, &s);
    *req_no = s.found ? s.req_no : 0;
    sy_txn_abort(&t);
    return rc;
}

int sy_kv_session_count(sy_kvm *kv, uint64_t *n)
{
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    rc = sy_txn_meta_get_u64(&t, "sessions_n", n);
    sy_txn_abort(&t);
    return rc;
}

int sy_kv_session_reply(sy_kvm *kv, uint32_t client_id, uint64_t req_no, sy_kv_results *out)
{
    memset(out, 0, sizeof *out);
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    session s;
    if ((rc = sess_get(&t, client_id, &s)) == SY_OK) {
        if (!s.found || req_no > s.req_no) {
            rc = SY_ENOTFOUND;
        } else if (req_no < s.req_no) {
            rc = SY_ESTALE;
        } else {
            sy_buf b;
            sy_buf_init(&b);
            put32(&b, 1);
            sy_buf_append(&b, s.reply.p, s.reply.len);
            rc = results_finish(&b, out);
            sy_buf_free(&b);
            if (rc == SY_EFATAL)   /* a stored reply that does not decode */
                rc = sy_storage_fail(kv->s, SY_ECORRUPT, "cached reply of client %u malformed",
                                     client_id);
        }
    }
    sy_txn_abort(&t);
    if (rc && rc != SY_ENOTFOUND && rc != SY_ESTALE)
        sy_kv_results_free(out);
    return rc;
}

int sy_kv_sessions(sy_kvm *kv, sy_session_rec **out, size_t *n, uint64_t *applied)
{
    sy_txn t;
    *out = NULL;
    *n = 0;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    if ((rc = sy_txn_meta_get_u64(&t, "applied", applied)) == SY_ENOTFOUND) {
        *applied = 0;
        rc = SY_OK;
    }
    sy_session_rec *recs = NULL;
    size_t cnt = 0, cap = 0;
    uint8_t k[5];
    sess_ckey(k, 0);
    sy_bytes key, v;
    if (rc == SY_OK)
        rc = sy_txn_seek(&t, SY_TBL_SESSIONS, k, 1, false, &key, &v);
    while (rc == SY_OK && key.len == 5 && key.p[0] == SESS_C) {
        if (v.len < 16) {
            rc = sy_storage_fail(kv->s, SY_ECORRUPT, "session row malformed");
            break;
        }
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 64;
            sy_session_rec *nr = realloc(recs, nc * sizeof *nr);
            if (!nr) {
                rc = SY_ENOMEM;
                break;
            }
            recs = nr;
            cap = nc;
        }
        recs[cnt++] = (sy_session_rec){ sy_get_u32be(key.p + 1), sy_get_u64be(v.p) };
        memcpy(k, key.p, 5);
        rc = sy_txn_seek(&t, SY_TBL_SESSIONS, k, 5, true, &key, &v);
    }
    sy_txn_abort(&t);
    if (rc == SY_ENOTFOUND || rc == SY_OK) {
        *out = recs;
        *n = cnt;
        return SY_OK;
    }
    free(recs);
    return rc;
}

/* ---- snapshot ----
 * magic(8), u64 applied, digest(32), u64 ledger height, ledger hash(32),
 * then for state and sessions tables: u64 rows, rows x (u32 kl, k, u32 vl, v);
 * then BLAKE2b-256 of everything before. */
typedef struct {
    sy_buf *b;
    uint64_t rows;
} dump_ctx;

static int dump_row(void *ctx, sy_bytes k, sy_bytes v)
{
    dump_ctx *d = ctx;
    put32(d->b, k.len);
    sy_buf_append(d->b, k.p, k.len);
    put32(d->b, v.len);
    sy_buf_append(d->b, v.p, v.len);
    d->rows++;
    return d->b->err;
}

/* One table: its row count, then each row (u32 length, key, u32 length,
 * value) in key order. */
static int dump_table(sy_txn *t, int tbl, sy_buf *b)
{
    size_t count_off = b->len;
    put64(b, 0);
    dump_ctx d = { b, 0 };
    int rc = sy_txn_scan(t, tbl, NULL, 0, dump_row, &d);
    if (rc)
        return rc;
    if (b->err)
        return b->err;
    sy_put_u64be(b->p + count_off, d.rows);
    return SY_OK;
}

int sy_kv_snapshot_txn(sy_txn *t, uint8_t **out, size_t *len)
{
    sy_buf b;
    sy_buf_init(&b);
    uint64_t applied, height;
    sy_digest dg, lh;
    int rc;
    if ((rc = sy_txn_get_applied(t, &applied)) || (rc = load_digest(t, &dg)) ||
        (rc = sy_ledger_tip(t, &height, &lh)))
        goto out;
    sy_buf_append(&b, SY_KV_SNAPSHOT_MAGIC, 8);
    put64(&b, applied);
    sy_buf_append(&b, dg.b, SY_DIGEST_LEN);
    put64(&b, height);
    sy_buf_append(&b, lh.b, SY_DIGEST_LEN);
    if ((rc = dump_table(t, SY_TBL_STATE, &b)) || (rc = dump_table(t, SY_TBL_SESSIONS, &b)))
        goto out;
    sy_digest ck;
    if (b.err) {
        rc = b.err;
        goto out;
    }
    sy_hash(b.p, b.len, &ck);
    sy_buf_append(&b, ck.b, SY_DIGEST_LEN);
    if ((rc = b.err))
        goto out;
    *out = sy_buf_take(&b, len);
out:
    sy_buf_free(&b);
    return rc;
}

int sy_kv_snapshot(sy_kvm *kv, uint8_t **out, size_t *len)
{
    sy_txn t;
    int rc = sy_txn_begin(kv->s, false, &t);
    if (rc)
        return rc;
    rc = sy_kv_snapshot_txn(&t, out, len);
    sy_txn_abort(&t);
    return rc;
}

static int load_table(sy_txn *t, int tbl, sy_rd *r, sy_digest *dg, uint64_t *sessions)
{
    uint64_t rows = sy_rd_u64(r);
    for (uint64_t i = 0; i < rows && !r->bad; i++) {
        uint32_t kl = sy_rd_u32(r);
        const uint8_t *k = sy_rd_take(r, kl);
        uint32_t vl = sy_rd_u32(r);
        const uint8_t *v = sy_rd_take(r, vl);
        if (r->bad)
            break;
        if (tbl == SY_TBL_STATE) {
            uint8_t kbuf[SY_MAX_KEY];
            sy_bytes fk, fv;
            if (kl > SY_KV_KEY_PREFIX + LONG_KEY_HASH)
                return SY_ECORRUPT;
            int rc = decode_pair(t->s, (sy_bytes){ k, kl }, (sy_bytes){ v, vl }, kbuf, &fk, &fv);
            if (rc)
                return rc;
            sy_digest h;
            key_hash(fk.p, fk.len, fv.p, fv.len, &h);
            digest_add(dg, &h, false);
        } else if (kl == 5 && k[0] == SESS_C) {
            (*sessions)++;
        }
        int rc = sy_txn_put(t, tbl, k, kl, v, vl);
        if (rc)
            return rc;
    }
    return r->bad ? SY_ECORRUPT : SY_OK;
}

int sy_kv_restore(sy_kvm *kv, sy_txn *t, const uint8_t *blob, size_t len)
{
    if (len < 8 + 8 + 32 + 8 + 32 + 16 + SY_DIGEST_LEN || memcmp(blob, SY_KV_SNAPSHOT_MAGIC, 8))
        return sy_storage_fail(t->s, SY_ECORRUPT, "snapshot blob is not a KV snapshot");
    sy_digest ck;
    sy_hash(blob, len - SY_DIGEST_LEN, &ck);
    if (memcmp(ck.b, blob + len - SY_DIGEST_LEN, SY_DIGEST_LEN))
        return sy_storage_fail(t->s, SY_ECORRUPT, "snapshot blob failed its checksum");
    sy_rd r = { .p = blob, .len = len - SY_DIGEST_LEN, .off = 8 };
    uint64_t applied = sy_rd_u64(&r);
    sy_digest want, lh, dg;
    memcpy(want.b, sy_rd_take(&r, SY_DIGEST_LEN), SY_DIGEST_LEN);
    uint64_t height = sy_rd_u64(&r);
    memcpy(lh.b, sy_rd_take(&r, SY_DIGEST_LEN), SY_DIGEST_LEN);
    memset(&dg, 0, sizeof dg);
    uint64_t sessions = 0;
    int rc;
    if ((rc = sy_txn_clear(t, SY_TBL_STATE)) || (rc = sy_txn_clear(t, SY_TBL_SESSIONS)))
        return rc;
    if ((rc = load_table(t, SY_TBL_STATE, &r, &dg, &sessions)) ||
        (rc = load_table(t, SY_TBL_SESSIONS, &r, &dg, &sessions)))
        return rc == SY_ECORRUPT ? sy_storage_fail(t->s, rc, "snapshot blob malformed") : rc;
    if (r.off != r.len)
        return sy_storage_fail(t->s, SY_ECORRUPT, "snapshot blob has trailing bytes");
    if (!sy_digest_eq(&dg, &want))
        return sy_storage_fail(t->s, SY_ECORRUPT,
                               "snapshot state does not match its digest (applied %llu)",
                               (unsigned long long)applied);
    if ((rc = sy_txn_meta_put(t, "digest", dg.b, SY_DIGEST_LEN)) ||
        (rc = sy_txn_meta_put_u64(t, "sessions_n", sessions)) ||
        (rc = sy_txn_set_applied(t, applied)))
        return rc;
    return sy_ledger_reset(t, height, &lh);
}

/* ---- generic face ---- */
static int sm_apply(void *sm, sy_txn *t, const sy_committed *c, sy_kv_results *out)
{
    return sy_kv_apply(sm, t, c, out);
}
static int sm_snapshot(void *sm, uint8_t **out, size_t *len) { return sy_kv_snapshot(sm, out, len); }
static int sm_restore(void *sm, sy_txn *t, const uint8_t *blob, size_t len)
{
    return sy_kv_restore(sm, t, blob, len);
}
static int sm_digest(void *sm, sy_digest *out) { return sy_kv_digest(sm, out); }

const sy_sm_ops sy_kv_sm_ops = {
    .name = "kv",
    .apply = sm_apply,
    .snapshot = sm_snapshot,
    .restore = sm_restore,
    .digest = sm_digest,
};
