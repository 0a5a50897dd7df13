/* Write-ahead log (core/wal.h): what recovery replays and where it stops.
 * The SIGKILL test of the WAL with LMDB is in test_crash.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/storage.h"
#include "core/wal.h"
#include "tests/unit/tmpdir.h"
#include "crypto/sy_err.h"

typedef struct {
    char dir[512];
    sy_storage *s;
    sy_wal *w;
} fx;

static void fx_open(fx *f, uint64_t wal_size)
{
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &f->s, err), SY_OK);
    assert_int_equal(sy_wal_open(f->dir, wal_size, &f->w, err), SY_OK);
}

static size_t fx_recover(fx *f)
{
    size_t n = 99;
    assert_int_equal(sy_wal_recover(f->w, f->s, &n), SY_OK);
    return n;
}

static void fx_close(fx *f)
{
    sy_wal_close(f->w);
    sy_storage_close(f->s);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_true(t_tmpdir(f->dir, sizeof f->dir, "wal"));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    t_rm_datadir(f->dir);
    free(f);
    return 0;
}

/* One ready: hard state "hs<i>" and entry i with `len` bytes of data. */
static int log_entry(fx *f, sy_txn *t, uint64_t i, size_t len)
{
    static uint8_t data[4096];
    memset(data, (int)i, sizeof data);
    char hs[16];
    int hl = snprintf(hs, sizeof hs, "hs%llu", (unsigned long long)i);
    sy_entry e = {.index = i, .term = 2, .type = SY_ENTRY_NORMAL, .data = {data, (uint32_t)len}};
    sy_ready rd = {.hardstate_dirty = true, .hardstate = {(const uint8_t *)hs, (uint32_t)hl},
                   .entries = &e, .n_entries = 1};
    int rc = sy_txn_persist_ready(t, &rd);
    bool full = false;
    if (!rc)
        rc = sy_wal_log(f->w, t, &rd, &full);
    return rc ? rc : full ? SY_EFULL : SY_OK;
}

static uint64_t last_index(fx *f)
{
    sy_txn t;
    uint64_t first, last;
    assert_int_equal(sy_txn_begin(f->s, false, &t), SY_OK);
    assert_int_equal(sy_txn_log_bounds(&t, &first, &last), SY_OK);
    sy_txn_abort(&t);
    return last;
}

static void test_logged_entries_come_back_without_an_lmdb_commit(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 0);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(log_entry(f, &t, i, 100), SY_OK);
    sy_txn_abort(&t);   /* the crash: LMDB never committed */
    fx_close(f);
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 3);
    assert_int_equal(last_index(f), 3);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_OK);
    assert_int_equal(b.boot.hardstate.len, 3);
    assert_memory_equal(b.boot.hardstate.p, "hs3", 3);
    assert_int_equal(b.boot.entries[1].term, 2);
    assert_int_equal(b.boot.entries[1].data.len, 100);
    assert_int_equal(b.boot.entries[1].data.p[0], 2);
    sy_storage_boot_free(&b);
    /* replayed once: a second recovery finds nothing newer than wal_seq */
    fx_close(f);
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 0);
    assert_int_equal(last_index(f), 3);
    assert_false(sy_wal_missing(f->w));
    fx_close(f);
}

/* Engine records ride in the log record with the rest of the ready: a
 * crash before the LMDB commit loses none of them, deletes and drops
 * included. */
static void test_logged_engine_records_come_back_without_an_lmdb_commit(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 0);
    sy_txn t;
    bool full = false;
    sy_record r1[3] = { { 2, { (const uint8_t *)"two", 3 } }, { 4, { (const uint8_t *)"four", 4 } },
                        { 6, { (const uint8_t *)"six", 3 } } };
    sy_record r2[2] = { { 6, { NULL, 0 } }, { 8, { (const uint8_t *)"eight", 5 } } };
    sy_ready rd1 = { .records = r1, .n_records = 3 };
    sy_ready rd2 = { .records_drop_below = 3, .records = r2, .n_records = 2 };
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_persist_ready(&t, &rd1), SY_OK);
    assert_int_equal(sy_wal_log(f->w, &t, &rd1, &full), SY_OK);
    assert_int_equal(sy_txn_persist_ready(&t, &rd2), SY_OK);
    assert_int_equal(sy_wal_log(f->w, &t, &rd2, &full), SY_OK);
    assert_false(full);
    sy_txn_abort(&t);   /* the crash */
    fx_close(f);
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 2);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_OK);
    assert_int_equal(b.boot.n_records, 2);
    assert_int_equal(b.boot.records[0].key, 4);
    assert_memory_equal(b.boot.records[0].val.p, "four", 4);
    assert_int_equal(b.boot.records[1].key, 8);
    assert_memory_equal(b.boot.records[1].val.p, "eight", 5);
    sy_storage_boot_free(&b);
    fx_close(f);
}

static void unlink_wal(fx *f)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", f->dir, SY_WAL_FILE);
    assert_int_equal(unlink(p), 0);
}

static void mark_clean(fx *f)
{
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_wal_mark_clean(f->w, &t), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
}

static void test_a_missing_log_is_refused_unless_the_node_stopped_cleanly(void **state)
{
    fx *f = *state;
    sy_txn t;
    /* a node logs record 1, commits, and stops cleanly */
    fx_open(f, 0);
    fx_recover(f);
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(log_entry(f, &t, 1, 100), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    mark_clean(f);   /* as the daemon's last commit does */
    fx_close(f);
    /* the wal file is gone: harmless, everything is in LMDB */
    unlink_wal(f);
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 0);
    assert_true(sy_wal_missing(f->w));
    /* it runs on, logs record 2 (committed), then crashes: no mark */
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(log_entry(f, &t, 2, 100), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    fx_close(f);
    /* now a missing file may hide acknowledged writes: refused */
    unlink_wal(f);
    fx_open(f, 0);
    assert_int_equal(sy_wal_recover(f->w, f->s, NULL), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(f->s), "unclean stop"));
    /* and the line says where the way out is documented */
    assert_non_null(strstr(sy_storage_errmsg(f->s), "treat the disk as failed "
                                                    "(docs/operations.md, section 7)"));
    fx_close(f);
    /* and refused again at the next start: the refusal does not leave the
     * file it made behind for that start to find */
    fx_open(f, 0);
    assert_int_equal(sy_wal_recover(f->w, f->s, NULL), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(f->s), "unclean stop"));
    fx_close(f);
}

/* Flips one byte of record k's payload (records here are 24 + 142 bytes). */
static void rot_record(fx *f, int k)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", f->dir, SY_WAL_FILE);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint8_t x;
    off_t at = (off_t)(166 * (k - 1) + 24 + 50);
    assert_int_equal(pread(fd, &x, 1, at), 1);
    x ^= 0x40;
    assert_int_equal(pwrite(fd, &x, 1, at), 1);
    close(fd);
}

static void log_three(fx *f)
{
    fx_open(f, 0);
    fx_recover(f);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(log_entry(f, &t, i, 100), SY_OK);
    sy_txn_abort(&t);
    fx_close(f);
}

static void test_a_torn_last_record_ends_the_replay(void **state)
{
    fx *f = *state;
    log_three(f);
    rot_record(f, 3);   /* the record being written at the crash */
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 2);
    assert_int_equal(last_index(f), 2);
    fx_close(f);
}

static void test_a_damaged_record_inside_the_log_is_corruption(void **state)
{
    fx *f = *state;
    log_three(f);
    rot_record(f, 2);   /* record 3 after it was acknowledged: not an end */
    fx_open(f, 0);
    size_t n = 0;
    assert_int_equal(sy_wal_recover(f->w, f->s, &n), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(f->s), "record 2 is damaged"));
    fx_close(f);
}

static void test_another_stores_log_is_not_replayed(void **state)
{
    fx *f = *state;
    log_three(f);
    /* the store is replaced (an operator removed data.mdb), the wal stays */
    char p[600];
    snprintf(p, sizeof p, "%s/data.mdb", f->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", f->dir);
    unlink(p);
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 0);
    assert_int_equal(last_index(f), 0);
    fx_close(f);
}

static void test_records_of_an_earlier_round_are_not_replayed(void **state)
{
    fx *f = *state;
    fx_open(f, 0);
    fx_recover(f);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    for (uint64_t i = 1; i <= 4; i++)
        assert_int_equal(log_entry(f, &t, i, 500), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);   /* LMDB holds records 1..4 */
    sy_wal_reset(f->w);
    /* round two overwrites the start of the file with a shorter record; the
     * old records 2..4 stay behind it */
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(log_entry(f, &t, 5, 10), SY_OK);
    sy_txn_abort(&t);
    fx_close(f);
    fx_open(f, 0);
    assert_int_equal(fx_recover(f), 1);   /* record 5 only */
    assert_int_equal(last_index(f), 5);
    fx_close(f);
}

static void test_a_full_log_says_so_and_writes_nothing(void **state)
{
    fx *f = *state;
    fx_open(f, 4096);
    fx_recover(f);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    uint64_t i = 1;
    int rc;
    while ((rc = log_entry(f, &t, i, 1000)) == SY_OK)
        i++;
    assert_int_equal(rc, SY_EFULL);
    assert_int_equal(i, 4);   /* three ~1 KB records fit in 4 KB */
    assert_true(sy_wal_used(f->w) <= 4096);
    sy_txn_abort(&t);
    fx_close(f);
    fx_open(f, 4096);
    assert_int_equal(fx_recover(f), 3);
    assert_int_equal(last_index(f), 3);
    fx_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_logged_entries_come_back_without_an_lmdb_commit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_logged_engine_records_come_back_without_an_lmdb_commit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_torn_last_record_ends_the_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_damaged_record_inside_the_log_is_corruption, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_another_stores_log_is_not_replayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_log_is_refused_unless_the_node_stopped_cleanly,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_of_an_earlier_round_are_not_replayed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_full_log_says_so_and_writes_nothing, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
