/* PBFT view changes (the paper's scenarios), state transfer, evidence and
 * every test-only Byzantine behaviour: correct replicas stay safe (no two
 * commit different batches at one sequence number) and stay live once the
 * misbehaving replica is the only fault. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/unit/test_pbft_harness.h"

#define ALL4 0xfu

/* Every node in mask executed the request (nreq reached want), or, for a
 * node that caught up by a snapshot (so it cannot count requests), it
 * applied as far as a node that did. */
static bool all_executed(harness *h, uint32_t nodes, const uint64_t *want)
{
    uint64_t reached = 0;
    bool any = false;
    for (uint32_t i = 0; i < h->n; i++)
        if ((nodes >> i & 1) && h->nreq[i] >= want[i]) {
            any = true;
            if (h->applied[i] > reached)
                reached = h->applied[i];
        }
    if (!any)
        return false;
    for (uint32_t i = 0; i < h->n; i++)
        if ((nodes >> i & 1) && h->nreq[i] < want[i] &&
            !(h->installs[i] && h->applied[i] >= reached))
            return false;
    return true;
}

/* A client that retransmits to every replica until `nodes` executed it. */
static bool until_executed(harness *h, const uint8_t *raw, size_t len, uint32_t nodes,
                           const uint64_t *want, uint64_t max_ms)
{
    for (uint64_t t = 0; t <= max_ms; t += 50) {
        if (all_executed(h, nodes, want))
            return true;
        if (t % 400 == 0)
            h_submit_raw(h, raw, len, (1u << h->n) - 1);
        h_tick(h, 50);
    }
    return false;
}

static bool client_op(harness *h, uint32_t c, uint32_t nodes, uint64_t max_ms)
{
    uint8_t *raw;
    size_t len;
    uint64_t want[H_MAX];
    for (uint32_t i = 0; i < h->n; i++)
        want[i] = h->nreq[i] + 1;
    h_make_request(h, c, &raw, &len);
    bool ok = until_executed(h, raw, len, nodes, want, max_ms);
    free(raw);
    return ok;
}

/* ------------------------------------------------------------ view change */

static void test_silent_primary_is_replaced_and_requests_commit(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    h->down[0] = true;
    assert_true(client_op(h, 0, 0xe, 20000));
    for (uint32_t i = 1; i < 4; i++) {
        sy_engine_status st = h_status(h, i);
        assert_int_equal(st.term, 1);
        assert_int_equal(st.leader, 1);
        assert_int_equal(h->nreq[i], 1);
    }
    assert_int_equal(h_status(h, 1).role, SY_ROLE_PRIMARY);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static sy_digest seq1_digest;
static bool drop_commits(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)to;
    if (m->type == SY_MSG_PBFT_PRE_PREPARE && m->u.pbft.stmt.seq == 1 && from == 0)
        seq1_digest = m->u.pbft.stmt.digest;
    return m->type != SY_MSG_PBFT_COMMIT;
}

static void test_request_prepared_when_primary_fails_keeps_its_sequence_number(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    h->filter = drop_commits;
    uint8_t *raw;
    size_t len;
    h_make_request(h, 0, &raw, &len);
    h_submit_raw(h, raw, len, 1u);
    h_run(h);
    /* prepared everywhere, committed nowhere */
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h->applied[i], 0);
    h->filter = NULL;
    h->down[0] = true;
    h_submit(h, 1, 0xe);   /* another client's request starts the timers */
    h_run_for(h, 6000, 50);
    for (uint32_t i = 1; i < 4; i++) {
        assert_true(h_status(h, i).term >= 1);
        assert_true(h->applied[i] >= 1);
    }
    /* seq 1 is still the first client's batch */
    assert_true(h->log_have[1]);
    assert_true(sy_digest_eq(&h->log[1], &seq1_digest));
    assert_int_equal(h->violations, 0);
    free(raw);
    h_free(h);
}

static bool drop_pre_prepares(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)to;
    if (m->type == SY_MSG_PBFT_PRE_PREPARE && from == 0 && m->u.pbft.stmt.seq == 1)
        seq1_digest = m->u.pbft.stmt.digest;
    return m->type != SY_MSG_PBFT_PRE_PREPARE;
}

static void test_request_known_only_to_failed_primary_is_never_executed_differently(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    h->filter = drop_pre_prepares;
    h_submit(h, 0, 1u);   /* only the primary ever sees it */
    h_run(h);
    h->filter = NULL;
    h->down[0] = true;
    assert_true(client_op(h, 1, 0xe, 20000));
    /* seq 1 went to something else (a null request or client 1's batch),
     * the same at every correct replica */
    assert_true(h->log_have[1]);
    assert_false(sy_digest_eq(&h->log[1], &seq1_digest));
    for (uint32_t i = 1; i < 4; i++)
        assert_int_equal(h->nreq[i], 1);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static bool drop_primary0_pre_prepares(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)to;
    return !(m->type == SY_MSG_PBFT_PRE_PREPARE && from == 0);
}

/* A request every live replica received once, which the primary proposed
 * in a view that then failed before it prepared, is ordered in the next
 * view without the client sending it again: the backups kept it whole and
 * hand it to the new primary as they enter the view. (Before, they kept
 * only its id, and the request waited for a client retransmission -- ours
 * back off to seconds apart -- while the views came and went; a real
 * cluster failed a 20 s put that way, one run in eight.) */
static void test_request_no_primary_ordered_survives_view_changes_without_retransmission(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    h->down[3] = true;                  /* every quorum needs 0, 1 and 2 */
    h->filter = drop_primary0_pre_prepares;
    h_submit(h, 0, 0x7);                /* once, to the live replicas */
    h_run_for(h, 10000, 50);
    for (uint32_t i = 1; i < 3; i++) {
        assert_true(h_status(h, i).term >= 1);
        assert_int_equal(h->nreq[i], 1);
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* drop every NEW-VIEW, so no view change can complete */
static bool no_new_view(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h; (void)from; (void)to;
    return m->type != SY_MSG_PBFT_NEW_VIEW;
}

static void test_successive_view_changes_back_off_exponentially(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    /* the primary is down and no NEW-VIEW ever arrives: the three others
     * agree on each next view (a quorum of VIEW-CHANGEs starts the timer,
     * sec. 4.5.2) and give up on it after twice the previous wait */
    h->down[0] = true;
    h->filter = no_new_view;
    h_submit(h, 0, 0xe);
    uint64_t changes_at[4] = { 0 };
    uint32_t k = 0;
    uint64_t last = h_status(h, 3).term;
    for (uint64_t t = 0; t < 40000 && k < 4; t += 10) {
        h_tick(h, 10);
        if (h_status(h, 3).term != last) {
            last = h_status(h, 3).term;
            changes_at[k++] = h->now;
        }
    }
    assert_int_equal(k, 4);
    /* the gaps double (request_timeout_ms 500, then 1000, 2000...) */
    assert_true(changes_at[2] - changes_at[1] >= 2 * (changes_at[1] - changes_at[0]) - 20);
    assert_true(changes_at[3] - changes_at[2] >= 2 * (changes_at[2] - changes_at[1]) - 20);
    h_free(h);
}

/* replica 3 never hears a NEW-VIEW */
static bool no_new_view_to_3(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h; (void)from;
    return !(m->type == SY_MSG_PBFT_NEW_VIEW && to == 3);
}

static void test_restarted_primary_repeats_its_new_view_to_a_backup_that_missed_it(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    /* primary 0 is down for good: view 1 (primary 1) forms, but replica 3
     * misses its NEW-VIEW and stays changing view */
    h->down[0] = true;
    h->filter = no_new_view_to_3;
    h_submit(h, 0, 0xe);
    for (uint64_t t = 0; t < 5000; t += 10) {
        h_tick(h, 10);
        if (h_status(h, 1).role == SY_ROLE_PRIMARY)
            break;
    }
    assert_int_equal(h_status(h, 1).role, SY_ROLE_PRIMARY);
    assert_int_equal(h_status(h, 1).term, 1);
    assert_int_equal(h_status(h, 3).role, SY_ROLE_VIEW_CHANGE);
    /* the primary of view 1 restarts: it must still be able to repeat its
     * NEW-VIEW when replica 3 asks again (its VIEW-CHANGEs are resent
     * every heartbeat), long before anyone's request timer would start
     * yet another view change */
    assert_int_equal(h_restart(h, 1), SY_OK);
    h->filter = NULL;
    for (uint64_t t = 0; t < 500 && h_status(h, 3).role != SY_ROLE_BACKUP; t += 10)
        h_tick(h, 10);
    assert_int_equal(h_status(h, 3).role, SY_ROLE_BACKUP);
    assert_int_equal(h_status(h, 3).term, 1);
    assert_true(client_op(h, 1, 0xe, 20000));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_lone_replica_does_not_run_ahead_of_the_others(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    /* only replica 3 is up: it suspects the primary once, then waits in
     * that view for a quorum instead of moving on view after view (which
     * would leave it forever ahead of replicas that come back) */
    h->down[0] = h->down[1] = h->down[2] = true;
    h_submit(h, 0, 0x8);
    for (uint64_t t = 0; t < 20000; t += 10)
        h_tick(h, 10);
    assert_int_equal(h_status(h, 3).term, 1);
    h_free(h);
}


/* Primary 0 is away while the others change to view 1 and execute, then
 * restarts (view 0 on its disk) into an idle cluster. Catching up by
 * itself (the idle probe) it must also learn the view: the certificates
 * of the entries it fetched are the others' statements in view 1. Before,
 * it went on calling itself primary of view 0 -- what `synodctl status`
 * showed -- until a client's request told it otherwise. */
static void test_replica_back_after_a_view_change_learns_the_view_in_an_idle_cluster(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    h->down[0] = true;
    for (uint32_t r = 0; r < 3; r++)
        assert_true(client_op(h, 1, 0xe, 20000));
    assert_int_equal(h_status(h, 1).term, 1);
    assert_int_equal(h_status(h, 1).role, SY_ROLE_PRIMARY);
    assert_int_equal(h_restart(h, 0), SY_OK);
    h->down[0] = false;
    assert_int_equal(h_status(h, 0).term, 0);
    /* idle: only ticks, fewer than one request timeout (500 ms) */
    h_run_for(h, 400, 50);
    assert_int_equal(h->applied[0], h->applied[1]);
    assert_int_equal(h_status(h, 0).term, 1);
    assert_int_equal(h_status(h, 0).role, SY_ROLE_BACKUP);
    /* and it is a working member of view 1: with replica 2 down the
     * quorum needs it */
    h->down[2] = true;
    assert_true(client_op(h, 1, 0xb, 20000));
    assert_int_equal(h_status(h, 1).term, 1);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* The operator's (or SIGTERM's) transfer, stepped into replica `node`. */
static int transfer(harness *h, uint32_t node, uint32_t target)
{
    sy_input in = { .kind = SY_IN_TRANSFER, .now_ms = h->now };
    in.u.transfer.target = target;
    return h->ops->step(h->e[node], &in);
}

/* A primary about to stop hands its view on (SY_IN_TRANSFER, what synod
 * does on SIGTERM): its VIEW-CHANGE for the next view makes the backups
 * join at once, and view 1 forms with the old primary in it as a backup --
 * no request timer has to expire (500 ms here). Only the primary of a view
 * it runs can do it, and only towards the next view's primary. */
static void test_stopping_primary_hands_its_view_to_the_next_primary(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    assert_true(client_op(h, 0, ALL4, 5000));
    assert_int_equal(transfer(h, 0, 2), SY_EINVAL);   /* not view 1's primary */
    assert_int_equal(transfer(h, 1, SY_NO_NODE), SY_ENOTLEADER);   /* a backup */
    assert_int_equal(h_status(h, 0).role, SY_ROLE_PRIMARY);
    assert_int_equal(transfer(h, 0, SY_NO_NODE), SY_OK);
    h_run(h);
    uint64_t t0 = h->now;
    for (uint64_t t = 0; t < 5000 && h_status(h, 0).role != SY_ROLE_BACKUP; t += 10)
        h_tick(h, 10);
    assert_true(h->now - t0 < 500);   /* simulated time: no timer expired */
    assert_int_equal(h_status(h, 1).role, SY_ROLE_PRIMARY);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_status(h, i).term, 1);
    assert_int_equal(h_status(h, 0).leader, 1);
    /* the old primary stops; the other three go on in view 1 */
    h->down[0] = true;
    assert_true(client_op(h, 1, 0xe, 5000));
    assert_int_equal(h_status(h, 1).term, 1);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Hand-offs are not suspicions: a rolling restart of three primaries in a
 * row in an idle cluster (nothing executes between them, which is what
 * resets the view-change backoff) leaves the next real view change -- its
 * primary dead -- on the base request timeout, not doubled per hand-off. */
static void test_hand_offs_do_not_back_off_the_next_view_change(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 16, NULL);
    assert_true(client_op(h, 0, ALL4, 5000));
    for (uint32_t v = 0; v < 3; v++) {
        assert_int_equal(transfer(h, v, SY_NO_NODE), SY_OK);
        h_run(h);
        for (uint64_t t = 0; t < 2000 && h_status(h, v + 1).role != SY_ROLE_PRIMARY; t += 10)
            h_tick(h, 10);
        assert_int_equal(h_status(h, v + 1).role, SY_ROLE_PRIMARY);
    }
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_status(h, i).term, 3);
    h->down[3] = true;   /* view 3's primary */
    uint64_t t0 = h->now;
    assert_true(client_op(h, 1, 0x7, 20000));
    assert_int_equal(h_status(h, 0).term, 4);
    /* one request timeout (500 ms) to suspect, the view change, the
     * request: well under the 4 s of a timeout doubled three times */
    assert_true(h->now - t0 < 2 * 500 + 500);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* ------------------------------------------------------------ state transfer */

static void tweak_k4(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = 1;
}

static void test_lagging_replica_catches_up_by_state_transfer(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->down[3] = true;
    for (uint32_t r = 0; r < 12; r++)
        assert_true(client_op(h, r % H_CLIENTS, 0x7, 5000));
    assert_int_equal(h->applied[3], 0);
    h->down[3] = false;
    for (uint32_t r = 0; r < 6; r++)
        assert_true(client_op(h, r % H_CLIENTS, 0x7, 5000));
    h_run_for(h, 2000, 50);
    assert_true(h->installs[3] >= 1);
    assert_int_equal(h->applied[3], h->applied[0]);
    assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_replicas_whose_snapshots_differ_never_make_a_checkpoint_stable(void **state)
{
    (void)state;
    /* blobs differ per replica (a nondeterministic host): no two digests
     * agree, so no checkpoint gathers a quorum and nothing is compacted */
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->noisy_snap = true;
    for (uint32_t r = 0; r < 6; r++)
        assert_true(client_op(h, r % H_CLIENTS, 0xf, 5000));
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(h_status(h, i).snap_index, 0);
        assert_int_equal(h->compacted[i], 0);
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static uint64_t corrupted;
static bool corrupt_state_from_1(harness *h, uint32_t from, uint32_t to, const sy_msg *m)
{
    (void)h;
    (void)to;
    if (m->type == SY_MSG_PBFT_STATE && from == 1 && m->u.pbft.state.snapshot.len) {
        ((uint8_t *)m->u.pbft.state.snapshot.p)[0] ^= 0xff;   /* a lying replica */
        corrupted++;
    }
    return true;
}

static void test_corrupt_state_is_detected_and_another_replica_asked(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_k4);
    h->down[3] = true;
    for (uint32_t r = 0; r < 12; r++)
        assert_true(client_op(h, r % H_CLIENTS, 0x7, 5000));
    h->down[3] = false;
    h->filter = corrupt_state_from_1;
    corrupted = 0;
    for (uint32_t r = 0; r < 6; r++)
        assert_true(client_op(h, r % H_CLIENTS, 0x7, 5000));
    h_run_for(h, 3000, 50);
    assert_true(corrupted >= 1);
    assert_true(h->step_errors[3] >= 1);
    assert_int_equal(h->applied[3], h->applied[0]);
    assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* ------------------------------------------------------------ Byzantine */

static uint32_t byz_node, byz_code;
static void tweak_byz(uint32_t node, sy_engine_cfg *c)
{
    c->batch_max = 2;
    if (node == byz_node)
        c->test_behaviour = byz_code;
}

static void test_equivocating_primary_leaves_evidence_and_replicas_stay_safe(void **state)
{
    (void)state;
    byz_node = 0;
    byz_code = SY_PBFT_EQUIVOCATE;
    harness *h = h_new(4, 1, false, 4, tweak_byz);
    for (uint32_t r = 0; r < 6; r++)
        assert_true(client_op(h, r % H_CLIENTS, 0xe, 20000));
    uint64_t ev = 0;
    for (uint32_t i = 1; i < 4; i++)
        ev += h_status(h, i).evidence;
    assert_true(ev >= 1);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

/* Safety always, liveness once the Byzantine replica is the only fault:
 * a few requests, a partition that isolates the primary (forcing a view
 * change, so NEW-VIEW behaviours matter), heal, more requests. */
static void run_behaviour(uint32_t node, uint32_t code)
{
    byz_node = node;
    byz_code = code;
    harness *h = h_new(4, 1, false, 4, tweak_byz);
    uint32_t correct = 0xfu & ~(1u << node);
    for (uint32_t r = 0; r < 4; r++)
        assert_true(client_op(h, r % H_CLIENTS, correct, 30000));
    uint32_t part = node == 0 ? 1 : 0;   /* a correct replica cut off for a while */
    h->down[part] = true;
    for (uint32_t r = 0; r < 3; r++)
        client_op(h, r % H_CLIENTS, correct & ~(1u << part), 4000);
    h->down[part] = false;
    for (uint32_t r = 0; r < 4; r++)
        assert_true(client_op(h, r % H_CLIENTS, correct, 60000));
    /* calm: every correct replica converges on the same state */
    h_run_for(h, 3000, 50);
    uint64_t dissent = 0;
    for (uint32_t i = 0; i < 4; i++)
        if (correct >> i & 1) {
            assert_int_equal(h->applied[i], h->applied[part]);
            assert_true(sy_digest_eq(&h->state[i], &h->state[part]));
            /* whoever a correct replica names, the faulty one is among them */
            sy_engine_status st = h_status(h, i);
            if (st.dissent)
                assert_true(st.dissent_from == node || st.dissent_primary == node);
            if (st.evidence)
                assert_int_equal(st.evidence_from, node);
            if (st.bad_sigs)
                assert_int_equal(st.bad_sig_from, node);
            dissent += st.dissent;
            /* and per replica: evidence and bad signatures only against it */
            sy_accused a;
            h->ops->accused(h->e[i], &a);
            for (uint32_t k = 0; k < 4; k++)
                if (k != node) {
                    assert_int_equal(a.evidence[k], 0);
                    assert_int_equal(a.bad_sigs[k], 0);
                }
            if (code == SY_PBFT_WRONG_DIGEST)
                assert_int_equal(a.dissent[node], st.dissent);
        }
    /* a backup voting for wrong digests is seen doing it */
    if (code == SY_PBFT_WRONG_DIGEST)
        assert_true(dissent > 0);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

#define BEHAVIOUR_TEST(name, code)                                              \
    static void test_##name##_primary_cannot_break_safety_or_liveness(void **s) \
    {                                                                           \
        (void)s;                                                                \
        run_behaviour(0, code);                                                 \
    }                                                                           \
    static void test_##name##_backup_cannot_break_safety_or_liveness(void **s)  \
    {                                                                           \
        (void)s;                                                                \
        run_behaviour(1, code);                                                 \
    }

BEHAVIOUR_TEST(silent, SY_PBFT_SILENT)
BEHAVIOUR_TEST(equivocate, SY_PBFT_EQUIVOCATE)
BEHAVIOUR_TEST(skip_seq, SY_PBFT_SKIP_SEQ)
BEHAVIOUR_TEST(bad_sig, SY_PBFT_BAD_SIG)
BEHAVIOUR_TEST(replay, SY_PBFT_REPLAY)
BEHAVIOUR_TEST(wrong_digest, SY_PBFT_WRONG_DIGEST)
BEHAVIOUR_TEST(fake_prepared, SY_PBFT_FAKE_PREPARED)
BEHAVIOUR_TEST(bad_new_view, SY_PBFT_BAD_NEW_VIEW)
BEHAVIOUR_TEST(flood, SY_PBFT_FLOOD)
BEHAVIOUR_TEST(bad_state, SY_PBFT_BAD_STATE)

#define BT(name) cmocka_unit_test(test_##name##_primary_cannot_break_safety_or_liveness), \
                 cmocka_unit_test(test_##name##_backup_cannot_break_safety_or_liveness)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silent_primary_is_replaced_and_requests_commit),
        cmocka_unit_test(test_request_prepared_when_primary_fails_keeps_its_sequence_number),
        cmocka_unit_test(test_request_known_only_to_failed_primary_is_never_executed_differently),
        cmocka_unit_test(test_request_no_primary_ordered_survives_view_changes_without_retransmission),
        cmocka_unit_test(test_successive_view_changes_back_off_exponentially),
        cmocka_unit_test(test_lone_replica_does_not_run_ahead_of_the_others),
        cmocka_unit_test(test_replica_back_after_a_view_change_learns_the_view_in_an_idle_cluster),
        cmocka_unit_test(test_stopping_primary_hands_its_view_to_the_next_primary),
        cmocka_unit_test(test_hand_offs_do_not_back_off_the_next_view_change),
        cmocka_unit_test(test_restarted_primary_repeats_its_new_view_to_a_backup_that_missed_it),
        cmocka_unit_test(test_lagging_replica_catches_up_by_state_transfer),
        cmocka_unit_test(test_corrupt_state_is_detected_and_another_replica_asked),
        cmocka_unit_test(test_replicas_whose_snapshots_differ_never_make_a_checkpoint_stable),
        cmocka_unit_test(test_equivocating_primary_leaves_evidence_and_replicas_stay_safe),
        BT(silent), BT(equivocate), BT(skip_seq), BT(bad_sig), BT(replay),
        BT(wrong_digest), BT(fake_prepared), BT(bad_new_view), BT(flood), BT(bad_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
