/* Ledger: a chain built by applying batches verifies from the data dir;
 * tampering with a block, a request signature, the chain's end or the
 * evidence is reported at the right height; evidence filled in after the
 * apply leaves the chain as it was. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lmdb.h>
#include "tests/unit/kv_fixture.h"
#include "tests/unit/tmpdir.h"

#define BLOCKS 12

typedef struct fx {
    kvf_world w;
    char dir[512];
    sy_storage *s;
    sy_kvm kv;
} fx;

static void build_chain(fx *f)
{
    uint64_t rn = 0;
    for (uint64_t i = 1; i <= BLOCKS + 2; i++) {
        sy_kv_results r;
        if (i == 4 || i == 9) {  /* NOOP entries make no block */
            assert_int_equal(kvf_apply(&f->kv, i, SY_ENTRY_NOOP, NULL, &r), SY_OK);
        } else {
            kvf_batch b = { .n = 0 };
            char k[16];
            snprintf(k, sizeof k, "k%llu", (unsigned long long)i);
            assert_int_equal(kvf_add(&f->w, &b, 0, ++rn, SY_OP_PUT, k, "v"), SY_OK);
            assert_int_equal(kvf_add(&f->w, &b, 1, rn, SY_OP_GET, k, NULL), SY_OK);
            assert_int_equal(kvf_apply(&f->kv, i, SY_ENTRY_NORMAL, &b, &r), SY_OK);
            assert_true(r.block);
            kvf_batch_free(&b);
        }
        sy_kv_results_free(&r);
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (kvf_world_init(&f->w))
        return -1;
    if (!t_tmpdir(f->dir, sizeof f->dir, "ledger"))
        return -1;
    char err[SY_STORAGE_ERRMSG];
    if (sy_storage_lmdb_open(f->dir, NULL, &f->s, err) || sy_kv_init(&f->kv, f->s, &f->w.opts, 0))
        return -1;
    *state = f;
    build_chain(f);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sy_storage_close(f->s);
    t_rm_datadir(f->dir);
    kvf_world_free(&f->w);
    free(f);
    return 0;
}

static int verify_dir(fx *f, uint64_t *h, char *why, size_t wl)
{
    sy_storage_close(f->s);
    f->s = NULL;
    int rc = sy_ledger_verify_dir(f->dir, &f->w.opts, NULL, NULL, h, why, wl);
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &f->s, err), SY_OK);
    f->kv.s = f->s;
    return rc;
}

static void test_chain_of_applied_batches_verifies_from_data_dir(void **state)
{
    fx *f = *state;
    uint64_t h;
    char why[256];
    assert_int_equal(verify_dir(f, &h, why, sizeof why), SY_OK);
    assert_int_equal(h, BLOCKS);
    /* Block 4 came from log index 5 (index 4 was a NOOP). */
    sy_txn t;
    sy_ledger_block b, prev;
    assert_int_equal(sy_txn_begin(f->s, false, &t), SY_OK);
    assert_int_equal(sy_ledger_get(&t, 4, &b), SY_OK);
    assert_int_equal(b.index, 5);
    assert_int_equal(b.evidence.len, 3);
    assert_memory_equal(b.evidence.p, "ev5", 3);
    assert_int_equal(sy_ledger_get(&t, 3, &prev), SY_OK);
    assert_true(sy_digest_eq(&b.prev, &prev.hash));
    sy_txn_abort(&t);
}

/* Raw LMDB edit of the ledger with the storage closed. */
typedef void (*raw_edit)(MDB_txn *t, MDB_dbi ledger, MDB_dbi meta, void *ctx);
static void raw(fx *f, raw_edit fn, void *ctx)
{
    sy_storage_close(f->s);
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi l, m;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, SY_STORAGE_DEFAULT_MAP_SIZE);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "ledger", 0, &l), 0);
    assert_int_equal(mdb_dbi_open(t, "meta", 0, &m), 0);
    fn(t, l, m, ctx);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(f->dir, NULL, &f->s, err), SY_OK);
    f->kv.s = f->s;
}

static void flip_block_5(MDB_txn *t, MDB_dbi l, MDB_dbi m, void *ctx)
{
    uint8_t k[8];
    sy_put_u64be(k, 5);
    MDB_val key = { 8, k }, val;
    assert_int_equal(mdb_get(t, l, &key, &val), 0);
    uint8_t *c = malloc(val.mv_size);
    memcpy(c, val.mv_data, val.mv_size);
    c[val.mv_size - 40] ^= 0x80;  /* inside the batch */
    MDB_val nv = { val.mv_size, c };
    assert_int_equal(mdb_put(t, l, &key, &nv, 0), 0);
    free(c);
}

static void test_flipped_byte_in_block_is_reported_at_its_height(void **state)
{
    fx *f = *state;
    raw(f, flip_block_5, NULL);
    uint64_t h;
    char why[256];
    assert_int_equal(verify_dir(f, &h, why, sizeof why), SY_ECORRUPT);
    assert_int_equal(h, 5);
    assert_non_null(strstr(why, "ledger block 5"));
}

static void delete_block_7(MDB_txn *t, MDB_dbi l, MDB_dbi m, void *ctx)
{
    uint8_t k[8];
    sy_put_u64be(k, 7);
    MDB_val key = { 8, k };
    assert_int_equal(mdb_del(t, l, &key, NULL), 0);
}

static void test_missing_block_is_reported(void **state)
{
    fx *f = *state;
    raw(f, delete_block_7, NULL);
    uint64_t h;
    char why[256];
    assert_int_not_equal(verify_dir(f, &h, why, sizeof why), SY_OK);
    assert_int_equal(h, 7);
    assert_non_null(strstr(why, "missing"));
}

/* Rewrites blocks from `height` on with request 0's signature altered,
 * recomputing every hash so the chain itself is consistent: only the
 * signature check can catch it. */
static void forge_from(fx *f, uint64_t height)
{
    sy_txn t;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    uint64_t tip;
    sy_digest tiph;
    assert_int_equal(sy_ledger_tip(&t, &tip, &tiph), SY_OK);
    struct { uint64_t index, term; uint8_t *batch; size_t bl; uint8_t *ev; size_t el;
             sy_digest rd; } saved[BLOCKS + 1];
    for (uint64_t h = height; h <= tip; h++) {
        sy_ledger_block b;
        assert_int_equal(sy_ledger_get(&t, h, &b), SY_OK);
        saved[h].index = b.index;
        saved[h].term = b.term;
        saved[h].rd = b.results_digest;
        saved[h].batch = malloc(b.batch.len);
        memcpy(saved[h].batch, b.batch.p, b.batch.len);
        saved[h].bl = b.batch.len;
        saved[h].ev = malloc(b.evidence.len + 1);
        memcpy(saved[h].ev, b.evidence.p, b.evidence.len);
        saved[h].el = b.evidence.len;
    }
    /* Request 0's envelope ends with its 64-byte signature; in the batch
     * encoding request 1 follows it, so find request 0's end by decoding. */
    sy_bytes *reqs;
    uint32_t n;
    assert_int_equal(sy_batch_decode(saved[height].batch, saved[height].bl, &reqs, &n), SY_OK);
    size_t sig_end = (size_t)(reqs[0].p - saved[height].batch) + reqs[0].len;
    free(reqs);
    saved[height].batch[sig_end - 1] ^= 0x01;
    sy_ledger_block prev;
    assert_int_equal(sy_ledger_get(&t, height - 1, &prev), SY_OK);
    uint8_t pos[8 + SY_DIGEST_LEN];
    sy_put_u64be(pos, height - 1);
    memcpy(pos + 8, prev.hash.b, SY_DIGEST_LEN);
    assert_int_equal(sy_txn_meta_put(&t, "ledger_tip", pos, sizeof pos), SY_OK);
    for (uint64_t h = height; h <= tip; h++) {
        uint8_t k[8];
        sy_put_u64be(k, h);
        assert_int_equal(sy_txn_del(&t, SY_TBL_LEDGER, k, 8), SY_OK);
    }
    for (uint64_t h = height; h <= tip; h++) {
        assert_int_equal(sy_ledger_append(&t, saved[h].index, saved[h].term,
                                          (sy_bytes){ saved[h].batch, (uint32_t)saved[h].bl },
                                          &saved[h].rd,
                                          (sy_bytes){ saved[h].ev, (uint32_t)saved[h].el }, NULL),
                         SY_OK);
        free(saved[h].batch);
        free(saved[h].ev);
    }
    assert_int_equal(sy_txn_commit(&t), SY_OK);
}

static void test_forged_request_signature_is_reported_at_its_height(void **state)
{
    fx *f = *state;
    forge_from(f, 6);
    uint64_t h;
    char why[256];
    /* The storage-level check passes: hashes are consistent. */
    assert_int_equal(sy_ledger_verify(f->s, &f->w.opts, NULL, NULL, &h, why, sizeof why), SY_ESIG);
    assert_int_equal(h, 6);
    assert_non_null(strstr(why, "height 6: request 0"));
    assert_non_null(strstr(why, "signature"));
    assert_int_equal(verify_dir(f, &h, why, sizeof why), SY_ESIG);
}

static void cut_tip(MDB_txn *t, MDB_dbi l, MDB_dbi m, void *ctx)
{
    uint8_t k[8];
    sy_put_u64be(k, BLOCKS);
    MDB_val key = { 8, k };
    assert_int_equal(mdb_del(t, l, &key, NULL), 0);
}

static void test_truncated_chain_end_is_reported(void **state)
{
    fx *f = *state;
    raw(f, cut_tip, NULL);
    uint64_t h;
    char why[256];
    assert_int_not_equal(verify_dir(f, &h, why, sizeof why), SY_OK);
    assert_int_equal(h, BLOCKS);
}

static int reject_ev8(void *ctx, const sy_ledger_block *b, char *why, size_t wl)
{
    int *calls = ctx;
    (*calls)++;
    if (b->evidence.len == 3 && memcmp(b->evidence.p, "ev8", 3) == 0) {
        snprintf(why, wl, "quorum certificate has 1 of 3 signatures");
        return SY_ESIG;
    }
    return SY_OK;
}

static void test_evidence_callback_rejection_names_height_and_reason(void **state)
{
    fx *f = *state;
    int calls = 0;
    uint64_t h;
    char why[256];
    assert_int_equal(sy_ledger_verify(f->s, &f->w.opts, reject_ev8, &calls, &h, why, sizeof why),
                     SY_ESIG);
    assert_int_equal(h, 7);  /* log index 8 is block 7 (index 4 was a NOOP) */
    assert_int_equal(calls, 7);
    assert_non_null(strstr(why, "quorum certificate"));
}

/* A host that signs a crash-fault commit record after answering
 * (core/engine.h, sy_committed.attest) writes the block without evidence
 * and fills it in before the transaction commits: the chain is unchanged,
 * the block reads back with the evidence, and it can be filled only once. */
static void test_evidence_filled_in_after_the_apply_keeps_the_chain(void **state)
{
    fx *f = *state;
    kvf_batch b = { .n = 0 };
    assert_int_equal(kvf_add(&f->w, &b, 0, 100, SY_OP_PUT, "late", "v"), SY_OK);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(kvf_encode(&b, &data, &len), SY_OK);
    sy_committed c = { .entry = { .index = BLOCKS + 3, .term = 1, .type = SY_ENTRY_NORMAL,
                                  .data = { data, (uint32_t)len } } };
    sy_txn t;
    sy_kv_results r;
    assert_int_equal(sy_txn_begin(f->s, true, &t), SY_OK);
    assert_int_equal(sy_kv_apply(&f->kv, &t, &c, &r), SY_OK);
    assert_true(r.block);
    assert_int_equal(r.height, BLOCKS + 1);
    sy_ledger_block before, after;
    assert_int_equal(sy_ledger_get(&t, r.height, &before), SY_OK);
    assert_int_equal(before.evidence.len, 0);
    sy_digest hash = before.hash;
    assert_int_equal(sy_ledger_set_evidence(&t, r.height, (sy_bytes){ (const uint8_t *)"late", 4 }),
                     SY_OK);
    assert_int_equal(sy_ledger_set_evidence(&t, r.height, (sy_bytes){ (const uint8_t *)"again", 5 }),
                     SY_EINVAL);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    sy_kv_results_free(&r);
    kvf_batch_free(&b);
    free(data);

    assert_int_equal(sy_txn_begin(f->s, false, &t), SY_OK);
    assert_int_equal(sy_ledger_get(&t, BLOCKS + 1, &after), SY_OK);
    assert_int_equal(after.evidence.len, 4);
    assert_memory_equal(after.evidence.p, "late", 4);
    assert_true(sy_digest_eq(&after.hash, &hash));
    uint64_t tip;
    sy_digest tip_hash;
    assert_int_equal(sy_ledger_tip(&t, &tip, &tip_hash), SY_OK);
    assert_int_equal(tip, BLOCKS + 1);
    assert_true(sy_digest_eq(&tip_hash, &hash));
    sy_txn_abort(&t);
    uint64_t h;
    char why[256];
    assert_int_equal(verify_dir(f, &h, why, sizeof why), SY_OK);
    assert_int_equal(h, BLOCKS + 1);
}

static void test_verify_of_missing_dir_reports_the_dir(void **state)
{
    fx *f = *state;
    uint64_t h;
    char why[256];
    assert_int_not_equal(sy_ledger_verify_dir("/nonexistent/ledger", &f->w.opts, NULL, NULL, &h,
                                              why, sizeof why), SY_OK);
    assert_non_null(strstr(why, "/nonexistent/ledger"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_chain_of_applied_batches_verifies_from_data_dir),
        T(test_flipped_byte_in_block_is_reported_at_its_height),
        T(test_missing_block_is_reported),
        T(test_forged_request_signature_is_reported_at_its_height),
        T(test_truncated_chain_end_is_reported),
        T(test_evidence_callback_rejection_names_height_and_reason),
        T(test_evidence_filled_in_after_the_apply_keeps_the_chain),
        T(test_verify_of_missing_dir_reports_the_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
