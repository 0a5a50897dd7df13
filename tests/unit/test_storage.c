/* Storage: the same behaviour tests run on the LMDB and the memory backend,
 * then backend-specific ones (memory crash model, LMDB raw corruption, map
 * full). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lmdb.h>
#include "core/storage.h"
#include "tests/unit/tmpdir.h"
#include "core/ledger.h"
#include "crypto/sy_err.h"

typedef struct fixture {
    bool lmdb;
    char dir[512];
    sy_storage *s;
} fixture;

static void make_tmpdir(char *out, size_t cap, const char *tag)
{
    assert_true(t_tmpdir(out, cap, tag));
}

static void rm_lmdb_dir(const char *dir) { t_rm_datadir(dir); }

static void reopen(fixture *f)
{
    if (!f->lmdb)
        return;  /* the memory "disk" is the object itself */
    sy_storage_close(f->s);
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &f->s, err), SY_OK);
}

static int setup_lmdb(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->lmdb = true;
    make_tmpdir(f->dir, sizeof f->dir, "storage");
    char err[SY_STORAGE_ERRMSG];
    if (sy_storage_lmdb_open(f->dir, NULL, &f->s, err) != SY_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup_mem(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (sy_storage_mem_new(NULL, &f->s) != SY_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sy_storage_close(f->s);
    if (f->lmdb)
        rm_lmdb_dir(f->dir);
    free(f);
    return 0;
}

/* Appends entries lo..hi with term t and data "e<index>". */
static void append_range(sy_storage *s, uint64_t lo, uint64_t hi, uint64_t term)
{
    sy_txn t;
    assert_int_equal(sy_txn_begin(s, true, &t), SY_OK);
    for (uint64_t i = lo; i <= hi; i++) {
        char d[32];
        int n = snprintf(d, sizeof d, "e%llu", (unsigned long long)i);
        sy_entry e = { .index = i, .term = term, .type = SY_ENTRY_NORMAL,
                       .data = { (const uint8_t *)d, (uint32_t)n } };
        assert_int_equal(sy_txn_append(&t, &e, 1), SY_OK);
    }
    assert_int_equal(sy_txn_commit(&t), SY_OK);
}

static void bounds(sy_storage *s, uint64_t *first, uint64_t *last)
{
    sy_txn t;
    assert_int_equal(sy_txn_begin(s, false, &t), SY_OK);
    assert_int_equal(sy_txn_log_bounds(&t, first, last), SY_OK);
    sy_txn_abort(&t);
}

static void test_append_then_read_range_returns_entries_in_order(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 50, 3);
    reopen(f);
    uint64_t first, last;
    bounds(f->s, &first, &last);
    assert_int_equal(first, 1);
    assert_int_equal(last, 50);
    sy_entry *es;
    size_t n;
    assert_int_equal(sy_storage_entries(f->s, 10, 20, &es, &n), SY_OK);
    assert_int_equal(n, 11);
    for (size_t i = 0; i < n; i++) {
        char d[32];
        snprintf(d, sizeof d, "e%zu", 10 + i);
        assert_int_equal(es[i].index, 10 + i);
        assert_int_equal(es[i].term, 3);
        assert_int_equal(es[i].data.len, strlen(d));
        assert_memory_equal(es[i].data.p, d, strlen(d));
    }
    free(es);
    assert_int_equal(sy_storage_entries(f->s, 45, 51, &es, &n), SY_ENOTFOUND);
}

static void test_append_with_gap_is_refused(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 5, 1);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    sy_entry e = { .index = 7, .term = 1 };
    assert_int_equal(sy_txn_append(&t, &e, 1), SY_EINVAL);
    sy_txn_abort(&t);
}

static void test_truncate_drops_suffix_and_overwrite_replaces_it(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 10, 1);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_truncate(&t, 6), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    uint64_t first, last;
    bounds(f->s, &first, &last);
    assert_int_equal(last, 5);
    /* A new leader's entries at 4.. replace the old suffix. */
    append_range(f->s, 4, 8, 2);
    reopen(f);
    bounds(f->s, &first, &last);
    assert_int_equal(last, 8);
    sy_entry *es;
    size_t n;
    assert_int_equal(sy_storage_entries(f->s, 1, 8, &es, &n), SY_OK);
    assert_int_equal(es[2].term, 1);
    assert_int_equal(es[3].term, 2);
    assert_int_equal(es[7].term, 2);
    free(es);
}

static void test_compact_drops_prefix_and_reports_compacted(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 20, 1);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_compact(&t, 12), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    reopen(f);
    uint64_t first, last;
    bounds(f->s, &first, &last);
    assert_int_equal(first, 13);
    assert_int_equal(last, 20);
    sy_entry *es;
    size_t n;
    assert_int_equal(sy_storage_entries(f->s, 12, 14, &es, &n), SY_ECOMPACTED);
    assert_int_equal(sy_storage_entries(f->s, 13, 20, &es, &n), SY_OK);
    assert_int_equal(n, 8);
    free(es);
    /* Compacting past the end leaves an empty log that continues after it. */
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_compact(&t, 25), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    bounds(f->s, &first, &last);
    assert_int_equal(first, 26);
    assert_int_equal(last, 25);
    append_range(f->s, 26, 27, 4);
    bounds(f->s, &first, &last);
    assert_int_equal(last, 27);
}

static void test_hardstate_applied_and_snapshot_survive_reopen_in_boot(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 10, 2);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    const char hs[] = "term=7;vote=2";
    assert_int_equal(sy_txn_set_hardstate(&t, (sy_bytes){ (const uint8_t *)hs, sizeof hs }), SY_OK);
    sy_members m = { .n_voters = 3, .voters = { 0, 1, 2 }, .n_learners = 1, .learners = { 5 } };
    assert_int_equal(sy_txn_set_snapshot(&t, 6, 2, &m, (sy_bytes){ (const uint8_t *)"SNAP", 4 }),
                     SY_OK);
    assert_int_equal(sy_txn_set_applied(&t, 8), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    reopen(f);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_OK);
    assert_int_equal(b.boot.hardstate.len, sizeof hs);
    assert_memory_equal(b.boot.hardstate.p, hs, sizeof hs);
    assert_int_equal(b.boot.snap_index, 6);
    assert_int_equal(b.boot.snap_term, 2);
    assert_int_equal(b.boot.snap_members.n_voters, 3);
    assert_int_equal(b.boot.snap_members.learners[0], 5);
    assert_int_equal(b.boot.snap_data.len, 4);
    assert_memory_equal(b.boot.snap_data.p, "SNAP", 4);
    /* The matching suffix 7..10 is kept. */
    assert_int_equal(b.boot.n_entries, 4);
    assert_int_equal(b.boot.entries[0].index, 7);
    assert_int_equal(b.boot.applied, 8);
    sy_storage_boot_free(&b);
}

static void test_snapshot_with_other_term_discards_whole_log(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 10, 2);
    sy_txn t;
    sy_members m = { .n_voters = 1 };
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_set_snapshot(&t, 6, 3, &m, (sy_bytes){ NULL, 0 }), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    uint64_t first, last;
    bounds(f->s, &first, &last);
    assert_int_equal(first, 7);
    assert_int_equal(last, 6);
}

/* A local snapshot taken of an older state than the one the store holds
 * (a peer's snapshot was installed while it was being taken, on another
 * thread) is refused and changes nothing. */
static void test_local_snapshot_older_than_the_stored_one_is_refused(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 10, 2);
    sy_txn t;
    sy_members m = { .n_voters = 3, .voters = { 0, 1, 2 } };
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_local_snapshot(&t, 4, 2, &m, (sy_bytes){ (const uint8_t *)"OLD", 3 }),
                     SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_set_snapshot(&t, 8, 2, &m, (sy_bytes){ (const uint8_t *)"NEW", 3 }),
                     SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    for (uint64_t at = 6; at <= 8; at += 2) {
        assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
        assert_int_equal(sy_txn_local_snapshot(&t, at, 2, &m, (sy_bytes){ (const uint8_t *)"MID", 3 }),
                         SY_ESTALE);
        sy_txn_abort(&t);
    }
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_OK);
    assert_int_equal(b.boot.snap_index, 8);
    assert_int_equal(b.boot.snap_data.len, 3);
    assert_memory_equal(b.boot.snap_data.p, "NEW", 3);
    sy_storage_boot_free(&b);
}

static int ckpt_snap(fixture *f, uint64_t at, const char *blob)
{
    sy_txn t;
    sy_members m = { .n_voters = 4, .voters = { 0, 1, 2, 3 } };
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    int rc = sy_txn_checkpoint_snapshot(&t, at, 1, &m,
                                        (sy_bytes){ (const uint8_t *)blob, (uint32_t)strlen(blob) });
    if (rc)
        sy_txn_abort(&t);
    else
        assert_int_equal(sy_txn_commit(&t), SY_OK);
    return rc;
}

static void compact_to(fixture *f, uint64_t upto)
{
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_compact(&t, upto), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
}

/* What a boot finds: the snapshot (index, blob), the pending checkpoint
 * snapshots as "index:blob index:blob" (ascending), the log's bounds. */
static void expect_boot(fixture *f, uint64_t snap, const char *snap_blob, const char *pending,
                        uint64_t first, uint64_t last)
{
    reopen(f);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_OK);
    assert_int_equal(b.boot.snap_index, snap);
    assert_int_equal(b.boot.snap_data.len, snap_blob ? strlen(snap_blob) : 0);
    if (snap_blob)
        assert_memory_equal(b.boot.snap_data.p, snap_blob, strlen(snap_blob));
    char got[256] = "";
    size_t o = 0;
    for (size_t i = 0; i < b.boot.n_ckpts; i++)
        o += (size_t)snprintf(got + o, sizeof got - o, "%s%llu:%.*s", i ? " " : "",
                              (unsigned long long)b.boot.ckpts[i].index,
                              (int)b.boot.ckpts[i].data.len, (const char *)b.boot.ckpts[i].data.p);
    assert_string_equal(got, pending);
    assert_int_equal(b.boot.n_entries, last + 1 - first);
    if (b.boot.n_entries) {
        assert_int_equal(b.boot.entries[0].index, first);
        assert_int_equal(b.boot.entries[b.boot.n_entries - 1].index, last);
    }
    sy_storage_boot_free(&b);
}

/* PBFT's checkpoint snapshots: those taken at checkpoints that are not
 * yet stable are kept beside the stable one -- which a lagging replica may
 * still fetch -- and the log stays whole, across a restart; the engine's
 * compaction at a checkpoint going stable makes its snapshot the
 * snapshot. */
static void test_checkpoint_snapshot_waits_beside_the_stable_one_until_compaction(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 30, 1);
    assert_int_equal(ckpt_snap(f, 10, "S10"), SY_OK);
    expect_boot(f, 0, NULL, "10:S10", 1, 30);
    compact_to(f, 10);   /* checkpoint 10 stable */
    expect_boot(f, 10, "S10", "", 11, 30);
    assert_int_equal(ckpt_snap(f, 20, "S20"), SY_OK);
    /* 20 is not stable: 10's state and entries 11.. are all still there */
    expect_boot(f, 10, "S10", "20:S20", 11, 30);
    assert_int_equal(ckpt_snap(f, 20, "S20b"), SY_ESTALE);   /* stored already */
    /* two executed checkpoints above the stable one (the window is two
     * intervals): both kept */
    append_range(f->s, 31, 40, 1);
    assert_int_equal(ckpt_snap(f, 30, "S30"), SY_OK);
    expect_boot(f, 10, "S10", "20:S20 30:S30", 11, 40);
    compact_to(f, 20);
    expect_boot(f, 20, "S20", "30:S30", 21, 40);
    compact_to(f, 30);
    expect_boot(f, 30, "S30", "", 31, 40);
    /* round again: a promoted blob stays where it was written */
    append_range(f->s, 41, 60, 1);
    assert_int_equal(ckpt_snap(f, 40, "S40"), SY_OK);
    assert_int_equal(ckpt_snap(f, 50, "S50"), SY_OK);
    assert_int_equal(ckpt_snap(f, 60, "S60"), SY_OK);
    expect_boot(f, 30, "S30", "40:S40 50:S50 60:S60", 31, 60);
    /* stable at 50 on the others' votes: 40 is moot */
    compact_to(f, 50);
    expect_boot(f, 50, "S50", "60:S60", 51, 60);
}

/* The checkpoint went stable before the host stored its snapshot: it is
 * stored as the snapshot at once; one the log has moved past is stale;
 * an installed snapshot drops the pending ones at or below it. */
static void test_checkpoint_snapshot_after_its_compaction_or_an_install(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 40, 1);
    compact_to(f, 10);
    assert_int_equal(ckpt_snap(f, 10, "S10"), SY_OK);
    expect_boot(f, 10, "S10", "", 11, 40);
    compact_to(f, 20);
    assert_int_equal(ckpt_snap(f, 15, "S15"), SY_ESTALE);
    assert_int_equal(ckpt_snap(f, 25, "S25"), SY_OK);
    assert_int_equal(ckpt_snap(f, 30, "S30"), SY_OK);
    expect_boot(f, 10, "S10", "25:S25 30:S30", 21, 40);
    sy_txn t;
    sy_members m = { .n_voters = 4, .voters = { 0, 1, 2, 3 } };
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_set_snapshot(&t, 28, 9, &m, (sy_bytes){ (const uint8_t *)"I28", 3 }),
                     SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    expect_boot(f, 28, "I28", "30:S30", 29, 28);
    assert_int_equal(ckpt_snap(f, 28, "S28"), SY_ESTALE);
    /* an install over a promoted snapshot */
    append_range(f->s, 29, 40, 9);
    compact_to(f, 30);
    expect_boot(f, 30, "S30", "", 31, 40);
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_set_snapshot(&t, 35, 9, &m, (sy_bytes){ (const uint8_t *)"I35", 3 }),
                     SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    expect_boot(f, 35, "I35", "", 36, 40);
}

/* A synod older than the pending snapshots writes its snapshots to
 * "snapdata" with the usual metadata and leaves the rest alone: whichever
 * blob the newer one was using, the older one's snapshot is what boot
 * reads, and pending ones it left behind at or below it are moot. */
static void test_a_snapshot_an_older_synod_wrote_wins(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 30, 1);
    assert_int_equal(ckpt_snap(f, 10, "S10"), SY_OK);
    compact_to(f, 10);   /* S10's blob stays under its pending name */
    assert_int_equal(ckpt_snap(f, 20, "S20"), SY_OK);
    /* the older synod: metadata "snap" and blob "snapdata", as it knows them */
    sy_txn t;
    uint8_t meta[16 + 4 + 16 + 4];
    size_t o = 0;
    sy_put_u64be(meta + o, 24); o += 8;
    sy_put_u64be(meta + o, 1); o += 8;
    sy_put_u32be(meta + o, 4); o += 4;
    for (uint32_t i = 0; i < 4; i++) { sy_put_u32be(meta + o, i); o += 4; }
    sy_put_u32be(meta + o, 0); o += 4;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_meta_put(&t, "snap", meta, o), SY_OK);
    assert_int_equal(sy_txn_meta_put(&t, "snapdata", "OLD24", 5), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    expect_boot(f, 24, "OLD24", "", 11, 30);
    assert_int_equal(ckpt_snap(f, 28, "S28"), SY_OK);
    expect_boot(f, 24, "OLD24", "28:S28", 11, 30);
    compact_to(f, 28);
    expect_boot(f, 28, "S28", "", 29, 30);
    /* and the blob the older synod's snapshot replaced is gone, not kept
     * for ever under a name nothing lists */
    sy_bytes v;
    assert_int_equal(sy_txn_begin(f->s, false, &t), SY_OK);
    assert_int_equal(sy_txn_meta_get(&t, "ckptdata.00000000000000000010", &v), SY_ENOTFOUND);
    assert_int_equal(sy_txn_meta_get(&t, "ckptdata.00000000000000000020", &v), SY_ENOTFOUND);
    assert_int_equal(sy_txn_meta_get(&t, "ckptdata.00000000000000000028", &v), SY_OK);
    sy_txn_abort(&t);
}

/* A damaged pending-snapshot key is reported, not skipped: a boot that
 * left a pending checkpoint out would not sign it again. */
static void test_a_malformed_checkpoint_snapshot_key_is_corrupt(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 30, 1);
    assert_int_equal(ckpt_snap(f, 10, "S10"), SY_OK);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_meta_put(&t, "ckpt.junk", "x", 1), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    reopen(f);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(f->s), "checkpoint snapshot key is malformed"));
}

static void test_fresh_storage_boots_empty(void **state)
{
    fixture *f = *state;
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_OK);
    assert_int_equal(b.boot.hardstate.len, 0);
    assert_int_equal(b.boot.n_entries, 0);
    assert_int_equal(b.boot.applied, 0);
    assert_int_equal(b.boot.snap_index, 0);
    sy_storage_boot_free(&b);
}

static void test_aborted_batch_leaves_nothing(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 3, 1);
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    sy_entry e = { .index = 4, .term = 1 };
    assert_int_equal(sy_txn_append(&t, &e, 1), SY_OK);
    assert_int_equal(sy_txn_truncate(&t, 2), SY_OK);
    assert_int_equal(sy_txn_set_applied(&t, 9), SY_OK);
    sy_txn_abort(&t);
    uint64_t first, last, applied;
    bounds(f->s, &first, &last);
    assert_int_equal(last, 3);
    assert_int_equal(sy_txn_begin(f->s, false, &t), SY_OK);
    assert_int_equal(sy_txn_get_applied(&t, &applied), SY_OK);
    sy_txn_abort(&t);
    assert_int_equal(applied, 0);
}

static void test_persist_ready_writes_hardstate_truncate_entries_compaction(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 6, 1);
    sy_entry es[2] = { { .index = 5, .term = 2 }, { .index = 6, .term = 2 } };
    sy_ready rd = { .hardstate_dirty = true, .hardstate = { (const uint8_t *)"hs", 2 },
                    .truncate_from = 5, .entries = es, .n_entries = 2, .compact_to = 2 };
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_txn_persist_ready(&t, &rd), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(f->s, &b), SY_OK);
    assert_int_equal(b.boot.n_entries, 4);
    assert_int_equal(b.boot.entries[0].index, 3);
    assert_int_equal(b.boot.entries[3].term, 2);
    assert_memory_equal(b.boot.hardstate.p, "hs", 2);
    sy_storage_boot_free(&b);
}

static void persist(sy_storage *s, const sy_ready *rd)
{
    sy_txn t;
    assert_int_equal(sy_txn_begin(s, true, &t), SY_OK);
    assert_int_equal(sy_txn_persist_ready(&t, rd), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
}

/* Engine records: put, overwrite, delete by empty value, drop below a key;
 * boot hands back what is left in key order, across a reopen. */
static void test_engine_records_put_delete_drop_and_come_back_at_boot(void **state)
{
    fixture *f = *state;
    const uint8_t *a = (const uint8_t *)"alpha", *b = (const uint8_t *)"bravo",
                  *c = (const uint8_t *)"charlie";
    sy_record r1[4] = { { 7, { a, 5 } }, { 3, { b, 5 } }, { 9, { c, 7 } }, { 5, { a, 5 } } };
    persist(f->s, &(sy_ready){ .records = r1, .n_records = 4 });
    /* 5 deleted, 9 overwritten, everything below 4 dropped */
    sy_record r2[2] = { { 5, { NULL, 0 } }, { 9, { a, 3 } } };
    persist(f->s, &(sy_ready){ .records_drop_below = 4, .records = r2, .n_records = 2 });
    reopen(f);
    sy_storage_boot bt;
    assert_int_equal(sy_storage_load_boot(f->s, &bt), SY_OK);
    assert_int_equal(bt.boot.n_records, 2);
    assert_int_equal(bt.boot.records[0].key, 7);
    assert_int_equal(bt.boot.records[0].val.len, 5);
    assert_memory_equal(bt.boot.records[0].val.p, "alpha", 5);
    assert_int_equal(bt.boot.records[1].key, 9);
    assert_int_equal(bt.boot.records[1].val.len, 3);
    assert_memory_equal(bt.boot.records[1].val.p, "alp", 3);
    sy_storage_boot_free(&bt);
    /* dropping past every key leaves none */
    persist(f->s, &(sy_ready){ .records_drop_below = 100 });
    assert_int_equal(sy_storage_load_boot(f->s, &bt), SY_OK);
    assert_int_equal(bt.boot.n_records, 0);
    assert_null(bt.boot.records);
    sy_storage_boot_free(&bt);
}

/* what a scan saw: keys in order, concatenated with '|' */
typedef struct {
    char seen[256];
    int stop_after;   /* 0: never stop */
    int n;
} scan_seen;

static int scan_collect(void *ctx, sy_bytes k, sy_bytes v)
{
    scan_seen *w = ctx;
    size_t l = strlen(w->seen);
    snprintf(w->seen + l, sizeof w->seen - l, "%.*s=%.*s|", (int)k.len, (const char *)k.p,
             (int)v.len, (const char *)v.p);
    w->n++;
    return w->stop_after && w->n == w->stop_after ? 42 : 0;
}

static void test_scan_walks_rows_in_key_order_from_a_key_and_stops_on_request(void **state)
{
    fixture *f = *state;
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    const char *keys[] = { "d", "a", "c", "b", "e" };
    for (int i = 0; i < 5; i++)
        assert_int_equal(sy_txn_put(&t, SY_TBL_STATE, keys[i], 1, keys[i], 1), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    assert_int_equal(sy_txn_begin(f->s, false, &t), SY_OK);
    scan_seen w = { "", 0, 0 };
    assert_int_equal(sy_txn_scan(&t, SY_TBL_STATE, NULL, 0, scan_collect, &w), SY_OK);
    assert_string_equal(w.seen, "a=a|b=b|c=c|d=d|e=e|");
    /* from a key that is there, and from one between two keys */
    w = (scan_seen){ "", 0, 0 };
    assert_int_equal(sy_txn_scan(&t, SY_TBL_STATE, "c", 1, scan_collect, &w), SY_OK);
    assert_string_equal(w.seen, "c=c|d=d|e=e|");
    w = (scan_seen){ "", 0, 0 };
    assert_int_equal(sy_txn_scan(&t, SY_TBL_STATE, "bb", 2, scan_collect, &w), SY_OK);
    assert_string_equal(w.seen, "c=c|d=d|e=e|");
    /* the callback's nonzero return ends the walk and is returned */
    w = (scan_seen){ "", 2, 0 };
    assert_int_equal(sy_txn_scan(&t, SY_TBL_STATE, NULL, 0, scan_collect, &w), 42);
    assert_string_equal(w.seen, "a=a|b=b|");
    /* past the end, and an empty table: nothing, SY_OK */
    w = (scan_seen){ "", 0, 0 };
    assert_int_equal(sy_txn_scan(&t, SY_TBL_STATE, "f", 1, scan_collect, &w), SY_OK);
    assert_int_equal(sy_txn_scan(&t, SY_TBL_SESSIONS, NULL, 0, scan_collect, &w), SY_OK);
    assert_int_equal(w.n, 0);
    sy_txn_abort(&t);
}

/* ---- memory backend crash model ---- */
static void test_mem_crash_loses_exactly_the_unsynced_batches(void **state)
{
    (void)state;
    sy_storage *s;
    sy_storage_mem_opts o = { .manual_sync = true };
    assert_int_equal(sy_storage_mem_new(&o, &s), SY_OK);
    append_range(s, 1, 5, 1);
    sy_storage_mem_sync(s);
    append_range(s, 6, 8, 1);            /* written, not synced */
    sy_txn t;
    assert_int_equal(sy_txn_begin(s, true, &t), SY_OK);
    assert_int_equal(sy_txn_truncate(&t, 3), SY_OK); /* also unsynced */
    assert_int_equal(sy_txn_set_applied(&t, 2), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    uint64_t first, last;
    bounds(s, &first, &last);
    assert_int_equal(last, 2);
    assert_int_equal(sy_storage_mem_crash(s), 2);
    bounds(s, &first, &last);
    assert_int_equal(last, 5);
    sy_entry *es;
    size_t n;
    assert_int_equal(sy_storage_entries(s, 1, 5, &es, &n), SY_OK);
    assert_memory_equal(es[4].data.p, "e5", 2);
    free(es);
    uint64_t applied;
    assert_int_equal(sy_txn_begin(s, false, &t), SY_OK);
    assert_int_equal(sy_txn_get_applied(&t, &applied), SY_OK);
    sy_txn_abort(&t);
    assert_int_equal(applied, 0);
    /* Synced data stays across further crashes. */
    append_range(s, 6, 6, 2);
    sy_storage_mem_sync(s);
    assert_int_equal(sy_storage_mem_crash(s), 0);
    bounds(s, &first, &last);
    assert_int_equal(last, 6);
    sy_storage_close(s);
}

/* The write-ahead-log model: a deferred transaction (applies) survives a
 * plain sync unsynced, is lost in a crash, and becomes durable only with
 * sy_storage_mem_sync_all; the log synced after it stays. */
static void test_mem_deferred_applies_wait_for_a_full_sync(void **state)
{
    (void)state;
    sy_storage *s;
    sy_storage_mem_opts o = { .manual_sync = true };
    assert_int_equal(sy_storage_mem_new(&o, &s), SY_OK);
    append_range(s, 1, 2, 1);
    sy_txn t;
    assert_int_equal(sy_txn_begin(s, true, &t), SY_OK);
    assert_int_equal(sy_txn_set_applied(&t, 2), SY_OK);
    sy_storage_mem_defer_next(s);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    append_range(s, 3, 4, 1);
    sy_storage_mem_sync(s);              /* the log: entries 1..4 */
    uint64_t applied, first, last;
    assert_int_equal(sy_storage_mem_crash(s), 1);
    bounds(s, &first, &last);
    assert_int_equal(last, 4);           /* the log survived ... */
    assert_int_equal(sy_txn_begin(s, false, &t), SY_OK);
    assert_int_equal(sy_txn_get_applied(&t, &applied), SY_OK);
    sy_txn_abort(&t);
    assert_int_equal(applied, 0);        /* ... the deferred apply did not */
    /* deferred again, then a full sync: durable */
    assert_int_equal(sy_txn_begin(s, true, &t), SY_OK);
    assert_int_equal(sy_txn_set_applied(&t, 3), SY_OK);
    sy_storage_mem_defer_next(s);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    sy_storage_mem_sync_all(s);
    assert_int_equal(sy_storage_mem_crash(s), 0);
    assert_int_equal(sy_txn_begin(s, false, &t), SY_OK);
    assert_int_equal(sy_txn_get_applied(&t, &applied), SY_OK);
    sy_txn_abort(&t);
    assert_int_equal(applied, 3);
    sy_storage_close(s);
}

static void test_mem_corrupted_entry_is_reported_with_its_index(void **state)
{
    (void)state;
    sy_storage *s;
    assert_int_equal(sy_storage_mem_new(NULL, &s), SY_OK);
    append_range(s, 1, 5, 1);
    uint8_t key[8];
    sy_put_u64be(key, 4);
    assert_int_equal(sy_storage_mem_corrupt(s, SY_TBL_LOG, key, 8, SY_CHECKSUM_LEN + 9), SY_OK);
    sy_entry *es;
    size_t n;
    assert_int_equal(sy_storage_entries(s, 1, 5, &es, &n), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(s), "log entry 4"));
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(s, &b), SY_ECORRUPT);
    sy_storage_close(s);
}

/* ---- LMDB specifics ---- */
/* Flips one byte of a stored value with raw LMDB, storage closed. */
static void raw_flip(const char *dir, const char *db, const uint8_t *k, size_t kl, size_t off)
{
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, SY_STORAGE_DEFAULT_MAP_SIZE);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, db, 0, &dbi), 0);
    MDB_val key = { kl, (void *)k }, val;
    assert_int_equal(mdb_get(t, dbi, &key, &val), 0);
    uint8_t *copy = malloc(val.mv_size);
    memcpy(copy, val.mv_data, val.mv_size);
    assert_true(off < val.mv_size);
    copy[off] ^= 0x01;
    MDB_val nv = { val.mv_size, copy };
    assert_int_equal(mdb_put(t, dbi, &key, &nv, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    free(copy);
}

static void test_lmdb_flipped_log_byte_returns_corrupt_naming_index(void **state)
{
    fixture *f = *state;
    append_range(f->s, 1, 9, 1);
    sy_storage_close(f->s);
    uint8_t key[8];
    sy_put_u64be(key, 7);
    raw_flip(f->dir, "log", key, 8, SY_CHECKSUM_LEN + 10);
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &f->s, err), SY_OK);
    sy_entry *es;
    size_t n;
    assert_int_equal(sy_storage_entries(f->s, 5, 6, &es, &n), SY_OK);
    free(es);
    assert_int_equal(sy_storage_entries(f->s, 5, 9, &es, &n), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(f->s), "log entry 7"));
}

static void test_lmdb_flipped_ledger_byte_returns_corrupt_naming_height(void **state)
{
    fixture *f = *state;
    sy_txn t;
    sy_digest rd = { { 0 } };
    for (uint64_t i = 1; i <= 3; i++) {
        assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
        assert_int_equal(sy_ledger_append(&t, i * 2, 1, (sy_bytes){ (const uint8_t *)"batch", 5 },
                                          &rd, (sy_bytes){ NULL, 0 }, NULL),
                         SY_OK);
        assert_int_equal(sy_txn_commit(&t), SY_OK);
    }
    sy_storage_close(f->s);
    uint8_t key[8];
    sy_put_u64be(key, 2);
    raw_flip(f->dir, "ledger", key, 8, 20);
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &f->s, err), SY_OK);
    sy_ledger_block b;
    assert_int_equal(sy_txn_begin(f->s, false, &t), SY_OK);
    assert_int_equal(sy_ledger_get(&t, 1, &b), SY_OK);
    assert_int_equal(b.index, 2);
    assert_int_equal(sy_ledger_get(&t, 2, &b), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(f->s), "ledger block 2"));
    sy_txn_abort(&t);
}

/* Appends 64 KB entries through s, one per synced commit, until the
 * store says it is full (within 100); returns the first index it refused. */
static uint64_t fill_until_full(sy_storage *s)
{
    static uint8_t big[64 * 1024];
    int rc = SY_OK;
    uint64_t i;
    for (i = 1; i < 100 && rc == SY_OK; i++) {
        sy_txn t;
        assert_int_equal(sy_txn_begin(s, true, &t), SY_OK);
        sy_entry e = { .index = i, .term = 1, .data = { big, sizeof big } };
        rc = sy_txn_append(&t, &e, 1);
        rc = rc ? (sy_txn_abort(&t), rc) : sy_txn_commit(&t);
    }
    assert_int_equal(rc, SY_EFULL);
    return i;
}

static void test_lmdb_map_full_is_an_error_not_a_crash(void **state)
{
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir, "mapfull");
    sy_storage_lmdb_opts o = { .map_size = 1u << 20 };
    sy_storage *s;
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(dir, &o, &s, err), SY_OK);
    uint64_t i = fill_until_full(s);
    assert_non_null(strstr(sy_storage_errmsg(s), "map full"));
    /* What was committed before is still there. */
    uint64_t first, last;
    bounds(s, &first, &last);
    assert_true(last >= 1 && last < i);
    sy_storage_close(s);
    rm_lmdb_dir(dir);
}

/* The node's snapshot thread works through a view of the store: what it
 * commits is in the one store, and its failures are reported in its own
 * buffer, leaving the owner's (which the event loop writes) alone. */
static void test_lmdb_view_shares_the_store_but_not_the_error_line(void **state)
{
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir, "view");
    sy_storage_lmdb_opts o = { .map_size = 1u << 20 };
    sy_storage *s;
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(dir, &o, &s, err), SY_OK);
    sy_storage view;
    sy_storage_view(s, &view);
    uint64_t i = fill_until_full(&view);
    assert_non_null(strstr(sy_storage_errmsg(&view), "map full"));
    assert_string_equal(sy_storage_errmsg(s), "");
    /* the owner reads what the view committed */
    uint64_t first, last;
    bounds(s, &first, &last);
    assert_int_equal(first, 1);
    assert_true(last >= 1 && last < i);
    sy_storage_close(s);
    rm_lmdb_dir(dir);
}

static void test_lmdb_open_read_only_missing_dir_fails_cleanly(void **state)
{
    (void)state;
    sy_storage_lmdb_opts o = { .read_only = true };
    sy_storage *s = NULL;
    char err[SY_STORAGE_ERRMSG] = "";
    assert_int_not_equal(sy_storage_lmdb_open("/nonexistent/synod-data", &o, &s, err), SY_OK);
    assert_non_null(strstr(err, "/nonexistent/synod-data"));
}

/* A data dir written before the engine table existed: a read-only open
 * (ledger verify) reads it as empty instead of calling the dir foreign. */
static void test_lmdb_read_only_open_of_a_dir_without_the_engine_table(void **state)
{
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir, "oldlayout");
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    const char *old[] = { "meta", "log", "state", "sessions", "ledger" };
    for (int i = 0; i < 5; i++)
        assert_int_equal(mdb_dbi_open(t, old[i], MDB_CREATE, &dbi), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    sy_storage_lmdb_opts o = { .read_only = true };
    sy_storage *s = NULL;
    char err[SY_STORAGE_ERRMSG] = "";
    assert_int_equal(sy_storage_lmdb_open(dir, &o, &s, err), SY_OK);
    sy_storage_boot bt;
    assert_int_equal(sy_storage_load_boot(s, &bt), SY_OK);
    assert_int_equal(bt.boot.n_records, 0);
    sy_storage_boot_free(&bt);
    sy_storage_close(s);
    /* a writer adds the table */
    assert_int_equal(sy_storage_lmdb_open(dir, NULL, &s, err), SY_OK);
    sy_record r = { 1, { (const uint8_t *)"x", 1 } };
    persist(s, &(sy_ready){ .records = &r, .n_records = 1 });
    sy_storage_close(s);
    rm_lmdb_dir(dir);
}

#define BOTH(fn) \
    cmocka_unit_test_setup_teardown(fn, setup_lmdb, teardown), \
    cmocka_unit_test_setup_teardown(fn, setup_mem, teardown)

static void test_corrupted_state_and_session_rows_are_refused_not_served(void **state)
{
    (void)state;
    sy_storage *s;
    sy_txn t;
    sy_bytes v, k2;
    assert_int_equal(sy_storage_mem_new(NULL, &s), SY_OK);
    assert_int_equal(sy_txn_begin(s, true, &t), SY_OK);
    assert_int_equal(sy_txn_put(&t, SY_TBL_STATE, "key", 3, "value", 5), SY_OK);
    assert_int_equal(sy_txn_put(&t, SY_TBL_SESSIONS, "c1", 2, "reply", 5), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    /* intact rows read back without their checksum */
    assert_int_equal(sy_txn_begin(s, false, &t), SY_OK);
    assert_int_equal(sy_txn_get(&t, SY_TBL_STATE, "key", 3, &v), SY_OK);
    assert_int_equal(v.len, 5);
    assert_memory_equal(v.p, "value", 5);
    sy_txn_abort(&t);
    /* one flipped byte in each row: refused on get and on seek, named */
    assert_int_equal(sy_storage_mem_corrupt(s, SY_TBL_STATE, "key", 3, 1), SY_OK);
    assert_int_equal(sy_storage_mem_corrupt(s, SY_TBL_SESSIONS, "c1", 2, 0), SY_OK);
    assert_int_equal(sy_txn_begin(s, false, &t), SY_OK);
    assert_int_equal(sy_txn_get(&t, SY_TBL_STATE, "key", 3, &v), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(s), "state row with key 6b6579"));
    assert_int_equal(sy_txn_seek(&t, SY_TBL_STATE, NULL, 0, false, &k2, &v), SY_ECORRUPT);
    scan_seen w = { "", 0, 0 };
    assert_int_equal(sy_txn_scan(&t, SY_TBL_STATE, NULL, 0, scan_collect, &w), SY_ECORRUPT);
    assert_int_equal(w.n, 0);   /* a bad row never reaches the callback */
    assert_int_equal(sy_txn_get(&t, SY_TBL_SESSIONS, "c1", 2, &v), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(s), "session row"));
    sy_txn_abort(&t);
    /* an engine record too: the boot that would hand it to the engine fails */
    sy_record r = { 5, { (const uint8_t *)"cert", 4 } };
    persist(s, &(sy_ready){ .records = &r, .n_records = 1 });
    uint8_t k5[8];
    sy_put_u64be(k5, 5);
    assert_int_equal(sy_storage_mem_corrupt(s, SY_TBL_ENGINE, k5, 8, 2), SY_OK);
    sy_storage_boot bt;
    assert_int_equal(sy_storage_load_boot(s, &bt), SY_ECORRUPT);
    assert_non_null(strstr(sy_storage_errmsg(s), "engine record row with key 0000000000000005"));
    sy_storage_close(s);
}

int main(void)
{
    sy_crypto_init();
    const struct CMUnitTest tests[] = {
        BOTH(test_append_then_read_range_returns_entries_in_order),
        BOTH(test_append_with_gap_is_refused),
        BOTH(test_truncate_drops_suffix_and_overwrite_replaces_it),
        BOTH(test_compact_drops_prefix_and_reports_compacted),
        BOTH(test_hardstate_applied_and_snapshot_survive_reopen_in_boot),
        BOTH(test_snapshot_with_other_term_discards_whole_log),
        BOTH(test_fresh_storage_boots_empty),
        BOTH(test_aborted_batch_leaves_nothing),
        BOTH(test_persist_ready_writes_hardstate_truncate_entries_compaction),
        BOTH(test_engine_records_put_delete_drop_and_come_back_at_boot),
        BOTH(test_scan_walks_rows_in_key_order_from_a_key_and_stops_on_request),
        BOTH(test_local_snapshot_older_than_the_stored_one_is_refused),
        BOTH(test_checkpoint_snapshot_waits_beside_the_stable_one_until_compaction),
        BOTH(test_checkpoint_snapshot_after_its_compaction_or_an_install),
        BOTH(test_a_snapshot_an_older_synod_wrote_wins),
        BOTH(test_a_malformed_checkpoint_snapshot_key_is_corrupt),
        cmocka_unit_test(test_mem_crash_loses_exactly_the_unsynced_batches),
        cmocka_unit_test(test_mem_deferred_applies_wait_for_a_full_sync),
        cmocka_unit_test(test_mem_corrupted_entry_is_reported_with_its_index),
        cmocka_unit_test(test_corrupted_state_and_session_rows_are_refused_not_served),
        cmocka_unit_test_setup_teardown(test_lmdb_flipped_log_byte_returns_corrupt_naming_index,
                                        setup_lmdb, teardown),
        cmocka_unit_test_setup_teardown(test_lmdb_flipped_ledger_byte_returns_corrupt_naming_height,
                                        setup_lmdb, teardown),
        cmocka_unit_test(test_lmdb_map_full_is_an_error_not_a_crash),
        cmocka_unit_test(test_lmdb_view_shares_the_store_but_not_the_error_line),
        cmocka_unit_test(test_lmdb_open_read_only_missing_dir_fails_cleanly),
        cmocka_unit_test(test_lmdb_read_only_open_of_a_dir_without_the_engine_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
