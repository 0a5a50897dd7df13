/* Raft engine under a hostile network: seeded runs with message loss,
 * delay/reordering, duplication, partitions and crash-restarts. Checks State
 * Machine Safety (no two nodes apply different entries at one index) all the
 * way, and liveness once the network heals. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "raft_harness.h"

/* What a chaos run ends with, once the faults stop: how many nodes reached
 * the leader's commit index, and that index. Log agreement is asserted at
 * every step inside the run (a safety violation fails at once). */
typedef struct { uint32_t caught_up; uint64_t commit; } chaos_outcome;

static chaos_outcome chaos_run(uint64_t seed, uint32_t n, bool prevote, bool check_quorum,
                               bool snapshots)
{
    chaos_outcome o = { 0, 0 };
    h_cluster c;
    h_init_cfg(&c, n, prevote, check_quorum);
    for (uint32_t i = 0; i < n; i++) {
        c.cfg[i].rng_seed = seed * 7919 + i;
        c.cfg[i].max_inflight = 4;
        c.cfg[i].batch_bytes_max = 512;
    }
    h_start(&c);
    sy_rng_seed(&c.chaos, seed);
    c.drop_pct = 10;
    c.delay_pct = 10;
    c.dup_pct = 5;
    sy_rng rng;
    sy_rng_seed(&rng, seed ^ 0xabcdef);
    uint64_t req = 0;
    for (int step = 0; step < 3000; step++) {
        uint32_t roll = (uint32_t)sy_rng_below(&rng, 1000);
        uint32_t x = (uint32_t)sy_rng_below(&rng, n);
        if (roll < 3 && c.alive[x]) {
            h_crash(&c, x);
        } else if (roll < 8 && !c.alive[x]) {
            assert_int_equal(h_boot(&c, x), SY_OK);
        } else if (roll < 12) {
            h_isolate(&c, x, true);
        } else if (roll < 20) {
            for (uint32_t i = 0; i < n; i++)
                h_isolate(&c, i, false);
        } else if (snapshots && roll < 25 && c.alive[x]) {
            h_snapshot(&c, x, 2000);   /* 4 chunks of batch_bytes_max */
        }
        uint32_t l = h_leader(&c);
        if (l != SY_NO_NODE && sy_rng_below(&rng, 2) == 0)
            h_request(&c, l, SY_CLIENT_ID_BASE, ++req);
        h_run(&c, 1);
        assert_true(h_logs_agree(&c));
    }
    /* heal everything; the cluster must converge and take new work */
    c.drop_pct = c.delay_pct = c.dup_pct = 0;
    for (uint32_t i = 0; i < n; i++) {
        h_isolate(&c, i, false);
        if (!c.alive[i])
            assert_int_equal(h_boot(&c, i), SY_OK);
    }
    uint32_t l = SY_NO_NODE;
    for (int k = 0; k < 300 && l == SY_NO_NODE; k++) {
        h_run(&c, 10);
        l = h_leader(&c);
    }
    assert_int_not_equal(l, SY_NO_NODE);
    h_request(&c, l, SY_CLIENT_ID_BASE + 1, 1);
    h_run(&c, 1000);
    assert_true(h_logs_agree(&c));
    l = h_leader(&c);
    assert_int_not_equal(l, SY_NO_NODE);
    o.commit = h_status(&c, l).commit_index;
    for (uint32_t i = 0; i < n; i++)
        if (h_status(&c, i).commit_index == o.commit)
            o.caught_up++;
    if (getenv("RAFT_CHAOS_VERBOSE"))
        fprintf(stderr, "seed %llu: term %llu commit %llu snap %llu requests %llu applied %llu\n",
                (unsigned long long)seed, (unsigned long long)h_status(&c, l).term,
                (unsigned long long)h_status(&c, l).commit_index,
                (unsigned long long)c.node[(l + 1) % n].snap_index, (unsigned long long)req,
                (unsigned long long)h_applied_requests(&c, l));
    h_free(&c);
    return o;
}

/* every node recovered to the same commit index, and requests committed */
static void assert_recovered(chaos_outcome o, uint32_t n)
{
    assert_int_equal(o.caught_up, n);
    assert_true(o.commit > 0);
}

static void test_safety_and_recovery_under_loss_reorder_dup_crash(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++)
        assert_recovered(chaos_run(seed, 3, true, true, false), 3);
}

static void test_safety_under_chaos_without_prevote_five_nodes(void **state)
{
    (void)state;
    for (uint64_t seed = 11; seed <= 14; seed++)
        assert_recovered(chaos_run(seed, 5, false, false, false), 5);
}

static void test_safety_under_chaos_with_snapshots(void **state)
{
    (void)state;
    for (uint64_t seed = 21; seed <= 26; seed++)
        assert_recovered(chaos_run(seed, 3, true, true, true), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safety_and_recovery_under_loss_reorder_dup_crash),
        cmocka_unit_test(test_safety_under_chaos_without_prevote_five_nodes),
        cmocka_unit_test(test_safety_under_chaos_with_snapshots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
