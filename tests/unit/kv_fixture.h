/* Test helpers shared by test_kv, test_ledger and test_crash: a few client
 * identities (simsig, deterministic from their index), a directory for
 * them, and builders for signed requests and committed batch entries. */
#ifndef SY_TEST_KV_FIXTURE_H
#define SY_TEST_KV_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include "core/kv.h"
#include "core/ledger.h"
#include "core/envelope.h"
#include "crypto/sy_err.h"

#define KVF_CLIENTS 8
#define KVF_CLUSTER "kvtest"

typedef struct kvf_world {
    sy_simsig *reg;
    sy_signer signers[KVF_CLIENTS];
    sy_pubkey keys[KVF_CLIENTS];
    sy_verifier verifier;
    sy_directory dir;
    sy_env_opts opts;         /* verifier set: for the ledger verifier */
} kvf_world;

static inline const sy_pubkey *kvf_key_of(void *ctx, uint32_t sender)
{
    kvf_world *w = ctx;
    if (sender < SY_CLIENT_ID_BASE || sender >= SY_CLIENT_ID_BASE + KVF_CLIENTS)
        return NULL;
    return &w->keys[sender - SY_CLIENT_ID_BASE];
}

static inline int kvf_world_init(kvf_world *w)
{
    memset(w, 0, sizeof *w);
    sy_crypto_init();
    int rc = sy_simsig_new(KVF_CLIENTS, &w->reg);
    if (rc)
        return rc;
    for (int i = 0; i < KVF_CLIENTS; i++) {
        uint8_t seed[SY_SEED_LEN] = { (uint8_t)(i + 1), 0x42 };
        if ((rc = sy_simsig_add(w->reg, seed, &w->signers[i])))
            return rc;
        w->keys[i] = w->signers[i].pub;
    }
    sy_verifier_simsig(&w->verifier, w->reg);
    w->dir.key_of = kvf_key_of;
    w->dir.ctx = w;
    w->opts.cluster_id = KVF_CLUSTER;
    w->opts.dir = &w->dir;
    w->opts.verifier = &w->verifier;
    return SY_OK;
}

static inline void kvf_world_free(kvf_world *w) { sy_simsig_free(w->reg); }

static inline uint32_t kvf_client(int i) { return SY_CLIENT_ID_BASE + (uint32_t)i; }

/* A signed request envelope from client index c; *out owned (free()). */
static inline int kvf_req(kvf_world *w, int c, uint64_t req_no, uint8_t op, const char *key,
                          const char *val, const char *old, uint8_t flags, uint32_t limit,
                          uint8_t **out, size_t *len)
{
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_CLIENT_REQ;
    sy_client_req *q = &m.u.req;
    q->client_id = kvf_client(c);
    q->req_no = req_no;
    q->op = op;
    q->flags = flags;
    q->limit = limit;
    if (key) q->key = (sy_bytes){ (const uint8_t *)key, (uint32_t)strlen(key) };
    if (val) q->val = (sy_bytes){ (const uint8_t *)val, (uint32_t)strlen(val) };
    if (old) q->old = (sy_bytes){ (const uint8_t *)old, (uint32_t)strlen(old) };
    sy_buf b;
    sy_buf_init(&b);
    int rc = sy_env_encode(KVF_CLUSTER, q->client_id, &m, &w->signers[c], &b);
    if (rc) {
        sy_buf_free(&b);
        return rc;
    }
    *out = sy_buf_take(&b, len);
    return SY_OK;
}

/* A batch being built: owned request envelopes. */
typedef struct kvf_batch {
    uint8_t *req[64];
    size_t len[64];
    uint32_t n;
} kvf_batch;

static inline int kvf_add(kvf_world *w, kvf_batch *b, int c, uint64_t req_no, uint8_t op,
                          const char *key, const char *val)
{
    int rc = kvf_req(w, c, req_no, op, key, val, NULL, 0, 0, &b->req[b->n], &b->len[b->n]);
    if (rc == SY_OK)
        b->n++;
    return rc;
}

static inline int kvf_add_raw(kvf_batch *b, const void *p, size_t len)
{
    b->req[b->n] = malloc(len ? len : 1);
    if (!b->req[b->n])
        return SY_ENOMEM;
    memcpy(b->req[b->n], p, len);
    b->len[b->n++] = len;
    return SY_OK;
}

static inline void kvf_batch_free(kvf_batch *b)
{
    for (uint32_t i = 0; i < b->n; i++)
        free(b->req[i]);
    b->n = 0;
}

/* Encodes the batch as entry data; *data owned (free()). */
static inline int kvf_encode(const kvf_batch *b, uint8_t **data, size_t *len)
{
    sy_bytes v[64];
    for (uint32_t i = 0; i < b->n; i++)
        v[i] = (sy_bytes){ b->req[i], (uint32_t)b->len[i] };
    return sy_batch_encode(v, b->n, data, len);
}

/* Applies the batch as entry `index` in its own transaction, also appending
 * it to the log like a host would, with evidence "ev<index>". */
static inline int kvf_apply(sy_kvm *kv, uint64_t index, uint8_t type, const kvf_batch *b,
                            sy_kv_results *res)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = SY_OK;
    if (b && (rc = kvf_encode(b, &data, &len)))
        return rc;
    char ev[32];
    int evl = snprintf(ev, sizeof ev, "ev%llu", (unsigned long long)index);
    sy_committed c = {
        .entry = { .index = index, .term = 1, .type = type, .data = { data, (uint32_t)len } },
        .evidence = { (const uint8_t *)ev, (uint32_t)evl },
    };
    sy_txn t;
    if ((rc = sy_txn_begin(kv->s, true, &t)))
        goto out;
    if ((rc = sy_txn_append(&t, &c.entry, 1)) || (rc = sy_kv_apply(kv, &t, &c, res))) {
        sy_txn_abort(&t);
        goto out;
    }
    rc = sy_txn_commit(&t);
    if (rc)
        sy_kv_results_free(res);
out:
    free(data);
    return rc;
}

#endif
