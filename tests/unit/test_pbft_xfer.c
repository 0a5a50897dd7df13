/* PBFT state transfer: a snapshot larger than one chunk moves chunk by
 * chunk, each checked on arrival, and a replica lying in one chunk is
 * caught at that chunk; without a newer stable checkpoint a lagging replica
 * catches up from certified log entries, also when the replicas serving
 * them restarted since they executed them (docs/pbft.md "State transfer"). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/unit/test_pbft_harness.h"

static void tweak_one_per_batch(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = 1;
}

/* Client retransmission to every replica each second until all of `nodes`
 * executed one more request. */
static bool op_until_executed_via(harness *h, uint32_t c, uint32_t submit, uint32_t nodes,
                                  uint64_t max_ms);
static bool op_until_executed(harness *h, uint32_t c, uint32_t nodes, uint64_t max_ms)
{
    return op_until_executed_via(h, c, 0xfu, nodes, max_ms);
}

/* The same, the client sending only to the replicas in `submit`. */
static bool op_until_executed_via(harness *h, uint32_t c, uint32_t submit, uint32_t nodes,
                                  uint64_t max_ms)
{
    uint8_t *raw;
    size_t len;
    uint64_t want[H_MAX];
    for (uint32_t i = 0; i < h->n; i++)
        want[i] = h->nreq[i] + 1;
    h_make_request(h, c, &raw, &len);
    bool ok = false;
    for (uint64_t t = 0; t < max_ms && !ok; t += 50) {
        if (t % 1000 == 0)
            h_submit_raw(h, raw, len, submit);
        h_tick(h, 50);
        ok = true;
        for (uint32_t i = 0; i < h->n; i++)
            if ((nodes >> i & 1) && h->nreq[i] < want[i])
                ok = false;
    }
    free(raw);
    return ok;
}

static void tweak_k4(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = 1;
    c->checkpoint_interval = 4;
}

/* what node 3 received of snapshots: chunk indices, from whom */
static uint32_t chunks_to_3[8], lie_in_chunk = UINT32_MAX;
static uint64_t lies;
static bool watch_chunks(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    if (m->type != SY_MSG_PBFT_STATE || to != 3 || !m->u.pbft.state.snap_len)
        return true;
    const sy_pbft_state *st = &m->u.pbft.state;
    if (st->chunk < 8)
        chunks_to_3[st->chunk]++;
    if (st->chunk == lie_in_chunk && from == 1 && st->snapshot.len) {
        ((uint8_t *)st->snapshot.p)[st->snapshot.len - 1] ^= 0x01;
        lies++;
    }
    return true;
}

static void test_snapshot_larger_than_a_chunk_moves_in_verified_chunks(void **state)
{
    (void)state;
    for (int lying = 0; lying < 2; lying++) {
        memset(chunks_to_3, 0, sizeof chunks_to_3);
        lies = 0;
        /* node 1 lies in the last chunk only: the first two check out, the
         * third is refused at once and the receiver turns to another peer */
        lie_in_chunk = lying ? 2 : UINT32_MAX;
        harness *h = h_new(4, 1, false, 4, tweak_k4);
        h->down[3] = true;
        for (uint32_t r = 0; r < 12; r++)
            assert_true(op_until_executed(h, r % H_CLIENTS, 0x7, 5000));
        assert_int_equal(h_status(h, 0).snap_index, 12);
        h->filter = watch_chunks;
        h->down[3] = false;
        assert_true(op_until_executed(h, 0, 0xf, 20000));
        /* a 40-byte blob in 16-byte chunks: 0, 1 and 2 all travelled */
        assert_true(chunks_to_3[0] >= 1 && chunks_to_3[1] >= 1 && chunks_to_3[2] >= 1);
        assert_int_equal(chunks_to_3[3], 0);
        assert_true(h->installs[3] >= 1);
        assert_int_equal(h->applied[3], h->applied[0]);
        assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
        if (lying) {
            assert_true(lies >= 1);
            assert_true(h->step_errors[3] >= lies);
        }
        assert_int_equal(h->violations, 0);
        h_free(h);
    }
}

/* Messages a filter holds back, released one at a time by the test's
 * loop (a slow replica, a slow link): hq_hold re-signs and keeps a copy,
 * hq_release delivers the oldest once `every` ms passed since the last,
 * hq_reset frees what is left. `releasing` tells the filter that the
 * message it sees is one being let through. */
typedef struct {
    h_msg q[8192];
    size_t n, head;
    bool releasing;
    uint64_t last;
} held_q;

static void hq_hold(harness *h, held_q *hq, uint32_t from, uint32_t to, const sy_msg *m)
{
    sy_buf b;
    sy_buf_init(&b);
    if (hq->n == sizeof hq->q / sizeof *hq->q ||
        sy_env_encode(H_CLUSTER, from, m, &h->sg[from], &b))
        abort();
    size_t len;
    uint8_t *p = sy_buf_take(&b, &len);
    hq->q[hq->n++] = (h_msg){ from, to, p, len };
}

static void hq_release(harness *h, held_q *hq, uint64_t every)
{
    if (hq->head < hq->n && h->now >= hq->last + every) {
        hq->releasing = true;
        h_deliver(h, &hq->q[hq->head]);
        hq->releasing = false;
        free(hq->q[hq->head++].buf);
        hq->last = h->now;
    }
}

static void hq_reset(held_q *hq)
{
    for (size_t i = hq->head; i < hq->n; i++)
        free(hq->q[i].buf);
    hq->n = hq->head = 0;
    hq->releasing = false;
    hq->last = 0;
}

/* Node 1 answers node 3's chunk requests: in mode 0 it sends ten chunks
 * and then nothing (it crashed, or went silent on purpose); in mode 1 its
 * replies are held back and released one per 90 ms (slow, but serving). */
static held_q slow_q;
static int slow_mode;
static uint64_t chunks_by[4];
static bool slow_node_1(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    if (m->type != SY_MSG_PBFT_STATE || to != 3 || !m->u.pbft.state.snap_len)
        return true;
    if (from != 1 || slow_q.releasing) {
        chunks_by[from]++;
        return true;
    }
    if (slow_mode == 0) {
        if (chunks_by[1] >= 10)
            return false;
        chunks_by[1]++;
        return true;
    }
    hq_hold(h, &slow_q, 1, 3, m);
    return false;
}

static void tweak_tiny_chunks(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = 1;
    c->checkpoint_interval = 4;
    c->state_chunk_bytes = 1;   /* a 40-byte snapshot: 40 chunks */
}

/* Node 3 fetches a 40-chunk snapshot and asks node 1 first. A node 1
 * that stops answering loses the fetch two heartbeats later, and the rest
 * comes from 0 or 2. A node 1 that answers slowly but steadily (a chunk
 * per 90 ms, heartbeats of 50) keeps it: a stall is nothing arriving from
 * the serving replica for two heartbeats, not a chunk waiting that long
 * behind others, because on a slow honest link every chunk of a window
 * waits (pbft_xfer.c, xin_tick; test_a_fetch_slower_than_a_checkpoint_
 * interval_completes). That is the price: a Byzantine replica can hold a
 * fetch at one chunk per two heartbeats. */
static void test_a_silent_responder_loses_the_fetch_a_slow_one_keeps_it(void **state)
{
    (void)state;
    for (slow_mode = 0; slow_mode < 2; slow_mode++) {
        harness *h = h_new(4, 1, false, 4, tweak_tiny_chunks);
        h->down[3] = true;
        for (uint32_t r = 0; r < 12; r++)
            assert_true(op_until_executed_via(h, r % 2, 0x7, 0x7, 5000));
        memset(chunks_by, 0, sizeof chunks_by);
        hq_reset(&slow_q);
        h->filter = slow_node_1;
        h->down[3] = false;
        for (uint64_t t = 0; t < 30000 && !h->installs[3]; t += 10) {
            hq_release(h, &slow_q, 90);
            if (t % 1000 == 0)
                h_submit(h, 0, 0x7);   /* the others go on checkpointing */
            h_tick(h, 10);
        }
        hq_reset(&slow_q);
        assert_true(h->installs[3] >= 1);
        if (slow_mode == 0) {
            assert_int_equal(chunks_by[1], 10);
            assert_true(chunks_by[0] + chunks_by[2] >= 30);
        } else {
            assert_true(chunks_by[1] >= 40);
        }
        h_run_for(h, 3000, 50);
        assert_int_equal(h->applied[3], h->applied[0]);
        assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
        assert_int_equal(h->violations, 0);
        h_free(h);
    }
}

/* Node 3's link is slow: every STATE sent to it, from anyone, waits in
 * one queue that releases a message every 20 ms -- a bandwidth limit,
 * not a silent peer. The others keep writing, so their stable checkpoint
 * moves on every ~100 ms while a whole snapshot takes ~800 ms to cross.
 * Before the served snapshot was kept for its fetcher, every responder
 * answered with its newest checkpoint as soon as it had one, node 3
 * started over each time and never installed anything. (Each chunk waits
 * at most ~80 ms, a window of four at 20 ms each: inside the 100 ms after
 * which a chunk counts as stalled.) */
static held_q link_q;
static uint64_t first_seq;             /* checkpoint of the first chunk sent to 3 */
static uint64_t cut_from, cut_until;   /* node 1's chunks to 3 are lost meanwhile */
static bool slow_link_to_3(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    if (m->type != SY_MSG_PBFT_STATE || to != 3 || link_q.releasing)
        return true;
    if (!first_seq && m->u.pbft.state.snap_len)
        first_seq = m->u.pbft.state.ckpt.seq;
    if (from == 1 && h->now >= cut_from && h->now < cut_until)
        return false;
    hq_hold(h, &link_q, from, 3, m);
    return false;
}

/* Node `from` asks `to` for state as a replica that has nothing would. */
static void inject_state_req(harness *h, uint32_t from, uint32_t to)
{
    sy_msg m = { .type = SY_MSG_PBFT_STATE_REQ };
    m.u.pbft.state_req.have = 0;
    sy_buf b;
    sy_buf_init(&b);
    if (sy_env_encode(H_CLUSTER, from, &m, &h->sg[from], &b))
        abort();
    h_msg hm = { from, to, NULL, 0 };
    hm.buf = sy_buf_take(&b, &hm.len);
    h_deliver(h, &hm);
    free(hm.buf);
}

/* Four ways: the fetch alone; with node 2 (a second lagging replica, or
 * a Byzantine one) asking 0 and 1 for their snapshot every 50 ms, which
 * must not take node 3's blob away from it (found in review: with one
 * blob kept per responder, node 3 never installed); with node 3 given the
 * clients' requests too, so that halfway through its view-change timer it
 * asks f+1 peers, whose answers carry their newer checkpoints and must not
 * restart the fetch; and with node 1's chunks lost for 150 ms mid-fetch,
 * so that node 3 moves to replicas that no longer hold the checkpoint and
 * must come back to node 1 rather than start over. Each installs the very
 * checkpoint it started on, within two simulated seconds (~0.8 s alone). */
static void test_a_fetch_slower_than_a_checkpoint_interval_completes(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; variant++) {
        harness *h = h_new(4, 1, false, 4, tweak_tiny_chunks);
        first_seq = 0;
        cut_from = cut_until = UINT64_MAX;
        h->down[3] = true;
        for (uint32_t r = 0; r < 12; r++)
            assert_true(op_until_executed_via(h, r % 2, 0x7, 0x7, 5000));
        hq_reset(&link_q);
        h->filter = slow_link_to_3;
        h->down[3] = false;
        uint64_t h_at_start = h_status(h, 0).snap_index, t = 0;
        for (; t < 8000 && !h->installs[3]; t += 10) {
            if (variant == 3 && link_q.head == 12 && cut_from == UINT64_MAX) {
                cut_from = h->now;
                cut_until = h->now + 150;
            }
            hq_release(h, &link_q, 20);
            if (t % 20 == 0)
                h_submit(h, (uint32_t)(t / 20) % 2, variant == 2 ? 0xf : 0x7);
            if (variant == 1 && t % 50 == 0) {
                inject_state_req(h, 2, 0);
                inject_state_req(h, 2, 1);
            }
            h_tick(h, 10);
        }
        assert_true(h->installs[3] >= 1);
        assert_true(t < 2000);
        assert_int_equal(h_status(h, 3).snap_index, first_seq);
        /* the others' checkpoints moved on several times meanwhile */
        assert_true(h_status(h, 0).snap_index >= h_at_start + 3 * 4);
        hq_reset(&link_q);
        h->filter = NULL;
        h_run_for(h, 5000, 50);
        assert_int_equal(h->applied[3], h->applied[0]);
        assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
        assert_int_equal(h->violations, 0);
        h_free(h);
    }
}

/* Drops the first copy of chunk 1 sent to node 3, so the last chunk (the
 * one that carries the entries above the checkpoint) is in before it. */
static uint32_t chunk1_drops;
static bool drop_first_chunk_1(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    if (m->type == SY_MSG_PBFT_STATE && to == 3 && m->u.pbft.state.snap_len &&
        m->u.pbft.state.chunk == 1 && chunk1_drops == 0) {
        chunk1_drops++;
        return false;
    }
    return true;
}

/* Node 3 hears the others' CHECKPOINTs and nothing else: it learns it is
 * behind a stable checkpoint but not what was committed above it. */
static bool only_checkpoints_to_3(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    return to != 3 || m->type == SY_MSG_PBFT_CHECKPOINT;
}

static void test_entries_above_the_snapshot_follow_an_install_in_an_idle_cluster(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    /* 14 requests: checkpoint 12 goes stable and is compacted; 13 and 14
     * are above it. Node 3 (as a replica paused and resumed with most of
     * its inbound traffic dropped) sees only the checkpoints. */
    h->filter = only_checkpoints_to_3;
    for (uint32_t r = 0; r < 14; r++)
        assert_true(op_until_executed_via(h, r % 2, 0x7, 0x7, 5000));
    assert_int_equal(h_status(h, 0).snap_index, 12);
    assert_int_equal(h->applied[3], 0);
    /* it fetches the snapshot; the chunk that carries entries 13 and 14
     * comes before the one it still lacks, and no request follows: the
     * cluster is idle and nothing new will tell it about 13 and 14 */
    chunk1_drops = 0;
    h->filter = drop_first_chunk_1;
    h_run_for(h, 10000, 50);
    assert_int_equal(chunk1_drops, 1);
    assert_true(h->installs[3] >= 1);
    assert_int_equal(h->applied[3], 14);
    assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Node 3 is away (partitioned: no messages either way, its timers
 * running) while the others execute requests, then returns to an idle
 * cluster: no client writes again and nobody's own work names the
 * sequence numbers it missed. It must find out by itself, for a lag
 * inside one checkpoint interval (3 requests: nothing stable to fetch,
 * only entries) and for one past stable checkpoints (9 requests). Before
 * the idle probe it stayed at 0 for good. */
static void test_replica_back_in_an_idle_cluster_catches_up_by_itself(void **state)
{
    (void)state;
    const uint32_t lags[] = { 3, 9 };
    for (uint32_t k = 0; k < 2; k++) {
        harness *h = h_new(4, 1, false, 4, tweak_k4);
        h->down[3] = true;
        for (uint32_t r = 0; r < lags[k]; r++)
            assert_true(op_until_executed_via(h, r % 2, 0x7, 0x7, 5000));
        assert_int_equal(h->applied[3], 0);
        h->down[3] = false;
        /* idle: only ticks from here */
        h_run_for(h, 10000, 50);
        assert_int_equal(h->applied[3], lags[k]);
        assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
        assert_int_equal(h->violations, 0);
        h_free(h);
    }
}

static bool nothing_to_3(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    (void)m;
    return to != 3;
}

/* As above, but node 3 comes back in a view change of its own: it got the
 * clients' requests and none of its peers' messages, so its timer accused
 * the primary, and one replica cannot make the others change view. The
 * cluster is idle when it comes back. A replica in a view change did not
 * probe, so it stayed behind for good (a chaos run: a replica SIGSTOPped
 * as the load ended, then stuck 7 entries short, its state digest
 * different from the others'). Executing certified entries does not
 * depend on the view; it must catch up while still asking for view 1. */
static void test_replica_alone_in_a_view_change_catches_up_in_an_idle_cluster(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->filter = nothing_to_3;
    for (uint32_t r = 0; r < 3; r++)
        assert_true(op_until_executed_via(h, r % 2, 0xf, 0x7, 5000));
    h_run_for(h, 10000, 50);   /* its view-change timer goes off */
    assert_int_equal(h->applied[3], 0);
    assert_int_equal(h_status(h, 3).role, SY_ROLE_VIEW_CHANGE);
    assert_int_equal(h_status(h, 0).role, SY_ROLE_PRIMARY);
    h->filter = NULL;
    h_run_for(h, 10000, 50);   /* idle: only ticks */
    assert_int_equal(h->applied[3], 3);
    assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static bool no_votes_to_3(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    return to != 3 || (m->type != SY_MSG_PBFT_PREPARE && m->type != SY_MSG_PBFT_COMMIT);
}

static bool disk_has_record(const harness *h, uint32_t node, uint64_t key)
{
    for (size_t i = 0; i < h->disk[node].n_recs; i++)
        if (h->disk[node].recs[i].key == key)
            return true;
    return false;
}

/* Node 3 votes for batch 1 but never sees a certificate form (no other
 * votes reach it), then restarts: the batch comes back from its record
 * without a pre-prepare of this run. It must stay durable through the
 * writes that follow, or a second crash loses a batch that a later view
 * may pick (the seed-2981 scenario in hs_sections). It was dropped at the
 * first write after the restart (a review found it). */
static void test_a_voted_batch_stays_durable_across_two_restarts(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->filter = no_votes_to_3;
    assert_true(op_until_executed_via(h, 0, 0xf, 0x7, 5000));
    assert_int_equal(h->applied[3], 0);
    assert_true(disk_has_record(h, 3, 1));
    assert_int_equal(h_restart(h, 3), SY_OK);
    for (uint32_t r = 1; r <= 2; r++)   /* numbers 2 and 3: node 3 votes, writes */
        assert_true(op_until_executed_via(h, r, 0xf, 0x7, 5000));
    assert_int_equal(h->applied[3], 0);
    assert_true(disk_has_record(h, 3, 3));
    assert_true(disk_has_record(h, 3, 1));
    assert_int_equal(h_restart(h, 3), SY_OK);
    h->filter = NULL;
    for (uint32_t r = 3; r <= 4; r++)
        assert_true(op_until_executed_via(h, r % 2, 0xf, 0xf, 10000));
    assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static bool no_checkpoints(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    (void)to;
    return m->type != SY_MSG_PBFT_CHECKPOINT;
}

/* A replica restarted with a smaller window than the one its records were
 * written under (watermark_window lowered) holds certificates the new
 * window cannot: it refuses to start, as a configuration error, rather
 * than drop them. */
static void test_a_window_lowered_under_held_certificates_is_refused(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->filter = no_checkpoints;   /* nothing goes stable: h stays 0 */
    for (uint32_t r = 0; r < 7; r++)
        assert_true(op_until_executed_via(h, r % 2, 0xf, 0xf, 5000));
    assert_int_equal(h_status(h, 3).snap_index, 0);
    h->cfg[3].checkpoint_interval = 2;
    h->cfg[3].watermark_window = 4;
    assert_int_equal(h_restart(h, 3), SY_ECONFIG);
    h->cfg[3].checkpoint_interval = 4;
    h->cfg[3].watermark_window = 0;   /* back to the default 2K */
    assert_int_equal(h_restart(h, 3), SY_OK);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* The primary, node 0, never sees client 3's request: the client sent it
 * to the backups only and every FORWARD to the primary is lost, which is
 * what a primary censoring that client looks like from outside. */
static bool censor_forwards(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    return !(to == 0 && m->type == SY_MSG_PBFT_FORWARD);
}

/* Node `who` crashes, the others write past a checkpoint, and it restarts
 * and catches up by installing a snapshot: it comes back knowing nothing
 * of the clients that wrote before (its table was in memory). Clients 0
 * and 1 do the writing, to the other replicas only, so that `who` watches
 * no request of theirs that its snapshot then covers. */
static void lag_and_install(harness *h, uint32_t who, bool sessions)
{
    uint64_t before = h->installs[who];
    uint32_t others = 0xfu & ~(1u << who);
    h->down[who] = true;
    for (uint32_t r = 0; r < 8; r++)
        assert_true(op_until_executed_via(h, r % 2, others, others, 5000));
    assert_int_equal(h_restart(h, who), SY_OK);
    h->down[who] = false;
    for (uint32_t r = 0; r < 8 && h->installs[who] == before; r++)
        assert_true(op_until_executed_via(h, r % 2, others, others, 5000));
    assert_true(h->installs[who] > before);
    if (sessions) {
        /* what a host reads from its installed state (core/kv.h
         * sy_kv_sessions): each client's last executed request */
        sy_session_rec recs[H_CLIENTS];
        for (uint32_t c = 0; c < H_CLIENTS; c++)
            recs[c] = (sy_session_rec){ SY_CLIENT_ID_BASE + c, h->req_no[c] };
        sy_input in = { .kind = SY_IN_SESSIONS, .now_ms = h->now };
        in.u.sessions.index = h_status(h, who).snap_index;
        in.u.sessions.recs = recs;
        in.u.sessions.n = H_CLIENTS;
        h_step(h, who, &in);
    }
}

static void test_backups_that_installed_state_still_accuse_a_censoring_primary(void **state)
{
    (void)state;
    for (int sessions = 0; sessions < 2; sessions++) {
        harness *h = h_new(4, 1, false, 4, tweak_k4);
        /* client 3 writes once, then falls silent; the others write on
         * past two checkpoints, so no replica's log still holds that write */
        assert_true(op_until_executed(h, 3, 0xf, 5000));
        for (uint32_t r = 0; r < 10; r++)
            assert_true(op_until_executed(h, r % 2, 0xf, 5000));
        /* backups 2 and 3 each crash, lag, restart and install a
         * snapshot: their own record of client 3 is gone */
        lag_and_install(h, 3, sessions);
        lag_and_install(h, 2, sessions);
        uint64_t done = h->nreq[1];
        /* client 3 asks again; the primary censors it */
        h->filter = censor_forwards;
        uint8_t *raw;
        size_t len;
        h_make_request(h, 3, &raw, &len);
        for (uint64_t t = 0; t < 20000; t += 50) {
            if (t % 1000 == 0)
                h_submit_raw(h, raw, len, 0xeu);
            h_tick(h, 50);
        }
        free(raw);
        if (sessions) {
            /* with the installed sessions every backup watches the request,
             * they change view, and the new primary orders it */
            assert_true(h_status(h, 1).term >= 1);
            assert_true(h->nreq[1] > done);
            assert_true(h->nreq[2] > done && h->nreq[3] > done);
        } else {
            /* without them (a host that does not step SY_IN_SESSIONS) the
             * two backups that installed do not accuse the primary, one
             * backup alone cannot move the view, and the client waits:
             * the gap SY_IN_SESSIONS closes */
            assert_int_equal(h->nreq[1], done);
        }
        assert_int_equal(h->violations, 0);
        h_free(h);
    }
}

static void test_lagging_replica_catches_up_from_restarted_peers_without_checkpoint(void **state)
{
    (void)state;
    /* K = 16: the 5 entries below never reach a checkpoint */
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    h->down[3] = true;
    for (uint32_t r = 0; r < 5; r++)
        assert_true(op_until_executed(h, r % H_CLIENTS, 0x7, 5000));
    assert_int_equal(h->applied[0], 5);
    assert_int_equal(h->applied[3], 0);
    /* n1 is lost for good, n0 and n2 restart from their disks: only their
     * durable hardstate can still prove entries 1..5 to n3 */
    h->down[1] = true;
    assert_int_equal(h_restart(h, 0), SY_OK);
    assert_int_equal(h_restart(h, 2), SY_OK);
    h_run(h);
    assert_int_equal(h->applied[0], 5);
    h->down[3] = false;
    /* n3 must catch up by certified entries, then help commit */
    assert_true(op_until_executed(h, 0, 0xd, 60000));
    assert_int_equal(h->applied[3], h->applied[0]);
    assert_int_equal(h->applied[2], h->applied[0]);
    assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
    assert_int_equal(h->installs[3], 0);   /* no snapshot: entries only */
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_restarted_replica_keeps_commit_certificates_of_executed_entries(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    for (uint32_t r = 0; r < 3; r++)
        assert_true(op_until_executed(h, r % H_CLIENTS, 0xf, 5000));
    /* hardstates now carry commit certificates: every replica restarts
     * from them and the cluster keeps committing in agreement */
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_restart(h, i), SY_OK);
    h_run(h);
    assert_true(op_until_executed(h, 3, 0xf, 20000));
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(h->applied[i], h->applied[0]);
        assert_true(sy_digest_eq(&h->state[i], &h->state[0]));
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static bool drop_commits(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    (void)to;
    return m->type != SY_MSG_PBFT_COMMIT;
}

static void test_prepared_batch_survives_a_restart_of_every_replica(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    /* request 1 gets prepared everywhere but commits are lost */
    h->filter = drop_commits;
    uint8_t *raw;
    size_t len;
    h_make_request(h, 0, &raw, &len);
    h_submit_raw(h, raw, len, 0xfu);
    h_run_for(h, 300, 10);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 0);
    /* every replica restarts: the batch lives on only in their hardstates
     * (the prepared certificate alone names it by digest) */
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_restart(h, i), SY_OK);
    h->filter = NULL;
    free(raw);   /* not resent: a copy of it would carry the same batch */
    /* the restarted primary cannot resend its PRE-PREPARE and hands its
     * view on; the certified sequence number is re-proposed in the new view
     * and executes with no request to drive it: no replica may be left
     * fetching a batch nobody has */
    h_run_for(h, 1000, 10);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 1);
    /* and another client's request goes after it */
    assert_true(op_until_executed(h, 1, 0xf, 60000));
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 2);
    for (uint32_t i = 1; i < 4; i++)
        assert_true(sy_digest_eq(&h->state[i], &h->state[0]));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_restarted_old_primary_does_not_propose_over_transferred_entries(void **state)
{
    (void)state;
    /* n0 leads view 0 and dies; the others move to view 1 and execute past
     * a checkpoint (K = 16). n0 comes back from its disk still leading
     * view 0 in its own eyes, with requests of its own to propose, and
     * takes the checkpoint and the committed entries above it by state
     * transfer: it must execute those and converge. (The daemon hit a race
     * here -- a proposal between the transfer and the install's advance
     * overwrote the entries; this deterministic harness does not reach
     * that interleaving, the PBFT demo did. The scenario stays covered.) */
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    for (uint32_t r = 0; r < 3; r++)
        assert_true(op_until_executed(h, r % H_CLIENTS, 0xf, 5000));
    h->down[0] = true;
    for (uint32_t r = 0; r < 20; r++)
        assert_true(op_until_executed(h, r % H_CLIENTS, 0xe, 30000));
    assert_true(h_status(h, 1).term >= 1);
    assert_true(h->applied[1] > 16);
    h->down[0] = false;
    assert_int_equal(h_restart(h, 0), SY_OK);
    for (uint32_t k = 0; k < 4; k++) {
        h_submit(h, k % H_CLIENTS, 0x1u);   /* to n0 alone: it proposes them */
        h_tick(h, 50);
    }
    h_run_for(h, 20000, 50);
    assert_int_equal(h->applied[0], h->applied[1]);
    assert_true(sy_digest_eq(&h->state[0], &h->state[1]));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Makes node's records above `above` look as written before version 3
 * (no own-statement section, the last in a record), as after an upgrade;
 * returns how many records lost one. */
static uint32_t strip_own_sections(harness *h, uint32_t node, uint64_t above)
{
    const size_t one = 2 + PBFT_OWN_ITEM_LEN;   /* a one-item own section */
    h_disk *d = &h->disk[node];
    uint32_t stripped = 0;
    for (size_t i = 0; i < d->n_recs; i++) {
        sy_record *r = &d->recs[i];
        if (r->key <= above || r->val.len < one)
            continue;
        const uint8_t *o = r->val.p + r->val.len - one;
        uint64_t seq = 0;
        for (int k = 0; k < 8; k++)
            seq |= (uint64_t)o[2 + k] << (8 * k);
        if (o[0] == 1 && o[1] == 0 && seq == r->key) {
            r->val.len -= (uint32_t)one;
            stripped++;
        }
    }
    return stripped;
}

/* Makes node's hard state a version-2 one (no own-statement section: two
 * bytes after the three other empty sections), as a 0.13 node wrote it. */
static void hardstate_as_version_2(harness *h, uint32_t node)
{
    h_disk *d = &h->disk[node];
    assert_true(d->hs_len > PBFT_HS_FIXED);
    assert_int_equal(d->hs[0], 3);
    size_t at = PBFT_HS_FIXED + (size_t)d->hs[PBFT_HS_FIXED - 1] * (1 + SY_SIG_LEN) + 6;
    assert_true(d->hs_len >= at + 2);
    assert_int_equal(d->hs[at], 0);
    assert_int_equal(d->hs[at + 1], 0);
    memmove(d->hs + at, d->hs + at + 2, d->hs_len - at - 2);
    d->hs_len -= 2;
    d->hs[0] = 2;
}

/* A primary pre-prepared a number, made it durable (its batch and its own
 * statement, in the number's engine record) and crashed before the
 * PRE-PREPARE left; so did every other replica. Its log gives the
 * pre-prepare back: it resends it, and the request it had ordered is
 * executed everywhere in the same view, with no view change and no
 * retransmission by the client (Castro & Liskov's message log). */
static void test_a_restarted_primary_resends_its_logged_pre_prepare_and_keeps_its_view(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    for (uint32_t k = 0; k < 5; k++)
        assert_true(op_until_executed(h, k % H_CLIENTS, 0xf, 5000));
    uint64_t before[4];
    for (uint32_t i = 0; i < 4; i++)
        before[i] = h->applied[i];
    h_submit(h, 1, 0x1u);   /* to the primary alone */
    h_process(h, 0);        /* durable, PRE-PREPARE queued ... */
    for (size_t i = 0; i < h->nq; i++)
        free(h->q[i].buf);
    h->nq = 0;              /* ... and lost in the crash of everyone */
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_restart(h, i), SY_OK);
    h_run_for(h, 300, 50);  /* idle, under request_timeout_ms (500) */
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(h_status(h, i).term, 0);
        assert_int_equal(h->applied[i], before[i] + 1);
    }
    assert_true(op_until_executed(h, 2, 0xf, 500));
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_status(h, i).term, 0);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* The same crash with a log that cannot give the pre-prepare back (written
 * by 0.13, before own statements were logged: the store of a node upgraded
 * after the crash, hard state version 2 included): nothing in
 * that view can fill the number, and in-order execution would stop at it
 * until some request's timer forced a view change. The restarted primary
 * hands its view on at once instead: the cluster changes view while idle,
 * and the first request afterwards executes within one request timeout. */
static void test_a_restarted_primary_without_its_log_entry_hands_its_view_on(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    for (uint32_t k = 0; k < 5; k++)
        assert_true(op_until_executed(h, k % H_CLIENTS, 0xf, 5000));
    uint64_t before = h->applied[0];
    h_submit(h, 1, 0x1u);
    h_process(h, 0);
    for (size_t i = 0; i < h->nq; i++)
        free(h->q[i].buf);
    h->nq = 0;
    assert_int_equal(strip_own_sections(h, 0, before), 1);
    hardstate_as_version_2(h, 0);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_restart(h, i), SY_OK);
    h_run_for(h, 200, 50);  /* idle, well under request_timeout_ms (500) */
    for (uint32_t i = 0; i < 4; i++)
        assert_true(h_status(h, i).term >= 1);
    assert_true(op_until_executed(h, 2, 0xf, 500));
    for (uint32_t i = 0; i < 4; i++)
        assert_true(h->applied[i] > before);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Queued PREPAREs from `from` at (view, seq) for digest d. */
static uint32_t queued_prepares(harness *h, uint32_t from, uint64_t view, uint64_t seq,
                                const sy_digest *d)
{
    uint32_t n = 0;
    sy_env_opts o = { .cluster_id = H_CLUSTER, .dir = &h->nodes_dir, .verifier = &h->ver };
    for (size_t i = 0; i < h->nq; i++) {
        sy_env env;
        if (h->q[i].from != from || sy_env_decode(&o, h->q[i].buf, h->q[i].len, &env, NULL))
            continue;
        const sy_pbft_stmt *st = &env.msg.u.pbft.stmt;
        if (env.msg.type == SY_MSG_PBFT_PREPARE && st->view == view && st->seq == seq &&
            sy_digest_eq(&st->digest, d))
            n++;
        sy_env_free(&env);
    }
    return n;
}

/* Node 3 is down for good, so every commit needs the other three. Backup 2
 * sends its PREPARE for a new number and crashes before it sees the
 * others' (so before its COMMIT). Without its log it could not vote at
 * that number again in this view (it might have voted for another digest
 * there) and the number waited for a view change; with its PREPARE logged
 * it knows what it signed, takes the others' retransmitted votes, commits,
 * and the request executes in the same view. A second pre-prepare from the
 * primary for that number, with another batch, is what it always was:
 * evidence, and no vote. */
/* Node 3 down for good; backups 1 and 2 send their PREPAREs for the next
 * number, and node 2 crashes before any other vote reaches it. Returns the
 * applied index of nodes 0-2 before that number. */
static uint64_t backup_prepares_then_crashes(harness *h)
{
    h->down[3] = true;
    for (uint32_t k = 0; k < 3; k++)
        assert_true(op_until_executed(h, k % H_CLIENTS, 0x7, 5000));
    uint64_t before = h->applied[0];
    for (uint32_t i = 1; i < 3; i++)
        assert_int_equal(h->applied[i], before);
    h_submit(h, 1, 0x1u);
    h_process(h, 0);               /* the PRE-PREPARE */
    h_deliver_queued(h, UINT32_MAX);
    h_process(h, 1);
    h_process(h, 2);               /* both PREPAREs durable and queued */
    h_deliver_queued(h, 2);        /* node 2 crashes before any arrives */
    return before;
}

static void test_a_restarted_backup_commits_what_it_prepared_before_the_crash(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    uint64_t b0 = backup_prepares_then_crashes(h);
    uint64_t before[3] = { b0, b0, b0 };
    assert_int_equal(h_restart(h, 2), SY_OK);
    /* the primary equivocates at that number, to node 2 alone */
    static const uint8_t other[1] = { 0x90 };   /* an empty batch */
    uint64_t seq = before[0] + 1;
    sy_msg m = { .type = SY_MSG_PBFT_PRE_PREPARE };
    sy_pbft_stmt *st = &m.u.pbft.stmt;
    st->view = 0;
    st->seq = seq;
    st->replica = 0;
    st->batch = (sy_bytes){ other, sizeof other };
    sy_hash(other, sizeof other, &st->digest);
    uint8_t sb[SY_PBFT_STMT_MAX];
    size_t sl = sy_pbft_stmt_bytes(H_CLUSTER, SY_MSG_PBFT_PRE_PREPARE, 0, seq, &st->digest, 0, sb);
    sy_sign(&h->sg[0], sb, sl, &st->sig);
    sy_buf eb;
    sy_buf_init(&eb);
    assert_int_equal(sy_env_encode(H_CLUSTER, 0, &m, &h->sg[0], &eb), SY_OK);
    h_msg forged = { 0, 2, eb.p, eb.len };
    h_deliver(h, &forged);
    sy_buf_free(&eb);
    h_process(h, 2);
    assert_int_equal(queued_prepares(h, 2, 0, seq, &st->digest), 0);
    assert_true(h_status(h, 2).evidence >= 1);
    h_run_for(h, 300, 50);         /* under request_timeout_ms (500) */
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(h_status(h, i).term, 0);
        assert_int_equal(h->applied[i], before[i] + 1);
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Votes node 2 sends at (view 0, vt_seq) for a digest other than vt_d. */
static uint64_t vt_seq;
static sy_digest vt_d;
static uint32_t vt_other;
static bool filter_count_other_votes(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)to;
    if (from == 2 && (m->type == SY_MSG_PBFT_PREPARE || m->type == SY_MSG_PBFT_COMMIT) &&
        m->u.pbft.stmt.view == 0 && m->u.pbft.stmt.seq == vt_seq &&
        !sy_digest_eq(&m->u.pbft.stmt.digest, &vt_d))
        vt_other++;
    return true;
}

/* The same crash, but node 2's log names a digest its batch does not have
 * (a damaged record): it cannot know what it signed, so it restores
 * nothing there and signs nothing for that digest: it stays silent at that
 * number in that view, which waits (here, for the view change a client's
 * timer would force). */
static void test_a_logged_statement_whose_batch_does_not_match_is_not_restored(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    uint64_t before = backup_prepares_then_crashes(h);
    const size_t one = 2 + PBFT_OWN_ITEM_LEN;   /* a one-item own section */
    bool damaged = false;
    h_disk *d = &h->disk[2];
    for (size_t i = 0; i < d->n_recs; i++) {
        sy_record *r = &d->recs[i];
        if (r->key == before + 1 && r->val.len >= one) {
            uint8_t *o = (uint8_t *)(uintptr_t)r->val.p + r->val.len - one;
            assert_int_equal(o[0], 1);
            memcpy(vt_d.b, o + 2 + 8 + 8, SY_DIGEST_LEN);
            o[2 + 8 + 8] ^= 0x01;   /* the first byte of the logged digest */
            damaged = true;
        }
    }
    assert_true(damaged);
    vt_seq = before + 1;
    vt_other = 0;
    h->filter = filter_count_other_votes;
    assert_int_equal(h_restart(h, 2), SY_OK);
    h_run_for(h, 300, 50);
    assert_int_equal(vt_other, 0);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(h->applied[i], before);
    assert_int_equal(h->violations, 0);
    h->filter = NULL;
    h_free(h);
}

/* The digests node 2 signed PREPAREs for at (view 0, seq 5), as sent. */
static sy_digest st_prep5[8];
static uint32_t st_nprep5;
static bool st_isolate;   /* node 2 hears only PRE-PREPAREs and says nothing */
static bool st_no_state;  /* after the restart: no state transfer to node 2 */
static bool filter_prepare_then_transfer(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    if (m->type == SY_MSG_PBFT_CHECKPOINT)
        return false;   /* checkpoint 4 never goes stable */
    if (from == 2 && m->type == SY_MSG_PBFT_PREPARE && m->u.pbft.stmt.view == 0 &&
        m->u.pbft.stmt.seq == 5) {
        bool seen = false;
        for (uint32_t i = 0; i < st_nprep5; i++)
            seen |= sy_digest_eq(&st_prep5[i], &m->u.pbft.stmt.digest);
        if (!seen && st_nprep5 < 8)
            st_prep5[st_nprep5++] = m->u.pbft.stmt.digest;
    }
    if (st_isolate && (from == 2 || (to == 2 && m->type != SY_MSG_PBFT_PRE_PREPARE)))
        return false;
    if (st_no_state && to == 2 && m->type == SY_MSG_PBFT_STATE)
        return false;
    return true;
}

static void tweak_equivocating_primary_k4(uint32_t node, sy_engine_cfg *c)
{
    c->batch_max = 1;
    c->checkpoint_interval = 4;
    if (node == 0)
        c->test_behaviour = SY_PBFT_EQUIVOCATE;
}

/* An equivocating primary gives backup 2 another batch than the rest at
 * every number, and 2 votes PREPARE for it. The others commit theirs; 2
 * catches up by state transfer, which puts their certified entries into
 * its slots, and stops executing at checkpoint 4 (not stable), holding
 * entry 5 unexecuted with the others' digest -- beside its own PREPARE for
 * the other one. It crashes there. Its log must not name the slot's new
 * digest as one it prepared: after the restart it would sign a PREPARE for
 * it, the second digest it signed at (0, 5), evidence against a correct
 * replica (a review found this). */
static void test_state_transfer_does_not_make_a_restarted_replica_equivocate(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_equivocating_primary_k4);
    h->filter = filter_prepare_then_transfer;
    st_nprep5 = 0;
    st_isolate = true;
    for (uint32_t k = 0; k < 5; k++)
        assert_true(op_until_executed(h, k % H_CLIENTS, 0xb, 5000));
    st_isolate = false;
    bool crashed = false;
    for (int round = 0; round < 4000 && !crashed; round++) {
        if (round % 10 == 0) {
            h->now += 50;
            for (uint32_t i = 0; i < h->n; i++) {
                sy_input in = { .kind = SY_IN_TICK, .now_ms = h->now };
                h_step(h, i, &in);
            }
        }
        for (uint32_t i = 0; i < h->n && !crashed; i++) {
            h_process(h, i);
            if (i == 2 && h->applied[2] == 4)
                crashed = true;   /* entry 5 is in its slot, unexecuted */
        }
        if (crashed) {
            for (size_t i = 0; i < h->nq; i++)
                free(h->q[i].buf);
            h->nq = 0;   /* the round node 2 crashes in: nothing more is delivered */
        }
        h_deliver_queued(h, UINT32_MAX);
    }
    assert_true(crashed);
    assert_int_equal(st_nprep5, 1);   /* the other batch's digest, before the crash */
    assert_int_equal(h_restart(h, 2), SY_OK);
    st_no_state = true;
    h_run_for(h, 1000, 50);
    st_no_state = false;
    assert_int_equal(st_nprep5, 1);
    h->filter = NULL;
    h_free(h);
}

/* A hard state from a newer synod (a format above this build's) is named
 * as such, SY_EVERSION, which the daemon reports as "run the newer
 * binary" (exit 2); a version byte no synod writes (0, or far past ours)
 * is damage, as are bytes too short for a header. */
static void test_a_hard_state_from_a_newer_synod_is_refused_by_version(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, tweak_one_per_batch);
    assert_true(op_until_executed(h, 0, 0xf, 5000));
    h_disk *d = &h->disk[1];
    assert_true(d->hs_len > 0);
    uint8_t v = d->hs[0];
    d->hs[0] = (uint8_t)(v + 1);
    assert_int_equal(h_restart(h, 1), SY_EVERSION);
    d->hs[0] = 0;
    assert_int_equal(h_restart(h, 1), SY_ECORRUPT);
    d->hs[0] = 200;
    assert_int_equal(h_restart(h, 1), SY_ECORRUPT);
    d->hs[0] = v;
    assert_int_equal(h_restart(h, 1), SY_OK);
    assert_true(op_until_executed(h, 1, 0xf, 5000));
    h_free(h);
}

/* One replica (n = 1, f = 0, which the configuration allows) left idle:
 * its idle probe has no peer to ask (the rotation over peers used to spin
 * for good here: a hung node at 100% CPU), and it goes on serving. */
static void test_a_single_replica_cluster_idles_and_serves(void **state)
{
    (void)state;
    harness *h = h_new(1, 0, false, 16, tweak_one_per_batch);
    assert_true(op_until_executed(h, 0, 0x1, 5000));
    h_run_for(h, 10000, 50);   /* many heartbeats with nothing to do */
    assert_true(op_until_executed(h, 1, 0x1, 5000));
    assert_int_equal(h->applied[0], 2);
    h_free(h);
}

/* n requests, one after another from the clients in turn, each until
 * the replicas in `nodes` executed it. */
static void ops_until_executed(harness *h, uint32_t n, uint32_t nodes)
{
    for (uint32_t r = 0; r < n; r++)
        assert_true(op_until_executed(h, r % H_CLIENTS, nodes, 5000));
}

/* CHECKPOINTs for one sequence number are lost. */
static uint64_t lost_ckpt_seq;
static bool lose_one_checkpoint(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)from;
    (void)to;
    return m->type != SY_MSG_PBFT_CHECKPOINT || m->u.pbft.stmt.seq != lost_ckpt_seq;
}

/* The end of the next two scenarios: the primary is lost for good,
 * replicas 1 and 2 restart, replica 3 (behind the stable checkpoint 4)
 * comes back and must install 4's state and take entries 5..8 from the
 * restarted two; then a new request executes and checkpoint 8 is stable
 * everywhere (1 and 2 signed it again at boot). */
static void restart_1_2_and_catch_3_up(harness *h)
{
    h->filter = NULL;
    h->down[0] = true;   /* for good */
    assert_int_equal(h_restart(h, 1), SY_OK);
    assert_int_equal(h_restart(h, 2), SY_OK);
    h->down[3] = false;
    assert_true(op_until_executed_via(h, 0, 0xe, 0xe, 60000));
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(h->applied[i], 9);
        assert_true(sy_digest_eq(&h->state[i], &h->state[1]));
        assert_true(h_status(h, i).snap_index >= 8);
    }
    assert_int_equal(h->installs[3], 1);   /* checkpoint 4's state, then entries */
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Replicas 1 and 2 restart after executing checkpoint 8 but before it is
 * stable (its votes lost); the primary is gone for good, replica 3 lags
 * behind the stable checkpoint 4. Replica 3 can only catch up from the
 * two restarted replicas: they must still serve checkpoint 4's state and
 * the certified entries 5..8 above it -- which their stores keep until 8
 * is stable, the snapshot taken at 8 kept beside 4's (a review of the
 * daemon found it compacting, and overwriting 4's snapshot, at 8) -- and
 * sign checkpoint 8 again, so it goes stable and the cluster goes on. */
static void test_restarted_replicas_still_serve_the_stable_checkpoint_and_the_log_above_it(
    void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->down[3] = true;
    ops_until_executed(h, 4, 0x7);
    h_run(h);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(h_status(h, i).snap_index, 4);
    lost_ckpt_seq = 8;
    h->filter = lose_one_checkpoint;
    ops_until_executed(h, 4, 0x7);
    h_run(h);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(h->applied[i], 8);
        assert_int_equal(h_status(h, i).snap_index, 4);
        assert_int_equal(h->disk[i].n_ckpts, 1);   /* 8's, taken, pending */
        assert_int_equal(h->disk[i].ckpt_index[0], 8);
        assert_int_equal(h->disk[i].snap_index, 4);
    }
    restart_1_2_and_catch_3_up(h);
}

/* The same with two checkpoints executed above the stable one before
 * either is stable (the window holds two intervals): no CHECKPOINT gets
 * through while replicas 0-2 execute 1..8, then 4 goes stable while 8's
 * votes are still lost. The stores must keep 4's state (taken while 8's
 * was not yet), not only the newest (a review found the first version of
 * this change keeping one pending snapshot: 4's state was gone). */
static void test_restarted_replicas_serve_a_checkpoint_that_went_stable_below_a_newer_one(
    void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->down[3] = true;
    h->filter = no_checkpoints;
    ops_until_executed(h, 8, 0x7);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(h_status(h, i).snap_index, 0);
        assert_int_equal(h->disk[i].n_ckpts, 2);   /* 4's and 8's */
    }
    lost_ckpt_seq = 8;
    h->filter = lose_one_checkpoint;
    h_run_for(h, 2000, 50);   /* the heartbeat repeats the unstable checkpoints */
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(h_status(h, i).snap_index, 4);
        assert_int_equal(h->disk[i].snap_index, 4);
        assert_int_equal(h->disk[i].n_ckpts, 1);
        assert_int_equal(h->disk[i].base, 4);
    }
    restart_1_2_and_catch_3_up(h);
}

/* Every replica executes to the top of its window (h + L = 8) while no
 * checkpoint vote gets through, then all restart. Nothing can execute
 * above 8 until a checkpoint is stable: each must sign its checkpoint
 * again from the snapshot its store kept, or the cluster stops for good. */
static void test_a_full_window_of_unstable_checkpoints_survives_a_restart_of_every_replica(
    void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->filter = no_checkpoints;
    ops_until_executed(h, 8, 0xf);
    h_run(h);
    assert_false(op_until_executed(h, 0, 0xf, 3000));   /* the window is full */
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(h->applied[i], 8);
        assert_int_equal(h_status(h, i).snap_index, 0);
        assert_int_equal(h_restart(h, i), SY_OK);
    }
    h->filter = NULL;
    assert_true(op_until_executed(h, 1, 0xf, 30000));
    for (uint32_t i = 0; i < 4; i++) {
        assert_true(h_status(h, i).snap_index >= 8);
        assert_true(sy_digest_eq(&h->state[i], &h->state[0]));
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* A store written by 0.14 held the snapshot of a checkpoint not yet
 * stable as its only one, the log compacted through it: the same full
 * window, each disk rewritten that way before the restart. The engine
 * signs that checkpoint again from it, as from a pending one. */
static void test_a_0_14_store_whose_snapshot_is_above_h_is_signed_again(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->filter = no_checkpoints;
    ops_until_executed(h, 8, 0xf);
    h_run(h);
    for (uint32_t i = 0; i < 4; i++) {
        h_disk *d = &h->disk[i];
        assert_int_equal(d->n_ckpts, 2);
        assert_int_equal(d->ckpt_index[1], 8);
        memcpy(d->snap, d->ckpt[1], d->ckpt_len[1]);
        d->snap_len = d->ckpt_len[1];
        d->snap_index = 8;
        d->have_snap = true;
        d->n_ckpts = 0;
        h_disk_drop_upto(d, 8);
        d->base = 8;
        assert_int_equal(h_restart(h, i), SY_OK);
    }
    h->filter = NULL;
    assert_true(op_until_executed(h, 1, 0xf, 30000));
    for (uint32_t i = 0; i < 4; i++) {
        assert_true(h_status(h, i).snap_index >= 8);
        assert_true(sy_digest_eq(&h->state[i], &h->state[0]));
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Replica 1 crashes after executing checkpoint 8 but before its host
 * stored the snapshot of it; replica 3 is down, so 8 goes stable only
 * with replica 1's vote. The restarted replica must take that snapshot
 * and sign 8 -- whether the restart hands entries 5..8 to its host again
 * (its state machine came back from checkpoint 4's snapshot: the ready
 * that carries them stops at 8 for the snapshot) or its state machine was
 * durable at 8 (the daemon's KV: the first ready asks for the snapshot at
 * once). Before, the engine asked for a checkpoint's snapshot only when
 * it executed it, and no restarted replica ever voted for that one. */
static void test_a_replica_that_crashed_before_storing_its_checkpoint_snapshot_takes_it(
    void **state)
{
    (void)state;
    for (int durable = 0; durable < 2; durable++) {
        harness *h = h_new(4, 1, false, 4, tweak_k4);
        h->down[3] = true;
        ops_until_executed(h, 4, 0x7);
        h_run(h);
        assert_int_equal(h_status(h, 1).snap_index, 4);
        h->lose_next_snapshot[1] = true;
        ops_until_executed(h, 4, 0x7);
        h_run_for(h, 1000, 50);
        assert_int_equal(h->applied[1], 8);
        for (uint32_t i = 0; i < 3; i++)
            assert_int_equal(h_status(h, i).snap_index, 4);   /* 1's vote is missing */
        h->durable_sm[1] = durable;
        assert_int_equal(h_restart(h, 1), SY_OK);
        assert_int_equal(h->applied[1], durable ? 8 : 4);
        h_run_for(h, 2000, 50);
        for (uint32_t i = 0; i < 3; i++) {
            assert_int_equal(h->applied[i], 8);
            assert_int_equal(h_status(h, i).snap_index, 8);
            assert_true(sy_digest_eq(&h->state[i], &h->state[0]));
        }
        assert_int_equal(h->disk[1].snap_index, 8);   /* stored, and promoted */
        assert_int_equal(h->violations, 0);
        h_free(h);
    }
}

/* The same crash, but checkpoint 8 went stable on the others' votes
 * (replica 3 up) before replica 1's host stored its snapshot: the store
 * compacted through 8 with no state of 8 in it. At the restart replica
 * 1 takes it -- its state machine durable at 8 -- and can serve it. */
static void test_a_checkpoint_stable_before_its_snapshot_was_stored_is_taken_at_restart(
    void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    ops_until_executed(h, 4, 0xf);
    h_run(h);
    h->lose_next_snapshot[1] = true;
    ops_until_executed(h, 4, 0xf);
    h_run_for(h, 1000, 50);
    assert_int_equal(h_status(h, 1).snap_index, 8);   /* stable on 0, 2, 3 */
    assert_int_equal(h->disk[1].snap_index, 4);       /* but no state of 8 */
    h->durable_sm[1] = true;
    assert_int_equal(h_restart(h, 1), SY_OK);
    h_run_for(h, 1000, 50);
    assert_int_equal(h->disk[1].snap_index, 8);
    assert_int_equal(h_status(h, 1).snap_index, 8);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Replica 1 executes 5..12 without storing snapshots of 8 and 12
 * (its CHECKPOINT inputs are held back, so nothing goes stable at it).
 * It restarts with its state machine at 4: boot cut at 8. Before its
 * first ready, the others' CHECKPOINT(12) votes arrive: 12 goes stable
 * (executed is 12). The first ready then compacts the log through 12
 * while handing the host only 5..8: the daemon (sy_txn_compact in the
 * same txn as the applies) would delete 9..12 with its KV at 8 (a
 * review found it). The ready must cut again from the new h. */
static held_q ck_q;
static bool hold_ck_to_1(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    if (m->type != SY_MSG_PBFT_CHECKPOINT || to != 1 || ck_q.releasing)
        return true;
    if (m->u.pbft.stmt.seq == 12)
        hq_hold(h, &ck_q, from, to, m);
    return false;
}

static void test_a_checkpoint_stable_past_the_boot_cut_moves_the_cut(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    ops_until_executed(h, 4, 0xf);
    h_run(h);
    assert_int_equal(h_status(h, 1).snap_index, 4);
    h->filter = hold_ck_to_1;
    h->lose_next_snapshot[1] = true;
    ops_until_executed(h, 4, 0xf);
    assert_int_equal(h->applied[1], 8);
    assert_false(h->lose_next_snapshot[1]);
    h->lose_next_snapshot[1] = true;
    ops_until_executed(h, 4, 0xf);
    h_run_for(h, 500, 50);
    assert_int_equal(h->applied[1], 12);
    assert_int_equal(h_status(h, 1).snap_index, 4);
    assert_int_equal(h->disk[1].n_ckpts, 0);
    assert_true(ck_q.n >= 3);
    assert_int_equal(h_status(h, 0).snap_index, 12);
    assert_int_equal(h_restart(h, 1), SY_OK);
    assert_int_equal(h->applied[1], 4);
    while (ck_q.head < ck_q.n)
        hq_release(h, &ck_q, 0);
    assert_int_equal(h_status(h, 1).snap_index, 12);
    h_process(h, 1);
    assert_true(h->compacted[1] <= h->applied[1]);
    h->filter = NULL;
    h_run_for(h, 1000, 50);
    assert_int_equal(h->applied[1], 12);
    assert_true(sy_digest_eq(&h->state[1], &h->state[0]));
    assert_int_equal(h->violations, 0);
    hq_reset(&ck_q);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_larger_than_a_chunk_moves_in_verified_chunks),
        cmocka_unit_test(test_backups_that_installed_state_still_accuse_a_censoring_primary),
        cmocka_unit_test(test_a_silent_responder_loses_the_fetch_a_slow_one_keeps_it),
        cmocka_unit_test(test_entries_above_the_snapshot_follow_an_install_in_an_idle_cluster),
        cmocka_unit_test(test_replica_back_in_an_idle_cluster_catches_up_by_itself),
        cmocka_unit_test(test_replica_alone_in_a_view_change_catches_up_in_an_idle_cluster),
        cmocka_unit_test(test_a_voted_batch_stays_durable_across_two_restarts),
        cmocka_unit_test(test_a_window_lowered_under_held_certificates_is_refused),
        cmocka_unit_test(test_a_fetch_slower_than_a_checkpoint_interval_completes),
        cmocka_unit_test(test_lagging_replica_catches_up_from_restarted_peers_without_checkpoint),
        cmocka_unit_test(test_restarted_replica_keeps_commit_certificates_of_executed_entries),
        cmocka_unit_test(test_prepared_batch_survives_a_restart_of_every_replica),
        cmocka_unit_test(test_restarted_old_primary_does_not_propose_over_transferred_entries),
        cmocka_unit_test(test_a_restarted_primary_resends_its_logged_pre_prepare_and_keeps_its_view),
        cmocka_unit_test(test_a_restarted_primary_without_its_log_entry_hands_its_view_on),
        cmocka_unit_test(test_a_restarted_backup_commits_what_it_prepared_before_the_crash),
        cmocka_unit_test(test_a_logged_statement_whose_batch_does_not_match_is_not_restored),
        cmocka_unit_test(test_state_transfer_does_not_make_a_restarted_replica_equivocate),
        cmocka_unit_test(test_a_hard_state_from_a_newer_synod_is_refused_by_version),
        cmocka_unit_test(test_a_single_replica_cluster_idles_and_serves),
        cmocka_unit_test(test_restarted_replicas_still_serve_the_stable_checkpoint_and_the_log_above_it),
        cmocka_unit_test(test_a_full_window_of_unstable_checkpoints_survives_a_restart_of_every_replica),
        cmocka_unit_test(test_restarted_replicas_serve_a_checkpoint_that_went_stable_below_a_newer_one),
        cmocka_unit_test(test_a_0_14_store_whose_snapshot_is_above_h_is_signed_again),
        cmocka_unit_test(test_a_replica_that_crashed_before_storing_its_checkpoint_snapshot_takes_it),
        cmocka_unit_test(test_a_checkpoint_stable_before_its_snapshot_was_stored_is_taken_at_restart),
        cmocka_unit_test(test_a_checkpoint_stable_past_the_boot_cut_moves_the_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
