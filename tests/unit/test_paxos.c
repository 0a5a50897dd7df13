/* Multi-Paxos engine scenarios, driven through sy_paxos_ops with a tiny
 * in-test harness: N engines, a FIFO of messages that really go through the
 * body codec, a "disk" per node that takes each ready's persist step, and
 * hand-made faults (cut links, crashes). Each test reads as a transcript:
 * who campaigned, who got which message, who decided what. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cft/paxos/paxos.h"
#include "core/buf.h"
#include "core/msg.h"
#include "crypto/sy_err.h"

#define MAXN 5
#define MAXC 4096

typedef struct {
    uint64_t index, term;
    uint8_t type;
    uint8_t *data;
    uint32_t len;
} dent;

typedef struct {
    uint8_t hs[64];
    uint32_t hs_len;
    dent *log;
    size_t n_log;
    uint64_t snap_index, snap_term;
    uint8_t *snap_data;
    uint32_t snap_len;
    uint64_t applied;
} tdisk;

typedef struct {
    uint32_t from, to;
    uint8_t type;
    sy_buf body;
} tmsg;

typedef struct {
    uint32_t n;
    void *e[MAXN];
    sy_engine_cfg cfg[MAXN];
    tdisk disk[MAXN];
    bool down[MAXN];
    bool cut[MAXN][MAXN];
    tmsg *q;
    size_t nq, capq;
    uint64_t now;
    /* what the host saw */
    dent com[MAXN][MAXC];
    size_t n_com[MAXN];
    sy_read_state reads[64];
    size_t n_reads;
    sy_reject rejects[64];
    size_t n_rejects;
    bool installed[MAXN];
    uint64_t delivered;
    int drop_type;          /* > 0: messages of this type to drop_to are lost */
    uint32_t drop_to;
} cluster;

static const sy_engine_ops *ops = &sy_paxos_ops;

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static void disk_free(tdisk *d)
{
    for (size_t i = 0; i < d->n_log; i++)
        free(d->log[i].data);
    free(d->log);
    free(d->snap_data);
    memset(d, 0, sizeof *d);
}

static void disk_drop_from(tdisk *d, uint64_t from)
{
    while (d->n_log && d->log[d->n_log - 1].index >= from) {
        free(d->log[d->n_log - 1].data);
        d->n_log--;
    }
}

static void disk_drop_upto(tdisk *d, uint64_t upto)
{
    size_t k = 0;
    while (k < d->n_log && d->log[k].index <= upto)
        free(d->log[k++].data);
    memmove(d->log, d->log + k, (d->n_log - k) * sizeof *d->log);
    d->n_log -= k;
}

/* Persist step of a ready, with the storage rules of core/storage.c. */
static void disk_persist(tdisk *d, const sy_ready *rd)
{
    if (rd->hardstate_dirty) {
        assert_true(rd->hardstate.len <= sizeof d->hs);
        memcpy(d->hs, rd->hardstate.p, rd->hardstate.len);
        d->hs_len = rd->hardstate.len;
    }
    if (rd->snapshot_install) {
        bool keep = false;
        for (size_t i = 0; i < d->n_log; i++)
            if (d->log[i].index == rd->snap_index && d->log[i].term == rd->snap_term)
                keep = true;
        if (keep)
            disk_drop_upto(d, rd->snap_index);
        else
            disk_drop_from(d, 0);
        free(d->snap_data);
        d->snap_data = dup_bytes(rd->snap_data.p, rd->snap_data.len);
        d->snap_len = rd->snap_data.len;
        d->snap_index = rd->snap_index;
        d->snap_term = rd->snap_term;
        d->applied = rd->snap_index;
    }
    if (rd->truncate_from)
        disk_drop_from(d, rd->truncate_from);
    for (size_t i = 0; i < rd->n_entries; i++) {
        const sy_entry *e = &rd->entries[i];
        disk_drop_from(d, e->index);
        uint64_t expect = d->n_log ? d->log[d->n_log - 1].index + 1 : d->snap_index + 1;
        assert_int_equal(e->index, expect);   /* storage allows no gaps */
        d->log = realloc(d->log, (d->n_log + 1) * sizeof *d->log);
        d->log[d->n_log++] = (dent){ e->index, e->term, e->type,
                                     dup_bytes(e->data.p, e->data.len), e->data.len };
    }
    if (rd->compact_to)
        disk_drop_upto(d, rd->compact_to);
}

static void boot_of(tdisk *d, sy_engine_boot *b, sy_entry **ents)
{
    memset(b, 0, sizeof *b);
    b->hardstate = (sy_bytes){ d->hs, d->hs_len };
    b->snap_index = d->snap_index;
    b->snap_term = d->snap_term;
    b->snap_data = (sy_bytes){ d->snap_data, d->snap_len };
    *ents = calloc(d->n_log + 1, sizeof **ents);
    for (size_t i = 0; i < d->n_log; i++)
        (*ents)[i] = (sy_entry){ d->log[i].index, d->log[i].term, d->log[i].type,
                                 { d->log[i].data, d->log[i].len } };
    b->entries = *ents;
    b->n_entries = d->n_log;
    b->applied = d->applied;
}

static void node_start(cluster *c, uint32_t i)
{
    sy_engine_boot b;
    sy_entry *ents;
    boot_of(&c->disk[i], &b, &ents);
    assert_int_equal(ops->create(&c->cfg[i], &b, &c->e[i]), SY_OK);
    free(ents);
    c->down[i] = false;
    /* the host's first tick arms the engine's timers */
    sy_input in = { .kind = SY_IN_TICK, .now_ms = c->now };
    assert_int_equal(ops->step(c->e[i], &in), SY_OK);
}

static cluster *cl_new_opts(uint32_t n, uint64_t seed, bool prevote)
{
    cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->n = n;
    c->now = 1000;
    for (uint32_t i = 0; i < n; i++) {
        sy_engine_cfg *g = &c->cfg[i];
        g->self = i;
        g->n = n;
        g->f = (n - 1) / 2;
        strcpy(g->cluster_id, "test");
        g->heartbeat_ms = 50;
        g->election_min_ms = 300;
        g->election_max_ms = 600;
        g->batch_max = 64;
        g->max_inflight = 16;
        g->rng_seed = seed * 31 + i;
        g->prevote = prevote;
        node_start(c, i);
    }
    return c;
}

static cluster *cl_new(uint32_t n, uint64_t seed)
{
    return cl_new_opts(n, seed, false);
}

static void cl_free(cluster *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->down[i])
            ops->destroy(c->e[i]);
        disk_free(&c->disk[i]);
        for (size_t k = 0; k < c->n_com[i]; k++)
            free(c->com[i][k].data);
    }
    for (size_t k = 0; k < c->nq; k++)
        sy_buf_free(&c->q[k].body);
    free(c->q);
    free(c);
}

/* One host cycle: persist, send (encode into the queue), apply, advance. */
static void cl_ready(cluster *c, uint32_t i)
{
    if (c->down[i])
        return;
    sy_ready rd;
    ops->ready(c->e[i], &rd);
    disk_persist(&c->disk[i], &rd);
    if (rd.snapshot_install)
        c->installed[i] = true;
    for (size_t k = 0; k < rd.n_msgs; k++) {
        const sy_outmsg *o = &rd.msgs[k];
        if (c->nq == c->capq) {
            c->capq = c->capq ? 2 * c->capq : 64;
            c->q = realloc(c->q, c->capq * sizeof *c->q);
        }
        tmsg *t = &c->q[c->nq++];
        t->from = i;
        t->to = o->to;
        t->type = o->msg.type;
        sy_buf_init(&t->body);
        assert_int_equal(sy_msg_encode_body(&o->msg, &t->body), SY_OK);
    }
    for (size_t k = 0; k < rd.n_committed; k++) {
        const sy_entry *e = &rd.committed[k].entry;
        uint64_t expect = c->n_com[i] ? c->com[i][c->n_com[i] - 1].index + 1 : 0;
        if (expect)
            assert_int_equal(e->index, expect);   /* slot order, no gaps */
        assert_true(c->n_com[i] < MAXC);
        c->com[i][c->n_com[i]++] = (dent){ e->index, e->term, e->type,
                                           dup_bytes(e->data.p, e->data.len), e->data.len };
        c->disk[i].applied = e->index;
    }
    for (size_t k = 0; k < rd.n_reads && c->n_reads < 64; k++)
        c->reads[c->n_reads++] = rd.reads[k];
    for (size_t k = 0; k < rd.n_rejects && c->n_rejects < 64; k++)
        c->rejects[c->n_rejects++] = rd.rejects[k];
    ops->advance(c->e[i], c->now);
}

static void cl_step_in(cluster *c, uint32_t i, const sy_input *in)
{
    (void)ops->step(c->e[i], in);
}

/* Delivers queued messages FIFO (dropping those on cut links or to down
 * nodes), running a host cycle after each, until the queue is empty. */
static void cl_run(cluster *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        cl_ready(c, i);
    size_t head = 0;
    while (head < c->nq) {
        tmsg t = c->q[head++];
        if (!c->down[t.to] && !c->cut[t.from][t.to] && !c->down[t.from] &&
            !(c->drop_type > 0 && t.type == c->drop_type && t.to == c->drop_to)) {
            sy_msg m;
            assert_int_equal(sy_msg_decode_body(t.type, t.body.p, t.body.len, &m), SY_OK);
            sy_input in = { .kind = SY_IN_MSG, .now_ms = c->now };
            in.u.msg.from = t.from;
            in.u.msg.msg = &m;
            int rc = ops->step(c->e[t.to], &in);
            assert_int_not_equal(rc, SY_EFATAL);
            sy_msg_free(&m);
            c->delivered++;
            cl_ready(c, t.to);
        }
        sy_buf_free(&t.body);
        if (head == c->nq) {
            c->nq = 0;
            head = 0;
        }
    }
    c->nq = 0;
}

/* Sends queued messages matching (from, to, type) only; keeps the rest. */
static void cl_deliver_only(cluster *c, uint32_t from, uint32_t to, int type)
{
    size_t keep = 0, n = c->nq;
    tmsg *pick = calloc(n + 1, sizeof *pick);
    size_t np = 0;
    for (size_t k = 0; k < n; k++) {
        tmsg t = c->q[k];
        if (t.from == from && t.to == to && (type < 0 || t.type == type))
            pick[np++] = t;
        else
            c->q[keep++] = t;
    }
    c->nq = keep;
    for (size_t k = 0; k < np; k++) {
        sy_msg m;
        assert_int_equal(sy_msg_decode_body(pick[k].type, pick[k].body.p, pick[k].body.len, &m),
                         SY_OK);
        sy_input in = { .kind = SY_IN_MSG, .now_ms = c->now };
        in.u.msg.from = from;
        in.u.msg.msg = &m;
        (void)ops->step(c->e[to], &in);
        sy_msg_free(&m);
        sy_buf_free(&pick[k].body);
        cl_ready(c, to);
    }
    free(pick);
}

static void cl_drop_all(cluster *c)
{
    for (size_t k = 0; k < c->nq; k++)
        sy_buf_free(&c->q[k].body);
    c->nq = 0;
}

static void cl_tick(cluster *c, uint32_t i)
{
    if (c->down[i])
        return;
    sy_input in = { .kind = SY_IN_TICK, .now_ms = c->now };
    cl_step_in(c, i, &in);
    cl_ready(c, i);
}

/* Node i's election timer fires (only i's). */
static void cl_timeout(cluster *c, uint32_t i)
{
    uint64_t d = ops->next_deadline(c->e[i]);
    if (d > c->now)
        c->now = d;
    cl_tick(c, i);
}

/* Advance time by ms in heartbeat-sized steps, ticking live nodes whose
 * deadline passed, and deliver. */
static void cl_time(cluster *c, uint64_t ms)
{
    uint64_t end = c->now + ms;
    while (c->now < end) {
        c->now += 10;
        for (uint32_t i = 0; i < c->n; i++)
            if (!c->down[i] && ops->next_deadline(c->e[i]) <= c->now)
                cl_tick(c, i);
        cl_run(c);
    }
}

static sy_engine_status st(cluster *c, uint32_t i)
{
    sy_engine_status s;
    ops->status(c->e[i], &s);
    return s;
}

static void cl_crash(cluster *c, uint32_t i)
{
    ops->destroy(c->e[i]);
    c->down[i] = true;
}

static void cl_cut(cluster *c, uint32_t i, bool cut)
{
    for (uint32_t j = 0; j < c->n; j++) {
        c->cut[i][j] = cut;
        c->cut[j][i] = cut;
    }
}

static void cl_request(cluster *c, uint32_t i, uint64_t req_no, const char *body)
{
    sy_client_req req;
    memset(&req, 0, sizeof req);
    req.client_id = SY_CLIENT_ID_BASE;
    req.req_no = req_no;
    req.op = SY_OP_PUT;
    sy_input in = { .kind = SY_IN_REQUEST, .now_ms = c->now };
    in.u.request.req = &req;
    in.u.request.raw = (const uint8_t *)body;
    in.u.request.raw_len = strlen(body);
    cl_step_in(c, i, &in);
}

static uint32_t elect(cluster *c, uint32_t i)
{
    cl_timeout(c, i);
    cl_run(c);
    assert_int_equal(st(c, i).role, SY_ROLE_LEADER);
    return i;
}

/* All requests of committed NORMAL entries of node i, concatenated "a|b|". */
static void committed_reqs(cluster *c, uint32_t i, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t k = 0; k < c->n_com[i]; k++) {
        dent *d = &c->com[i][k];
        if (d->type != SY_ENTRY_NORMAL)
            continue;
        sy_bytes *reqs;
        uint32_t n;
        assert_int_equal(sy_batch_decode(d->data, d->len, &reqs, &n), SY_OK);
        for (uint32_t r = 0; r < n; r++)
            o += (size_t)snprintf(out + o, cap - o, "%.*s|", (int)reqs[r].len,
                                  (const char *)reqs[r].p);
        free(reqs);
    }
}

/* Every node of c committed exactly the requests in want, in order. */
static void assert_all_committed(cluster *c, const char *want)
{
    char buf[256];
    for (uint32_t i = 0; i < c->n; i++) {
        committed_reqs(c, i, buf, sizeof buf);
        assert_string_equal(buf, want);
    }
}

/* Every pair of nodes agrees on every slot both committed. */
static void assert_agreement(cluster *c)
{
    for (uint32_t a = 0; a < c->n; a++)
        for (uint32_t b = a + 1; b < c->n; b++)
            for (size_t i = 0; i < c->n_com[a]; i++)
                for (size_t j = 0; j < c->n_com[b]; j++) {
                    dent *x = &c->com[a][i], *y = &c->com[b][j];
                    if (x->index != y->index)
                        continue;
                    assert_int_equal(x->type, y->type);
                    assert_int_equal(x->len, y->len);
                    assert_memory_equal(x->data, y->data, x->len);
                }
}

static const dent *com_at(cluster *c, uint32_t i, uint64_t slot)
{
    for (size_t k = 0; k < c->n_com[i]; k++)
        if (c->com[i][k].index == slot)
            return &c->com[i][k];
    return NULL;
}

/* Requests "put K" for K in [from, to] at node i, one after the other. */
static void puts_at(cluster *c, uint32_t i, int from, int to)
{
    char body[32];
    for (int k = from; k <= to; k++) {
        snprintf(body, sizeof body, "put %d", k);
        cl_request(c, i, (uint64_t)k, body);
        cl_run(c);
    }
}

/* Node i takes a snapshot at index (data: its bytes) and compacts. */
static void compact_at(cluster *c, uint32_t i, uint64_t index, const char *data)
{
    sy_input in = { .kind = SY_IN_SNAPSHOT, .now_ms = c->now };
    in.u.snapshot.index = index;
    in.u.snapshot.term = st(c, i).term;
    in.u.snapshot.data = (sy_bytes){ (const uint8_t *)data, (uint32_t)strlen(data) };
    cl_step_in(c, i, &in);
    cl_ready(c, i);
}

/* ------------------------------------------------------------ tests */

/* Runs until exactly one node leads; returns it. */
static uint32_t settle_leader(cluster *c)
{
    for (int k = 0; k < 50; k++) {
        cl_time(c, 200);
        uint32_t l = SY_NO_NODE, nl = 0;
        for (uint32_t i = 0; i < c->n; i++)
            if (!c->down[i] && st(c, i).role == SY_ROLE_LEADER) {
                l = i;
                nl++;
            }
        if (nl == 1)
            return l;
    }
    fail_msg("no single leader");
    return SY_NO_NODE;
}

/* What a follower's absence did, seen from outside. */
typedef struct {
    uint32_t leader, leader_after;     /* before the cut; after healing */
    uint64_t ballot, ballot_after;     /* the leader's, before and after */
    uint8_t away_role;                 /* the cut-off follower, while away */
    uint64_t away_ballot;
    uint8_t back_role;                 /* ... and once back */
    uint32_t back_leader;
} rejoin_obs;

/* A follower cut off for many election timeouts, then back. Either way
 * the cluster commits afterwards and agrees (asserted here); what the
 * absence did to leadership is returned for the caller to judge. */
static rejoin_obs rejoin(bool prevote)
{
    rejoin_obs o;
    cluster *c = cl_new_opts(3, 11, prevote);
    o.leader = settle_leader(c);
    o.ballot = st(c, o.leader).term;
    uint32_t f = (o.leader + 1) % 3;
    cl_cut(c, f, true);
    cl_time(c, 6000);   /* ten election timeouts and more */
    o.away_role = st(c, f).role;
    o.away_ballot = st(c, f).term;
    cl_cut(c, f, false);
    cl_time(c, 3000);
    o.leader_after = settle_leader(c);
    o.ballot_after = st(c, o.leader_after).term;
    o.back_role = st(c, f).role;
    o.back_leader = st(c, f).leader;
    cl_request(c, o.leader_after, 1, "put after");
    cl_time(c, 1000);
    assert_all_committed(c, "put after|");
    assert_agreement(c);
    cl_free(c);
    return o;
}

/* With pre-prepare (cfg.prevote) the follower never raises its ballot
 * while alone, so the leader keeps leading in its ballot. */
static void test_rejoining_follower_does_not_depose_leader_with_prevote(void **state)
{
    (void)state;
    rejoin_obs o = rejoin(true);
    assert_int_equal(o.away_role, SY_ROLE_PRECANDIDATE);
    assert_true(o.away_ballot <= o.ballot);
    assert_int_equal(o.leader_after, o.leader);
    assert_int_equal(o.ballot_after, o.ballot);
    assert_int_equal(o.back_role, SY_ROLE_FOLLOWER);
    assert_int_equal(o.back_leader, o.leader);
}

/* Without it, the ballot the follower inflated while away deposes the
 * leader: the behaviour pre-prepare exists to stop. */
static void test_rejoining_follower_deposes_leader_without_prevote(void **state)
{
    (void)state;
    rejoin_obs o = rejoin(false);
    assert_true(o.away_ballot > o.ballot);
    assert_true(o.ballot_after > o.ballot);
}

static void test_leader_commits_batched_requests_in_slot_order(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 1);
    elect(c, 0);
    cl_request(c, 0, 1, "put a");
    cl_request(c, 0, 2, "put b");
    cl_run(c);
    cl_request(c, 0, 3, "put c");
    cl_run(c);
    cl_time(c, 200);   /* heartbeats carry the chosen prefix to followers */
    char buf[256];
    for (uint32_t i = 0; i < 3; i++) {
        committed_reqs(c, i, buf, sizeof buf);
        assert_string_equal(buf, "put a|put b|put c|");
        assert_int_equal(st(c, i).commit_index, 2);   /* a+b batched in slot 1 */
    }
    const dent *d = com_at(c, 1, 1);
    assert_non_null(d);
    assert_int_equal(d->type, SY_ENTRY_NORMAL);
    assert_int_equal(d->term, st(c, 0).term);
    /* the entry data is exactly sy_batch_encode of the raw requests */
    sy_bytes raw[2] = { { (const uint8_t *)"put a", 5 }, { (const uint8_t *)"put b", 5 } };
    uint8_t *enc;
    size_t enc_len;
    assert_int_equal(sy_batch_encode(raw, 2, &enc, &enc_len), SY_OK);
    assert_int_equal(d->len, enc_len);
    assert_memory_equal(d->data, enc, enc_len);
    free(enc);
    assert_int_equal(st(c, 1).leader, 0);
    assert_agreement(c);
    cl_free(c);
}

static void test_request_at_non_leader_rejected_with_leader_hint(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 2);
    elect(c, 1);
    cl_request(c, 2, 7, "put x");
    cl_ready(c, 2);
    assert_int_equal(c->n_rejects, 1);
    assert_int_equal(c->rejects[0].status, SY_ENOTLEADER);
    assert_int_equal(c->rejects[0].leader, 1);
    assert_int_equal(c->rejects[0].req_no, 7);
    cl_free(c);
}

/* A leader about to stop (synod on SIGTERM) hands over: the peer it names
 * runs phase 1 at once, past the other acceptor's pre-prepare refusal
 * (with prevote on, a leader alive), well inside an election timeout.
 * While it hands off the old leader refuses new requests, naming the
 * target; a value it accepted but did not see chosen is kept. */
static void test_stopping_leader_hands_over_without_an_election_timeout(void **state)
{
    (void)state;
    cluster *c = cl_new_opts(3, 7, true);
    uint32_t l = settle_leader(c);
    uint32_t t = (l + 1) % 3, o = (l + 2) % 3;
    cl_request(c, l, 1, "put a");
    cl_run(c);
    cl_time(c, 100);
    /* a value the old leader has only on its own log and o's */
    cl_cut(c, t, true);
    cl_request(c, l, 2, "put b");
    cl_run(c);
    cl_cut(c, t, false);
    uint64_t b0 = st(c, l).term;
    sy_input in = { .kind = SY_IN_TRANSFER, .now_ms = c->now };
    in.u.transfer.target = 9;
    assert_int_equal(ops->step(c->e[l], &in), SY_EINVAL);
    in.u.transfer.target = t;
    assert_int_equal(ops->step(c->e[t], &in), SY_ENOTLEADER);
    assert_int_equal(ops->step(c->e[l], &in), SY_OK);
    c->n_rejects = 0;
    cl_request(c, l, 3, "put c");
    cl_ready(c, l);
    assert_int_equal(c->n_rejects, 1);
    assert_int_equal(c->rejects[0].status, SY_ENOTLEADER);
    assert_int_equal(c->rejects[0].leader, t);
    uint64_t t0 = c->now;
    cl_run(c);
    for (int k = 0; k < 30 && st(c, t).role != SY_ROLE_LEADER; k++)
        cl_time(c, 10);
    assert_int_equal(st(c, t).role, SY_ROLE_LEADER);
    assert_true(c->now - t0 < c->cfg[t].election_min_ms);
    assert_true(st(c, t).term > b0);
    cl_time(c, 100);
    assert_int_equal(st(c, l).role, SY_ROLE_FOLLOWER);
    assert_int_equal(st(c, l).leader, t);
    assert_int_equal(st(c, o).leader, t);
    cl_request(c, t, 4, "put d");
    cl_run(c);
    cl_time(c, 200);
    assert_all_committed(c, "put a|put b|put d|");
    assert_agreement(c);
    cl_free(c);
}

/* A hand-off nobody takes (the target is gone) ends at election_max_ms and
 * the leader leads on, taking requests again. */
static void test_hand_off_to_a_dead_peer_gives_up_and_leads_on(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 8);
    uint32_t l = settle_leader(c);
    uint32_t t = (l + 1) % 3;
    uint64_t b0 = st(c, l).term;
    sy_input in = { .kind = SY_IN_TRANSFER, .now_ms = c->now };
    in.u.transfer.target = t;
    assert_int_equal(ops->step(c->e[l], &in), SY_OK);
    cl_cut(c, t, true);
    cl_time(c, c->cfg[l].election_max_ms + 100);
    assert_int_equal(st(c, l).role, SY_ROLE_LEADER);
    assert_int_equal(st(c, l).term, b0);
    c->n_rejects = 0;
    cl_request(c, l, 1, "put a");
    cl_run(c);
    cl_time(c, 100);
    assert_int_equal(c->n_rejects, 0);
    char buf[64];
    committed_reqs(c, l, buf, sizeof buf);
    assert_string_equal(buf, "put a|");
    cl_free(c);
}

/* A stopping leader that names no target (SY_NO_NODE) picks the peer that
 * knows the most chosen slots; when that one does not run phase 1 (as a
 * node still rejoining ignores TAKEOVER; here its TAKEOVER is lost), the
 * leader passes it over for the next once election_max_ms is up. */
static void test_hand_off_without_target_moves_on_when_the_pick_does_not_run(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 9);
    uint32_t l = settle_leader(c);
    cl_request(c, l, 1, "put a");
    cl_run(c);
    cl_time(c, 100);
    uint32_t x = (l + 1) % 3, y = (l + 2) % 3;
    uint32_t first = x < y ? x : y, second = x < y ? y : x;   /* a tie: lowest id */
    uint64_t b0 = st(c, l).term;
    c->drop_type = SY_MSG_PAXOS_TAKEOVER;
    c->drop_to = first;
    sy_input in = { .kind = SY_IN_TRANSFER, .now_ms = c->now };
    in.u.transfer.target = SY_NO_NODE;
    assert_int_equal(ops->step(c->e[l], &in), SY_OK);
    c->n_rejects = 0;
    cl_request(c, l, 2, "put b");
    cl_ready(c, l);
    assert_int_equal(c->n_rejects, 1);
    assert_int_equal(c->rejects[0].leader, first);
    cl_time(c, c->cfg[l].election_max_ms - 100);
    assert_int_equal(st(c, l).role, SY_ROLE_LEADER);
    for (int k = 0; k < 60 && st(c, second).role != SY_ROLE_LEADER; k++)
        cl_time(c, 10);
    assert_int_equal(st(c, second).role, SY_ROLE_LEADER);
    assert_true(st(c, second).term > b0);
    c->drop_type = 0;
    cl_request(c, second, 3, "put c");
    cl_run(c);
    cl_time(c, 200);
    assert_all_committed(c, "put a|put c|");
    assert_agreement(c);
    cl_free(c);
}

static void test_two_proposers_interleaving_prepares_converge(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 3);
    /* 0 and 1 both time out and prepare before hearing each other. */
    cl_timeout(c, 0);
    cl_timeout(c, 1);
    uint64_t b0 = st(c, 0).term, b1 = st(c, 1).term;
    assert_true(b1 > b0);
    /* node 2 sees 1's (higher) prepare first, then 0's: 0 is refused */
    cl_deliver_only(c, 1, 2, SY_MSG_PAXOS_PREPARE);
    cl_deliver_only(c, 0, 2, SY_MSG_PAXOS_PREPARE);
    cl_run(c);
    assert_int_equal(st(c, 1).role, SY_ROLE_LEADER);
    assert_int_not_equal(st(c, 0).role, SY_ROLE_LEADER);
    cl_request(c, 1, 1, "put k");
    cl_run(c);
    cl_time(c, 100);
    assert_all_committed(c, "put k|");
    /* 0 tries again with a higher ballot: it takes over and keeps slot 1 */
    cl_timeout(c, 0);
    cl_run(c);
    assert_int_equal(st(c, 0).role, SY_ROLE_LEADER);
    assert_true(st(c, 0).term > b1);
    cl_request(c, 0, 2, "put m");
    cl_run(c);
    cl_time(c, 100);
    assert_all_committed(c, "put k|put m|");
    assert_agreement(c);
    cl_free(c);
}

static void test_value_accepted_by_minority_kept_by_next_leader(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 4);
    elect(c, 0);
    cl_request(c, 0, 1, "put v");
    cl_ready(c, 0);
    /* only node 1 gets the accept; 0 crashes before learning anything */
    cl_deliver_only(c, 0, 1, SY_MSG_PAXOS_ACCEPT);
    cl_drop_all(c);
    cl_crash(c, 0);
    /* v may have been chosen (0 + 1 is a majority): 2 must keep it */
    elect(c, 2);
    cl_time(c, 100);
    const dent *d = com_at(c, 2, 1);
    assert_non_null(d);
    assert_int_equal(d->type, SY_ENTRY_NORMAL);
    char buf[64];
    committed_reqs(c, 2, buf, sizeof buf);
    assert_string_equal(buf, "put v|");
    /* re-proposed in a new ballot, it keeps the ballot it was born in */
    assert_true(com_at(c, 2, 1)->term < st(c, 2).term);
    committed_reqs(c, 1, buf, sizeof buf);
    assert_string_equal(buf, "put v|");
    /* the old leader restarts and learns the same decision */
    node_start(c, 0);
    cl_time(c, 300);
    committed_reqs(c, 0, buf, sizeof buf);
    assert_string_equal(buf, "put v|");
    assert_agreement(c);
    cl_free(c);
}

static void test_gaps_filled_with_noops_at_takeover(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 5);
    elect(c, 0);
    cl_request(c, 0, 1, "put s1");
    cl_ready(c, 0);
    cl_request(c, 0, 2, "put s2");
    cl_ready(c, 0);
    cl_request(c, 0, 3, "put s3");
    cl_ready(c, 0);
    /* the accepts for slots 1 and 2 are lost; node 1 only gets slot 3 */
    tmsg last = { 0 };
    size_t keep = 0;
    for (size_t k = 0; k < c->nq; k++) {
        if (c->q[k].to == 1 && c->q[k].type == SY_MSG_PAXOS_ACCEPT) {
            sy_buf_free(&last.body);
            last = c->q[k];
        } else
            sy_buf_free(&c->q[k].body);
    }
    c->nq = 0;
    (void)keep;
    sy_msg m;
    assert_int_equal(sy_msg_decode_body(last.type, last.body.p, last.body.len, &m), SY_OK);
    assert_int_equal(m.u.paxos.accept.n_entries, 1);
    assert_int_equal(m.u.paxos.accept.entries[0].index, 3);
    sy_input in = { .kind = SY_IN_MSG, .now_ms = c->now };
    in.u.msg.from = 0;
    in.u.msg.msg = &m;
    assert_int_equal(ops->step(c->e[1], &in), SY_OK);
    sy_msg_free(&m);
    sy_buf_free(&last.body);
    cl_ready(c, 1);
    cl_drop_all(c);
    cl_crash(c, 0);
    elect(c, 1);
    cl_time(c, 100);
    /* slot 4: the idle leader's no-op of its own ballot, as the prefix
     * ended in a slot first proposed in the old one (px_leader_tick) */
    for (uint32_t i = 1; i < 3; i++) {
        assert_int_equal(st(c, i).commit_index, 4);
        assert_int_equal(com_at(c, i, 1)->type, SY_ENTRY_NOOP);
        assert_int_equal(com_at(c, i, 2)->type, SY_ENTRY_NOOP);
        assert_int_equal(com_at(c, i, 3)->type, SY_ENTRY_NORMAL);
        assert_int_equal(com_at(c, i, 4)->type, SY_ENTRY_NOOP);
    }
    char buf[64];
    committed_reqs(c, 2, buf, sizeof buf);
    assert_string_equal(buf, "put s3|");
    assert_agreement(c);
    cl_free(c);
}

static void test_stale_leader_accepts_rejected_after_higher_promise(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 6);
    elect(c, 0);
    uint64_t b0 = st(c, 0).term;
    /* 0 is cut off; 1 wins a higher ballot with 2 */
    cl_cut(c, 0, true);
    elect(c, 1);
    assert_true(st(c, 2).term > b0);
    /* the link 0 -> 2 comes back: 0 still thinks it leads and proposes */
    c->cut[0][2] = c->cut[2][0] = false;
    cl_request(c, 0, 1, "put stale");
    cl_run(c);
    assert_int_not_equal(st(c, 0).role, SY_ROLE_LEADER);   /* preempted */
    cl_time(c, 200);
    for (uint32_t i = 0; i < 3; i++)
        for (size_t k = 0; k < c->n_com[i]; k++)
            assert_int_not_equal(c->com[i][k].type, SY_ENTRY_NORMAL);
    cl_free(c);
}

static void test_restart_preserves_promise_and_accepted_values(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 7);
    elect(c, 0);
    uint64_t b0 = st(c, 0).term;
    cl_cut(c, 0, false);
    c->cut[0][1] = c->cut[1][0] = true;  /* only 2 hears the proposal */
    cl_request(c, 0, 1, "put keep");
    cl_run(c);
    cl_crash(c, 2);
    node_start(c, 2);
    assert_int_equal(st(c, 2).term, b0);
    assert_int_equal(st(c, 2).last_index, 1);
    /* a prepare below the promise is refused after restart */
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_PAXOS_PREPARE;
    m.u.paxos.prepare.ballot = b0 - 1;
    m.u.paxos.prepare.from_slot = 1;
    sy_input in = { .kind = SY_IN_MSG, .now_ms = c->now };
    in.u.msg.from = 1;
    in.u.msg.msg = &m;
    assert_int_equal(ops->step(c->e[2], &in), SY_OK);
    sy_ready rd;
    ops->ready(c->e[2], &rd);
    assert_int_equal(rd.n_msgs, 1);
    assert_false(rd.msgs[0].msg.u.paxos.promise.ok);
    assert_int_equal(rd.msgs[0].msg.u.paxos.promise.promised, b0);
    ops->advance(c->e[2], c->now);
    /* a higher one gets the accepted value back, with its ballot */
    m.u.paxos.prepare.ballot = px_ballot_next(b0, 1);
    assert_int_equal(ops->step(c->e[2], &in), SY_OK);
    ops->ready(c->e[2], &rd);
    assert_int_equal(rd.n_msgs, 1);
    const sy_paxos_promise *pr = &rd.msgs[0].msg.u.paxos.promise;
    assert_true(pr->ok);
    assert_int_equal(pr->n_entries, 1);
    assert_int_equal(pr->entries[0].index, 1);
    assert_int_equal(pr->entries[0].term, b0);
    assert_true(rd.hardstate_dirty);     /* the new promise is persisted first */
    ops->advance(c->e[2], c->now);
    cl_free(c);
}

static void read_req(cluster *c, uint32_t i, uint64_t id)
{
    sy_input in = { .kind = SY_IN_READ, .now_ms = c->now };
    in.u.read.read_id = id;
    cl_step_in(c, i, &in);
}

static void test_read_confirmed_only_after_quorum_round(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 8);
    elect(c, 0);
    cl_request(c, 0, 1, "put r");
    cl_run(c);
    /* leader cut off: the read is never confirmed */
    cl_cut(c, 0, true);
    c->n_reads = 0;
    read_req(c, 0, 42);
    cl_run(c);
    cl_time(c, 200);
    assert_int_equal(c->n_reads, 0);
    /* one follower answers the round: with the leader that is a majority */
    c->cut[0][1] = c->cut[1][0] = false;
    cl_time(c, 60);
    assert_int_equal(c->n_reads, 1);
    assert_int_equal(c->reads[0].read_id, 42);
    assert_int_equal(c->reads[0].status, SY_OK);
    assert_int_equal(c->reads[0].index, 1);
    /* at a follower: refused */
    read_req(c, 1, 43);
    cl_ready(c, 1);
    assert_int_equal(c->n_reads, 2);
    assert_int_equal(c->reads[1].status, SY_ENOTLEADER);
    cl_free(c);
}

static void test_read_waits_for_fresh_round_not_old_acks(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 9);
    elect(c, 0);
    cl_run(c);
    c->n_reads = 0;
    read_req(c, 0, 1);
    cl_ready(c, 0);
    assert_int_equal(c->n_reads, 0);   /* not before any peer acknowledged */
    cl_run(c);
    assert_int_equal(c->n_reads, 1);
    assert_int_equal(c->reads[0].status, SY_OK);
    cl_free(c);
}

static void test_lagging_replica_catches_up_from_leader(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 10);
    elect(c, 0);
    cl_cut(c, 2, true);
    puts_at(c, 0, 1, 40);
    assert_int_equal(st(c, 0).commit_index, 40);
    assert_int_equal(st(c, 2).commit_index, 0);
    cl_cut(c, 2, false);
    cl_time(c, 300);
    assert_int_equal(st(c, 2).commit_index, 40);
    char b0[1024], b2[1024];
    committed_reqs(c, 0, b0, sizeof b0);
    committed_reqs(c, 2, b2, sizeof b2);
    assert_string_equal(b0, b2);
    assert_agreement(c);
    cl_free(c);
}

/* The PROMISE queued from one node to another: how many values it
 * carries, the slot it starts at, the slot to ask from next (0: last). */
static void queued_promise(cluster *c, uint32_t from, uint32_t to, uint32_t *n,
                           uint64_t *from_slot, uint64_t *next_slot)
{
    for (size_t k = 0; k < c->nq; k++) {
        tmsg *t = &c->q[k];
        if (t->from != from || t->to != to || t->type != SY_MSG_PAXOS_PROMISE)
            continue;
        sy_msg m;
        assert_int_equal(sy_msg_decode_body(t->type, t->body.p, t->body.len, &m), SY_OK);
        assert_true(m.u.paxos.promise.ok);
        *n = m.u.paxos.promise.n_entries;
        *from_slot = m.u.paxos.promise.from_slot;
        *next_slot = m.u.paxos.promise.next_slot;
        sy_msg_free(&m);
        return;
    }
    fail_msg("no PROMISE from %u to %u queued", from, to);
}

/* A promise longer than a page (cfg.msg_entries_max: 2 here, 4096 by
 * default) comes in pages: the candidate asks again from each page's
 * next_slot, leads only once the last page is in, and keeps every value
 * the pages carried, chosen or only accepted. */
static void test_long_promise_comes_in_pages_and_the_new_leader_keeps_every_value(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 12);
    for (uint32_t i = 0; i < 3; i++) {
        cl_crash(c, i);
        c->cfg[i].msg_entries_max = 2;
        node_start(c, i);
    }
    elect(c, 0);
    cl_cut(c, 2, true);
    puts_at(c, 0, 1, 5);
    assert_int_equal(st(c, 0).commit_index, 5);
    assert_int_equal(st(c, 2).commit_index, 0);
    /* the leader dies; node 2, which saw nothing, runs phase 1 with 1 */
    cl_crash(c, 0);
    cl_cut(c, 2, false);
    cl_timeout(c, 2);
    const uint64_t pages[3][3] = { { 1, 2, 3 }, { 3, 2, 5 }, { 5, 1, 0 } };
    for (int p = 0; p < 3; p++) {
        assert_int_equal(st(c, 2).role, SY_ROLE_CANDIDATE);
        cl_deliver_only(c, 2, 1, SY_MSG_PAXOS_PREPARE);
        uint32_t n = 0;
        uint64_t from = 0, next = 0;
        queued_promise(c, 1, 2, &n, &from, &next);
        assert_int_equal(from, pages[p][0]);
        assert_int_equal(n, pages[p][1]);
        assert_int_equal(next, pages[p][2]);
        cl_deliver_only(c, 1, 2, SY_MSG_PAXOS_PROMISE);
    }
    assert_int_equal(st(c, 2).role, SY_ROLE_LEADER);
    cl_time(c, 300);
    char b1[256], b2[256];
    committed_reqs(c, 2, b2, sizeof b2);
    assert_string_equal(b2, "put 1|put 2|put 3|put 4|put 5|");
    committed_reqs(c, 1, b1, sizeof b1);
    assert_string_equal(b1, b2);
    /* the old leader restarts and learns the same, in pages of CHOSEN */
    node_start(c, 0);
    cl_time(c, 300);
    assert_int_equal(st(c, 0).commit_index, st(c, 2).commit_index);
    assert_agreement(c);
    cl_free(c);
}

static void test_lagging_replica_catches_up_by_snapshot_after_compaction(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 11);
    elect(c, 0);
    cl_cut(c, 2, true);
    puts_at(c, 0, 1, 80);
    assert_int_equal(st(c, 0).commit_index, 80);
    compact_at(c, 0, 78, "STATE@78");
    assert_int_equal(st(c, 0).snap_index, 78);
    /* slots up to 78 - PX_COMPACT_KEEP are gone from the leader's disk */
    assert_int_equal(c->disk[0].n_log, 80 - (78 - PX_COMPACT_KEEP));
    assert_int_equal(c->disk[0].log[0].index, 78 - PX_COMPACT_KEEP + 1);
    cl_cut(c, 2, false);
    cl_time(c, 300);
    assert_true(c->installed[2]);
    assert_int_equal(c->disk[2].snap_index, 78);
    assert_int_equal(c->disk[2].snap_len, 8);
    assert_memory_equal(c->disk[2].snap_data, "STATE@78", 8);
    assert_int_equal(st(c, 2).commit_index, 80);
    assert_non_null(com_at(c, 2, 79));
    assert_non_null(com_at(c, 2, 80));
    assert_null(com_at(c, 2, 78));                  /* came with the snapshot */
    assert_agreement(c);
    cl_free(c);
}

/* A replica whose disk died comes back on an empty one (docs/operations.md,
 * section 7). The leader had it on record as holding the whole chosen
 * prefix; its acknowledgements now say it holds nothing, and the leader
 * pushes the chosen values again (from the log, or a snapshot once
 * compacted) -- with no new writes to prompt it. Then it is a full
 * acceptor again: with the third node gone, the two choose new values. */
/* Node i's disk is replaced by an empty one; it starts with rejoin as
 * given (what it applied is forgotten with it). */
static void wipe_and_start(cluster *c, uint32_t i, bool rejoin)
{
    cl_crash(c, i);
    disk_free(&c->disk[i]);
    memset(&c->disk[i], 0, sizeof c->disk[i]);
    for (size_t k = 0; k < c->n_com[i]; k++)
        free(c->com[i][k].data);
    c->n_com[i] = 0;
    c->cfg[i].rejoin = rejoin;
    node_start(c, i);
}

static void assert_replaced_disk_catches_up(bool compact)
{
    cluster *c = cl_new(3, 13);
    elect(c, 0);
    puts_at(c, 0, 1, 80);
    cl_time(c, 100);
    assert_int_equal(st(c, 2).commit_index, 80);
    if (compact) {
        compact_at(c, 0, 78, "STATE@78");
        assert_true(c->disk[0].log[0].index > 1);
    }
    wipe_and_start(c, 2, false);
    assert_int_equal(st(c, 2).commit_index, 0);
    cl_time(c, 300);
    assert_int_equal(st(c, 0).role, SY_ROLE_LEADER);
    assert_int_equal(st(c, 2).commit_index, 80);
    assert_int_equal(c->installed[2], compact);
    cl_crash(c, 1);
    cl_request(c, 0, 81, "put 81");
    cl_run(c);
    cl_time(c, 100);
    assert_int_equal(st(c, 0).commit_index, 81);
    assert_int_equal(st(c, 2).commit_index, 81);
    assert_non_null(com_at(c, 2, 81));
    assert_agreement(c);
    cl_free(c);
}

static void test_replica_on_replaced_empty_disk_caught_up_from_log(void **state)
{
    (void)state;
    assert_replaced_disk_catches_up(false);
}

static void test_replica_on_replaced_empty_disk_caught_up_by_snapshot(void **state)
{
    (void)state;
    assert_replaced_disk_catches_up(true);
}

/* ---- rejoining after a replaced disk (cfg.rejoin) ---- */


/* Three nodes with check-quorum (a rejoining node relies on it). Node 0
 * leads; puts 1..5 are chosen by 0 and 1 while 2 is cut off from 0. Then
 * 1's disk dies and it starts on an empty one (rejoin as given), and 0
 * becomes unreachable. Node 2 knows nothing of the five puts. */
static cluster *chosen_by_a_wiped_acceptor(bool rejoin)
{
    cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->n = 3;
    c->now = 1000;
    for (uint32_t i = 0; i < 3; i++) {
        sy_engine_cfg *g = &c->cfg[i];
        g->self = i;
        g->n = 3;
        g->f = 1;
        strcpy(g->cluster_id, "test");
        g->heartbeat_ms = 50;
        g->election_min_ms = 300;
        g->election_max_ms = 600;
        g->batch_max = 64;
        g->max_inflight = 16;
        g->rng_seed = 77 + i;
        g->check_quorum = true;
        node_start(c, i);
    }
    elect(c, 0);
    c->cut[0][2] = c->cut[2][0] = true;
    puts_at(c, 0, 1, 5);
    cl_time(c, 100);
    assert_int_equal(st(c, 0).commit_index, 5);
    assert_int_equal(st(c, 2).commit_index, 0);
    wipe_and_start(c, 1, rejoin);
    assert_int_equal(st(c, 1).rejoining, rejoin);
    cl_cut(c, 0, true);
    cl_time(c, 4000);
    return c;
}

static void test_wiped_acceptor_without_rejoin_lets_a_chosen_slot_be_chosen_again(void **state)
{
    (void)state;
    /* the hazard the rejoin rule exists for: without it, node 2 wins phase
     * 1 with the empty node's promise, hears of no value, and slot 1 --
     * chosen and applied at node 0 -- is chosen again with another value */
    cluster *c = chosen_by_a_wiped_acceptor(false);
    assert_int_equal(st(c, 2).role, SY_ROLE_LEADER);
    cl_request(c, 2, 100, "put other");
    cl_run(c);
    cl_time(c, 100);
    const dent *a = com_at(c, 0, 1), *b = com_at(c, 2, 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_false(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
    cl_free(c);
}

static void test_rejoining_acceptor_promises_nothing_until_caught_up(void **state)
{
    (void)state;
    cluster *c = chosen_by_a_wiped_acceptor(true);
    assert_true(st(c, 2).role != SY_ROLE_LEADER);
    assert_true(st(c, 1).role != SY_ROLE_LEADER && st(c, 1).role != SY_ROLE_CANDIDATE);
    assert_true(st(c, 1).rejoining);
    /* node 0 comes back: whoever leads holds the five puts; node 1 catches
     * up, and promises again once the leader has announced a chosen slot
     * holding a value of its own ballot -- with no write at all, the no-op
     * an idle leader proposes when its prefix ends in an older ballot's
     * slot (px_leader_tick); before, node 1 waited for the next write */
    cl_cut(c, 0, false);
    cl_time(c, 4000);
    uint32_t l = st(c, 0).role == SY_ROLE_LEADER ? 0 : 2;
    assert_int_equal(st(c, l).role, SY_ROLE_LEADER);
    assert_false(st(c, 1).rejoining);
    assert_int_equal(st(c, 1).commit_index, st(c, l).commit_index);
    cl_request(c, l, 6, "put 6");
    cl_run(c);
    cl_time(c, 200);
    assert_false(st(c, 1).rejoining);
    assert_int_equal(st(c, 1).commit_index, st(c, l).commit_index);
    assert_non_null(com_at(c, 1, 1));
    assert_agreement(c);
    /* a full acceptor again: with the leader gone, 1 and the other elect */
    cl_crash(c, l);
    uint32_t o = 3 - l - 1;
    cl_time(c, 4000);
    assert_true(st(c, 1).role == SY_ROLE_LEADER || st(c, o).role == SY_ROLE_LEADER);
    assert_agreement(c);
    cl_free(c);
}

static void test_rejoining_acceptor_is_deaf_at_first(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 21);
    elect(c, 0);
    puts_at(c, 0, 1, 5);
    cl_time(c, 100);
    wipe_and_start(c, 2, true);
    cl_time(c, sy_rejoin_wait_ms(&c->cfg[2]) - 50);
    assert_int_equal(st(c, 2).commit_index, 0);
    assert_int_equal(st(c, 2).term, 0);
    cl_time(c, 300);
    /* caught up; slot 5 holds a value the leader first proposed in its
     * ballot, announced after node 2 started: it promises again */
    assert_int_equal(st(c, 2).commit_index, 5);
    assert_false(st(c, 2).rejoining);
    assert_agreement(c);
    cl_free(c);
}

static void test_replica_slightly_behind_catches_up_from_log_after_compaction(void **state)
{
    (void)state;
    cluster *c = cl_new(3, 14);
    elect(c, 0);
    puts_at(c, 0, 1, 70);
    cl_time(c, 100);
    cl_cut(c, 2, true);
    puts_at(c, 0, 71, 75);
    compact_at(c, 0, 75, "S");
    cl_cut(c, 2, false);
    cl_time(c, 300);
    assert_false(c->installed[2]);                  /* no snapshot needed */
    assert_int_equal(st(c, 2).commit_index, 75);
    assert_agreement(c);
    cl_free(c);
}

static void test_leader_crash_and_restart_cycles_keep_agreement(void **state)
{
    (void)state;
    cluster *c = cl_new(5, 12);
    uint32_t leader = elect(c, 0);
    char body[32];
    uint64_t req = 1;
    for (int round = 0; round < 6; round++) {
        for (int k = 0; k < 5; k++) {
            snprintf(body, sizeof body, "r%d-%d", round, k);
            cl_request(c, leader, req++, body);
            cl_run(c);
        }
        cl_crash(c, leader);
        uint32_t next = (leader + 1 + (uint32_t)round % 3) % 5;
        if (c->down[next])
            next = (next + 1) % 5;
        elect(c, next);
        node_start(c, leader);
        cl_time(c, 200);
        leader = next;
    }
    cl_time(c, 500);
    uint64_t ci = st(c, leader).commit_index;
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(st(c, i).commit_index, ci);
    char b0[4096];
    committed_reqs(c, leader, b0, sizeof b0);
    /* every request acknowledged... all 30 proposals were chosen here since
     * each leader was live with a majority when it proposed */
    for (int round = 0; round < 6; round++)
        for (int k = 0; k < 5; k++) {
            snprintf(body, sizeof body, "r%d-%d|", round, k);
            assert_non_null(strstr(b0, body));
        }
    assert_agreement(c);
    cl_free(c);
}

static void test_single_node_commits_and_reads_alone(void **state)
{
    (void)state;
    cluster *c = cl_new(1, 13);
    elect(c, 0);
    cl_request(c, 0, 1, "solo");
    cl_ready(c, 0);
    /* its own acceptance counts once the write is durable (advance), so
     * the commit is reported by the next ready */
    assert_int_equal(st(c, 0).commit_index, 1);
    cl_ready(c, 0);
    assert_int_equal(c->n_com[0], 1);
    read_req(c, 0, 9);
    cl_ready(c, 0);
    assert_int_equal(c->n_reads, 1);
    assert_int_equal(c->reads[0].index, 1);
    cl_free(c);
}

static void test_random_drops_and_duels_stay_safe_and_live(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        cluster *c = cl_new(3, 100 + seed);
        sy_rng r;
        sy_rng_seed(&r, seed);
        uint64_t req = 1;
        char body[32];
        for (int step = 0; step < 400; step++) {
            c->now += 10;
            for (uint32_t i = 0; i < c->n; i++) {
                if (ops->next_deadline(c->e[i]) <= c->now)
                    cl_tick(c, i);
                if (st(c, i).role == SY_ROLE_LEADER && sy_rng_below(&r, 4) == 0) {
                    snprintf(body, sizeof body, "s%llu-%llu", (unsigned long long)seed,
                             (unsigned long long)req);
                    cl_request(c, i, req++, body);
                }
            }
            for (uint32_t i = 0; i < c->n; i++)
                cl_ready(c, i);
            /* drop a third of the messages, deliver the rest out of order */
            size_t n = c->nq;
            for (size_t k = n; k > 1; k--) {
                size_t j = (size_t)sy_rng_below(&r, k);
                tmsg t = c->q[k - 1];
                c->q[k - 1] = c->q[j];
                c->q[j] = t;
            }
            for (size_t k = 0; k < n; k++)
                if (sy_rng_below(&r, 3) == 0)
                    c->cut[c->q[k].from][c->q[k].to] = true;
            cl_run(c);
            memset(c->cut, 0, sizeof c->cut);
            assert_agreement(c);
        }
        /* calm: everything converges */
        cl_time(c, 2000);
        uint64_t max = 0;
        for (uint32_t i = 0; i < c->n; i++)
            if (st(c, i).commit_index > max)
                max = st(c, i).commit_index;
        assert_true(max > 0);
        for (uint32_t i = 0; i < c->n; i++)
            assert_int_equal(st(c, i).commit_index, max);
        assert_agreement(c);
        cl_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_commits_batched_requests_in_slot_order),
        cmocka_unit_test(test_request_at_non_leader_rejected_with_leader_hint),
        cmocka_unit_test(test_stopping_leader_hands_over_without_an_election_timeout),
        cmocka_unit_test(test_hand_off_to_a_dead_peer_gives_up_and_leads_on),
        cmocka_unit_test(test_hand_off_without_target_moves_on_when_the_pick_does_not_run),
        cmocka_unit_test(test_two_proposers_interleaving_prepares_converge),
        cmocka_unit_test(test_value_accepted_by_minority_kept_by_next_leader),
        cmocka_unit_test(test_gaps_filled_with_noops_at_takeover),
        cmocka_unit_test(test_stale_leader_accepts_rejected_after_higher_promise),
        cmocka_unit_test(test_restart_preserves_promise_and_accepted_values),
        cmocka_unit_test(test_read_confirmed_only_after_quorum_round),
        cmocka_unit_test(test_read_waits_for_fresh_round_not_old_acks),
        cmocka_unit_test(test_lagging_replica_catches_up_from_leader),
        cmocka_unit_test(test_long_promise_comes_in_pages_and_the_new_leader_keeps_every_value),
        cmocka_unit_test(test_lagging_replica_catches_up_by_snapshot_after_compaction),
        cmocka_unit_test(test_replica_on_replaced_empty_disk_caught_up_from_log),
        cmocka_unit_test(test_replica_on_replaced_empty_disk_caught_up_by_snapshot),
        cmocka_unit_test(test_wiped_acceptor_without_rejoin_lets_a_chosen_slot_be_chosen_again),
        cmocka_unit_test(test_rejoining_acceptor_promises_nothing_until_caught_up),
        cmocka_unit_test(test_rejoining_acceptor_is_deaf_at_first),
        cmocka_unit_test(test_replica_slightly_behind_catches_up_from_log_after_compaction),
        cmocka_unit_test(test_leader_crash_and_restart_cycles_keep_agreement),
        cmocka_unit_test(test_single_node_commits_and_reads_alone),
        cmocka_unit_test(test_random_drops_and_duels_stay_safe_and_live),
        cmocka_unit_test(test_rejoining_follower_does_not_depose_leader_with_prevote),
        cmocka_unit_test(test_rejoining_follower_deposes_leader_without_prevote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
