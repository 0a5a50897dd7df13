/* Linearizability checker: known-bad histories must be rejected, known-good
 * ones (including concurrent and pending ops) accepted, and the work bound
 * must turn a hopeless search into "unknown" instead of a hang. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "tests/sim/linz.h"
#include "core/msg.h"
#include "core/rng.h"
#include "crypto/sy_err.h"

static size_t inv(sy_linz *h, uint32_t c, uint64_t t, uint8_t op, const char *k,
                  const char *v, const char *old)
{
    size_t id;
    assert_int_equal(sy_linz_invoke(h, c, t, op, 0, k, strlen(k), v, v ? strlen(v) : 0,
                                    old, old ? strlen(old) : 0, &id), SY_OK);
    return id;
}

static void ret(sy_linz *h, size_t id, uint64_t t, int status, const char *v)
{
    assert_int_equal(sy_linz_return(h, id, t, status, v, v ? strlen(v) : 0), SY_OK);
}

static void op(sy_linz *h, uint32_t c, uint64_t t0, uint64_t t1, uint8_t o, const char *k,
               const char *v, const char *old, int status, const char *out)
{
    ret(h, inv(h, c, t0, o, k, v, old), t1, status, out);
}

static int verdict(sy_linz *h)
{
    sy_linz_result r;
    assert_int_equal(sy_linz_check(h, 0, &r), SY_OK);
    return r.verdict;
}

static void test_sequential_put_then_get_is_linearizable(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_GET, "x", NULL, NULL, SY_ENOTFOUND, NULL);
    op(h, 1, 20, 30, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 1, 40, 50, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    op(h, 1, 60, 70, SY_OP_DEL, "x", NULL, NULL, SY_OK, NULL);
    op(h, 1, 80, 90, SY_OP_GET, "x", NULL, NULL, SY_ENOTFOUND, NULL);
    assert_int_equal(verdict(h), SY_LINZ_OK);
    sy_linz_free(h);
}

static void test_stale_read_after_completed_write_is_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 1, 20, 30, SY_OP_PUT, "x", "2", NULL, SY_OK, NULL);
    op(h, 2, 40, 50, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    sy_linz_result r;
    assert_int_equal(sy_linz_check(h, 0, &r), SY_OK);
    assert_int_equal(r.verdict, SY_LINZ_VIOLATION);
    assert_string_equal(r.key, "x");
    assert_int_equal(r.key_ops, 3);
    sy_linz_free(h);
}

static void test_read_of_absent_key_after_write_is_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 2, 20, 30, SY_OP_GET, "x", NULL, NULL, SY_ENOTFOUND, NULL);
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_read_of_never_written_value_is_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 100, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 2, 10, 20, SY_OP_GET, "x", NULL, NULL, SY_OK, "7");
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_concurrent_writes_seen_in_contradicting_orders_are_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 100, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 2, 0, 100, SY_OP_PUT, "x", "2", NULL, SY_OK, NULL);
    /* reader A sees 1 then 2, reader B sees 2 then 1: no single order */
    op(h, 3, 10, 20, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    op(h, 3, 30, 40, SY_OP_GET, "x", NULL, NULL, SY_OK, "2");
    op(h, 4, 50, 60, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_concurrent_writes_seen_in_one_order_are_accepted(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 100, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 2, 0, 100, SY_OP_PUT, "x", "2", NULL, SY_OK, NULL);
    op(h, 3, 10, 20, SY_OP_GET, "x", NULL, NULL, SY_OK, "2");
    op(h, 4, 30, 40, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    op(h, 3, 110, 120, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    assert_int_equal(verdict(h), SY_LINZ_OK);
    sy_linz_free(h);
}

static void test_read_overlapping_write_may_see_either_value(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "x", "0", NULL, SY_OK, NULL);
    op(h, 1, 20, 100, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 2, 30, 40, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    op(h, 3, 50, 60, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    assert_int_equal(verdict(h), SY_LINZ_OK);
    sy_linz_free(h);
}

static void test_cas_success_with_wrong_old_value_is_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "x", "a", NULL, SY_OK, NULL);
    op(h, 2, 20, 30, SY_OP_CAS, "x", "c", "b", SY_OK, NULL);
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_cas_failure_when_value_matched_is_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "x", "a", NULL, SY_OK, NULL);
    op(h, 2, 20, 30, SY_OP_CAS, "x", "c", "a", SY_ECASFAIL, "a");
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_cas_chain_is_linearizable_and_reports_current_value(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    size_t id;
    assert_int_equal(sy_linz_invoke(h, 1, 0, SY_OP_CAS, SY_CAS_EXPECT_ABSENT, "x", 1, "a", 1,
                                    NULL, 0, &id), SY_OK);
    ret(h, id, 10, SY_OK, NULL);
    /* two concurrent cas from a: exactly one may win */
    op(h, 2, 20, 50, SY_OP_CAS, "x", "b", "a", SY_OK, NULL);
    op(h, 3, 20, 50, SY_OP_CAS, "x", "c", "a", SY_ECASFAIL, "b");
    op(h, 4, 60, 70, SY_OP_GET, "x", NULL, NULL, SY_OK, "b");
    assert_int_equal(verdict(h), SY_LINZ_OK);
    /* ...and both winning is impossible */
    op(h, 5, 80, 90, SY_OP_CAS, "x", "d", "b", SY_OK, NULL);
    op(h, 6, 80, 90, SY_OP_CAS, "x", "e", "b", SY_OK, NULL);
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_failed_cas_reporting_absent_while_the_key_holds_a_value_is_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "x", "a", NULL, SY_OK, NULL);
    /* the store reports a failed cas's current value: empty = absent */
    op(h, 2, 20, 30, SY_OP_CAS, "x", "c", "b", SY_ECASFAIL, NULL);
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);

    /* absent, or holding the empty value: both report empty */
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_CAS, "x", "c", "b", SY_ECASFAIL, NULL);
    op(h, 1, 20, 30, SY_OP_PUT, "x", "", NULL, SY_OK, NULL);
    op(h, 1, 40, 50, SY_OP_CAS, "x", "c", "b", SY_ECASFAIL, NULL);
    assert_int_equal(verdict(h), SY_LINZ_OK);
    sy_linz_free(h);
}

static void test_pending_write_may_take_effect_late(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    inv(h, 1, 0, SY_OP_PUT, "x", "1", NULL);      /* client gave up: no response */
    op(h, 2, 10, 20, SY_OP_GET, "x", NULL, NULL, SY_ENOTFOUND, NULL);
    op(h, 2, 500, 510, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    assert_int_equal(verdict(h), SY_LINZ_OK);
    sy_linz_free(h);
}

static void test_pending_write_may_never_take_effect(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    inv(h, 1, 0, SY_OP_PUT, "x", "1", NULL);
    inv(h, 1, 5, SY_OP_CAS, "x", "2", "1");
    inv(h, 3, 6, SY_OP_GET, "x", NULL, NULL);     /* pending read: ignored */
    op(h, 2, 10, 20, SY_OP_GET, "x", NULL, NULL, SY_ENOTFOUND, NULL);
    assert_int_equal(verdict(h), SY_LINZ_OK);
    sy_linz_free(h);
}

static void test_pending_write_cannot_be_undone(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    inv(h, 1, 0, SY_OP_PUT, "x", "1", NULL);
    op(h, 2, 10, 20, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    op(h, 2, 30, 40, SY_OP_GET, "x", NULL, NULL, SY_ENOTFOUND, NULL);
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_pending_write_cannot_act_before_its_invocation(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 2, 10, 20, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    inv(h, 1, 30, SY_OP_PUT, "x", "1", NULL);
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_delete_then_stale_read_is_rejected(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "x", "1", NULL, SY_OK, NULL);
    op(h, 1, 20, 30, SY_OP_DEL, "x", NULL, NULL, SY_OK, NULL);
    op(h, 2, 40, 50, SY_OP_GET, "x", NULL, NULL, SY_OK, "1");
    assert_int_equal(verdict(h), SY_LINZ_VIOLATION);
    sy_linz_free(h);
}

static void test_violation_names_the_bad_key_among_good_ones(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    op(h, 1, 0, 10, SY_OP_PUT, "a", "1", NULL, SY_OK, NULL);
    op(h, 1, 0, 10, SY_OP_PUT, "b", "1", NULL, SY_OK, NULL);
    op(h, 1, 20, 30, SY_OP_GET, "a", NULL, NULL, SY_OK, "1");
    op(h, 1, 20, 30, SY_OP_GET, "b", NULL, NULL, SY_ENOTFOUND, NULL);
    sy_linz_result r;
    assert_int_equal(sy_linz_check(h, 0, &r), SY_OK);
    assert_int_equal(r.verdict, SY_LINZ_VIOLATION);
    assert_string_equal(r.key, "b");
    char line[160];
    sy_linz_describe(h, r.bad_op, line, sizeof line);
    assert_non_null(strstr(line, " b "));
    sy_linz_free(h);
}

static void test_work_bound_gives_unknown_instead_of_hanging(void **s)
{
    (void)s;
    sy_linz *h;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    char v[16];
    for (int i = 0; i < 40; i++) {
        snprintf(v, sizeof v, "v%d", i);
        op(h, (uint32_t)i, 0, 1000, SY_OP_PUT, "x", v, NULL, SY_OK, NULL);
    }
    op(h, 99, 2000, 2010, SY_OP_GET, "x", NULL, NULL, SY_OK, "never");
    sy_linz_result r;
    assert_int_equal(sy_linz_check(h, 5000, &r), SY_OK);
    assert_int_equal(r.verdict, SY_LINZ_UNKNOWN);
    assert_true(r.steps <= 5000);
    sy_linz_free(h);
}

static void test_invoke_rejects_unsupported_ops_and_bad_returns(void **s)
{
    (void)s;
    sy_linz *h;
    size_t id;
    assert_int_equal(sy_linz_new(&h), SY_OK);
    assert_int_equal(sy_linz_invoke(h, 1, 0, SY_OP_SCAN, 0, "a", 1, NULL, 0, NULL, 0, &id),
                     SY_EINVAL);
    id = inv(h, 1, 10, SY_OP_PUT, "a", "1", NULL);
    assert_int_equal(sy_linz_return(h, id, 5, SY_OK, NULL, 0), SY_EINVAL);
    assert_int_equal(sy_linz_return(h, id + 1, 20, SY_OK, NULL, 0), SY_EINVAL);
    ret(h, id, 20, SY_OK, NULL);
    assert_int_equal(sy_linz_return(h, id, 30, SY_OK, NULL, 0), SY_EINVAL);
    sy_linz_free(h);
}

/* Random histories produced by a real sequential store with random
 * linearization points inside random intervals must always be accepted;
 * corrupting one read result must (almost always) be caught. */
static void test_random_histories_from_a_sequential_store_are_accepted(void **s)
{
    (void)s;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        sy_rng rng;
        sy_rng_seed(&rng, seed);
        sy_linz *h;
        assert_int_equal(sy_linz_new(&h), SY_OK);
        char store[3][8] = { "", "", "" };  /* "" = absent */
        for (int i = 0; i < 200; i++) {
            uint64_t point = (uint64_t)i * 10 + 5;
            uint64_t t0 = point - sy_rng_below(&rng, 40 < point ? 40 : point);
            uint64_t t1 = point + sy_rng_below(&rng, 40);
            int k = (int)sy_rng_below(&rng, 3);
            char key[2] = { (char)('a' + k), 0 };
            char val[8];
            snprintf(val, sizeof val, "%d", (int)sy_rng_below(&rng, 4));
            int kind = (int)sy_rng_below(&rng, 5);
            bool pending = sy_rng_below(&rng, 20) == 0;
            size_t id;
            if (kind == 0 || kind == 4) {
                id = inv(h, 1, t0, SY_OP_PUT, key, val, NULL);
                strcpy(store[k], val);
                if (!pending)
                    ret(h, id, t1, SY_OK, NULL);
            } else if (kind == 1) {
                id = inv(h, 1, t0, SY_OP_GET, key, NULL, NULL);
                if (!pending)
                    ret(h, id, t1, store[k][0] ? SY_OK : SY_ENOTFOUND,
                        store[k][0] ? store[k] : NULL);
            } else if (kind == 2) {
                id = inv(h, 1, t0, SY_OP_DEL, key, NULL, NULL);
                bool had = store[k][0] != 0;
                store[k][0] = 0;
                if (!pending)
                    ret(h, id, t1, had ? SY_OK : SY_ENOTFOUND, NULL);
            } else {
                char old[8];
                snprintf(old, sizeof old, "%d", (int)sy_rng_below(&rng, 4));
                id = inv(h, 1, t0, SY_OP_CAS, key, val, old);
                bool ok = strcmp(store[k], old) == 0;
                char cur[8];
                strcpy(cur, store[k]);
                if (ok)
                    strcpy(store[k], val);
                if (!pending)
                    ret(h, id, t1, ok ? SY_OK : SY_ECASFAIL, ok ? NULL : (cur[0] ? cur : NULL));
            }
        }
        sy_linz_result r;
        assert_int_equal(sy_linz_check(h, 0, &r), SY_OK);
        assert_int_equal(r.verdict, SY_LINZ_OK);
        assert_int_equal(r.partitions, 3);
        sy_linz_free(h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_put_then_get_is_linearizable),
        cmocka_unit_test(test_stale_read_after_completed_write_is_rejected),
        cmocka_unit_test(test_read_of_absent_key_after_write_is_rejected),
        cmocka_unit_test(test_read_of_never_written_value_is_rejected),
        cmocka_unit_test(test_concurrent_writes_seen_in_contradicting_orders_are_rejected),
        cmocka_unit_test(test_concurrent_writes_seen_in_one_order_are_accepted),
        cmocka_unit_test(test_read_overlapping_write_may_see_either_value),
        cmocka_unit_test(test_cas_success_with_wrong_old_value_is_rejected),
        cmocka_unit_test(test_cas_failure_when_value_matched_is_rejected),
        cmocka_unit_test(test_cas_chain_is_linearizable_and_reports_current_value),
        cmocka_unit_test(test_failed_cas_reporting_absent_while_the_key_holds_a_value_is_rejected),
        cmocka_unit_test(test_pending_write_may_take_effect_late),
        cmocka_unit_test(test_pending_write_may_never_take_effect),
        cmocka_unit_test(test_pending_write_cannot_be_undone),
        cmocka_unit_test(test_pending_write_cannot_act_before_its_invocation),
        cmocka_unit_test(test_delete_then_stale_read_is_rejected),
        cmocka_unit_test(test_violation_names_the_bad_key_among_good_ones),
        cmocka_unit_test(test_work_bound_gives_unknown_instead_of_hanging),
        cmocka_unit_test(test_invoke_rejects_unsupported_ops_and_bad_returns),
        cmocka_unit_test(test_random_histories_from_a_sequential_store_are_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
