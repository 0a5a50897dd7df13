/* Raft engine: snapshots, ReadIndex, leadership transfer, membership
 * changes and commit evidence, as cluster transcripts through
 * tests/unit/raft_harness.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "raft_harness.h"

static void submit(h_cluster *c, uint32_t l, uint32_t client, uint64_t from, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++)
        assert_int_equal(h_request(c, l, client, from + k), SY_OK);
}

static size_t count_rejects(h_node *nd, int status)
{
    size_t k = 0;
    for (size_t i = 0; i < nd->n_rejects; i++)
        if (nd->rejects[i].status == status)
            k++;
    return k;
}

/* ---- acks ---- */

static void follower_gets_append(void *e, uint64_t prev, uint64_t read_ctx)
{
    uint8_t data[1] = { 'x' };
    sy_entry ent = { prev + 1, 1, SY_ENTRY_NORMAL, { data, 1 } };
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_RAFT_APPEND;
    m.u.append = (sy_raft_append){ .term = 1, .prev_index = prev, .prev_term = prev ? 1 : 0,
                                   .read_ctx = read_ctx, .n_entries = 1, .entries = &ent };
    sy_input in = { .kind = SY_IN_MSG, .now_ms = 10 };
    in.u.msg.from = 0;
    in.u.msg.msg = &m;
    assert_int_equal(sy_raft_ops.step(e, &in), SY_OK);
}

static size_t acks_in(const sy_ready *rd, const sy_raft_append_resp **last)
{
    size_t k = 0;
    for (size_t i = 0; i < rd->n_msgs; i++)
        if (rd->msgs[i].msg.type == SY_MSG_RAFT_APPEND_RESP) {
            *last = &rd->msgs[i].msg.u.append_resp;
            k++;
        }
    return k;
}

/* Two appends that arrive while one write is in flight are answered by
 * one ack after the next write: the highest match and read round, so the
 * leader verifies one signature instead of two and learns as much. (The
 * ack of write 1, handed out already, is not touched: the merge looks only
 * at messages not yet handed out.) */
static void test_follower_answers_appends_of_one_write_with_one_ack(void **state)
{
    (void)state;
    sy_engine_cfg cfg = h_default_cfg(1, 3);
    void *e = NULL;
    assert_int_equal(sy_raft_ops.create(&cfg, NULL, &e), SY_OK);
    sy_ready rd;
    const sy_raft_append_resp *a = NULL;
    follower_gets_append(e, 0, 3);
    sy_raft_ops.ready(e, &rd);             /* write 1 in flight: entry 1 */
    assert_int_equal(acks_in(&rd, &a), 1);
    assert_int_equal(a->match_index, 1);
    follower_gets_append(e, 1, 4);         /* both arrive during write 1 */
    follower_gets_append(e, 2, 5);
    sy_raft_ops.advance(e, 10);
    sy_raft_ops.ready(e, &rd);             /* write 2: entries 2 and 3 */
    assert_int_equal(rd.n_entries, 2);
    assert_int_equal(acks_in(&rd, &a), 1);
    assert_true(a->success);
    assert_int_equal(a->match_index, 3);
    assert_int_equal(a->read_ctx, 5);
    sy_raft_ops.advance(e, 10);
    sy_raft_ops.destroy(e);
}

/* ---- snapshots ---- */

/* A follower holds entries 1..5 from the leader (and acked them: an ack on
 * its way makes the leader count them). A snapshot at 3 -- sent on stale
 * progress, or retransmitted -- describes a prefix of its log. It must not
 * be installed: installing empties the log, so entries 4 and 5, possibly
 * counted toward a commit, would be gone (thesis Figure 5.3 step 6 keeps
 * them). The answer is "done at 3" and the log stays 1..5. */
static void test_snapshot_of_a_prefix_of_the_log_keeps_the_entries_after_it(void **state)
{
    (void)state;
    sy_engine_cfg cfg = h_default_cfg(1, 3);
    void *e = NULL;
    assert_int_equal(sy_raft_ops.create(&cfg, NULL, &e), SY_OK);
    sy_ready rd;
    for (uint64_t prev = 0; prev < 5; prev++) {
        follower_gets_append(e, prev, 0);
        sy_raft_ops.ready(e, &rd);
        sy_raft_ops.advance(e, 10);
    }
    sy_engine_status st;
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.last_index, 5);
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_RAFT_SNAPSHOT;
    m.u.snap = (sy_raft_snapshot){ .term = 1, .last_index = 3, .last_term = 1, .offset = 0,
                                   .done = true, .data = { (const uint8_t *)"state", 5 } };
    m.u.snap.members.n_voters = 3;
    for (uint32_t i = 0; i < 3; i++)
        m.u.snap.members.voters[i] = i;
    sy_input in = { .kind = SY_IN_MSG, .now_ms = 20 };
    in.u.msg.from = 0;
    in.u.msg.msg = &m;
    assert_int_equal(sy_raft_ops.step(e, &in), SY_OK);
    sy_raft_ops.ready(e, &rd);
    assert_false(rd.snapshot_install);
    assert_int_equal(rd.truncate_from, 0);
    size_t resps = 0;
    for (size_t i = 0; i < rd.n_msgs; i++)
        if (rd.msgs[i].msg.type == SY_MSG_RAFT_SNAPSHOT_RESP) {
            resps++;
            assert_true(rd.msgs[i].msg.u.snap_resp.done);
            assert_int_equal(rd.msgs[i].msg.u.snap_resp.last_index, 3);
        }
    assert_int_equal(resps, 1);
    sy_raft_ops.advance(e, 20);
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.last_index, 5);
    sy_raft_ops.destroy(e);
}

static void test_lagging_follower_gets_snapshot_after_compaction(void **state)
{
    (void)state;
    h_cluster c;
    h_init_cfg(&c, 3, true, true);
    for (uint32_t i = 0; i < 3; i++)
        c.cfg[i].batch_bytes_max = 1024;   /* snapshot goes in several chunks */
    h_start(&c);
    uint32_t l = h_elect(&c, 2000);
    uint32_t f = (l + 1) % 3, g = (l + 2) % 3;
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 5);
    h_run(&c, 20);
    h_isolate(&c, f, true);
    /* 200 more entries while f is away, then everyone else compacts */
    for (uint64_t k = 0; k < 200; k++) {
        submit(&c, l, SY_CLIENT_ID_BASE, 6 + k, 1);
        h_run(&c, 1);
    }
    assert_int_equal(h_snapshot(&c, l, 5000), SY_OK);
    assert_int_equal(h_snapshot(&c, g, 5000), SY_OK);
    h_ready(&c, l);
    h_ready(&c, g);
    sy_engine_status st = h_status(&c, l);
    assert_true(st.snap_index > 150);
    assert_true(c.node[l].log.v[0].index > h_status(&c, f).last_index + 1);   /* compacted past f */
    h_isolate(&c, f, false);
    h_run(&c, 200);
    /* f restored the leader's snapshot, then caught up from the log */
    assert_int_equal(c.node[f].snap_index, st.snap_index);
    assert_int_equal(c.node[f].snap_len, 5000);
    assert_memory_equal(c.node[f].snap_data, c.node[l].snap_data, 5000);
    assert_int_equal(h_status(&c, f).commit_index, h_status(&c, l).commit_index);
    assert_int_equal(c.node[f].applied_index, c.node[l].applied_index);
    /* and keeps replicating normally */
    submit(&c, l, SY_CLIENT_ID_BASE, 1000, 3);
    h_run(&c, 20);
    assert_int_equal(c.node[f].applied_index, c.node[l].applied_index);
    assert_true(h_logs_agree(&c));
    /* a restart of f comes back from its snapshot and log */
    h_crash(&c, f);
    assert_int_equal(h_boot(&c, f), SY_OK);
    assert_int_equal(h_status(&c, f).snap_index, st.snap_index);
    assert_int_equal(h_status(&c, f).last_index, h_status(&c, l).last_index);
    h_free(&c);
}

/* RAFT_COMPACT_KEEP + 30 writes at leader l, one entry per request (past
 * what compaction keeps), and time for every node to apply them. */
static void writes_past_compaction(h_cluster *c, uint32_t l)
{
    for (uint64_t k = 1; k <= RAFT_COMPACT_KEEP + 30; k++) {
        submit(c, l, SY_CLIENT_ID_BASE, k, 1);
        h_run(c, 1);
    }
    h_run(c, 20);
}

/* A follower whose disk died comes back on an empty one (docs/operations.md,
 * section 7) while the leader still counts it as holding everything it
 * acknowledged: the leader must notice that it rejects entries it had, and
 * send them again (from the log, or a snapshot once compacted) -- with
 * writes going on, and with none (heartbeats only). */
static void assert_replaced_disk_catches_up(bool compact, bool writes)
{
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint32_t f = (l + 1) % 3;
    writes_past_compaction(&c, l);
    assert_int_equal(c.node[f].applied_index, c.node[l].applied_index);
    if (compact) {
        assert_int_equal(h_snapshot(&c, l, 700), SY_OK);
        h_ready(&c, l);
        assert_true(c.node[l].log.n == 0 || c.node[l].log.v[0].index > 1);
    }
    h_wipe(&c, f);
    assert_int_equal(h_boot(&c, f), SY_OK);
    assert_int_equal(h_status(&c, f).last_index, 0);
    if (writes)
        submit(&c, l, SY_CLIENT_ID_BASE, RAFT_COMPACT_KEEP + 31, 5);
    h_run(&c, 500);
    assert_int_equal(h_status(&c, l).role, SY_ROLE_LEADER);   /* no election needed */
    sy_engine_status sl = h_status(&c, l), sf = h_status(&c, f);
    assert_int_equal(sf.commit_index, sl.commit_index);
    assert_int_equal(sf.last_index, sl.last_index);
    assert_int_equal(c.node[f].applied_index, c.node[l].applied_index);
    if (compact)
        assert_int_equal(c.node[f].snap_index, c.node[l].snap_index);
    /* and it is a full member again: with the third node gone, the two
     * commit new writes */
    h_crash(&c, (l + 2) % 3);
    submit(&c, l, SY_CLIENT_ID_BASE, 100, 3);
    h_run(&c, 50);
    assert_int_equal(h_status(&c, l).commit_index, h_status(&c, l).last_index);
    assert_int_equal(c.node[f].applied_index, c.node[l].applied_index);
    assert_true(h_logs_agree(&c));
    h_free(&c);
}

static void test_follower_on_replaced_empty_disk_caught_up_while_idle(void **state)
{
    (void)state;
    assert_replaced_disk_catches_up(false, false);
}

static void test_follower_on_replaced_empty_disk_caught_up_under_writes(void **state)
{
    (void)state;
    assert_replaced_disk_catches_up(false, true);
}

static void test_follower_on_replaced_empty_disk_gets_snapshot_after_compaction(void **state)
{
    (void)state;
    assert_replaced_disk_catches_up(true, false);
    assert_replaced_disk_catches_up(true, true);
}

/* ---- rejoining after a replaced disk (cfg.rejoin) ---- */

/* Writes commit on the leader l and f while o is cut off and falls
 * behind; then f's disk dies and f restarts on an empty one (rejoin as
 * given), and the leader becomes unreachable (paused, partitioned). If
 * the empty f votes, o -- whose log lacks the committed writes -- can be
 * elected by {o, f}, and the writes are lost: thesis 3.8's warning about
 * forgotten state. Returns whether o was elected; *l_out, *f_out, *o_out
 * name the nodes, and the cluster is left in *c. */
static bool lagging_node_elected_by_a_wiped_voter(h_cluster *c, bool rejoin, uint32_t *l_out,
                                                  uint32_t *f_out, uint32_t *o_out)
{
    h_init(c, 3);
    uint32_t l = h_elect(c, 2000);
    uint32_t f = (l + 1) % 3, o = (l + 2) % 3;
    c->cut[l][o] = c->cut[o][l] = true;
    submit(c, l, SY_CLIENT_ID_BASE, 1, 20);
    h_run(c, 30);
    assert_int_equal(h_status(c, l).commit_index, h_status(c, l).last_index);
    assert_int_equal(h_status(c, f).last_index, h_status(c, l).last_index);
    assert_true(h_status(c, o).last_index < h_status(c, l).commit_index);
    h_wipe(c, f);
    c->cfg[f].rejoin = rejoin;
    assert_int_equal(h_boot(c, f), SY_OK);
    assert_int_equal(h_status(c, f).rejoining, rejoin);
    h_isolate(c, l, true);
    c->cut[l][o] = c->cut[o][l] = true;
    h_run(c, 3000);
    *l_out = l;
    *f_out = f;
    *o_out = o;
    return h_status(c, o).role == SY_ROLE_LEADER;
}

static void test_wiped_voter_without_rejoin_elects_a_leader_missing_committed_writes(void **state)
{
    (void)state;
    /* the hazard the rejoin rule exists for: it does happen without it */
    h_cluster c;
    uint32_t l, f, o;
    assert_true(lagging_node_elected_by_a_wiped_voter(&c, false, &l, &f, &o));
    assert_int_equal(h_applied_requests(&c, l), 20);
    /* the old leader comes back and follows o: the 20 writes it committed
     * and applied are in no other log, and two replicas applied different
     * entries at one index */
    h_isolate(&c, l, false);
    h_run(&c, 1000);
    assert_int_equal(h_applied_requests(&c, o), 0);
    assert_false(h_logs_agree(&c));
    h_free(&c);
}

static void test_rejoining_node_votes_for_no_one_until_caught_up(void **state)
{
    (void)state;
    h_cluster c;
    uint32_t l, f, o;
    assert_false(lagging_node_elected_by_a_wiped_voter(&c, true, &l, &f, &o));
    assert_int_equal(h_count_leaders(&c), 0);   /* the old one stepped down (6.2) */
    assert_int_equal(h_status(&c, f).role, SY_ROLE_FOLLOWER);   /* ran no election */
    assert_true(h_status(&c, f).rejoining);
    uint64_t committed = h_status(&c, l).commit_index;
    /* the leader comes back: whoever leads now holds the writes, and f
     * catches up from it; it votes again once an append with entries has
     * carried a commit index of the leader's term that it holds (an idle
     * leader's heartbeats carry one capped at what the follower holds) */
    h_isolate(&c, l, false);
    h_run(&c, 3000);
    uint32_t nl = h_leader(&c);
    assert_true(nl != SY_NO_NODE && nl != f);
    assert_true(h_status(&c, nl).commit_index >= committed);
    /* with no write at all: the append that carried the new leader's
     * no-op left before the no-op committed, and once it did the leader
     * sent the entry again with the commit (raft_replicate.c,
     * resend_commit) -- before, f waited here for the next write */
    assert_false(h_status(&c, f).rejoining);
    submit(&c, nl, SY_CLIENT_ID_BASE, 50, 1);
    h_run(&c, 100);
    assert_false(h_status(&c, f).rejoining);
    assert_int_equal(h_status(&c, f).commit_index, h_status(&c, nl).commit_index);
    assert_true(h_logs_agree(&c));
    /* a full voter again: with the leader gone, f and the other elect one */
    h_crash(&c, nl);
    uint32_t other = 3 - nl - f;
    h_run(&c, 3000);
    uint32_t l2 = h_leader(&c);
    assert_true(l2 == f || l2 == other);
    submit(&c, l2, SY_CLIENT_ID_BASE, 100, 3);
    h_run(&c, 50);
    assert_int_equal(h_status(&c, l2).commit_index, h_status(&c, l2).last_index);
    assert_true(h_status(&c, l2).commit_index >= committed);
    h_free(&c);
}

/* A node rejoining a cluster that takes no writes at all finishes on its
 * own, also when it catches up through a snapshot at the leader's last
 * index: an install carries no commit and no append with entries follows,
 * so the leader sends its last entry again (resend_commit). Before, it
 * stayed rejoining until the next write. */
static void test_rejoining_node_finishes_in_an_idle_cluster_after_a_snapshot(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint32_t f = (l + 1) % 3;
    writes_past_compaction(&c, l);
    uint64_t last = h_status(&c, l).last_index;
    assert_int_equal(h_status(&c, l).commit_index, last);
    assert_int_equal(h_snapshot(&c, l, last), SY_OK);
    h_ready(&c, l);
    h_wipe(&c, f);
    c.cfg[f].rejoin = true;
    assert_int_equal(h_boot(&c, f), SY_OK);
    h_run(&c, sy_rejoin_wait_ms(&c.cfg[f]) + 1000);
    sy_engine_status sl = h_status(&c, l), sf = h_status(&c, f);
    assert_int_equal(sl.role, SY_ROLE_LEADER);
    assert_int_equal(c.node[f].snap_index, last);   /* it came by a snapshot */
    assert_int_equal(sf.commit_index, sl.commit_index);
    assert_false(sf.rejoining);
    assert_true(h_logs_agree(&c));
    h_free(&c);
}

/* Only heartbeats reach node *ctx (raft_harness filter): it follows the
 * leader but never gets an append with entries. */
static bool only_heartbeats_to(void *ctx, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)from;
    return to != *(uint32_t *)ctx || m->type != SY_MSG_RAFT_APPEND || m->u.append.n_entries == 0;
}

/* SY_IN_TRANSFER to target (SY_NO_NODE: the leader's pick) at leader l */
static int transfer(h_cluster *c, uint32_t l, uint32_t target)
{
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_TRANSFER;
    in.u.transfer.target = target;
    return h_step(c, l, &in);
}

/* Three nodes, five writes committed; then a follower's disk dies and it
 * starts on an empty one with cfg.rejoin. Returns it; *l is the leader. */
static uint32_t follower_rejoins_after_writes(h_cluster *c, uint32_t *l)
{
    h_init(c, 3);
    *l = h_elect(c, 2000);
    uint32_t f = (*l + 1) % 3;
    submit(c, *l, SY_CLIENT_ID_BASE, 1, 5);
    h_run(c, 20);
    h_wipe(c, f);
    c->cfg[f].rejoin = true;
    assert_int_equal(h_boot(c, f), SY_OK);
    return f;
}

static void test_rejoining_node_is_deaf_at_first_then_catches_up_and_votes(void **state)
{
    (void)state;
    h_cluster c;
    uint32_t l, f = follower_rejoins_after_writes(&c, &l);
    uint64_t wait = sy_rejoin_wait_ms(&c.cfg[f]);
    /* deaf: an old leader it kept in office, or an election it voted in,
     * must be over before it answers anyone */
    h_run(&c, wait - 50);
    assert_int_equal(h_status(&c, f).last_index, 0);
    assert_int_equal(h_status(&c, f).term, 0);
    assert_true(h_status(&c, f).rejoining);
    h_run(&c, 200);
    assert_int_equal(h_status(&c, f).commit_index, h_status(&c, l).commit_index);
    assert_false(h_status(&c, f).rejoining);
    h_free(&c);
}

static void test_rejoining_node_keeps_out_of_elections_on_heartbeats_alone(void **state)
{
    (void)state;
    h_cluster c;
    uint32_t l, f = follower_rejoins_after_writes(&c, &l);
    c.filter_ctx = &f;
    c.filter = only_heartbeats_to;
    h_run(&c, sy_rejoin_wait_ms(&c.cfg[f]) + 500);
    sy_engine_status st = h_status(&c, f);
    assert_int_equal(st.leader, l);
    assert_true(st.rejoining);   /* a heartbeat's commit is capped: no proof */
    /* told to take over, it does not run */
    sy_msg tn;
    memset(&tn, 0, sizeof tn);
    tn.type = SY_MSG_RAFT_TIMEOUT_NOW;
    tn.u.timeout_now.term = st.term;
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_MSG;
    in.u.msg.from = l;
    in.u.msg.msg = &tn;
    assert_int_equal(h_step(&c, f, &in), SY_OK);
    h_run(&c, 50);
    assert_int_equal(h_status(&c, f).role, SY_ROLE_FOLLOWER);
    assert_int_equal(h_status(&c, f).term, st.term);
    /* entries flow again: it catches up and votes again */
    c.filter = NULL;
    h_run(&c, 300);
    assert_false(h_status(&c, f).rejoining);
    assert_int_equal(h_status(&c, f).commit_index, h_status(&c, l).commit_index);
    /* a lone node has no one to rejoin from */
    h_cluster one;
    h_init_cfg(&one, 1, true, true);
    one.cfg[0].rejoin = true;
    h_start(&one);
    assert_false(h_status(&one, 0).rejoining);
    assert_int_equal(h_elect(&one, 1000), 0);
    h_free(&one);
    h_free(&c);
}

/* The deaf period. Node 0 leads with slow timers (it steps down only
 * seconds after losing its quorum); it is cut off from node Y, which is
 * elected in the next term with B's vote. B's disk dies right then and B
 * comes back at once, empty, reaching node 0 first. If B answered too soon,
 * node 0 -- still leader of the old term -- would commit a write with B's
 * acknowledgement, and then Y, leader of the newer term B's old self had
 * voted for, would overwrite it through B: a write acknowledged, then gone.
 * b_election_ms sets how long B stays deaf (sy_rejoin_wait_ms of its
 * timing). *committed: node 0 applied the write B acknowledged;
 * *diverged: two replicas applied different entries at one index. */

static void stale_leader_through_a_rejoining_node(uint32_t b_election_ms, bool *committed,
                                                  bool *diverged)
{
    h_cluster c;
    h_init_cfg(&c, 3, true, true);
    c.cfg[0].election_min_ms = 5000;
    c.cfg[0].election_max_ms = 5001;
    h_start(&c);
    uint32_t l = h_elect(&c, 3000);
    if (l != 0) {   /* hand leadership to node 0 */
        assert_int_equal(transfer(&c, l, 0), SY_OK);
        h_run(&c, 50);
    }
    assert_int_equal(h_leader(&c), 0);
    submit(&c, 0, SY_CLIENT_ID_BASE, 1, 3);
    h_run(&c, 20);
    h_isolate(&c, 0, true);
    /* nodes 1 and 2 elect one of them; node 0 still leads its old term */
    uint32_t y = SY_NO_NODE;
    for (int t = 0; t < 3000 && y == SY_NO_NODE; t++) {
        h_run(&c, 1);
        for (uint32_t i = 1; i < 3; i++)
            if (h_status(&c, i).role == SY_ROLE_LEADER)
                y = i;
    }
    assert_true(y != SY_NO_NODE);
    assert_int_equal(h_status(&c, 0).role, SY_ROLE_LEADER);
    uint32_t b = 3 - y;
    /* B's disk dies; it is back at once on an empty one, rejoining, and
     * hears node 0 before Y */
    h_wipe(&c, b);
    c.cfg[b].rejoin = true;
    c.cfg[b].election_min_ms = b_election_ms;
    c.cfg[b].election_max_ms = b_election_ms + 1;
    assert_int_equal(h_boot(&c, b), SY_OK);
    c.cut[0][b] = c.cut[b][0] = false;
    c.cut[y][b] = c.cut[b][y] = true;
    h_run(&c, sy_rejoin_wait_ms(&c.cfg[b]) + 20);
    submit(&c, 0, SY_CLIENT_ID_BASE, 10, 1);
    h_run(&c, 30);
    *committed = h_applied_requests(&c, 0) == 4;
    /* now Y reaches B, and writes */
    c.cut[y][b] = c.cut[b][y] = false;
    h_run(&c, 3000);
    uint32_t nl = h_leader(&c);
    if (nl != SY_NO_NODE)
        submit(&c, nl, SY_CLIENT_ID_BASE + 1, 1, 1);
    h_run(&c, 3000);
    *diverged = !h_logs_agree(&c);
    h_free(&c);
}

static void test_rejoining_node_deaf_until_stale_leaders_stepped_down(void **state)
{
    (void)state;
    bool committed, diverged;
    /* deaf for only SY_REJOIN_WAIT_MIN_MS: the hazard happens */
    stale_leader_through_a_rejoining_node(1, &committed, &diverged);
    assert_true(committed);
    assert_true(diverged);
    /* the cluster's timing (3 x 5001 ms + 10): node 0 has stepped down by
     * the time B answers anyone, so nothing commits through B */
    stale_leader_through_a_rejoining_node(5000, &committed, &diverged);
    assert_false(committed);
    assert_false(diverged);
}

static void test_snapshot_beyond_commit_is_refused(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_SNAPSHOT;
    in.u.snapshot.index = h_status(&c, l).commit_index + 5;
    in.u.snapshot.term = h_status(&c, l).term;
    assert_int_equal(h_step(&c, l, &in), SY_EINVAL);
    h_free(&c);
}

/* ---- ReadIndex ---- */

static void test_read_index_served_only_after_heartbeat_quorum(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 3);
    h_run(&c, 10);
    uint64_t commit = h_status(&c, l).commit_index;
    c.hold = true;   /* queue messages, deliver nothing */
    assert_int_equal(h_read(&c, l, 77), SY_OK);
    h_ready(&c, l);
    assert_int_equal(c.node[l].n_reads, 0);   /* no quorum confirmation yet */
    bool hb = false;
    for (size_t k = 0; k < c.nq; k++)
        if (c.q[k].msg.type == SY_MSG_RAFT_APPEND && c.q[k].msg.u.append.read_ctx != 0)
            hb = true;
    assert_true(hb);
    c.hold = false;
    h_settle(&c);
    assert_int_equal(c.node[l].n_reads, 1);
    assert_int_equal(c.node[l].reads[0].read_id, 77);
    assert_int_equal(c.node[l].reads[0].status, SY_OK);
    assert_int_equal(c.node[l].reads[0].index, commit);
    h_free(&c);
}

static void test_read_at_follower_fails_not_leader(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint32_t f = (l + 1) % 3;
    h_read(&c, f, 5);
    h_ready(&c, f);
    assert_int_equal(c.node[f].n_reads, 1);
    assert_int_equal(c.node[f].reads[0].status, SY_ENOTLEADER);
    h_free(&c);
}

static void test_deposed_leader_read_fails(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    h_isolate(&c, l, true);
    h_read(&c, l, 9);
    h_run(&c, 50);
    assert_int_equal(c.node[l].n_reads, 0);   /* cannot confirm: still waiting */
    h_run(&c, 400);                            /* check-quorum deposes it */
    assert_int_not_equal(h_status(&c, l).role, SY_ROLE_LEADER);
    assert_int_equal(c.node[l].n_reads, 1);
    assert_int_equal(c.node[l].reads[0].status, SY_ENOTLEADER);
    h_free(&c);
}

static void test_read_waits_for_leader_to_commit_in_its_term(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 2);
    h_run(&c, 10);
    /* force a new election; catch the new leader before its no-op commits */
    uint32_t t = (l + 1) % 3;
    assert_int_equal(transfer(&c, l, t), SY_OK);
    c.hold = true;
    uint32_t nl = SY_NO_NODE;
    for (int round = 0; round < 20 && nl != t; round++) {
        h_ready_all(&c);
        /* deliver one batch by hand */
        h_msg *batch = c.q;
        size_t nb = c.nq;
        c.q = NULL;
        c.nq = c.capq = 0;
        for (size_t k = 0; k < nb; k++) {
            sy_input mi;
            memset(&mi, 0, sizeof mi);
            mi.kind = SY_IN_MSG;
            mi.u.msg.from = batch[k].from;
            mi.u.msg.msg = &batch[k].msg;
            h_step(&c, batch[k].to, &mi);
            h_msg_free(&batch[k].msg);
        }
        free(batch);
        if (h_status(&c, t).role == SY_ROLE_LEADER)
            nl = t;
    }
    assert_int_equal(nl, t);
    sy_engine_status st = h_status(&c, t);
    assert_true(st.commit_index < st.last_index);   /* no-op not committed yet */
    h_read(&c, t, 31);
    h_ready(&c, t);
    assert_int_equal(c.node[t].n_reads, 0);
    c.hold = false;
    h_settle(&c);
    assert_int_equal(c.node[t].n_reads, 1);
    assert_int_equal(c.node[t].reads[0].status, SY_OK);
    assert_int_equal(c.node[t].reads[0].index, h_status(&c, t).commit_index);
    h_free(&c);
}

/* ---- leadership transfer ---- */

static void test_leadership_transfer_to_caught_up_follower(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint32_t t = (l + 2) % 3;
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 10);
    h_run(&c, 5);
    uint64_t term = h_status(&c, l).term;
    assert_int_equal(transfer(&c, l, t), SY_OK);
    /* requests are refused while the transfer runs */
    h_request(&c, l, SY_CLIENT_ID_BASE + 1, 1);
    h_ready(&c, l);
    assert_int_equal(count_rejects(&c.node[l], SY_ENOTLEADER), 1);
    assert_int_equal(c.node[l].rejects[0].leader, t);
    h_run(&c, 20);   /* far below any election timeout */
    assert_int_equal(h_leader(&c), t);
    assert_int_equal(h_status(&c, t).term, term + 1);
    assert_int_equal(h_status(&c, l).leader, t);
    submit(&c, t, SY_CLIENT_ID_BASE, 11, 5);
    h_run(&c, 20);
    assert_int_equal(h_applied_requests(&c, l), 15);
    h_free(&c);
}

static void test_leadership_transfer_aborts_after_election_timeout(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint32_t t = (l + 1) % 3;
    h_isolate(&c, t, true);
    assert_int_equal(transfer(&c, l, t), SY_OK);
    h_run(&c, 250);   /* > election_max_ms */
    assert_int_equal(h_leader(&c), l);
    size_t before = c.node[l].n_rejects;
    h_request(&c, l, SY_CLIENT_ID_BASE, 1);
    h_run(&c, 10);
    assert_int_equal(c.node[l].n_rejects, before);   /* accepted again */
    assert_int_equal(h_applied_requests(&c, l), 1);
    h_free(&c);
}

/* Target SY_NO_NODE: the engine picks the follower whose log is furthest
 * along, here the only one that was not cut off while entries came in. */
static void test_leadership_transfer_without_target_picks_most_caught_up(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    /* the lagging follower has the lower id: picking by id would choose it */
    uint32_t a = (l + 1) % 3, b = (l + 2) % 3;
    uint32_t lag = a < b ? a : b, best = a < b ? b : a;
    h_isolate(&c, lag, true);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 10);
    h_run(&c, 5);
    h_isolate(&c, lag, false);
    assert_int_equal(transfer(&c, l, SY_NO_NODE), SY_OK);
    h_request(&c, l, SY_CLIENT_ID_BASE + 1, 1);
    h_ready(&c, l);
    assert_int_equal(count_rejects(&c.node[l], SY_ENOTLEADER), 1);
    assert_int_equal(c.node[l].rejects[0].leader, best);
    h_run(&c, 20);
    assert_int_equal(h_leader(&c), best);
    h_free(&c);
}

static bool no_timeout_now_to(void *ctx, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)from;
    return to != *(uint32_t *)ctx || m->type != SY_MSG_RAFT_TIMEOUT_NOW;
}

/* Target SY_NO_NODE (a stopping leader), and the peer picked does not run
 * (as a node still rejoining after a replaced disk ignores TimeoutNow;
 * here its TimeoutNow is lost): once election_max_ms is up the leader
 * passes it over for the next peer, which takes over. A target the caller
 * named gets no such second try (..._aborts_after_election_timeout). */
static void test_leadership_transfer_without_target_moves_on_when_the_pick_does_not_run(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 5);
    h_run(&c, 20);
    uint32_t a = (l + 1) % 3, b = (l + 2) % 3;
    uint32_t first = a < b ? a : b, second = a < b ? b : a;   /* a tie on match: lowest id */
    uint64_t term = h_status(&c, l).term;
    c.filter_ctx = &first;
    c.filter = no_timeout_now_to;
    assert_int_equal(transfer(&c, l, SY_NO_NODE), SY_OK);
    h_request(&c, l, SY_CLIENT_ID_BASE + 1, 1);
    h_ready(&c, l);
    assert_int_equal(count_rejects(&c.node[l], SY_ENOTLEADER), 1);
    assert_int_equal(c.node[l].rejects[0].leader, first);
    h_run(&c, 150);   /* < election_max_ms: still waiting on the first */
    assert_int_equal(h_leader(&c), l);
    h_run(&c, 100);
    assert_int_equal(h_leader(&c), second);
    assert_int_equal(h_status(&c, second).term, term + 1);
    c.filter = NULL;
    submit(&c, second, SY_CLIENT_ID_BASE, 6, 3);
    h_run(&c, 20);
    assert_int_equal(h_applied_requests(&c, l), 8);
    assert_int_equal(h_applied_requests(&c, first), 8);
    h_free(&c);

    /* a named target that does not run: no second try, the leader leads on */
    h_init(&c, 3);
    l = h_elect(&c, 2000);
    a = (l + 1) % 3;
    c.filter_ctx = &a;
    c.filter = no_timeout_now_to;
    assert_int_equal(transfer(&c, l, a), SY_OK);
    h_run(&c, 600);
    assert_int_equal(h_leader(&c), l);
    h_free(&c);
}

/* A single voter has nobody to hand leadership to. */
static void test_leadership_transfer_without_target_alone_refused(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 1);
    uint32_t l = h_elect(&c, 2000);
    assert_int_equal(transfer(&c, l, SY_NO_NODE), SY_EUNREACH);
    assert_int_equal(h_leader(&c), l);
    h_free(&c);
}

/* A follower that acked everything and then went quiet (crashed) ties on
 * match with the live one and has the lower id: it must not be chosen,
 * and with every peer quiet there is no target at all. */
static void test_leadership_transfer_without_target_skips_quiet_peer(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 5);
    h_run(&c, 20);
    uint32_t a = (l + 1) % 3, b = (l + 2) % 3;
    uint32_t quiet = a < b ? a : b, live = a < b ? b : a;
    h_isolate(&c, quiet, true);
    h_run(&c, 400);   /* > election_min_ms of silence from it */
    assert_int_equal(transfer(&c, l, SY_NO_NODE), SY_OK);
    h_run(&c, 20);
    assert_int_equal(h_leader(&c), live);
    h_free(&c);

    /* without check quorum the leader keeps leading while both are quiet */
    h_init_cfg(&c, 3, true, false);
    h_start(&c);
    l = h_elect(&c, 2000);
    h_isolate(&c, (l + 1) % 3, true);
    h_isolate(&c, (l + 2) % 3, true);
    h_run(&c, 150);   /* > election_min_ms */
    assert_int_equal(h_status(&c, l).role, SY_ROLE_LEADER);
    assert_int_equal(transfer(&c, l, SY_NO_NODE), SY_EUNREACH);
    h_free(&c);
}

/* ---- membership ---- */

static int conf_change(h_cluster *c, uint32_t l, uint32_t node, bool add)
{
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_CONF_CHANGE;
    in.u.conf.node = node;
    in.u.conf.add = add;
    return h_step(c, l, &in);
}

static void test_new_server_joins_as_learner_catches_up_then_votes(void **state)
{
    (void)state;
    h_cluster c;
    h_init_cfg(&c, 4, true, true);
    for (uint32_t i = 0; i < 4; i++)
        c.cfg[i].n = 3;   /* node 3 is not in the initial membership */
    h_start(&c);
    uint32_t l = h_elect(&c, 2000);
    assert_int_not_equal(l, 3);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 50);
    h_run(&c, 20);
    h_isolate(&c, 3, true);   /* it is slow to connect */
    assert_int_equal(conf_change(&c, l, 3, true), SY_OK);
    /* one change at a time */
    assert_int_equal(conf_change(&c, l, 2 == l ? 1 : 2, false), SY_EFULL);
    h_run(&c, 20);
    assert_int_equal(h_status(&c, 3).last_index, 0);   /* not promoted without catching up */
    h_isolate(&c, 3, false);
    h_run(&c, 5);
    h_run(&c, 50);
    assert_int_equal(h_status(&c, 3).role, SY_ROLE_FOLLOWER);   /* promoted to voter */
    assert_int_equal(h_applied_requests(&c, 3), 50);
    /* With 4 voters a quorum is 3: after the leader dies, the two old
     * followers can only elect someone with node 3's vote. */
    h_crash(&c, l);
    uint32_t nl = SY_NO_NODE;
    for (int k = 0; k < 100 && nl == SY_NO_NODE; k++) {
        h_run(&c, 10);
        nl = h_leader(&c);
    }
    assert_int_not_equal(nl, SY_NO_NODE);
    submit(&c, nl, SY_CLIENT_ID_BASE, 51, 5);
    h_run(&c, 20);
    assert_int_equal(h_applied_requests(&c, 3), 55);
    assert_true(h_logs_agree(&c));
    h_free(&c);
}

static void test_learner_does_not_count_toward_quorum(void **state)
{
    (void)state;
    h_cluster c;
    h_init_cfg(&c, 4, true, true);
    for (uint32_t i = 0; i < 4; i++)
        c.cfg[i].n = 3;
    h_start(&c);
    uint32_t l = h_elect(&c, 2000);
    h_isolate(&c, 3, true);   /* stays a learner: never catches up */
    assert_int_equal(conf_change(&c, l, 3, true), SY_OK);
    h_run(&c, 20);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 5);
    h_run(&c, 20);
    assert_int_equal(h_applied_requests(&c, l), 5);   /* 2 of 3 voters suffice */
    h_free(&c);
}

static void test_removed_leader_steps_down_after_commit(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    assert_int_equal(conf_change(&c, l, l, false), SY_OK);
    h_run(&c, 20);
    assert_int_not_equal(h_status(&c, l).role, SY_ROLE_LEADER);
    uint32_t nl = SY_NO_NODE;
    for (int k = 0; k < 100 && nl == SY_NO_NODE; k++) {
        h_run(&c, 10);
        nl = h_leader(&c);
    }
    assert_int_not_equal(nl, SY_NO_NODE);
    assert_int_not_equal(nl, l);
    /* the two remaining voters carry on; the removed node never campaigns */
    submit(&c, nl, SY_CLIENT_ID_BASE, 1, 4);
    h_run(&c, 500);
    assert_int_equal(h_applied_requests(&c, nl), 4);
    assert_int_equal(h_leader(&c), nl);
    assert_int_not_equal(h_status(&c, l).role, SY_ROLE_LEADER);
    h_free(&c);
}

/* ---- evidence ---- */

static void test_commit_evidence_is_signed_by_committing_node(void **state)
{
    (void)state;
    sy_simsig *reg = NULL;
    assert_int_equal(sy_simsig_new(8, &reg), SY_OK);
    sy_signer signers[3];
    sy_verifier ver;
    sy_verifier_simsig(&ver, reg);
    h_cluster c;
    h_init_cfg(&c, 3, true, true);
    for (uint32_t i = 0; i < 3; i++) {
        uint8_t seed[SY_SEED_LEN];
        memset(seed, (int)i + 1, sizeof seed);
        assert_int_equal(sy_simsig_add(reg, seed, &signers[i]), SY_OK);
        c.cfg[i].signer = &signers[i];
    }
    h_start(&c);
    uint32_t l = h_elect(&c, 2000);
    submit(&c, l, SY_CLIENT_ID_BASE, 1, 3);
    h_run(&c, 20);
    for (uint32_t i = 0; i < 3; i++) {
        h_node *nd = &c.node[i];
        assert_non_null(nd->ev_tag);
        assert_string_equal(nd->ev_tag, "SYRC");
        assert_int_equal(nd->ev_len, SY_ATTEST_LEN);
        uint32_t id = (uint32_t)nd->ev[0] << 24 | (uint32_t)nd->ev[1] << 16 |
                      (uint32_t)nd->ev[2] << 8 | nd->ev[3];
        assert_int_equal(id, i);
        uint8_t msg[128];
        size_t n = 0;
        memcpy(msg, "SYRC", 4);
        n = 4;
        msg[n++] = 4;
        memcpy(msg + n, "test", 4);
        n += 4;
        for (int b = 7; b >= 0; b--)
            msg[n++] = (uint8_t)(nd->ev_entry.term >> (8 * b));
        for (int b = 7; b >= 0; b--)
            msg[n++] = (uint8_t)(nd->ev_entry.index >> (8 * b));
        msg[n++] = nd->ev_entry.type;
        memcpy(msg + n, nd->ev_digest.b, SY_DIGEST_LEN);
        n += SY_DIGEST_LEN;
        sy_sig sig;
        memcpy(sig.b, nd->ev + 4, SY_SIG_LEN);
        assert_true(sy_verify(&ver, &signers[i].pub, msg, n, &sig));
        msg[n - 1] ^= 1;   /* another entry's digest does not verify */
        assert_false(sy_verify(&ver, &signers[i].pub, msg, n, &sig));
    }
    h_free(&c);
    sy_simsig_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follower_answers_appends_of_one_write_with_one_ack),
        cmocka_unit_test(test_snapshot_of_a_prefix_of_the_log_keeps_the_entries_after_it),
        cmocka_unit_test(test_lagging_follower_gets_snapshot_after_compaction),
        cmocka_unit_test(test_follower_on_replaced_empty_disk_caught_up_while_idle),
        cmocka_unit_test(test_follower_on_replaced_empty_disk_caught_up_under_writes),
        cmocka_unit_test(test_follower_on_replaced_empty_disk_gets_snapshot_after_compaction),
        cmocka_unit_test(test_wiped_voter_without_rejoin_elects_a_leader_missing_committed_writes),
        cmocka_unit_test(test_rejoining_node_votes_for_no_one_until_caught_up),
        cmocka_unit_test(test_rejoining_node_is_deaf_at_first_then_catches_up_and_votes),
        cmocka_unit_test(test_rejoining_node_keeps_out_of_elections_on_heartbeats_alone),
        cmocka_unit_test(test_rejoining_node_finishes_in_an_idle_cluster_after_a_snapshot),
        cmocka_unit_test(test_rejoining_node_deaf_until_stale_leaders_stepped_down),
        cmocka_unit_test(test_snapshot_beyond_commit_is_refused),
        cmocka_unit_test(test_read_index_served_only_after_heartbeat_quorum),
        cmocka_unit_test(test_read_at_follower_fails_not_leader),
        cmocka_unit_test(test_deposed_leader_read_fails),
        cmocka_unit_test(test_read_waits_for_leader_to_commit_in_its_term),
        cmocka_unit_test(test_leadership_transfer_to_caught_up_follower),
        cmocka_unit_test(test_leadership_transfer_aborts_after_election_timeout),
        cmocka_unit_test(test_leadership_transfer_without_target_picks_most_caught_up),
        cmocka_unit_test(test_leadership_transfer_without_target_alone_refused),
        cmocka_unit_test(test_leadership_transfer_without_target_skips_quiet_peer),
        cmocka_unit_test(test_leadership_transfer_without_target_moves_on_when_the_pick_does_not_run),
        cmocka_unit_test(test_new_server_joins_as_learner_catches_up_then_votes),
        cmocka_unit_test(test_learner_does_not_count_toward_quorum),
        cmocka_unit_test(test_removed_leader_steps_down_after_commit),
        cmocka_unit_test(test_commit_evidence_is_signed_by_committing_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
