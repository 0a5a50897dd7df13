/* PBFT mutants and restarts: the harness's agreement check catches a
 * planted bug that a correct engine does not have; a replica restarted from
 * its persisted hardstate and log neither forgets what it executed nor
 * votes twice at a (view, seq). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/unit/test_pbft_harness.h"

static uint32_t mutant_code;
static void tweak_mutants(uint32_t node, sy_engine_cfg *c)
{
    c->test_behaviour = node == 0 ? SY_PBFT_EQUIVOCATE : mutant_code;
}

static void test_equivocation_is_harmless_to_correct_backups(void **state)
{
    (void)state;
    mutant_code = SY_PBFT_HONEST;
    harness *h = h_new(4, 1, false, 16, tweak_mutants);
    for (uint32_t r = 0; r < 4; r++) {
        h_submit(h, r % H_CLIENTS, 0xf);
        h_run_for(h, 500, 50);
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_mutant_counting_prepares_for_any_digest_is_caught(void **state)
{
    (void)state;
    /* same run, but the backups do not compare digests: the backup that
     * got the other batch "prepares" it on votes for the real one */
    mutant_code = SY_PBFT_MUTANT_ACCEPT_WRONG_DIGEST;
    harness *h = h_new(4, 1, false, 16, tweak_mutants);
    for (uint32_t r = 0; r < 4; r++) {
        h_submit(h, r % H_CLIENTS, 0xf);
        h_run_for(h, 500, 50);
    }
    assert_true(h->violations > 0);
    h_free(h);
}

/* ------------------------------------------------------------ restart */

static void tweak_small(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = 1;
}

static void test_restarted_replica_resumes_without_reexecuting_or_revoting(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 4, tweak_small);
    for (uint32_t r = 0; r < 6; r++) {
        h_submit(h, r % H_CLIENTS, 1u);
        h_run(h);
    }
    sy_digest before = h->state[3];
    assert_int_equal(h->applied[3], 6);
    /* crash node 3: its state machine reloads the checkpoint at 4 and the
     * engine replays the durable entries 5 and 6 */
    assert_int_equal(h_restart(h, 3), SY_OK);
    assert_int_equal(h->applied[3], 4);
    assert_true(h_process(h, 3));
    assert_int_equal(h->applied[3], 6);
    assert_true(sy_digest_eq(&h->state[3], &before));
    sy_engine_status st = h_status(h, 3);
    assert_int_equal(st.commit_index, 6);
    assert_int_equal(st.snap_index, 4);
    /* the cluster, node 3 included, keeps going, and nobody sees node 3
     * sign two different statements */
    for (uint32_t r = 0; r < 4; r++) {
        h_submit(h, r % H_CLIENTS, 1u);
        h_run(h);
    }
    assert_int_equal(h->applied[3], 10);
    assert_true(sy_digest_eq(&h->state[3], &h->state[0]));
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(h_status(h, i).evidence, 0);
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_primary_restarted_mid_view_never_reuses_a_sequence_number(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 64, tweak_small);
    for (uint32_t r = 0; r < 3; r++) {
        h_submit(h, r % H_CLIENTS, 1u);
        h_run(h);
    }
    assert_int_equal(h_restart(h, 0), SY_OK);
    h_run(h);
    h_submit(h, 0, 1u);
    h_run(h);
    /* a reused seq would show as a second pre-prepare: evidence */
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(h_status(h, i).evidence, 0);
        assert_int_equal(h->applied[i], 4);
    }
    assert_int_equal(h->violations, 0);
    h_free(h);
}

static void test_restart_reemits_durable_but_unapplied_entries(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 64, NULL);
    h_submit(h, 0, 1u);
    h_submit(h, 1, 1u);
    h_run(h);
    /* fabricate node 2's disk: two committed entries, one applied */
    sy_entry ents[2];
    uint8_t *raw0, *raw1;
    size_t l0, l1;
    h_make_request(h, 0, &raw0, &l0);
    h_make_request(h, 1, &raw1, &l1);
    uint8_t *b0, *b1;
    size_t bl0, bl1;
    sy_bytes one0 = { raw0, (uint32_t)l0 }, one1 = { raw1, (uint32_t)l1 };
    assert_int_equal(sy_batch_encode(&one0, 1, &b0, &bl0), SY_OK);
    assert_int_equal(sy_batch_encode(&one1, 1, &b1, &bl1), SY_OK);
    ents[0] = (sy_entry){ .index = 1, .type = SY_ENTRY_NORMAL, .data = { b0, (uint32_t)bl0 } };
    ents[1] = (sy_entry){ .index = 2, .type = SY_ENTRY_NORMAL, .data = { b1, (uint32_t)bl1 } };
    void *e;
    sy_engine_boot boot = { .entries = ents, .n_entries = 2, .applied = 1 };
    assert_int_equal(h->ops->create(&h->cfg[2], &boot, &e), SY_OK);
    sy_ready rd;
    h->ops->ready(e, &rd);
    assert_int_equal(rd.n_committed, 1);
    assert_int_equal(rd.committed[0].entry.index, 2);
    h->ops->advance(e, h->now);
    h->ops->destroy(e);
    free(b0);
    free(b1);
    free(raw0);
    free(raw1);
    h_free(h);
}

static void test_corrupt_hardstate_is_refused_at_boot(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 64, NULL);
    uint8_t junk[7] = { 9, 9, 9, 9, 9, 9, 9 };
    sy_engine_boot boot = { .hardstate = { junk, sizeof junk } };
    void *e = NULL;
    assert_int_equal(h->ops->create(&h->cfg[1], &boot, &e), SY_ECORRUPT);
    h_free(h);
}

static void test_configuration_needs_3f_plus_1_replicas(void **state)
{
    (void)state;
    harness *h = h_new(4, 1, false, 64, NULL);
    sy_engine_cfg c = h->cfg[0];
    c.f = 2;   /* 4 < 3*2+1 */
    void *e = NULL;
    assert_int_equal(h->ops->create(&c, NULL, &e), SY_EINVAL);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equivocation_is_harmless_to_correct_backups),
        cmocka_unit_test(test_mutant_counting_prepares_for_any_digest_is_caught),
        cmocka_unit_test(test_restarted_replica_resumes_without_reexecuting_or_revoting),
        cmocka_unit_test(test_primary_restarted_mid_view_never_reuses_a_sequence_number),
        cmocka_unit_test(test_restart_reemits_durable_but_unapplied_entries),
        cmocka_unit_test(test_corrupt_hardstate_is_refused_at_boot),
        cmocka_unit_test(test_configuration_needs_3f_plus_1_replicas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
