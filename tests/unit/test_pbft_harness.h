/* In-process PBFT cluster for unit tests and the engine benchmark: N
 * engines, real signed envelopes through the real codec, messages routed by
 * hand (a queue, an optional filter that may drop or inspect), persistence
 * = advance, a toy state machine whose state is a hash chain of applied
 * entries and whose snapshot blob is (index u64 | state digest). Agreement
 * is checked on every commit: no two replicas commit different data at one
 * sequence number. No cmocka dependency, so the benchmark can use it. */
#ifndef TEST_PBFT_HARNESS_H
#define TEST_PBFT_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bft/pbft/pbft.h"
#include "core/envelope.h"
#include "crypto/sy_err.h"

#define H_FN static __attribute__((unused))
#define H_MAX 8u
#define H_CLIENTS 4u
#define H_LOG 8192u
#define H_CLUSTER "pbft-test"
#define H_CKPTS 8u

typedef struct harness harness;
/* Return false to drop the message. m is the decoded body. */
typedef bool (*h_filter)(harness *h, uint32_t from, uint32_t to, const sy_msg *m);

typedef struct {
    uint32_t from, to;
    uint8_t *buf;
    size_t len;
} h_msg;

/* What a node's host made durable: hardstate, committed entries above the
 * last snapshot, the last snapshot (index | state digest blob). */
typedef struct {
    uint8_t hs[65536];
    size_t hs_len;
    sy_record *recs;              /* engine records, keys ascending, values owned */
    size_t n_recs, cap_recs;
    uint64_t hs_bytes, rec_bytes; /* written so far: hard states, record values */
    sy_entry *ents;               /* data owned */
    size_t n, cap;
    uint64_t snap_index;
    uint8_t snap[41];
    size_t snap_len;
    bool have_snap;
    /* the storage layer's pending checkpoint snapshots
     * (sy_txn_checkpoint_snapshot): taken, their checkpoints not yet
     * stable; ascending */
    uint64_t ckpt_index[H_CKPTS];
    uint8_t ckpt[H_CKPTS][41];
    size_t ckpt_len[H_CKPTS];
    size_t n_ckpts;
    /* The store's log starts above base (sy_txn_compact). ents also keeps
     * the entries in (newest snapshot, base] -- never handed to the
     * engine -- because the toy state machine here is restored from the
     * newest snapshot and those entries, where the daemon's KV is simply
     * durable at its applied index. */
    uint64_t base;
} h_disk;

struct harness {
    uint32_t n, f;
    bool ed25519;
    sy_simsig *ss;
    sy_seckey *sk[H_MAX + H_CLIENTS];
    sy_signer sg[H_MAX + H_CLIENTS];
    sy_pubkey pk[H_MAX + H_CLIENTS];
    sy_verifier ver;
    sy_directory nodes_dir, clients_dir;
    sy_engine_cfg cfg[H_MAX];
    void *e[H_MAX];
    const sy_engine_ops *ops;
    uint64_t now;
    h_msg *q;
    size_t nq, capq;
    bool down[H_MAX];
    h_filter filter;
    void *filter_ctx;
    uint64_t applied[H_MAX];
    sy_digest state[H_MAX];
    sy_digest *log;               /* agreed digest per seq (first commit) */
    bool *log_have;
    uint64_t violations;          /* agreement or order violations */
    uint64_t installs[H_MAX];
    uint64_t compacted[H_MAX];
    uint64_t step_errors[H_MAX];
    uint64_t req_no[H_CLIENTS];
    uint64_t delivered;
    uint64_t reads[H_MAX];
    uint64_t nreq[H_MAX];         /* client requests executed */
    bool noisy_snap;              /* blobs end in a per-replica byte */
    h_disk disk[H_MAX];
    uint64_t noops[H_MAX];
    /* crash models: the node's next checkpoint snapshot is never stored
     * (it crashes first); at h_restart, its state machine stays where it
     * was (durable, as the daemon's KV) instead of coming back from the
     * newest snapshot */
    bool lose_next_snapshot[H_MAX];
    bool durable_sm[H_MAX];
};

static const sy_pubkey *h_node_key(void *ctx, uint32_t id)
{
    harness *h = ctx;
    return id < h->n ? &h->pk[id] : NULL;
}

static const sy_pubkey *h_client_key(void *ctx, uint32_t id)
{
    harness *h = ctx;
    if (id < SY_CLIENT_ID_BASE || id >= SY_CLIENT_ID_BASE + H_CLIENTS)
        return NULL;
    return &h->pk[H_MAX + id - SY_CLIENT_ID_BASE];
}

#define H_CHUNK 16u

/* cfg_tweak may adjust each node's config before creation (NULL = none). */
H_FN harness *h_new(uint32_t n, uint32_t f, bool ed25519, uint32_t K,
                    void (*cfg_tweak)(uint32_t node, sy_engine_cfg *c))
{
    harness *h = calloc(1, sizeof *h);
    if (!h || sy_crypto_init())
        abort();
    h->n = n;
    h->f = f;
    h->ed25519 = ed25519;
    h->ops = &sy_pbft_ops;
    h->log = calloc(H_LOG, sizeof *h->log);
    h->log_have = calloc(H_LOG, sizeof *h->log_have);
    if (!ed25519 && sy_simsig_new(H_MAX + H_CLIENTS, &h->ss))
        abort();
    for (uint32_t i = 0; i < H_MAX + H_CLIENTS; i++) {
        uint8_t seed[SY_SEED_LEN] = { (uint8_t)(i + 1), 0x42 };
        if (ed25519) {
            if (sy_seckey_from_seed(seed, &h->sk[i]))
                abort();
            sy_seckey_public(h->sk[i], &h->pk[i]);
            sy_signer_ed25519(&h->sg[i], h->sk[i]);
        } else {
            if (sy_simsig_add(h->ss, seed, &h->sg[i]))
                abort();
            h->pk[i] = h->sg[i].pub;
        }
    }
    if (ed25519)
        sy_verifier_ed25519(&h->ver);
    else
        sy_verifier_simsig(&h->ver, h->ss);
    h->nodes_dir = (sy_directory){ h_node_key, h };
    h->clients_dir = (sy_directory){ h_client_key, h };
    for (uint32_t i = 0; i < n; i++) {
        sy_engine_cfg *c = &h->cfg[i];
        memset(c, 0, sizeof *c);
        c->self = i;
        c->n = n;
        c->f = f;
        strcpy(c->cluster_id, H_CLUSTER);
        c->heartbeat_ms = 50;
        c->request_timeout_ms = 500;
        c->batch_delay_ms = 0;
        c->batch_max = 8;
        c->checkpoint_interval = K;
        /* blobs are 40 bytes: every state transfer moves three chunks */
        c->state_chunk_bytes = H_CHUNK;
        c->node_keys = h->pk;
        c->signer = &h->sg[i];
        c->verifier = &h->ver;
        c->rng_seed = 7;
        c->clients = &h->clients_dir;
        if (cfg_tweak)
            cfg_tweak(i, c);
        if (h->ops->create(c, NULL, &h->e[i]))
            abort();
    }
    h->now = 1;
    return h;
}

H_FN void h_free(harness *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        if (h->e[i])
            h->ops->destroy(h->e[i]);
    for (size_t i = 0; i < h->nq; i++)
        free(h->q[i].buf);
    free(h->q);
    for (uint32_t i = 0; i < H_MAX + H_CLIENTS; i++)
        if (h->sk[i])
            sy_seckey_free(h->sk[i]);
    if (h->ss)
        sy_simsig_free(h->ss);
    for (uint32_t i = 0; i < H_MAX; i++) {
        for (size_t k = 0; k < h->disk[i].n; k++)
            free((void *)h->disk[i].ents[k].data.p);
        free(h->disk[i].ents);
        for (size_t k = 0; k < h->disk[i].n_recs; k++)
            free((void *)h->disk[i].recs[k].val.p);
        free(h->disk[i].recs);
    }
    free(h->log);
    free(h->log_have);
    free(h);
}

static void h_disk_drop_upto(h_disk *d, uint64_t index)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->ents[i].index <= index)
            free((void *)d->ents[i].data.p);
        else
            d->ents[k++] = d->ents[i];
    }
    d->n = k;
}

/* Pending checkpoint snapshots at or below index go. */
static void h_disk_drop_ckpts(h_disk *d, uint64_t index)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n_ckpts; i++) {
        if (d->ckpt_index[i] <= index)
            continue;
        if (k != i) {
            d->ckpt_index[k] = d->ckpt_index[i];
            memcpy(d->ckpt[k], d->ckpt[i], sizeof d->ckpt[k]);
            d->ckpt_len[k] = d->ckpt_len[i];
        }
        k++;
    }
    d->n_ckpts = k;
}

/* The newest state stored: the last pending snapshot's or the snapshot's. */
static uint64_t h_disk_newest(const h_disk *d)
{
    if (d->n_ckpts)
        return d->ckpt_index[d->n_ckpts - 1];
    return d->have_snap ? d->snap_index : 0;
}

/* The storage layer's rule (sy_txn_records): drop keys below drop_below,
 * then put each record in order, an empty value deleting. */
static void h_disk_records(h_disk *d, const sy_ready *rd)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n_recs; i++) {
        if (d->recs[i].key < rd->records_drop_below)
            free((void *)d->recs[i].val.p);
        else
            d->recs[k++] = d->recs[i];
    }
    d->n_recs = k;
    for (size_t i = 0; i < rd->n_records; i++) {
        const sy_record *r = &rd->records[i];
        size_t at = 0;
        while (at < d->n_recs && d->recs[at].key < r->key)
            at++;
        bool found = at < d->n_recs && d->recs[at].key == r->key;
        if (found)
            free((void *)d->recs[at].val.p);
        if (!r->val.len) {
            if (found) {
                memmove(&d->recs[at], &d->recs[at + 1], (d->n_recs - at - 1) * sizeof *d->recs);
                d->n_recs--;
            }
            continue;
        }
        uint8_t *v = malloc(r->val.len);
        if (!v)
            abort();
        memcpy(v, r->val.p, r->val.len);
        if (!found) {
            if (d->n_recs == d->cap_recs) {
                d->cap_recs = d->cap_recs ? 2 * d->cap_recs : 16;
                d->recs = realloc(d->recs, d->cap_recs * sizeof *d->recs);
                if (!d->recs)
                    abort();
            }
            memmove(&d->recs[at + 1], &d->recs[at], (d->n_recs - at) * sizeof *d->recs);
            d->n_recs++;
        }
        d->recs[at] = (sy_record){ r->key, { v, r->val.len } };
    }
}

static void h_persist(harness *h, uint32_t node, const sy_ready *rd)
{
    h_disk *d = &h->disk[node];
    h_disk_records(d, rd);
    for (size_t i = 0; i < rd->n_records; i++)
        d->rec_bytes += rd->records[i].val.len;
    if (rd->hardstate_dirty)
        d->hs_bytes += rd->hardstate.len;
    if (rd->hardstate_dirty) {
        if (rd->hardstate.len > sizeof d->hs) {
            /* a lost write would make a later restart a false finding */
            fprintf(stderr, "harness: hard state of %u bytes does not fit\n", rd->hardstate.len);
            abort();
        }
        memcpy(d->hs, rd->hardstate.p, rd->hardstate.len);
        d->hs_len = rd->hardstate.len;
    }
    if (rd->snapshot_install && rd->snap_data.len >= 40 && rd->snap_data.len <= 41) {
        memcpy(d->snap, rd->snap_data.p, rd->snap_data.len);
        d->snap_len = rd->snap_data.len;
        d->snap_index = rd->snap_index;
        d->have_snap = true;
        h_disk_drop_upto(d, rd->snap_index);
        if (rd->snap_index > d->base)
            d->base = rd->snap_index;
        h_disk_drop_ckpts(d, rd->snap_index);
    }
    for (size_t i = 0; i < rd->n_entries; i++) {
        if (d->n == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 64;
            d->ents = realloc(d->ents, d->cap * sizeof *d->ents);
            if (!d->ents)
                abort();
        }
        uint8_t *copy = malloc(rd->entries[i].data.len + 1);
        if (!copy)
            abort();
        if (rd->entries[i].data.len)
            memcpy(copy, rd->entries[i].data.p, rd->entries[i].data.len);
        d->ents[d->n] = rd->entries[i];
        d->ents[d->n].data.p = copy;
        d->n++;
    }
    if (rd->compact_to) {
        /* sy_txn_compact: the pending one at compact_to becomes the
         * snapshot, those below it go; the log goes through compact_to */
        for (size_t i = 0; i < d->n_ckpts; i++)
            if (d->ckpt_index[i] == rd->compact_to &&
                (!d->have_snap || d->snap_index < rd->compact_to)) {
                memcpy(d->snap, d->ckpt[i], d->ckpt_len[i]);
                d->snap_len = d->ckpt_len[i];
                d->snap_index = d->ckpt_index[i];
                d->have_snap = true;
            }
        h_disk_drop_ckpts(d, rd->compact_to);
        if (rd->compact_to > d->base)
            d->base = rd->compact_to;
        h_disk_drop_upto(d, h_disk_newest(d) < d->base ? h_disk_newest(d) : d->base);
    }
}

/* sy_txn_checkpoint_snapshot: false when it is stale (nothing stored). */
static bool h_disk_checkpoint(h_disk *d, uint64_t ck, const uint8_t *blob, size_t bl)
{
    if ((d->have_snap && d->snap_index >= ck) || ck < d->base)
        return false;
    for (size_t i = 0; i < d->n_ckpts; i++)
        if (d->ckpt_index[i] == ck)
            return false;
    if (ck == d->base) {
        memcpy(d->snap, blob, bl);
        d->snap_len = bl;
        d->snap_index = ck;
        d->have_snap = true;
        h_disk_drop_ckpts(d, ck);
        return true;
    }
    if (d->n_ckpts == H_CKPTS) {
        fprintf(stderr, "harness: more than %u pending checkpoint snapshots\n", H_CKPTS);
        abort();
    }
    size_t at = d->n_ckpts;
    while (at && d->ckpt_index[at - 1] > ck)
        at--;
    for (size_t i = d->n_ckpts; i > at; i--) {
        d->ckpt_index[i] = d->ckpt_index[i - 1];
        memcpy(d->ckpt[i], d->ckpt[i - 1], sizeof d->ckpt[i]);
        d->ckpt_len[i] = d->ckpt_len[i - 1];
    }
    d->ckpt_index[at] = ck;
    memcpy(d->ckpt[at], blob, bl);
    d->ckpt_len[at] = bl;
    d->n_ckpts++;
    return true;
}

static void h_push(harness *h, uint32_t from, uint32_t to, uint8_t *buf, size_t len)
{
    if (h->nq == h->capq) {
        h->capq = h->capq ? h->capq * 2 : 256;
        h->q = realloc(h->q, h->capq * sizeof *h->q);
        if (!h->q)
            abort();
    }
    h->q[h->nq++] = (h_msg){ from, to, buf, len };
}

H_FN void h_step(harness *h, uint32_t node, const sy_input *in)
{
    int rc = h->ops->step(h->e[node], in);
    if (rc)
        h->step_errors[node]++;
    if (rc == SY_EFATAL) {
        fprintf(stderr, "node %u: fatal\n", node);
        h->violations++;
    }
}

/* The toy state machine: its state is a hash chain of the digests of the
 * entries applied (a NOOP's digest is zero). */
static void h_sm_chain(sy_digest *state, const sy_digest *d)
{
    sy_hasher hh;
    sy_hash_init(&hh);
    sy_hash_update(&hh, state->b, SY_DIGEST_LEN);
    sy_hash_update(&hh, d->b, SY_DIGEST_LEN);
    sy_hash_final(&hh, state);
}

static void h_sm_apply(sy_digest *state, const sy_entry *e)
{
    sy_digest d;
    memset(&d, 0, sizeof d);
    if (e->type == SY_ENTRY_NORMAL)
        sy_hash(e->data.p, e->data.len, &d);
    h_sm_chain(state, &d);
}

/* Blob: applied u64 | state 32 [| node id, when noisy]. Returns length. */
static size_t h_snapshot_blob(harness *h, uint32_t node, uint8_t out[41])
{
    uint64_t idx = h->applied[node];
    memcpy(out, &idx, 8);
    memcpy(out + 8, h->state[node].b, SY_DIGEST_LEN);
    out[40] = (uint8_t)node;
    return h->noisy_snap ? 41 : 40;
}

/* One ready/persist/send/apply/advance round; returns true if anything. */
H_FN bool h_process(harness *h, uint32_t node)
{
    sy_ready rd;
    bool any = false;
    h->ops->ready(h->e[node], &rd);
    h_persist(h, node, &rd);
    if (rd.snapshot_install) {
        if (rd.snap_data.len >= 40) {
            memcpy(&h->applied[node], rd.snap_data.p, 8);
            memcpy(h->state[node].b, rd.snap_data.p + 8, SY_DIGEST_LEN);
            if (h->applied[node] != rd.snap_index)
                h->violations++;
        } else {
            h->violations++;
        }
        h->installs[node]++;
        any = true;
    }
    if (rd.compact_to)
        h->compacted[node] = rd.compact_to;
    for (size_t i = 0; i < rd.n_msgs; i++) {
        sy_buf b;
        sy_buf_init(&b);
        if (sy_env_encode(H_CLUSTER, node, &rd.msgs[i].msg, &h->sg[node], &b))
            abort();
        size_t len;
        uint8_t *p = sy_buf_take(&b, &len);
        h_push(h, node, rd.msgs[i].to, p, len);
        any = true;
    }
    for (size_t i = 0; i < rd.n_committed; i++) {
        const sy_entry *e = &rd.committed[i].entry;
        sy_digest d;
        memset(&d, 0, sizeof d);
        if (e->type == SY_ENTRY_NORMAL) {
            sy_bytes *reqs = NULL;
            uint32_t nr = 0;
            sy_hash(e->data.p, e->data.len, &d);
            if (sy_batch_decode(e->data.p, e->data.len, &reqs, &nr) == SY_OK) {
                h->nreq[node] += nr;
                free(reqs);
            }
        } else {
            h->noops[node]++;
        }
        if (e->index != h->applied[node] + 1) {
            fprintf(stderr, "node %u: applied %llu then %llu\n", node,
                    (unsigned long long)h->applied[node], (unsigned long long)e->index);
            h->violations++;
        }
        if (e->index < H_LOG) {
            if (h->log_have[e->index] && !sy_digest_eq(&h->log[e->index], &d)) {
                fprintf(stderr, "node %u: disagreement at %llu\n", node,
                        (unsigned long long)e->index);
                h->violations++;
            }
            h->log[e->index] = d;
            h->log_have[e->index] = true;
        }
        h_sm_chain(&h->state[node], &d);
        h->applied[node] = e->index;
        any = true;
    }
    if (rd.compact_to > h->applied[node]) {
        /* the daemon compacts in the write that applies: its state machine
         * would be behind entries it no longer has */
        fprintf(stderr, "node %u: compacted to %llu with %llu applied\n", node,
                (unsigned long long)rd.compact_to, (unsigned long long)h->applied[node]);
        h->violations++;
    }
    h->reads[node] += rd.n_reads;
    uint64_t ck = rd.checkpoint_index;
    if (rd.hardstate_dirty || rd.n_records || rd.n_entries || rd.n_reads || rd.n_rejects)
        any = true;
    h->ops->advance(h->e[node], h->now);
    if (ck) {
        if (ck != h->applied[node])
            h->violations++;
        uint8_t blob[41];
        size_t bl = h_snapshot_blob(h, node, blob);
        if (h->lose_next_snapshot[node]) {
            h->lose_next_snapshot[node] = false;   /* the test restarts it next */
        } else if (h_disk_checkpoint(&h->disk[node], ck, blob, bl)) {
            /* as the daemon: stored first, then the engine is told */
            sy_input in = { .kind = SY_IN_SNAPSHOT, .now_ms = h->now };
            in.u.snapshot.index = ck;
            in.u.snapshot.data = (sy_bytes){ blob, (uint32_t)bl };
            h_step(h, node, &in);
        }
        any = true;
    }
    return any;
}

H_FN void h_deliver(harness *h, const h_msg *m)
{
    sy_env env;
    sy_env_opts o = { .cluster_id = H_CLUSTER, .dir = &h->nodes_dir, .verifier = &h->ver };
    if (h->down[m->from] || h->down[m->to])
        return;
    if (sy_env_decode(&o, m->buf, m->len, &env, NULL))
        return;
    if (!h->filter || h->filter(h, m->from, m->to, &env.msg)) {
        sy_input in = { .kind = SY_IN_MSG, .now_ms = h->now };
        in.u.msg.from = m->from;
        in.u.msg.msg = &env.msg;
        in.u.msg.raw = m->buf;
        in.u.msg.raw_len = m->len;
        h_step(h, m->to, &in);
        h->delivered++;
    }
    sy_env_free(&env);
}

/* Delivers the messages queued so far, once each; those addressed to
 * lost_to (UINT32_MAX: none) are dropped, as in that node's crash. What
 * the deliveries queue waits for the next call. */
H_FN void h_deliver_queued(harness *h, uint32_t lost_to)
{
    h_msg *batch = h->q;
    size_t nb = h->nq;
    h->q = NULL;
    h->nq = h->capq = 0;
    for (size_t i = 0; i < nb; i++) {
        if (batch[i].to != lost_to)
            h_deliver(h, &batch[i]);
        free(batch[i].buf);
    }
    free(batch);
}

/* Runs until no node has anything to do (bounded). */
H_FN void h_run(harness *h)
{
    for (int round = 0; round < 10000; round++) {
        bool any = false;
        for (uint32_t i = 0; i < h->n; i++)
            if (!h->down[i])
                any |= h_process(h, i);
        if (!h->nq && !any)
            return;
        h_deliver_queued(h, UINT32_MAX);
    }
}

H_FN void h_tick(harness *h, uint64_t ms)
{
    h->now += ms;
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->down[i])
            continue;
        sy_input in = { .kind = SY_IN_TICK, .now_ms = h->now };
        h_step(h, i, &in);
    }
    h_run(h);
}

H_FN void h_run_for(harness *h, uint64_t total_ms, uint64_t step_ms)
{
    for (uint64_t t = 0; t < total_ms; t += step_ms)
        h_tick(h, step_ms);
}

/* Builds client c's next signed PUT; *raw owned by the caller (free()). */
H_FN void h_make_request(harness *h, uint32_t c, uint8_t **raw, size_t *len)
{
    char val[32];
    sy_msg m = { .type = SY_MSG_CLIENT_REQ };
    uint64_t no = ++h->req_no[c];
    snprintf(val, sizeof val, "v%llu", (unsigned long long)no);
    m.u.req = (sy_client_req){ .client_id = SY_CLIENT_ID_BASE + c, .req_no = no,
                               .op = SY_OP_PUT,
                               .key = { (const uint8_t *)"k", 1 },
                               .val = { (const uint8_t *)val, (uint32_t)strlen(val) } };
    sy_buf b;
    sy_buf_init(&b);
    if (sy_env_encode(H_CLUSTER, SY_CLIENT_ID_BASE + c, &m, &h->sg[H_MAX + c], &b))
        abort();
    *raw = sy_buf_take(&b, len);
}

/* Steps a signed request into each node of mask (bit i = node i). */
H_FN void h_submit_raw(harness *h, const uint8_t *raw, size_t len, uint32_t mask)
{
    sy_env env;
    sy_env_opts o = { .cluster_id = H_CLUSTER, .dir = &h->clients_dir, .verifier = &h->ver };
    if (sy_env_decode(&o, raw, len, &env, NULL))
        abort();
    for (uint32_t i = 0; i < h->n; i++) {
        if (!(mask >> i & 1) || h->down[i])
            continue;
        sy_input in = { .kind = SY_IN_REQUEST, .now_ms = h->now };
        in.u.request.req = &env.msg.u.req;
        in.u.request.raw = raw;
        in.u.request.raw_len = len;
        h_step(h, i, &in);
    }
    sy_env_free(&env);
}

H_FN void h_submit(harness *h, uint32_t c, uint32_t mask)
{
    uint8_t *raw;
    size_t len;
    h_make_request(h, c, &raw, &len);
    h_submit_raw(h, raw, len, mask);
    free(raw);
}

/* Crash and restart node from its disk: the state machine comes back from
 * the newest snapshot and the engine re-emits the durable entries above
 * it. */
H_FN int h_restart(harness *h, uint32_t node)
{
    h_disk *d = &h->disk[node];
    h->ops->destroy(h->e[node]);
    h->e[node] = NULL;
    uint64_t kept_applied = h->applied[node];
    sy_digest kept_state = h->state[node];
    h->applied[node] = 0;
    memset(&h->state[node], 0, sizeof h->state[node]);
    /* the state machine: the newest state stored, and the entries above
     * it that the store compacted (the daemon's KV is durable at its
     * applied index, which is never below the compaction point) */
    const uint8_t *blob = d->n_ckpts ? d->ckpt[d->n_ckpts - 1] : d->have_snap ? d->snap : NULL;
    if (blob) {
        memcpy(&h->applied[node], blob, 8);
        memcpy(h->state[node].b, blob + 8, SY_DIGEST_LEN);
    }
    size_t above = 0;   /* the first entry the store still holds */
    while (above < d->n && d->ents[above].index <= d->base) {
        const sy_entry *e = &d->ents[above++];
        if (e->index <= h->applied[node])
            continue;
        if (e->index != h->applied[node] + 1)
            h->violations++;   /* a hole: the harness lost what the daemon keeps */
        h_sm_apply(&h->state[node], e);
        h->applied[node] = e->index;
    }
    if (h->applied[node] < d->base)
        h->violations++;
    if (h->durable_sm[node] && kept_applied >= h->applied[node]) {
        h->applied[node] = kept_applied;
        h->state[node] = kept_state;
    }
    sy_ckpt_snap ck[H_CKPTS];
    for (size_t i = 0; i < d->n_ckpts; i++)
        ck[i] = (sy_ckpt_snap){ d->ckpt_index[i], { d->ckpt[i], (uint32_t)d->ckpt_len[i] } };
    sy_engine_boot boot = { .hardstate = { d->hs, (uint32_t)d->hs_len },
                            .snap_index = d->have_snap ? d->snap_index : 0,
                            .snap_data = { d->have_snap ? d->snap : NULL,
                                           d->have_snap ? (uint32_t)d->snap_len : 0u },
                            .entries = above < d->n ? d->ents + above : NULL,
                            .n_entries = d->n - above,
                            .applied = h->applied[node],
                            .ckpts = ck, .n_ckpts = d->n_ckpts,
                            .records = d->recs, .n_records = d->n_recs };
    return h->ops->create(&h->cfg[node], &boot, &h->e[node]);
}

H_FN sy_engine_status h_status(harness *h, uint32_t node)
{
    sy_engine_status st;
    h->ops->status(h->e[node], &st);
    return st;
}

/* Lowest applied index over the nodes in mask. */
H_FN uint64_t h_min_applied(harness *h, uint32_t mask)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t i = 0; i < h->n; i++)
        if ((mask >> i & 1) && h->applied[i] < m)
            m = h->applied[i];
    return m;
}

#endif
