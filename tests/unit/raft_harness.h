/* In-test harness for the Raft engine: N engines in one process, a message
 * queue between them that tests can cut, drop or hold, a "disk" per node that
 * applies each ready (so a node can be crashed and rebooted from it), and a
 * record of everything each node committed, read or rejected.
 *
 * Time is a plain counter; messages are delivered with zero latency inside a
 * millisecond unless a test holds them. Everything is deterministic. */
#ifndef RAFT_HARNESS_H
#define RAFT_HARNESS_H

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "cft/raft/raft.h"
#include "core/evidence.h"
#include "crypto/sy_err.h"

#define H_MAX 8

typedef struct {
    uint32_t from, to;
    sy_msg msg;      /* deep copy */
} h_msg;

typedef struct {
    uint64_t index, term;
    uint8_t type;
    uint8_t *data;
    uint32_t len;
} h_ent;

typedef struct {
    h_ent *v;
    size_t n, cap;
} h_ents;

typedef struct {
    /* disk */
    uint8_t hs[RAFT_HS_LEN];
    uint32_t hs_len;
    h_ents log;
    uint64_t snap_index, snap_term;
    sy_members snap_members;
    uint8_t *snap_data;
    uint32_t snap_len;
    /* state machine: everything applied, in order */
    h_ents applied;
    uint64_t applied_index;
    /* observations */
    sy_read_state reads[256];
    size_t n_reads;
    sy_reject rejects[1024];
    size_t n_rejects;
    size_t hs_writes;
    bool last_ready_vote_with_grant;
    /* evidence of the last committed entry */
    uint8_t ev[SY_ATTEST_LEN];
    uint32_t ev_len;
    const char *ev_tag;   /* sy_committed.attest */
    sy_entry ev_entry;
    sy_digest ev_digest;
} h_node;

typedef struct {
    uint32_t n;
    void *e[H_MAX];
    sy_engine_cfg cfg[H_MAX];
    bool alive[H_MAX];
    bool cut[H_MAX][H_MAX];   /* cut[a][b]: messages a -> b are dropped */
    bool hold;                /* queue messages but do not deliver */
    uint64_t now;
    h_msg *q;
    size_t nq, capq;
    h_msg *spare;             /* recycled queue buffer (sy_msg is large) */
    size_t capspare;
    h_node node[H_MAX];
    uint64_t delivered;
    /* chaos: percentages applied to each delivery (drop, delay, duplicate) */
    uint32_t drop_pct, delay_pct, dup_pct;
    sy_rng chaos;
    /* optional filter: return false to drop */
    bool (*filter)(void *ctx, uint32_t from, uint32_t to, const sy_msg *m);
    void *filter_ctx;
} h_cluster;

static inline void h_ents_push(h_ents *l, uint64_t index, uint64_t term, uint8_t type,
                               const uint8_t *data, uint32_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    h_ent *e = &l->v[l->n++];
    e->index = index;
    e->term = term;
    e->type = type;
    e->len = len;
    e->data = NULL;
    if (len) {
        e->data = malloc(len);
        memcpy(e->data, data, len);
    }
}

static inline void h_ents_drop_from(h_ents *l, size_t k)
{
    for (size_t i = k; i < l->n; i++)
        free(l->v[i].data);
    if (k < l->n)
        l->n = k;
}

static inline void h_ents_free(h_ents *l)
{
    h_ents_drop_from(l, 0);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static inline void h_msg_copy(sy_msg *dst, const sy_msg *src)
{
    *dst = *src;
    if (src->type == SY_MSG_RAFT_APPEND && src->u.append.n_entries) {
        uint32_t n = src->u.append.n_entries;
        dst->u.append.entries = malloc(n * sizeof(sy_entry));
        for (uint32_t i = 0; i < n; i++) {
            sy_entry e = src->u.append.entries[i];
            if (e.data.len) {
                uint8_t *p = malloc(e.data.len);
                memcpy(p, e.data.p, e.data.len);
                e.data.p = p;
            }
            dst->u.append.entries[i] = e;
        }
    }
    if (src->type == SY_MSG_RAFT_SNAPSHOT && src->u.snap.data.len) {
        uint8_t *p = malloc(src->u.snap.data.len);
        memcpy(p, src->u.snap.data.p, src->u.snap.data.len);
        dst->u.snap.data.p = p;
    }
}

static inline void h_msg_free(sy_msg *m)
{
    if (m->type == SY_MSG_RAFT_APPEND) {
        for (uint32_t i = 0; i < m->u.append.n_entries; i++)
            free((void *)m->u.append.entries[i].data.p);
        free(m->u.append.entries);
    }
    if (m->type == SY_MSG_RAFT_SNAPSHOT)
        free((void *)m->u.snap.data.p);
}

static inline sy_engine_cfg h_default_cfg(uint32_t self, uint32_t n)
{
    sy_engine_cfg c;
    memset(&c, 0, sizeof c);
    c.self = self;
    c.n = n;
    c.f = (n - 1) / 2;
    strcpy(c.cluster_id, "test");
    c.heartbeat_ms = 10;
    c.election_min_ms = 100;
    c.election_max_ms = 200;
    c.batch_max = 64;
    c.batch_bytes_max = 64 * 1024;
    c.max_inflight = 8;
    c.max_pending = 10000;
    c.prevote = true;
    c.check_quorum = true;
    c.rng_seed = 1000 + self;
    return c;
}

static inline int h_boot(h_cluster *c, uint32_t i)
{
    h_node *nd = &c->node[i];
    sy_engine_boot b;
    memset(&b, 0, sizeof b);
    b.hardstate.p = nd->hs;
    b.hardstate.len = nd->hs_len;
    b.snap_index = nd->snap_index;
    b.snap_term = nd->snap_term;
    b.snap_members = nd->snap_members;
    b.snap_data.p = nd->snap_data;
    b.snap_data.len = nd->snap_len;
    sy_entry *ents = calloc(nd->log.n + 1, sizeof *ents);
    for (size_t k = 0; k < nd->log.n; k++) {
        ents[k].index = nd->log.v[k].index;
        ents[k].term = nd->log.v[k].term;
        ents[k].type = nd->log.v[k].type;
        ents[k].data.p = nd->log.v[k].data;
        ents[k].data.len = nd->log.v[k].len;
    }
    b.entries = ents;
    b.n_entries = nd->log.n;
    b.applied = nd->applied_index;
    int rc = sy_raft_ops.create(&c->cfg[i], &b, &c->e[i]);
    free(ents);
    c->alive[i] = rc == SY_OK;
    return rc;
}

static inline void h_init_cfg(h_cluster *c, uint32_t n, bool prevote, bool check_quorum)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    for (uint32_t i = 0; i < n; i++) {
        c->cfg[i] = h_default_cfg(i, n);
        c->cfg[i].prevote = prevote;
        c->cfg[i].check_quorum = check_quorum;
    }
}

static inline void h_start(h_cluster *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (h_boot(c, i) != SY_OK)
            abort();
}

static inline void h_init(h_cluster *c, uint32_t n)
{
    h_init_cfg(c, n, true, true);
    h_start(c);
}

static inline void h_crash(h_cluster *c, uint32_t i)
{
    if (c->alive[i])
        sy_raft_ops.destroy(c->e[i]);
    c->e[i] = NULL;
    c->alive[i] = false;
}

/* Node i's disk is replaced by an empty one (a dead disk restored as in
 * docs/operations.md, section 7): it is crashed, and everything it had
 * persisted or applied is gone. h_boot starts it on the empty disk. */
static inline void h_wipe(h_cluster *c, uint32_t i)
{
    h_crash(c, i);
    h_node *nd = &c->node[i];
    h_ents_free(&nd->log);
    h_ents_free(&nd->applied);
    free(nd->snap_data);
    memset(nd, 0, sizeof *nd);
}

static inline void h_free(h_cluster *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        h_crash(c, i);
        h_ents_free(&c->node[i].log);
        h_ents_free(&c->node[i].applied);
        free(c->node[i].snap_data);
    }
    for (size_t k = 0; k < c->nq; k++)
        h_msg_free(&c->q[k].msg);
    free(c->q);
    free(c->spare);
}

/* Runs one ready/advance cycle on node i: persist, queue sends, apply. */
static inline void h_ready(h_cluster *c, uint32_t i)
{
    if (!c->alive[i])
        return;
    h_node *nd = &c->node[i];
    sy_ready rd;
    sy_raft_ops.ready(c->e[i], &rd);
    /* 1. persist */
    if (rd.hardstate_dirty) {
        memcpy(nd->hs, rd.hardstate.p, rd.hardstate.len);
        nd->hs_len = rd.hardstate.len;
        nd->hs_writes++;
    }
    nd->last_ready_vote_with_grant = false;
    for (size_t k = 0; k < rd.n_msgs; k++)
        if (rd.msgs[k].msg.type == SY_MSG_RAFT_VOTE_RESP && rd.msgs[k].msg.u.vote_resp.granted &&
            !rd.msgs[k].msg.u.vote_resp.prevote)
            nd->last_ready_vote_with_grant = rd.hardstate_dirty;
    if (rd.truncate_from) {
        size_t k = 0;
        while (k < nd->log.n && nd->log.v[k].index < rd.truncate_from)
            k++;
        h_ents_drop_from(&nd->log, k);
    }
    for (size_t k = 0; k < rd.n_entries; k++) {
        const sy_entry *e = &rd.entries[k];
        if (nd->log.n && nd->log.v[nd->log.n - 1].index + 1 != e->index) {
            fprintf(stderr, "harness: node %u non-contiguous append %llu after %llu\n", i,
                    (unsigned long long)e->index,
                    (unsigned long long)nd->log.v[nd->log.n - 1].index);
            abort();
        }
        h_ents_push(&nd->log, e->index, e->term, e->type, e->data.p, e->data.len);
    }
    if (rd.snapshot_install) {
        free(nd->snap_data);
        nd->snap_data = NULL;
        nd->snap_len = rd.snap_data.len;
        if (rd.snap_data.len) {
            nd->snap_data = malloc(rd.snap_data.len);
            memcpy(nd->snap_data, rd.snap_data.p, rd.snap_data.len);
        }
        nd->snap_index = rd.snap_index;
        nd->snap_term = rd.snap_term;
        nd->snap_members = rd.snap_members;
        /* the state machine becomes the snapshot */
        h_ents_drop_from(&nd->applied, 0);
        nd->applied_index = rd.snap_index;
    } else if (rd.snap_index) {
        nd->snap_index = rd.snap_index;
        nd->snap_term = rd.snap_term;
        nd->snap_members = rd.snap_members;
    }
    if (rd.compact_to) {
        size_t k = 0;
        while (k < nd->log.n && nd->log.v[k].index <= rd.compact_to)
            k++;
        for (size_t j = 0; j < k; j++)
            free(nd->log.v[j].data);
        if (k) {
            memmove(nd->log.v, nd->log.v + k, (nd->log.n - k) * sizeof(h_ent));
            nd->log.n -= k;
        }
    }
    /* 2. send */
    for (size_t k = 0; k < rd.n_msgs; k++) {
        uint32_t to = rd.msgs[k].to;
        if (to >= c->n || c->cut[i][to])
            continue;
        if (c->filter && !c->filter(c->filter_ctx, i, to, &rd.msgs[k].msg))
            continue;
        if (c->nq == c->capq) {
            c->capq = c->capq ? 2 * c->capq : 256;
            c->q = realloc(c->q, c->capq * sizeof *c->q);
        }
        h_msg *hm = &c->q[c->nq++];
        hm->from = i;
        hm->to = to;
        h_msg_copy(&hm->msg, &rd.msgs[k].msg);
    }
    /* 3. apply */
    for (size_t k = 0; k < rd.n_committed; k++) {
        const sy_entry *e = &rd.committed[k].entry;
        if (e->index != nd->applied_index + 1) {
            fprintf(stderr, "harness: node %u applied %llu after %llu\n", i,
                    (unsigned long long)e->index, (unsigned long long)nd->applied_index);
            abort();
        }
        h_ents_push(&nd->applied, e->index, e->term, e->type, e->data.p, e->data.len);
        nd->applied_index = e->index;
        /* the host's part: the commit record the engine asks for */
        const sy_committed *cm = &rd.committed[k];
        nd->ev_len = 0;
        nd->ev_tag = cm->attest;
        if (c->cfg[i].signer &&
            sy_committed_attest(cm, c->cfg[i].cluster_id, c->cfg[i].self, c->cfg[i].signer, nd->ev))
            nd->ev_len = SY_ATTEST_LEN;
        nd->ev_entry = *e;
        nd->ev_entry.data.p = NULL;
        sy_hash(e->data.p, e->data.len, &nd->ev_digest);
    }
    for (size_t k = 0; k < rd.n_reads && nd->n_reads < 256; k++)
        nd->reads[nd->n_reads++] = rd.reads[k];
    for (size_t k = 0; k < rd.n_rejects && nd->n_rejects < 1024; k++)
        nd->rejects[nd->n_rejects++] = rd.rejects[k];
    sy_raft_ops.advance(c->e[i], c->now);
}

static inline void h_ready_all(h_cluster *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        h_ready(c, i);
}

static inline int h_step(h_cluster *c, uint32_t i, sy_input *in)
{
    in->now_ms = c->now;
    return sy_raft_ops.step(c->e[i], in);
}

/* Delivers everything queued (and what that produces) until quiet. */
static inline void h_settle(h_cluster *c)
{
    for (int round = 0; round < 10000; round++) {
        h_ready_all(c);
        if (c->nq == 0 || c->hold)
            return;
        h_msg *batch = c->q;
        size_t nb = c->nq, capb = c->capq;
        c->q = c->spare;
        c->capq = c->capspare;
        c->nq = 0;
        if (c->delay_pct)   /* reorder */
            for (size_t k = nb; k > 1; k--) {
                size_t j = (size_t)sy_rng_below(&c->chaos, k);
                h_msg tmp = batch[k - 1];
                batch[k - 1] = batch[j];
                batch[j] = tmp;
            }
        for (size_t k = 0; k < nb; k++) {
            h_msg *m = &batch[k];
            uint32_t roll = (uint32_t)sy_rng_below(&c->chaos, 100);
            bool requeue = roll >= c->drop_pct && roll < c->drop_pct + c->delay_pct;
            bool dup = roll >= c->drop_pct + c->delay_pct &&
                       roll < c->drop_pct + c->delay_pct + c->dup_pct;
            if (requeue || dup) {
                if (c->nq == c->capq) {
                    c->capq = c->capq ? 2 * c->capq : 256;
                    c->q = realloc(c->q, c->capq * sizeof *c->q);
                }
                h_msg *hm = &c->q[c->nq++];
                hm->from = m->from;
                hm->to = m->to;
                h_msg_copy(&hm->msg, &m->msg);
                if (requeue) {
                    h_msg_free(&m->msg);
                    continue;
                }
            }
            if (roll < c->drop_pct) {
                h_msg_free(&m->msg);
                continue;
            }
            if (c->alive[m->to] && !c->cut[m->from][m->to]) {
                sy_input in;
                memset(&in, 0, sizeof in);
                in.kind = SY_IN_MSG;
                in.u.msg.from = m->from;
                in.u.msg.msg = &m->msg;
                h_step(c, m->to, &in);
                c->delivered++;
            }
            h_msg_free(&m->msg);
        }
        c->spare = batch;
        c->capspare = capb;
    }
}

static inline void h_tick(h_cluster *c, uint32_t i)
{
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_TICK;
    h_step(c, i, &in);
}

/* Advances time ms by ms, ticking nodes whose deadline passed. */
static inline void h_run(h_cluster *c, uint64_t ms)
{
    uint64_t end = c->now + ms;
    while (c->now < end) {
        c->now++;
        for (uint32_t i = 0; i < c->n; i++) {
            if (!c->alive[i])
                continue;
            uint64_t d = sy_raft_ops.next_deadline(c->e[i]);
            if (d && d <= c->now)
                h_tick(c, i);
        }
        h_settle(c);
    }
}

static inline sy_engine_status h_status(h_cluster *c, uint32_t i)
{
    sy_engine_status st;
    sy_raft_ops.status(c->e[i], &st);
    return st;
}

/* The leader with the highest term among live nodes, or SY_NO_NODE. */
static inline uint32_t h_leader(h_cluster *c)
{
    uint32_t best = SY_NO_NODE;
    uint64_t bt = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->alive[i])
            continue;
        sy_engine_status st = h_status(c, i);
        if (st.role == SY_ROLE_LEADER && (best == SY_NO_NODE || st.term > bt)) {
            best = i;
            bt = st.term;
        }
    }
    return best;
}

static inline uint32_t h_count_leaders(h_cluster *c)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->alive[i] && h_status(c, i).role == SY_ROLE_LEADER)
            k++;
    return k;
}

/* Runs until some node leads (or gives up after limit ms). */
static inline uint32_t h_elect(h_cluster *c, uint64_t limit)
{
    for (uint64_t t = 0; t < limit; t += 10) {
        h_run(c, 10);
        uint32_t l = h_leader(c);
        if (l != SY_NO_NODE && h_status(c, l).commit_index >= h_status(c, l).last_index)
            return l;
    }
    return h_leader(c);
}

static inline int h_request(h_cluster *c, uint32_t i, uint32_t client, uint64_t req_no)
{
    char raw[64];
    int len = snprintf(raw, sizeof raw, "req-%u-%llu", client, (unsigned long long)req_no);
    sy_client_req req;
    memset(&req, 0, sizeof req);
    req.client_id = client;
    req.req_no = req_no;
    req.op = SY_OP_PUT;
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_REQUEST;
    in.u.request.req = &req;
    in.u.request.raw = (const uint8_t *)raw;
    in.u.request.raw_len = (size_t)len;
    return h_step(c, i, &in);
}

static inline int h_read(h_cluster *c, uint32_t i, uint64_t read_id)
{
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_READ;
    in.u.read.read_id = read_id;
    return h_step(c, i, &in);
}

/* Number of client requests in node i's applied entries. */
static inline uint64_t h_applied_requests(h_cluster *c, uint32_t i)
{
    uint64_t n = 0;
    h_node *nd = &c->node[i];
    for (size_t k = 0; k < nd->applied.n; k++) {
        if (nd->applied.v[k].type != SY_ENTRY_NORMAL)
            continue;
        sy_bytes *reqs = NULL;
        uint32_t cnt = 0;
        if (sy_batch_decode(nd->applied.v[k].data, nd->applied.v[k].len, &reqs, &cnt) == SY_OK) {
            n += cnt;
            free(reqs);
        }
    }
    return n;
}

/* State Machine Safety: no two nodes applied different entries at an index. */
static inline bool h_logs_agree(h_cluster *c)
{
    for (uint32_t a = 0; a < c->n; a++) {
        for (uint32_t b = a + 1; b < c->n; b++) {
            h_ents *x = &c->node[a].applied, *y = &c->node[b].applied;
            if (x->n == 0 || y->n == 0)
                continue;
            /* applied lists are contiguous runs of indices */
            uint64_t lo = x->v[0].index > y->v[0].index ? x->v[0].index : y->v[0].index;
            uint64_t hx = x->v[x->n - 1].index, hy = y->v[y->n - 1].index;
            uint64_t hi = hx < hy ? hx : hy;
            for (uint64_t idx = lo; idx <= hi; idx++) {
                h_ent *p = &x->v[idx - x->v[0].index], *q = &y->v[idx - y->v[0].index];
                if (p->index != idx || q->index != idx)
                    return false;
                if (p->term != q->term || p->len != q->len ||
                    (p->len && memcmp(p->data, q->data, p->len)))
                    return false;
            }
        }
    }
    return true;
}

/* The host snapshots node i's state machine at its applied index. */
static inline int h_snapshot(h_cluster *c, uint32_t i, uint32_t size)
{
    h_node *nd = &c->node[i];
    if (nd->applied.n == 0)
        return SY_EINVAL;
    uint8_t *data = malloc(size ? size : 1);
    for (uint32_t k = 0; k < size; k++)
        data[k] = (uint8_t)(nd->applied_index * 31 + k);
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_SNAPSHOT;
    in.u.snapshot.index = nd->applied_index;
    in.u.snapshot.term = nd->applied.v[nd->applied.n - 1].term;
    in.u.snapshot.data.p = data;
    in.u.snapshot.data.len = size;
    int rc = h_step(c, i, &in);
    if (rc == SY_OK) {
        free(nd->snap_data);
        nd->snap_data = data;
        nd->snap_len = size;
    } else {
        free(data);
    }
    return rc;
}

static inline void h_isolate(h_cluster *c, uint32_t i, bool cut)
{
    for (uint32_t j = 0; j < c->n; j++) {
        if (j == i)
            continue;
        c->cut[i][j] = cut;
        c->cut[j][i] = cut;
    }
}

#endif
