/* Raft engine: elections, replication, commit rule, client handling,
 * restart. Scenarios drive engines directly through tests/unit/raft_harness.h
 * and read as transcripts: who sent what, who decided. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "raft_harness.h"

/* ---- helpers for hand-driven single-engine tests ---- */

static void *mk(uint32_t self, uint32_t n, const sy_engine_boot *boot)
{
    sy_engine_cfg cfg = h_default_cfg(self, n);
    void *e = NULL;
    assert_int_equal(sy_raft_ops.create(&cfg, boot, &e), SY_OK);
    return e;
}

static int feed(void *e, uint64_t now, uint32_t from, const sy_msg *m)
{
    sy_input in;
    memset(&in, 0, sizeof in);
    in.kind = SY_IN_MSG;
    in.now_ms = now;
    in.u.msg.from = from;
    in.u.msg.msg = m;
    return sy_raft_ops.step(e, &in);
}

static const sy_outmsg *find_msg(const sy_ready *rd, uint32_t to, uint8_t type)
{
    for (size_t i = 0; i < rd->n_msgs; i++)
        if (rd->msgs[i].to == to && rd->msgs[i].msg.type == type)
            return &rd->msgs[i];
    return NULL;
}

static sy_msg vote_msg(uint64_t term, uint64_t li, uint64_t lt, bool prevote)
{
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_RAFT_VOTE;
    m.u.vote.term = term;
    m.u.vote.last_index = li;
    m.u.vote.last_term = lt;
    m.u.vote.prevote = prevote;
    return m;
}

static sy_msg append_msg(uint64_t term, uint64_t prev, uint64_t prev_term, uint64_t commit,
                         sy_entry *ents, uint32_t n)
{
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_RAFT_APPEND;
    m.u.append.term = term;
    m.u.append.prev_index = prev;
    m.u.append.prev_term = prev_term;
    m.u.append.commit = commit;
    m.u.append.entries = ents;
    m.u.append.n_entries = n;
    return m;
}

static sy_entry ent(uint64_t index, uint64_t term)
{
    sy_entry e;
    memset(&e, 0, sizeof e);
    e.index = index;
    e.term = term;
    e.type = SY_ENTRY_NOOP;
    return e;
}

/* ---- elections ---- */

static void test_cluster_elects_exactly_one_leader(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    assert_int_not_equal(l, SY_NO_NODE);
    assert_int_equal(h_count_leaders(&c), 1);
    uint64_t t = h_status(&c, l).term;
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(h_status(&c, i).term, t);
        assert_int_equal(h_status(&c, i).leader, l);
    }
    /* the leader's no-op of its term committed everywhere (6.4) */
    h_run(&c, 50);
    for (uint32_t i = 0; i < 3; i++) {
        assert_true(c.node[i].applied.n >= 1);
        assert_int_equal(c.node[i].applied.v[0].type, SY_ENTRY_NOOP);
    }
    h_free(&c);
}

/* synod_leader_changes_total means the same on every node: the leaders it
 * came to know, one per term (it counted only elections the node itself
 * won, so followers stayed at 0 while the leader changed under them). */
static void test_every_node_counts_each_new_leader_once(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    assert_int_not_equal(l, SY_NO_NODE);
    h_run(&c, 500);   /* heartbeats: the leader is re-learned, not recounted */
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(h_status(&c, i).leader_changes, 1);
    h_crash(&c, l);
    uint32_t l2 = SY_NO_NODE;
    for (uint64_t t = 0; t < 5000 && (l2 == SY_NO_NODE || l2 == l); t += 10) {
        h_run(&c, 10);
        l2 = h_leader(&c);
    }
    assert_true(l2 != SY_NO_NODE && l2 != l);
    h_run(&c, 500);
    for (uint32_t i = 0; i < 3; i++)
        if (i != l)
            assert_int_equal(h_status(&c, i).leader_changes, 2);
    h_free(&c);
}

static void test_election_safety_one_leader_per_term_over_many_seeds(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        h_cluster c;
        h_init_cfg(&c, 5, seed % 2 == 0, seed % 3 == 0);
        for (uint32_t i = 0; i < 5; i++) {
            c.cfg[i].rng_seed = seed * 100 + i;
            c.cfg[i].election_min_ms = 20;   /* tight range: many split votes */
            c.cfg[i].election_max_ms = 24;
        }
        h_start(&c);
        uint32_t leader_of_term[256];
        for (int k = 0; k < 256; k++)
            leader_of_term[k] = SY_NO_NODE;
        for (int step = 0; step < 600; step++) {
            if (step % 150 == 0) {   /* churn: isolate someone for a while */
                for (uint32_t i = 0; i < 5; i++)
                    h_isolate(&c, i, false);
                h_isolate(&c, (uint32_t)(seed + step) % 5, true);
            }
            h_run(&c, 1);
            for (uint32_t i = 0; i < 5; i++) {
                sy_engine_status st = h_status(&c, i);
                if (st.role != SY_ROLE_LEADER || st.term >= 256)
                    continue;
                if (leader_of_term[st.term] == SY_NO_NODE)
                    leader_of_term[st.term] = i;
                assert_int_equal(leader_of_term[st.term], i);
            }
        }
        assert_true(h_logs_agree(&c));
        h_free(&c);
    }
}

static void test_vote_is_persisted_in_the_ready_that_grants_it(void **state)
{
    (void)state;
    void *e = mk(1, 3, NULL);
    sy_msg m = vote_msg(5, 0, 0, false);
    assert_int_equal(feed(e, 1, 0, &m), SY_OK);
    sy_ready rd;
    sy_raft_ops.ready(e, &rd);
    const sy_outmsg *o = find_msg(&rd, 0, SY_MSG_RAFT_VOTE_RESP);
    assert_non_null(o);
    assert_true(o->msg.u.vote_resp.granted);
    assert_int_equal(o->msg.u.vote_resp.term, 5);
    assert_true(rd.hardstate_dirty);
    raft_hardstate hs;
    assert_int_equal(raft_hs_decode(rd.hardstate, &hs), SY_OK);
    assert_int_equal(hs.term, 5);
    assert_int_equal(hs.vote, 0);
    sy_raft_ops.advance(e, 1);
    /* Figure 3.1: one vote per term: a second candidate of term 5 is refused */
    m = vote_msg(5, 10, 5, false);
    assert_int_equal(feed(e, 2, 2, &m), SY_OK);
    sy_raft_ops.ready(e, &rd);
    o = find_msg(&rd, 2, SY_MSG_RAFT_VOTE_RESP);
    assert_non_null(o);
    assert_false(o->msg.u.vote_resp.granted);
    sy_raft_ops.advance(e, 2);
    sy_raft_ops.destroy(e);
}

static void test_vote_denied_to_candidate_with_stale_log(void **state)
{
    (void)state;
    /* voter holds entries 1..2 of term 2 (3.6.1 up-to-date check) */
    sy_entry ents[2] = { ent(1, 1), ent(2, 2) };
    uint8_t hsb[RAFT_HS_LEN];
    raft_hardstate hs = { 2, SY_NO_NODE, 0 };
    raft_hs_encode(&hs, hsb);
    sy_engine_boot b;
    memset(&b, 0, sizeof b);
    b.hardstate.p = hsb;
    b.hardstate.len = RAFT_HS_LEN;
    b.entries = ents;
    b.n_entries = 2;
    void *e = mk(1, 3, &b);
    sy_ready rd;
    /* candidate with a longer log but an older last term: refused */
    sy_msg m = vote_msg(3, 5, 1, false);
    feed(e, 1, 0, &m);
    sy_raft_ops.ready(e, &rd);
    assert_false(find_msg(&rd, 0, SY_MSG_RAFT_VOTE_RESP)->msg.u.vote_resp.granted);
    sy_raft_ops.advance(e, 1);
    /* same last term, shorter log: refused */
    m = vote_msg(4, 1, 2, false);
    feed(e, 2, 2, &m);
    sy_raft_ops.ready(e, &rd);
    assert_false(find_msg(&rd, 2, SY_MSG_RAFT_VOTE_RESP)->msg.u.vote_resp.granted);
    sy_raft_ops.advance(e, 2);
    /* same last term, as long: granted */
    m = vote_msg(5, 2, 2, false);
    feed(e, 3, 2, &m);
    sy_raft_ops.ready(e, &rd);
    assert_true(find_msg(&rd, 2, SY_MSG_RAFT_VOTE_RESP)->msg.u.vote_resp.granted);
    sy_raft_ops.advance(e, 3);
    sy_raft_ops.destroy(e);
}

static void test_higher_term_makes_leader_step_down(void **state)
{
    (void)state;
    h_cluster c;
    h_init_cfg(&c, 3, false, false);
    h_start(&c);
    uint32_t l = h_elect(&c, 2000);
    assert_int_not_equal(l, SY_NO_NODE);
    uint64_t t = h_status(&c, l).term;
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_RAFT_APPEND_RESP;
    m.u.append_resp.term = t + 3;
    feed(c.e[l], c.now, (l + 1) % 3, &m);
    sy_engine_status st = h_status(&c, l);
    assert_int_equal(st.role, SY_ROLE_FOLLOWER);
    assert_int_equal(st.term, t + 3);
    h_free(&c);
}

static void test_stale_term_append_is_rejected_with_current_term(void **state)
{
    (void)state;
    uint8_t hsb[RAFT_HS_LEN];
    raft_hardstate hs = { 7, SY_NO_NODE, 0 };
    raft_hs_encode(&hs, hsb);
    sy_engine_boot b;
    memset(&b, 0, sizeof b);
    b.hardstate.p = hsb;
    b.hardstate.len = RAFT_HS_LEN;
    void *e = mk(1, 3, &b);
    sy_entry es[1] = { ent(1, 6) };
    sy_msg m = append_msg(6, 0, 0, 1, es, 1);
    feed(e, 1, 0, &m);
    sy_ready rd;
    sy_raft_ops.ready(e, &rd);
    const sy_outmsg *o = find_msg(&rd, 0, SY_MSG_RAFT_APPEND_RESP);
    assert_non_null(o);
    assert_false(o->msg.u.append_resp.success);
    assert_int_equal(o->msg.u.append_resp.term, 7);
    assert_int_equal(rd.n_entries, 0);
    assert_int_equal(rd.n_committed, 0);
    sy_raft_ops.advance(e, 1);
    sy_raft_ops.destroy(e);
}

static void test_append_consistency_check_and_conflict_hint(void **state)
{
    (void)state;
    /* follower log: 1@1 2@1 3@2 4@2 5@2 */
    sy_entry ents[5] = { ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 2) };
    uint8_t hsb[RAFT_HS_LEN];
    raft_hardstate hs = { 2, SY_NO_NODE, 0 };
    raft_hs_encode(&hs, hsb);
    sy_engine_boot b;
    memset(&b, 0, sizeof b);
    b.hardstate.p = hsb;
    b.hardstate.len = RAFT_HS_LEN;
    b.entries = ents;
    b.n_entries = 5;
    void *e = mk(1, 3, &b);
    sy_ready rd;
    /* prev (5, term 3) does not match term 2: hint = first index of term 2 */
    sy_msg m = append_msg(3, 5, 3, 0, NULL, 0);
    feed(e, 1, 0, &m);
    sy_raft_ops.ready(e, &rd);
    const sy_outmsg *o = find_msg(&rd, 0, SY_MSG_RAFT_APPEND_RESP);
    assert_false(o->msg.u.append_resp.success);
    assert_int_equal(o->msg.u.append_resp.conflict_term, 2);
    assert_int_equal(o->msg.u.append_resp.conflict_index, 3);
    sy_raft_ops.advance(e, 1);
    /* prev beyond the log: conflict_term 0, index last+1 */
    m = append_msg(3, 9, 3, 0, NULL, 0);
    feed(e, 2, 0, &m);
    sy_raft_ops.ready(e, &rd);
    o = find_msg(&rd, 0, SY_MSG_RAFT_APPEND_RESP);
    assert_false(o->msg.u.append_resp.success);
    assert_int_equal(o->msg.u.append_resp.conflict_term, 0);
    assert_int_equal(o->msg.u.append_resp.conflict_index, 6);
    sy_raft_ops.advance(e, 2);
    /* matching prev (2@1) with a conflicting entry 3@3: suffix replaced */
    sy_entry ne[1] = { ent(3, 3) };
    m = append_msg(3, 2, 1, 3, ne, 1);
    feed(e, 3, 0, &m);
    sy_raft_ops.ready(e, &rd);
    o = find_msg(&rd, 0, SY_MSG_RAFT_APPEND_RESP);
    assert_true(o->msg.u.append_resp.success);
    assert_int_equal(o->msg.u.append_resp.match_index, 3);
    assert_int_equal(rd.truncate_from, 3);
    assert_int_equal(rd.n_entries, 1);
    assert_int_equal(rd.entries[0].term, 3);
    /* commit = min(leader commit, last new entry) */
    assert_int_equal(rd.n_committed, 3);
    sy_raft_ops.advance(e, 3);
    sy_engine_status st;
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.last_index, 3);
    assert_int_equal(st.commit_index, 3);
    sy_raft_ops.destroy(e);
}

static void test_prevote_does_not_bump_terms(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    assert_int_not_equal(l, SY_NO_NODE);
    uint64_t t = h_status(&c, l).term;
    uint32_t x = (l + 1) % 3;
    h_isolate(&c, x, true);
    h_run(&c, 2000);   /* x times out again and again */
    assert_int_equal(h_status(&c, x).term, t);
    assert_int_not_equal(h_status(&c, x).role, SY_ROLE_LEADER);
    /* back: it rejoins without disrupting the leader */
    h_isolate(&c, x, false);
    h_run(&c, 500);
    assert_int_equal(h_leader(&c), l);
    assert_int_equal(h_status(&c, l).term, t);
    assert_int_equal(h_status(&c, x).leader, l);
    h_free(&c);
}

static void test_rejoining_node_without_prevote_cannot_win_with_stale_log(void **state)
{
    (void)state;
    h_cluster c;
    h_init_cfg(&c, 3, false, true);
    h_start(&c);
    uint32_t l = h_elect(&c, 2000);
    uint32_t x = (l + 1) % 3;
    h_isolate(&c, x, true);
    for (uint64_t k = 1; k <= 5; k++)
        h_request(&c, l, SY_CLIENT_ID_BASE, k);
    h_run(&c, 1000);
    assert_true(h_status(&c, x).term > h_status(&c, l).term);   /* it inflated */
    h_isolate(&c, x, false);
    /* without pre-vote its stale campaigns keep bumping terms and can
     * split a few elections (seen: a leader after 1.2 s); one emerges */
    h_run(&c, 1000);
    for (int k = 0; k < 50 && h_leader(&c) == SY_NO_NODE; k++)
        h_run(&c, 100);
    uint32_t nl = h_leader(&c);
    assert_int_not_equal(nl, x);   /* its log is behind: 3.6.1 */
    assert_int_not_equal(nl, SY_NO_NODE);
    h_run(&c, 500);   /* the commit index reaches x with a heartbeat */
    assert_true(h_logs_agree(&c));
    assert_int_equal(h_applied_requests(&c, x), 5);
    h_free(&c);
}

static void test_check_quorum_leader_steps_down_when_isolated(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    h_isolate(&c, l, true);
    h_run(&c, 300);
    assert_int_not_equal(h_status(&c, l).role, SY_ROLE_LEADER);
    /* the majority side elected someone else */
    uint32_t nl = h_leader(&c);
    assert_int_not_equal(nl, SY_NO_NODE);
    assert_int_not_equal(nl, l);
    h_free(&c);
}

static void test_leader_stickiness_ignores_vote_requests(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint32_t f = (l + 1) % 3;
    uint64_t t = h_status(&c, f).term;
    sy_msg m = vote_msg(t + 1, 1000, t, false);   /* a great log, but a leader is alive */
    feed(c.e[f], c.now, (l + 2) % 3, &m);
    assert_int_equal(h_status(&c, f).term, t);
    sy_ready rd;
    sy_raft_ops.ready(c.e[f], &rd);
    assert_null(find_msg(&rd, (l + 2) % 3, SY_MSG_RAFT_VOTE_RESP));
    sy_raft_ops.advance(c.e[f], c.now);
    /* with the transfer flag it is considered */
    m.u.vote.transfer = true;
    feed(c.e[f], c.now, (l + 2) % 3, &m);
    assert_int_equal(h_status(&c, f).term, t + 1);
    h_free(&c);
}


static void test_candidate_returns_to_follower_on_append_from_same_term_leader(void **state)
{
    (void)state;
    sy_engine_cfg cfg = h_default_cfg(1, 3);
    cfg.prevote = false;
    void *e = NULL;
    assert_int_equal(sy_raft_ops.create(&cfg, NULL, &e), SY_OK);
    sy_input tick;
    memset(&tick, 0, sizeof tick);
    tick.kind = SY_IN_TICK;
    tick.now_ms = 1;
    sy_raft_ops.step(e, &tick);
    tick.now_ms = 500;
    sy_raft_ops.step(e, &tick);
    sy_engine_status st;
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.role, SY_ROLE_CANDIDATE);
    sy_ready rd;
    sy_raft_ops.ready(e, &rd);
    sy_raft_ops.advance(e, 500);
    sy_msg m = append_msg(st.term, 0, 0, 0, NULL, 0);
    feed(e, 501, 2, &m);
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.role, SY_ROLE_FOLLOWER);
    assert_int_equal(st.leader, 2);
    sy_raft_ops.destroy(e);
}

static void test_leader_counts_own_entries_only_once_handed_out(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 1);
    h_elect(&c, 1000);
    uint64_t commit = h_status(&c, 0).commit_index;
    h_request(&c, 0, SY_CLIENT_ID_BASE, 1);
    assert_int_equal(h_status(&c, 0).commit_index, commit);   /* not durable yet */
    sy_ready rd;
    sy_raft_ops.ready(c.e[0], &rd);
    /* the same ready persists the entry and reports it committed */
    assert_int_equal(rd.n_entries, 1);
    assert_int_equal(rd.n_committed, 1);
    assert_int_equal(rd.committed[0].entry.index, rd.entries[0].index);
    assert_true(rd.hardstate_dirty);
    sy_raft_ops.advance(c.e[0], c.now);
    h_free(&c);
}

/* ---- replication and commit ---- */

static void test_requests_replicate_and_commit_everywhere(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    for (uint64_t k = 1; k <= 100; k++) {
        assert_int_equal(h_request(&c, l, SY_CLIENT_ID_BASE + (uint32_t)(k % 3), k), SY_OK);
        if (k % 7 == 0)
            h_run(&c, 1);
    }
    h_run(&c, 100);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(h_applied_requests(&c, i), 100);
    assert_true(h_logs_agree(&c));
    h_free(&c);
}

static void test_many_requests_between_readies_become_one_entry(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint64_t before = h_status(&c, l).last_index;
    for (uint64_t k = 1; k <= 64; k++)   /* batch_max is 64 */
        h_request(&c, l, SY_CLIENT_ID_BASE, k);
    h_ready(&c, l);
    assert_int_equal(h_status(&c, l).last_index, before + 1);
    for (uint64_t k = 65; k <= 200; k++)
        h_request(&c, l, SY_CLIENT_ID_BASE, k);
    h_ready(&c, l);
    /* 136 requests: ceil(136/64) = 3 entries */
    assert_int_equal(h_status(&c, l).last_index, before + 4);
    h_run(&c, 50);
    assert_int_equal(h_applied_requests(&c, (l + 1) % 3), 200);
    h_free(&c);
}

static void test_request_at_follower_rejected_with_leader_hint(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    uint32_t f = (l + 1) % 3;
    h_request(&c, f, SY_CLIENT_ID_BASE + 7, 42);
    h_ready(&c, f);
    h_node *nd = &c.node[f];
    assert_int_equal(nd->n_rejects, 1);
    assert_int_equal(nd->rejects[0].status, SY_ENOTLEADER);
    assert_int_equal(nd->rejects[0].leader, l);
    assert_int_equal(nd->rejects[0].client_id, SY_CLIENT_ID_BASE + 7);
    assert_int_equal(nd->rejects[0].req_no, 42);
    h_free(&c);
}

static void test_pending_requests_are_bounded(void **state)
{
    (void)state;
    h_cluster c;
    h_init_cfg(&c, 3, true, true);
    for (uint32_t i = 0; i < 3; i++)
        c.cfg[i].max_pending = 10;
    h_start(&c);
    uint32_t l = h_elect(&c, 2000);
    /* followers unreachable: nothing commits */
    h_isolate(&c, l, true);
    for (uint64_t k = 1; k <= 15; k++)
        h_request(&c, l, SY_CLIENT_ID_BASE, k);
    h_ready(&c, l);
    size_t full = 0;
    for (size_t k = 0; k < c.node[l].n_rejects; k++)
        if (c.node[l].rejects[k].status == SY_EFULL)
            full++;
    assert_int_equal(full, 5);
    assert_true(h_status(&c, l).dropped >= 5);
    h_free(&c);
}

static void test_single_node_commits_own_entries(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 1);
    uint32_t l = h_elect(&c, 1000);
    assert_int_equal(l, 0);
    h_request(&c, 0, SY_CLIENT_ID_BASE, 1);
    h_ready(&c, 0);
    assert_int_equal(h_applied_requests(&c, 0), 1);
    h_free(&c);
}

/* Figure 3.7 (the "Figure 8" case): an entry from an older term replicated
 * on a majority must not be committed by counting; it commits only with an
 * entry of the current term on top. */
static void test_commit_requires_current_term_entry(void **state)
{
    (void)state;
    /* S1 is leader in term 4, its log 1@1 2@2 (2@2 from its term-2 reign);
     * S3 holds 1@1 only. Boot S1 as a fresh node with that log. */
    sy_entry ents[2] = { ent(1, 1), ent(2, 2) };
    uint8_t hsb[RAFT_HS_LEN];
    raft_hardstate hs = { 3, SY_NO_NODE, 1 };
    raft_hs_encode(&hs, hsb);
    sy_engine_boot b;
    memset(&b, 0, sizeof b);
    b.hardstate.p = hsb;
    b.hardstate.len = RAFT_HS_LEN;
    b.entries = ents;
    b.n_entries = 2;
    b.applied = 1;
    sy_engine_cfg cfg = h_default_cfg(0, 5);
    cfg.prevote = false;
    void *e = NULL;
    assert_int_equal(sy_raft_ops.create(&cfg, &b, &e), SY_OK);
    sy_input tick;
    memset(&tick, 0, sizeof tick);
    tick.kind = SY_IN_TICK;
    tick.now_ms = 1;
    sy_raft_ops.step(e, &tick);
    tick.now_ms = 1000;
    sy_raft_ops.step(e, &tick);   /* election timeout: candidate in term 4 */
    sy_ready rd;
    sy_raft_ops.ready(e, &rd);
    sy_raft_ops.advance(e, 1000);
    sy_msg vr;
    memset(&vr, 0, sizeof vr);
    vr.type = SY_MSG_RAFT_VOTE_RESP;
    vr.u.vote_resp.term = 4;
    vr.u.vote_resp.granted = true;
    feed(e, 1000, 1, &vr);
    feed(e, 1000, 2, &vr);
    sy_engine_status st;
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.role, SY_ROLE_LEADER);
    assert_int_equal(st.term, 4);
    sy_raft_ops.ready(e, &rd);   /* hands out the no-op 3@4 */
    sy_raft_ops.advance(e, 1000);
    /* S2 and S3 acknowledge up to index 2 only (2@2 now on a majority) */
    sy_msg ar;
    memset(&ar, 0, sizeof ar);
    ar.type = SY_MSG_RAFT_APPEND_RESP;
    ar.u.append_resp.term = 4;
    ar.u.append_resp.success = true;
    ar.u.append_resp.match_index = 2;
    feed(e, 1001, 1, &ar);
    feed(e, 1001, 2, &ar);
    sy_raft_ops.ready(e, &rd);
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.commit_index, 1);   /* 2@2 is NOT committed by counting */
    assert_int_equal(rd.n_committed, 0);
    sy_raft_ops.advance(e, 1001);
    /* once 3@4 is on a majority, 2 and 3 commit together */
    ar.u.append_resp.match_index = 3;
    feed(e, 1002, 1, &ar);
    feed(e, 1002, 2, &ar);
    sy_raft_ops.ready(e, &rd);
    sy_raft_ops.status(e, &st);
    assert_int_equal(st.commit_index, 3);
    assert_int_equal(rd.n_committed, 2);
    assert_int_equal(rd.committed[0].entry.index, 2);
    assert_int_equal(rd.committed[1].entry.index, 3);
    sy_raft_ops.advance(e, 1002);
    sy_raft_ops.destroy(e);
}

/* A follower that led an old term holds a divergent suffix; the new leader
 * finds the match point with conflict hints in a few round trips and the
 * suffix is replaced (uncommitted entries from the old term are lost). */
static void test_divergent_follower_log_is_repaired_with_fast_backtracking(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    for (uint64_t k = 1; k <= 10; k++)
        h_request(&c, l, SY_CLIENT_ID_BASE, k);
    h_run(&c, 50);
    /* the leader is cut off and accepts 30 entries nobody else sees */
    h_isolate(&c, l, true);
    for (int r = 0; r < 30; r++) {
        h_request(&c, l, SY_CLIENT_ID_BASE + 1, (uint64_t)r + 1);
        h_ready(&c, l);
    }
    uint64_t old_last = h_status(&c, l).last_index;
    h_run(&c, 600);
    uint32_t nl = h_leader(&c);
    assert_int_not_equal(nl, l);
    for (uint64_t k = 11; k <= 20; k++)
        h_request(&c, nl, SY_CLIENT_ID_BASE, k);
    h_run(&c, 50);
    uint64_t before = c.delivered;
    h_isolate(&c, l, false);
    h_run(&c, 100);
    assert_true(h_logs_agree(&c));
    assert_int_equal(h_status(&c, l).commit_index, h_status(&c, nl).commit_index);
    assert_int_equal(h_applied_requests(&c, l), 20);
    assert_true(h_status(&c, l).last_index < old_last);
    /* repaired in far fewer messages than one round trip per entry */
    assert_true(c.delivered - before < 100);
    h_free(&c);
}


static void test_pipeline_window_bounds_appends_in_flight(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);   /* max_inflight = 8 */
    uint32_t l = h_elect(&c, 2000);
    uint32_t f = (l + 1) % 3;
    c.hold = true;   /* nothing is acknowledged */
    for (uint64_t k = 1; k <= 20; k++) {
        h_request(&c, l, SY_CLIENT_ID_BASE, k);
        h_ready(&c, l);   /* one entry per ready */
    }
    size_t with_entries = 0;
    for (size_t k = 0; k < c.nq; k++)
        if (c.q[k].to == f && c.q[k].msg.type == SY_MSG_RAFT_APPEND &&
            c.q[k].msg.u.append.n_entries > 0)
            with_entries++;
    assert_int_equal(with_entries, 8);   /* pipelined, but bounded */
    c.hold = false;
    h_settle(&c);   /* acks open the window; the rest follows */
    h_run(&c, 200); /* and a heartbeat brings the final commit index */
    assert_int_equal(h_status(&c, f).last_index, h_status(&c, l).last_index);
    assert_int_equal(h_applied_requests(&c, f) + 0, h_applied_requests(&c, l));
    h_free(&c);
}

/* ---- restart ---- */

static void test_restart_from_boot_state_preserves_term_vote_and_log(void **state)
{
    (void)state;
    h_cluster c;
    h_init(&c, 3);
    uint32_t l = h_elect(&c, 2000);
    for (uint64_t k = 1; k <= 20; k++)
        h_request(&c, l, SY_CLIENT_ID_BASE, k);
    h_run(&c, 50);
    uint32_t f = (l + 1) % 3;
    sy_engine_status before = h_status(&c, f);
    h_crash(&c, f);
    assert_int_equal(h_boot(&c, f), SY_OK);
    sy_engine_status after = h_status(&c, f);
    assert_int_equal(after.term, before.term);
    assert_int_equal(after.last_index, before.last_index);
    assert_int_equal(after.commit_index, before.commit_index);
    raft_hardstate hs;
    sy_bytes hb = { c.node[f].hs, c.node[f].hs_len };
    assert_int_equal(raft_hs_decode(hb, &hs), SY_OK);
    assert_int_equal(hs.term, before.term);
    assert_int_equal(hs.vote, l);   /* it voted for the leader (or itself led) */
    /* the whole cluster restarts and carries on with the same log */
    for (uint32_t i = 0; i < 3; i++) {
        h_crash(&c, i);
        assert_int_equal(h_boot(&c, i), SY_OK);
    }
    uint32_t nl = h_elect(&c, 3000);
    assert_int_not_equal(nl, SY_NO_NODE);
    assert_true(h_status(&c, nl).term > before.term);
    h_request(&c, nl, SY_CLIENT_ID_BASE, 21);
    h_run(&c, 50);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(h_applied_requests(&c, i), 21);
    assert_true(h_logs_agree(&c));
    h_free(&c);
}

static void test_corrupt_hardstate_refuses_to_boot(void **state)
{
    (void)state;
    uint8_t junk[5] = { 1, 2, 3, 4, 5 };
    sy_engine_boot b;
    memset(&b, 0, sizeof b);
    b.hardstate.p = junk;
    b.hardstate.len = sizeof junk;
    sy_engine_cfg cfg = h_default_cfg(0, 3);
    void *e = NULL;
    assert_int_equal(sy_raft_ops.create(&cfg, &b, &e), SY_ECORRUPT);
    assert_null(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_elects_exactly_one_leader),
        cmocka_unit_test(test_every_node_counts_each_new_leader_once),
        cmocka_unit_test(test_election_safety_one_leader_per_term_over_many_seeds),
        cmocka_unit_test(test_vote_is_persisted_in_the_ready_that_grants_it),
        cmocka_unit_test(test_vote_denied_to_candidate_with_stale_log),
        cmocka_unit_test(test_higher_term_makes_leader_step_down),
        cmocka_unit_test(test_stale_term_append_is_rejected_with_current_term),
        cmocka_unit_test(test_append_consistency_check_and_conflict_hint),
        cmocka_unit_test(test_prevote_does_not_bump_terms),
        cmocka_unit_test(test_rejoining_node_without_prevote_cannot_win_with_stale_log),
        cmocka_unit_test(test_check_quorum_leader_steps_down_when_isolated),
        cmocka_unit_test(test_leader_stickiness_ignores_vote_requests),
        cmocka_unit_test(test_candidate_returns_to_follower_on_append_from_same_term_leader),
        cmocka_unit_test(test_leader_counts_own_entries_only_once_handed_out),
        cmocka_unit_test(test_requests_replicate_and_commit_everywhere),
        cmocka_unit_test(test_many_requests_between_readies_become_one_entry),
        cmocka_unit_test(test_request_at_follower_rejected_with_leader_hint),
        cmocka_unit_test(test_pending_requests_are_bounded),
        cmocka_unit_test(test_single_node_commits_own_entries),
        cmocka_unit_test(test_commit_requires_current_term_entry),
        cmocka_unit_test(test_divergent_follower_log_is_repaired_with_fast_backtracking),
        cmocka_unit_test(test_pipeline_window_bounds_appends_in_flight),
        cmocka_unit_test(test_restart_from_boot_state_preserves_term_vote_and_log),
        cmocka_unit_test(test_corrupt_hardstate_refuses_to_boot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
