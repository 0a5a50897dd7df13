/* Hash-chained ledger blocks, stored in the ledger sub-database.
 *
 * Invariant: blocks base+1..tip exist, each block's prev is the previous
 * block's hash (the base hash for the first), and meta "ledger_tip" names
 * the last one. A block is written only in the transaction that applies
 * its batch, so a crash leaves either both or neither. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/ledger.h"
#include "crypto/sy_err.h"

/* version, height, index, term, prev, batch digest, results digest */
#define HDR_LEN (1 + 8 + 8 + 8 + 3 * SY_DIGEST_LEN)

static int get_pos(sy_txn *t, const char *name, uint64_t *height, sy_digest *hash)
{
    sy_bytes v;
    int rc = sy_txn_meta_get(t, name, &v);
    if (rc == SY_ENOTFOUND) {
        *height = 0;
        memset(hash, 0, sizeof *hash);
        return SY_OK;
    }
    if (rc)
        return rc;
    if (v.len != 8 + SY_DIGEST_LEN)
        return sy_storage_fail(t->s, SY_ECORRUPT, "meta '%s' malformed", name);
    *height = sy_get_u64be(v.p);
    memcpy(hash->b, v.p + 8, SY_DIGEST_LEN);
    return SY_OK;
}

static int put_pos(sy_txn *t, const char *name, uint64_t height, const sy_digest *hash)
{
    uint8_t b[8 + SY_DIGEST_LEN];
    sy_put_u64be(b, height);
    memcpy(b + 8, hash->b, SY_DIGEST_LEN);
    return sy_txn_meta_put(t, name, b, sizeof b);
}

int sy_ledger_tip(sy_txn *t, uint64_t *height, sy_digest *hash)
{
    return get_pos(t, "ledger_tip", height, hash);
}

int sy_ledger_base(sy_txn *t, uint64_t *height, sy_digest *hash)
{
    return get_pos(t, "ledger_base", height, hash);
}

int sy_ledger_reset(sy_txn *t, uint64_t height, const sy_digest *hash)
{
    int rc = sy_txn_clear(t, SY_TBL_LEDGER);
    if (rc)
        return rc;
    if ((rc = put_pos(t, "ledger_base", height, hash)))
        return rc;
    return put_pos(t, "ledger_tip", height, hash);
}

/* Block record (version 2):
 *   header = version u8 | height u64 | index u64 | term u64 | prev 32 |
 *            batch digest 32 | results digest 32
 *   hash   = BLAKE2b-256(header)                     the chain's identity
 *   evidence_len u32 | evidence | batch_len u32 | batch
 *   check  = BLAKE2b-256(everything before it)       storage integrity
 * The hash leaves out the evidence on purpose: replicas commit the same
 * batch with different (equally valid) certificates -- each PBFT replica
 * keeps the quorum of COMMITs it happened to collect, each Raft node signs
 * its own commit record -- and the chain must be identical everywhere so
 * replicas can compare ledger heads and checkpoint snapshots that carry the
 * tip. The batch is bound through its digest. The evidence is
 * self-authenticating (signatures) and checked by the verifier's callback;
 * its bytes are covered by `check` against bit rot. */
/* Writes the block's header (HDR_LEN bytes) to h. */
static size_t encode_header(const sy_ledger_block *blk, uint8_t *h)
{
    size_t o = 0;
    h[o++] = SY_LEDGER_VERSION;
    sy_put_u64be(h + o, blk->height); o += 8;
    sy_put_u64be(h + o, blk->index); o += 8;
    sy_put_u64be(h + o, blk->term); o += 8;
    memcpy(h + o, blk->prev.b, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    memcpy(h + o, blk->batch_digest.b, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    memcpy(h + o, blk->results_digest.b, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    return o;
}

static void header_hash(const sy_ledger_block *blk, sy_digest *out)
{
    uint8_t h[HDR_LEN];
    sy_hash(h, encode_header(blk, h), out);
}

/* Stores blk (hash and batch digest set) under its height. */
static int put_block(sy_txn *t, const sy_ledger_block *blk)
{
    size_t len = HDR_LEN + SY_DIGEST_LEN + 4 + blk->evidence.len + 4 + blk->batch.len +
                 SY_DIGEST_LEN;
    uint8_t *b = malloc(len);
    if (!b)
        return SY_ENOMEM;
    size_t o = encode_header(blk, b);
    memcpy(b + o, blk->hash.b, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    sy_put_u32be(b + o, blk->evidence.len); o += 4;
    if (blk->evidence.len)
        memcpy(b + o, blk->evidence.p, blk->evidence.len);
    o += blk->evidence.len;
    sy_put_u32be(b + o, blk->batch.len); o += 4;
    if (blk->batch.len)
        memcpy(b + o, blk->batch.p, blk->batch.len);
    o += blk->batch.len;
    sy_digest check;
    sy_hash(b, o, &check);
    memcpy(b + o, check.b, SY_DIGEST_LEN);
    uint8_t key[8];
    sy_put_u64be(key, blk->height);
    int rc = sy_txn_put(t, SY_TBL_LEDGER, key, 8, b, len);
    free(b);
    return rc;
}

int sy_ledger_append(sy_txn *t, uint64_t index, uint64_t term, sy_bytes batch,
                     const sy_digest *results_digest, sy_bytes evidence,
                     sy_ledger_block *out)
{
    uint64_t tip;
    sy_digest prev;
    int rc = sy_ledger_tip(t, &tip, &prev);
    if (rc)
        return rc;
    sy_ledger_block blk = {
        .height = tip + 1, .index = index, .term = term, .prev = prev,
        .results_digest = *results_digest, .evidence = evidence, .batch = batch,
    };
    sy_hash(batch.p, batch.len, &blk.batch_digest);
    header_hash(&blk, &blk.hash);
    if ((rc = put_block(t, &blk)))
        return rc;
    if ((rc = put_pos(t, "ledger_tip", blk.height, &blk.hash)))
        return rc;
    if (out)
        *out = blk;
    return SY_OK;
}

int sy_ledger_set_evidence(sy_txn *t, uint64_t height, sy_bytes evidence)
{
    sy_ledger_block blk;
    int rc = sy_ledger_get(t, height, &blk);
    if (rc)
        return rc;
    if (blk.evidence.len)
        return sy_storage_fail(t->s, SY_EINVAL, "ledger block %llu already has its evidence",
                               (unsigned long long)height);
    /* blk.batch is borrowed from the stored value, which the put replaces:
     * the new record is built before the put (put_block copies first) */
    blk.evidence = evidence;
    return put_block(t, &blk);
}

int sy_ledger_get(sy_txn *t, uint64_t height, sy_ledger_block *out)
{
    uint8_t key[8];
    sy_put_u64be(key, height);
    sy_bytes v;
    int rc = sy_txn_get(t, SY_TBL_LEDGER, key, 8, &v);
    if (rc == SY_ENOTFOUND)
        return sy_storage_fail(t->s, SY_ENOTFOUND, "ledger block %llu is missing",
                               (unsigned long long)height);
    if (rc)
        return rc;
    const char *what = "is truncated";
    if (v.len < HDR_LEN + SY_DIGEST_LEN + 8 + SY_DIGEST_LEN)
        goto bad;
    size_t body = v.len - SY_DIGEST_LEN;
    sy_digest check;
    sy_hash(v.p, body, &check);
    what = "failed its checksum";
    if (memcmp(check.b, v.p + body, SY_DIGEST_LEN) != 0)
        goto bad;
    what = "has an unknown version";
    if (v.p[0] != SY_LEDGER_VERSION)
        goto bad;
    size_t o = 1;
    out->height = sy_get_u64be(v.p + o); o += 8;
    out->index = sy_get_u64be(v.p + o); o += 8;
    out->term = sy_get_u64be(v.p + o); o += 8;
    memcpy(out->prev.b, v.p + o, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    memcpy(out->batch_digest.b, v.p + o, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    memcpy(out->results_digest.b, v.p + o, SY_DIGEST_LEN); o += SY_DIGEST_LEN;
    header_hash(out, &out->hash);
    what = "failed its hash check";
    if (memcmp(out->hash.b, v.p + o, SY_DIGEST_LEN) != 0)
        goto bad;
    o += SY_DIGEST_LEN;
    what = "is malformed";
    uint32_t el = sy_get_u32be(v.p + o); o += 4;
    if (el > body - o || body - o - el < 4)
        goto bad;
    out->evidence.p = v.p + o;
    out->evidence.len = el;
    o += el;
    uint32_t bl = sy_get_u32be(v.p + o); o += 4;
    if (bl != body - o)
        goto bad;
    out->batch.p = v.p + o;
    out->batch.len = bl;
    what = "is stored under the wrong height";
    if (out->height != height)
        goto bad;
    return SY_OK;
bad:
    return sy_storage_fail(t->s, SY_ECORRUPT, "ledger block %llu %s",
                           (unsigned long long)height, what);
}

/* ---- verifier ---- */
static int fail_at(uint64_t h, uint64_t *height_out, char *why, size_t whylen, int rc,
                   const char *fmt, const char *detail, size_t n)
{
    *height_out = h;
    if (why && whylen) {
        char d[SY_LEDGER_WHY];
        snprintf(d, sizeof d, fmt, detail ? detail : "", n);
        snprintf(why, whylen, "height %llu: %s", (unsigned long long)h, d);
    }
    return rc;
}

static int verify_batch(const sy_env_opts *opts, const sy_ledger_block *b, uint64_t *height_out,
                        char *why, size_t whylen)
{
    sy_bytes *reqs = NULL;
    uint32_t n = 0;
    int rc = sy_batch_decode(b->batch.p, b->batch.len, &reqs, &n);
    if (rc)
        return fail_at(b->height, height_out, why, whylen, rc, "%sbatch does not decode",
                       NULL, 0);
    for (uint32_t i = 0; i < n; i++) {
        sy_env env;
        const char *reason = NULL;
        rc = sy_env_decode(opts, reqs[i].p, reqs[i].len, &env, &reason);
        if (rc) {
            free(reqs);
            return fail_at(b->height, height_out, why, whylen, rc, "request %2$zu: %1$s",
                           reason, i);
        }
        bool is_req = env.type == SY_MSG_CLIENT_REQ;
        sy_env_free(&env);
        if (!is_req) {
            free(reqs);
            return fail_at(b->height, height_out, why, whylen, SY_EMSGTYPE,
                           "request %2$zu: %1$snot a client request", NULL, i);
        }
    }
    free(reqs);
    return SY_OK;
}

int sy_ledger_verify(sy_storage *s, const sy_env_opts *opts, sy_ledger_evidence_cb cb,
                     void *ctx, uint64_t *height_out, char *why, size_t whylen)
{
    sy_txn t;
    uint64_t dummy;
    if (!height_out)
        height_out = &dummy;
    *height_out = 0;
    if (why && whylen)
        why[0] = 0;
    int rc = sy_txn_begin(s, false, &t);
    if (rc) {
        if (why)
            snprintf(why, whylen, "cannot read storage: %s", sy_storage_errmsg(s));
        return rc;
    }
    uint64_t base, tip;
    sy_digest prev, tip_hash;
    if ((rc = sy_ledger_base(&t, &base, &prev)) || (rc = sy_ledger_tip(&t, &tip, &tip_hash))) {
        if (why)
            snprintf(why, whylen, "%s", sy_storage_errmsg(s));
        goto done;
    }
    uint64_t last_index = 0;
    for (uint64_t h = base + 1; h <= tip; h++) {
        sy_ledger_block b;
        rc = sy_ledger_get(&t, h, &b);
        if (rc) {
            *height_out = h;
            if (why)
                snprintf(why, whylen, "%s", sy_storage_errmsg(s));
            goto done;
        }
        if (!sy_digest_eq(&b.prev, &prev)) {
            rc = fail_at(h, height_out, why, whylen, SY_ECORRUPT,
                         "%sprevious-hash link does not match block below", NULL, 0);
            goto done;
        }
        sy_digest bd;
        sy_hash(b.batch.p, b.batch.len, &bd);
        if (!sy_digest_eq(&bd, &b.batch_digest)) {
            rc = fail_at(h, height_out, why, whylen, SY_ECORRUPT,
                         "%sbatch digest does not match the batch", NULL, 0);
            goto done;
        }
        if (h > base + 1 && b.index <= last_index) {
            rc = fail_at(h, height_out, why, whylen, SY_ECORRUPT,
                         "%slog index does not increase", NULL, 0);
            goto done;
        }
        last_index = b.index;
        if ((rc = verify_batch(opts, &b, height_out, why, whylen)))
            goto done;
        if (cb) {
            char ewhy[SY_LEDGER_WHY] = "";
            if ((rc = cb(ctx, &b, ewhy, sizeof ewhy))) {
                rc = fail_at(h, height_out, why, whylen, rc, "commit evidence rejected: %s",
                             ewhy, 0);
                goto done;
            }
        }
        prev = b.hash;
    }
    if (!sy_digest_eq(&prev, &tip_hash)) {
        rc = fail_at(tip, height_out, why, whylen, SY_ECORRUPT,
                     "%sledger tip recorded in meta does not match the last block", NULL, 0);
        goto done;
    }
    /* Blocks past the recorded tip would be a write that never committed. */
    uint8_t key[8];
    sy_bytes k, v;
    sy_put_u64be(key, tip);
    if (sy_txn_seek(&t, SY_TBL_LEDGER, key, 8, true, &k, &v) == SY_OK) {
        rc = fail_at(tip + 1, height_out, why, whylen, SY_ECORRUPT,
                     "%sblock stored past the recorded tip", NULL, 0);
        goto done;
    }
    *height_out = tip;
    rc = SY_OK;
done:
    sy_txn_abort(&t);
    return rc;
}

int sy_ledger_verify_dir(const char *data_dir, const sy_env_opts *opts,
                         sy_ledger_evidence_cb cb, void *ctx, uint64_t *height_out,
                         char *why, size_t whylen)
{
    sy_storage_lmdb_opts lo = { .read_only = true };
    sy_storage *s;
    char err[SY_STORAGE_ERRMSG] = "";
    int rc = sy_storage_lmdb_open(data_dir, &lo, &s, err);
    if (rc) {
        if (height_out)
            *height_out = 0;
        if (why && whylen)
            snprintf(why, whylen, "%s", err);
        return rc;
    }
    rc = sy_ledger_verify(s, opts, cb, ctx, height_out, why, whylen);
    sy_storage_close(s);
    return rc;
}
