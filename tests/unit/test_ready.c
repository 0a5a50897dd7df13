/* core/ready.h: the owned copy of a ready survives the engine's memory
 * changing under it, and sy_drop_front keeps what came after a ready. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "core/ready.h"
#include "crypto/sy_err.h"

static void test_copy_is_independent_of_the_engine_memory(void **state)
{
    (void)state;
    uint8_t hs[4] = { 1, 2, 3, 4 }, d1[3] = { 'a', 'b', 'c' }, d2[2] = { 'x', 'y' };
    uint8_t ev[5] = { 9, 9, 9, 9, 9 }, snap[6] = { 'S', 'N', 'A', 'P', '!', '!' };
    sy_entry ents[2] = { { .index = 7, .term = 2, .type = SY_ENTRY_NORMAL, .data = { d1, 3 } },
                         { .index = 8, .term = 2, .type = SY_ENTRY_NORMAL, .data = { d2, 2 } } };
    sy_committed com[1] = { { .entry = { .index = 6, .term = 1, .data = { d2, 2 } },
                              .evidence = { ev, 5 } } };
    sy_read_state rs[1] = { { .read_id = 42, .index = 6, .status = SY_OK } };
    sy_reject rj[1] = { { .client_id = 0x10001, .req_no = 3, .status = SY_EFULL, .leader = 1 } };
    uint8_t rv[3] = { 'r', 'e', 'c' };
    sy_record recs[2] = { { 11, { rv, 3 } }, { 12, { NULL, 0 } } };
    sy_outmsg msgs[1];
    memset(msgs, 0, sizeof msgs);
    sy_ready rd = { .hardstate_dirty = true, .hardstate = { hs, 4 }, .truncate_from = 7,
                    .records_drop_below = 10, .records = recs, .n_records = 2,
                    .entries = ents, .n_entries = 2, .snapshot_install = true, .snap_index = 5,
                    .snap_data = { snap, 6 }, .compact_to = 3, .msgs = msgs, .n_msgs = 1,
                    .committed = com, .n_committed = 1, .reads = rs, .n_reads = 1,
                    .rejects = rj, .n_rejects = 1, .checkpoint_index = 9 };
    sy_ready_owned o;
    assert_int_equal(sy_ready_copy(&rd, &o), SY_OK);
    /* the engine reuses its memory */
    memset(hs, 0, sizeof hs);
    memset(d1, 0, sizeof d1);
    memset(d2, 0, sizeof d2);
    memset(ev, 0, sizeof ev);
    memset(snap, 0, sizeof snap);
    memset(ents, 0, sizeof ents);
    memset(com, 0, sizeof com);
    memset(rs, 0, sizeof rs);
    memset(rj, 0, sizeof rj);
    memset(rv, 0, sizeof rv);
    memset(recs, 0, sizeof recs);
    const sy_ready *c = &o.rd;
    assert_int_equal(c->records_drop_below, 10);
    assert_int_equal(c->n_records, 2);
    assert_int_equal(c->records[0].key, 11);
    assert_memory_equal(c->records[0].val.p, "rec", 3);
    assert_int_equal(c->records[1].key, 12);
    assert_int_equal(c->records[1].val.len, 0);   /* a delete stays a delete */
    assert_true(c->hardstate_dirty);
    assert_memory_equal(c->hardstate.p, "\x01\x02\x03\x04", 4);
    assert_int_equal(c->truncate_from, 7);
    assert_int_equal(c->n_entries, 2);
    assert_int_equal(c->entries[1].index, 8);
    assert_memory_equal(c->entries[0].data.p, "abc", 3);
    assert_memory_equal(c->entries[1].data.p, "xy", 2);
    assert_true(c->snapshot_install);
    assert_memory_equal(c->snap_data.p, "SNAP!!", 6);
    assert_int_equal(c->compact_to, 3);
    assert_int_equal(c->n_committed, 1);
    assert_int_equal(c->committed[0].entry.index, 6);
    assert_memory_equal(c->committed[0].entry.data.p, "xy", 2);
    assert_int_equal(c->committed[0].evidence.len, 5);
    assert_int_equal(c->committed[0].evidence.p[4], 9);
    assert_int_equal(c->reads[0].read_id, 42);
    assert_int_equal(c->rejects[0].req_no, 3);
    assert_int_equal(c->checkpoint_index, 9);
    /* messages are the host's to encode before it steps again */
    assert_null(c->msgs);
    assert_int_equal(c->n_msgs, 0);
    sy_ready_owned_free(&o);
    sy_ready_owned_free(&o);   /* safe twice */
}

static void test_copy_of_an_empty_ready_is_empty(void **state)
{
    (void)state;
    sy_ready rd;
    memset(&rd, 0, sizeof rd);
    sy_ready_owned o;
    assert_int_equal(sy_ready_copy(&rd, &o), SY_OK);
    assert_int_equal(o.rd.n_entries + o.rd.n_committed + o.rd.n_reads + o.rd.n_rejects, 0);
    assert_null(o.rd.entries);
    assert_null(o.rd.hardstate.p);
    sy_ready_owned_free(&o);
}

static void test_drop_front_keeps_what_came_after_the_ready(void **state)
{
    (void)state;
    int a[5] = { 1, 2, 3, 4, 5 };
    size_t n = 5;
    sy_drop_front(a, &n, 3, sizeof a[0]);   /* 3 handed out, 2 stepped in since */
    assert_int_equal(n, 2);
    assert_int_equal(a[0], 4);
    assert_int_equal(a[1], 5);
    sy_drop_front(a, &n, 0, sizeof a[0]);
    assert_int_equal(n, 2);
    sy_drop_front(a, &n, 7, sizeof a[0]);   /* more than there is: all gone */
    assert_int_equal(n, 0);
    sy_drop_front(NULL, &n, 0, sizeof a[0]);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_is_independent_of_the_engine_memory),
        cmocka_unit_test(test_copy_of_an_empty_ready_is_empty),
        cmocka_unit_test(test_drop_front_keeps_what_came_after_the_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
