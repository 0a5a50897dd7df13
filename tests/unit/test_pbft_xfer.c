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
static bool op_until_executed(harness *h, uint32_t c, uint32_t nodes, uint64_t max_ms)
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
            h_submit_raw(h, raw, len, 0xfu);
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
    /* another client's request drives the cluster on; the certified
     * sequence number is re-proposed in a new view and must execute first:
     * no replica may be left fetching a batch nobody has */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_larger_than_a_chunk_moves_in_verified_chunks),
        cmocka_unit_test(test_lagging_replica_catches_up_from_restarted_peers_without_checkpoint),
        cmocka_unit_test(test_restarted_replica_keeps_commit_certificates_of_executed_entries),
        cmocka_unit_test(test_prepared_batch_survives_a_restart_of_every_replica),
        cmocka_unit_test(test_restarted_old_primary_does_not_propose_over_transferred_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
