/* The KV state machine: operation semantics, limits, scans, exactly-once
 * sessions, determinism and the state digest, snapshots. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tests/unit/kv_fixture.h"
#include "tests/unit/tmpdir.h"

typedef struct fx {
    kvf_world w;
    sy_storage *s;
    sy_kvm kv;
    uint64_t next;   /* next log index */
    char dir[512];   /* LMDB fixture: its data dir; memory: empty */
} fx;

static int setup_on(void **state, bool lmdb)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || kvf_world_init(&f->w))
        return -1;
    if (lmdb) {
        char err[SY_STORAGE_ERRMSG];
        if (!t_tmpdir(f->dir, sizeof f->dir, "kv") || sy_storage_lmdb_open(f->dir, NULL, &f->s, err))
            return -1;
    } else if (sy_storage_mem_new(NULL, &f->s)) {
        return -1;
    }
    if (sy_kv_init(&f->kv, f->s, &f->w.opts, 0))
        return -1;
    f->next = 1;
    *state = f;
    return 0;
}

/* Every test runs on both backends: the simulator's memory store and the
 * daemon's LMDB disagree on what a key may be (LMDB refuses an empty one:
 * a scan from "" stopped every PBFT replica that executed it). */
static int setup(void **state) { return setup_on(state, false); }
static int setup_lmdb(void **state) { return setup_on(state, true); }

static int teardown(void **state)
{
    fx *f = *state;
    sy_storage_close(f->s);
    if (f->dir[0])
        t_rm_datadir(f->dir);
    kvf_world_free(&f->w);
    free(f);
    return 0;
}

/* Applies one request and returns its reply (copied scalars + value). */
typedef struct one {
    int status;
    uint64_t req_no;
    char val[256];
    uint32_t val_len;
    uint32_t n_kvs;
    sy_kv_results res;
} one;

static void apply_req(fx *f, int c, uint64_t rn, uint8_t op, const char *k, const char *v,
                      const char *old, uint8_t flags, uint32_t limit, one *out)
{
    kvf_batch b = { .n = 0 };
    assert_int_equal(kvf_req(&f->w, c, rn, op, k, v, old, flags, limit, &b.req[0], &b.len[0]),
                     SY_OK);
    b.n = 1;
    assert_int_equal(kvf_apply(&f->kv, f->next++, SY_ENTRY_NORMAL, &b, &out->res), SY_OK);
    kvf_batch_free(&b);
    assert_int_equal(out->res.n, 1);
    const sy_client_reply *r = &out->res.replies[0];
    out->status = r->status;
    out->req_no = r->req_no;
    out->val_len = r->val.len;
    out->n_kvs = r->n_kvs;
    memset(out->val, 0, sizeof out->val);
    if (r->val.len < sizeof out->val)
        memcpy(out->val, r->val.p, r->val.len);
}

static int op_status(fx *f, int c, uint64_t rn, uint8_t op, const char *k, const char *v)
{
    one o;
    apply_req(f, c, rn, op, k, v, NULL, 0, 0, &o);
    sy_kv_results_free(&o.res);
    return o.status;
}

static void test_put_get_delete_round_trip(void **state)
{
    fx *f = *state;
    one o;
    assert_int_equal(op_status(f, 0, 1, SY_OP_PUT, "a", "one"), SY_OK);
    apply_req(f, 0, 2, SY_OP_GET, "a", NULL, NULL, 0, 0, &o);
    assert_int_equal(o.status, SY_OK);
    assert_string_equal(o.val, "one");
    assert_int_equal(o.res.replies[0].index, 2);
    assert_int_equal(o.res.replies[0].client_id, kvf_client(0));
    sy_kv_results_free(&o.res);
    assert_int_equal(op_status(f, 0, 3, SY_OP_PUT, "a", "two"), SY_OK);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_kv_get(&f->kv, "a", 1, &v, &vl), SY_OK);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "two", 3);
    free(v);
    assert_int_equal(op_status(f, 0, 4, SY_OP_DEL, "a", NULL), SY_OK);
    assert_int_equal(op_status(f, 0, 5, SY_OP_GET, "a", NULL), SY_ENOTFOUND);
    assert_int_equal(op_status(f, 0, 6, SY_OP_DEL, "a", NULL), SY_ENOTFOUND);
    uint64_t applied;
    assert_int_equal(sy_kv_applied(&f->kv, &applied), SY_OK);
    assert_int_equal(applied, 6);
}

static void test_cas_expect_absent_and_expected_value(void **state)
{
    fx *f = *state;
    one o;
    apply_req(f, 0, 1, SY_OP_CAS, "k", "v1", NULL, SY_CAS_EXPECT_ABSENT, 0, &o);
    assert_int_equal(o.status, SY_OK);
    sy_kv_results_free(&o.res);
    /* Present now: expect-absent fails and reports the current value. */
    apply_req(f, 0, 2, SY_OP_CAS, "k", "v9", NULL, SY_CAS_EXPECT_ABSENT, 0, &o);
    assert_int_equal(o.status, SY_ECASFAIL);
    assert_string_equal(o.val, "v1");
    sy_kv_results_free(&o.res);
    apply_req(f, 0, 3, SY_OP_CAS, "k", "v2", "wrong", 0, 0, &o);
    assert_int_equal(o.status, SY_ECASFAIL);
    assert_string_equal(o.val, "v1");
    sy_kv_results_free(&o.res);
    apply_req(f, 0, 4, SY_OP_CAS, "k", "v2", "v1", 0, 0, &o);
    assert_int_equal(o.status, SY_OK);
    sy_kv_results_free(&o.res);
    apply_req(f, 0, 5, SY_OP_GET, "k", NULL, NULL, 0, 0, &o);
    assert_string_equal(o.val, "v2");
    sy_kv_results_free(&o.res);
    /* On an absent key a value-CAS fails with an empty current value. */
    apply_req(f, 0, 6, SY_OP_CAS, "nokey", "x", "y", 0, 0, &o);
    assert_int_equal(o.status, SY_ECASFAIL);
    assert_int_equal(o.val_len, 0);
    sy_kv_results_free(&o.res);
}

static void test_limits_give_error_results_not_crashes(void **state)
{
    fx *f = *state;
    assert_int_equal(op_status(f, 0, 1, SY_OP_PUT, "", "v"), SY_EINVAL);
    char *key = malloc(SY_MAX_KEY + 2);
    memset(key, 'k', SY_MAX_KEY + 1);
    key[SY_MAX_KEY + 1] = 0;
    one o;
    apply_req(f, 0, 2, SY_OP_PUT, key, "v", NULL, 0, 0, &o);
    assert_int_equal(o.status, SY_ETOOBIG);
    assert_int_equal(o.res.replies[0].client_id, kvf_client(0));
    sy_kv_results_free(&o.res);
    /* Exactly at the limit is fine (a long key, stored under prefix+hash). */
    key[SY_MAX_KEY] = 0;
    assert_int_equal(op_status(f, 0, 3, SY_OP_PUT, key, "v"), SY_OK);
    apply_req(f, 0, 4, SY_OP_GET, key, NULL, NULL, 0, 0, &o);
    assert_int_equal(o.status, SY_OK);
    assert_string_equal(o.val, "v");
    sy_kv_results_free(&o.res);
    free(key);
    char *val = malloc(SY_MAX_VALUE + 2);
    memset(val, 'v', SY_MAX_VALUE + 1);
    val[SY_MAX_VALUE + 1] = 0;
    assert_int_equal(op_status(f, 0, 5, SY_OP_PUT, "big", val), SY_ETOOBIG);
    val[SY_MAX_VALUE] = 0;
    assert_int_equal(op_status(f, 0, 6, SY_OP_PUT, "big", val), SY_OK);
    free(val);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_kv_get(&f->kv, "big", 3, &v, &vl), SY_OK);
    assert_int_equal(vl, SY_MAX_VALUE);
    free(v);
}

static void put_keys(fx *f, int n, uint64_t *rn)
{
    for (int i = 0; i < n; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "k%02d", i);
        snprintf(v, sizeof v, "v%d", i);
        assert_int_equal(op_status(f, 1, (*rn)++, SY_OP_PUT, k, v), SY_OK);
    }
}

static void test_scan_respects_from_to_and_limit(void **state)
{
    fx *f = *state;
    uint64_t rn = 1;
    put_keys(f, 20, &rn);
    one o;
    apply_req(f, 1, rn++, SY_OP_SCAN, "k05", "k10", NULL, 0, 0, &o);
    assert_int_equal(o.status, SY_OK);
    assert_int_equal(o.n_kvs, 5);
    const sy_kv *kvs = o.res.replies[0].kvs;
    assert_memory_equal(kvs[0].key.p, "k05", 3);
    assert_memory_equal(kvs[4].key.p, "k09", 3);
    assert_memory_equal(kvs[4].val.p, "v9", 2);
    sy_kv_results_free(&o.res);
    apply_req(f, 1, rn++, SY_OP_SCAN, "k15", "", NULL, 0, 0, &o);
    assert_int_equal(o.n_kvs, 5);
    sy_kv_results_free(&o.res);
    apply_req(f, 1, rn++, SY_OP_SCAN, "", "", NULL, 0, 3, &o);
    assert_int_equal(o.n_kvs, 3);
    assert_memory_equal(o.res.replies[0].kvs[2].key.p, "k02", 3);
    sy_kv_results_free(&o.res);
    /* A limit over SY_MAX_SCAN is clamped, not an error. */
    apply_req(f, 1, rn++, SY_OP_SCAN, "k", "", NULL, 0, SY_MAX_SCAN * 10, &o);
    assert_int_equal(o.status, SY_OK);
    assert_int_equal(o.n_kvs, 20);
    sy_kv_results_free(&o.res);
    /* Empty range. */
    apply_req(f, 1, rn++, SY_OP_SCAN, "k10", "k10", NULL, 0, 0, &o);
    assert_int_equal(o.n_kvs, 0);
    sy_kv_results_free(&o.res);
}

static void test_scan_orders_long_keys_by_full_key(void **state)
{
    fx *f = *state;
    /* Keys longer than the stored prefix that share it: stored under a hash,
     * still scanned in byte order. */
    char k[SY_KV_KEY_PREFIX + 40];
    const char *suffixes[] = { "zeta", "alpha", "mid", "alphabet", "b" };
    uint64_t rn = 1;
    for (int i = 0; i < 5; i++) {
        memset(k, 'p', SY_KV_KEY_PREFIX);
        strcpy(k + SY_KV_KEY_PREFIX, suffixes[i]);
        assert_int_equal(op_status(f, 2, rn++, SY_OP_PUT, k, suffixes[i]), SY_OK);
    }
    memset(k, 'p', SY_KV_KEY_PREFIX);
    k[SY_KV_KEY_PREFIX] = 0;
    assert_int_equal(op_status(f, 2, rn++, SY_OP_PUT, k, "prefix-itself"), SY_OK);
    assert_int_equal(op_status(f, 2, rn++, SY_OP_PUT, "q", "after"), SY_OK);
    assert_int_equal(op_status(f, 2, rn++, SY_OP_PUT, "a", "before"), SY_OK);
    one o;
    apply_req(f, 2, rn++, SY_OP_SCAN, "", "", NULL, 0, 0, &o);
    assert_int_equal(o.n_kvs, 8);
    const char *want[] = { "before", "prefix-itself", "alpha", "alphabet", "b", "mid", "zeta",
                           "after" };
    for (int i = 0; i < 8; i++) {
        const sy_kv *kv = &o.res.replies[0].kvs[i];
        assert_int_equal(kv->val.len, strlen(want[i]));
        assert_memory_equal(kv->val.p, want[i], strlen(want[i]));
    }
    sy_kv_results_free(&o.res);
    /* From inside the group: starts at the right member. */
    strcpy(k + SY_KV_KEY_PREFIX, "alphabet");
    apply_req(f, 2, rn++, SY_OP_SCAN, k, "q", NULL, 0, 0, &o);
    assert_int_equal(o.n_kvs, 4);
    assert_memory_equal(o.res.replies[0].kvs[0].val.p, "alphabet", 8);
    assert_memory_equal(o.res.replies[0].kvs[3].val.p, "zeta", 4);
    sy_kv_results_free(&o.res);
}

static void test_retried_request_is_applied_once_and_gets_cached_reply(void **state)
{
    fx *f = *state;
    kvf_batch first = { .n = 0 }, other = { .n = 0 };
    assert_int_equal(kvf_add(&f->w, &first, 0, 1, SY_OP_PUT, "x", "from-a"), SY_OK);
    sy_kv_results r1, r2, r3;
    assert_int_equal(kvf_apply(&f->kv, 1, SY_ENTRY_NORMAL, &first, &r1), SY_OK);
    assert_int_equal(kvf_add(&f->w, &other, 1, 1, SY_OP_PUT, "x", "from-b"), SY_OK);
    assert_int_equal(kvf_apply(&f->kv, 2, SY_ENTRY_NORMAL, &other, &r2), SY_OK);
    /* Client a's retry of the same request (same bytes) arrives again. */
    assert_int_equal(kvf_apply(&f->kv, 3, SY_ENTRY_NORMAL, &first, &r3), SY_OK);
    assert_int_equal(r3.n, 1);
    assert_int_equal(r3.replies[0].status, SY_OK);
    assert_int_equal(r3.replies[0].index, 1);  /* the original decision */
    assert_int_equal(r3.blob_len, r1.blob_len);
    assert_memory_equal(r3.blob, r1.blob, r1.blob_len);
    /* the host can answer it without ordering it again: the same reply */
    sy_kv_results c;
    assert_int_equal(sy_kv_session_reply(&f->kv, kvf_client(0), 1, &c), SY_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.replies[0].status, SY_OK);
    assert_int_equal(c.replies[0].index, 1);
    assert_int_equal(c.blob_len, r1.blob_len);
    assert_memory_equal(c.blob, r1.blob, r1.blob_len);
    sy_kv_results_free(&c);
    assert_int_equal(sy_kv_session_reply(&f->kv, kvf_client(0), 2, &c), SY_ENOTFOUND);
    assert_int_equal(sy_kv_session_reply(&f->kv, kvf_client(2), 1, &c), SY_ENOTFOUND);
    uint8_t *v;
    size_t vl;
    assert_int_equal(sy_kv_get(&f->kv, "x", 1, &v, &vl), SY_OK);
    assert_memory_equal(v, "from-b", 6);  /* not overwritten again */
    free(v);
    sy_kv_results_free(&r1);
    sy_kv_results_free(&r2);
    sy_kv_results_free(&r3);
    /* An older req_no than the last applied is stale. */
    kvf_batch_free(&first);
    assert_int_equal(kvf_add(&f->w, &first, 1, 2, SY_OP_PUT, "y", "1"), SY_OK);
    assert_int_equal(kvf_apply(&f->kv, 4, SY_ENTRY_NORMAL, &first, &r1), SY_OK);
    sy_kv_results_free(&r1);
    assert_int_equal(kvf_apply(&f->kv, 5, SY_ENTRY_NORMAL, &other, &r1), SY_OK);
    assert_int_equal(r1.replies[0].status, SY_ESTALE);
    sy_kv_results_free(&r1);
    uint64_t rn;
    assert_int_equal(sy_kv_session(&f->kv, kvf_client(1), &rn), SY_OK);
    assert_int_equal(rn, 2);
    assert_int_equal(sy_kv_session_reply(&f->kv, kvf_client(1), 1, &c), SY_ESTALE);
    kvf_batch_free(&first);
    kvf_batch_free(&other);
}

static void test_same_request_twice_in_one_batch_applies_once(void **state)
{
    fx *f = *state;
    kvf_batch b = { .n = 0 };
    assert_int_equal(kvf_add(&f->w, &b, 0, 1, SY_OP_CAS, "c", "1"), SY_OK);
    /* CAS with empty expected on an absent key fails; use expect-absent. */
    kvf_batch_free(&b);
    uint8_t *req = NULL;
    size_t len = 0;
    assert_int_equal(kvf_req(&f->w, 0, 1, SY_OP_CAS, "c", "1", NULL, SY_CAS_EXPECT_ABSENT, 0,
                             &req, &len), SY_OK);
    kvf_add_raw(&b, req, len);
    kvf_add_raw(&b, req, len);
    free(req);
    sy_kv_results r;
    assert_int_equal(kvf_apply(&f->kv, 1, SY_ENTRY_NORMAL, &b, &r), SY_OK);
    assert_int_equal(r.n, 2);
    /* Applied once: the second copy gets the first one's success, not a
     * CAS failure from re-executing. */
    assert_int_equal(r.replies[0].status, SY_OK);
    assert_int_equal(r.replies[1].status, SY_OK);
    sy_kv_results_free(&r);
    kvf_batch_free(&b);
}

static void test_session_table_evicts_least_recently_used(void **state)
{
    fx *f = *state;
    sy_kvm kv;
    assert_int_equal(sy_kv_init(&kv, f->s, &f->w.opts, 2), SY_OK);
    sy_kv_results r;
    for (int c = 0; c < 3; c++) {
        kvf_batch b = { .n = 0 };
        assert_int_equal(kvf_add(&f->w, &b, c, 5, SY_OP_PUT, "k", "v"), SY_OK);
        assert_int_equal(kvf_apply(&kv, (uint64_t)c + 1, SY_ENTRY_NORMAL, &b, &r), SY_OK);
        sy_kv_results_free(&r);
        kvf_batch_free(&b);
    }
    uint64_t n, rn;
    assert_int_equal(sy_kv_session_count(&kv, &n), SY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sy_kv_session(&kv, kvf_client(0), &rn), SY_OK);
    assert_int_equal(rn, 0);  /* evicted: the oldest */
    assert_int_equal(sy_kv_session(&kv, kvf_client(2), &rn), SY_OK);
    assert_int_equal(rn, 5);
    /* the listing a host hands PBFT after an install: live sessions only,
     * in client order, with the applied index they go with */
    sy_session_rec *recs;
    size_t nr;
    uint64_t applied;
    assert_int_equal(sy_kv_sessions(&kv, &recs, &nr, &applied), SY_OK);
    assert_int_equal(nr, 2);
    assert_int_equal(applied, 3);
    assert_int_equal(recs[0].client_id, kvf_client(1));
    assert_int_equal(recs[1].client_id, kvf_client(2));
    assert_int_equal(recs[0].req_no, 5);
    assert_int_equal(recs[1].req_no, 5);
    free(recs);
}

static void test_bad_request_in_batch_gets_error_and_others_apply(void **state)
{
    fx *f = *state;
    kvf_batch b = { .n = 0 };
    assert_int_equal(kvf_add(&f->w, &b, 0, 1, SY_OP_PUT, "good1", "v"), SY_OK);
    assert_int_equal(kvf_add_raw(&b, "\x92\xc4\x01garbage", 10), SY_OK);
    /* A request from a client that is not in the directory. */
    sy_msg m;
    memset(&m, 0, sizeof m);
    m.type = SY_MSG_CLIENT_REQ;
    m.u.req = (sy_client_req){ .client_id = SY_CLIENT_ID_BASE + 100, .req_no = 1, .op = SY_OP_PUT,
                               .key = { (const uint8_t *)"z", 1 } };
    sy_buf eb;
    sy_buf_init(&eb);
    assert_int_equal(sy_env_encode(KVF_CLUSTER, SY_CLIENT_ID_BASE + 100, &m, &f->w.signers[0],
                                   &eb), SY_OK);
    kvf_add_raw(&b, eb.p, eb.len);
    sy_buf_free(&eb);
    assert_int_equal(kvf_add(&f->w, &b, 1, 1, SY_OP_PUT, "good2", "v"), SY_OK);
    sy_kv_results r1, r2;
    assert_int_equal(kvf_apply(&f->kv, 1, SY_ENTRY_NORMAL, &b, &r1), SY_OK);
    assert_int_equal(r1.n, 4);
    assert_int_equal(r1.replies[0].status, SY_OK);
    assert_int_not_equal(r1.replies[1].status, SY_OK);
    assert_int_equal(r1.replies[2].status, SY_ESENDER);
    assert_int_equal(r1.replies[3].status, SY_OK);
    /* Same batch on another replica: byte-identical results. */
    sy_storage *s2;
    sy_kvm kv2;
    assert_int_equal(sy_storage_mem_new(NULL, &s2), SY_OK);
    assert_int_equal(sy_kv_init(&kv2, s2, &f->w.opts, 0), SY_OK);
    assert_int_equal(kvf_apply(&kv2, 1, SY_ENTRY_NORMAL, &b, &r2), SY_OK);
    assert_int_equal(r1.blob_len, r2.blob_len);
    assert_memory_equal(r1.blob, r2.blob, r1.blob_len);
    sy_kv_results_free(&r1);
    sy_kv_results_free(&r2);
    sy_storage_close(s2);
    kvf_batch_free(&b);
}

static void test_noop_and_config_entries_only_advance_applied(void **state)
{
    fx *f = *state;
    sy_kv_results r;
    sy_digest d0, d1;
    assert_int_equal(sy_kv_digest(&f->kv, &d0), SY_OK);
    assert_int_equal(kvf_apply(&f->kv, 1, SY_ENTRY_NOOP, NULL, &r), SY_OK);
    assert_int_equal(r.n, 0);
    assert_false(r.block);
    sy_kv_results_free(&r);
    assert_int_equal(kvf_apply(&f->kv, 2, SY_ENTRY_CONFIG, NULL, &r), SY_OK);
    sy_kv_results_free(&r);
    uint64_t applied;
    assert_int_equal(sy_kv_applied(&f->kv, &applied), SY_OK);
    assert_int_equal(applied, 2);
    assert_int_equal(sy_kv_digest(&f->kv, &d1), SY_OK);
    assert_true(sy_digest_eq(&d0, &d1));
    /* Re-applying an applied index does nothing. */
    kvf_batch b = { .n = 0 };
    assert_int_equal(kvf_add(&f->w, &b, 0, 1, SY_OP_PUT, "k", "v"), SY_OK);
    assert_int_equal(kvf_apply(&f->kv, 2, SY_ENTRY_NORMAL, &b, &r), SY_OK);
    assert_true(r.skipped);
    sy_kv_results_free(&r);
    kvf_batch_free(&b);
    f->next = 3;
    assert_int_equal(op_status(f, 0, 1, SY_OP_GET, "k", NULL), SY_ENOTFOUND);
}

static void test_direct_read_does_not_change_state(void **state)
{
    fx *f = *state;
    assert_int_equal(op_status(f, 0, 1, SY_OP_PUT, "r", "val"), SY_OK);
    sy_client_req q = { .client_id = kvf_client(3), .req_no = 9, .op = SY_OP_GET,
                        .key = { (const uint8_t *)"r", 1 } };
    sy_kv_results r;
    assert_int_equal(sy_kv_read(&f->kv, &q, &r), SY_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.replies[0].status, SY_OK);
    assert_int_equal(r.replies[0].index, 1);
    assert_memory_equal(r.replies[0].val.p, "val", 3);
    sy_kv_results_free(&r);
    uint64_t rn, applied;
    assert_int_equal(sy_kv_session(&f->kv, kvf_client(3), &rn), SY_OK);
    assert_int_equal(rn, 0);
    assert_int_equal(sy_kv_applied(&f->kv, &applied), SY_OK);
    assert_int_equal(applied, 1);
    q.op = SY_OP_PUT;
    assert_int_equal(sy_kv_read(&f->kv, &q, &r), SY_EINVAL);
}

/* Feeds a deterministic pseudo-random workload to kv; returns nothing,
 * leaves the digest and results hash chain in *acc. */
static void workload(kvf_world *w, sy_kvm *kv, uint64_t seed, int entries, sy_digest *acc)
{
    sy_rng rng;
    sy_rng_seed(&rng, seed);
    uint64_t rn[KVF_CLIENTS] = { 0 };
    sy_hasher h;
    sy_hash_init(&h);
    for (int e = 1; e <= entries; e++) {
        kvf_batch b = { .n = 0 };
        int n = 1 + (int)sy_rng_below(&rng, 6);
        for (int i = 0; i < n; i++) {
            int c = (int)sy_rng_below(&rng, 4);
            char k[16], v[16];
            snprintf(k, sizeof k, "k%llu", (unsigned long long)sy_rng_below(&rng, 30));
            snprintf(v, sizeof v, "v%llu", (unsigned long long)sy_rng_below(&rng, 1000));
            uint8_t op = (uint8_t)(1 + sy_rng_below(&rng, 5));
            uint64_t r = sy_rng_below(&rng, 8) == 0 && rn[c] ? rn[c] : ++rn[c];
            assert_int_equal(kvf_req(w, c, r, op, k, op == SY_OP_SCAN ? "" : v,
                                     op == SY_OP_CAS ? v : NULL, 0, 5, &b.req[b.n], &b.len[b.n]),
                             SY_OK);
            b.n++;
        }
        sy_kv_results r;
        assert_int_equal(kvf_apply(kv, (uint64_t)e, SY_ENTRY_NORMAL, &b, &r), SY_OK);
        sy_hash_update(&h, r.blob, r.blob_len);
        sy_kv_results_free(&r);
        kvf_batch_free(&b);
    }
    sy_digest d;
    assert_int_equal(sy_kv_digest(kv, &d), SY_OK);
    sy_hash_update(&h, d.b, SY_DIGEST_LEN);
    sy_hash_final(&h, acc);
}

static void test_two_replicas_same_batches_identical_results_and_digest(void **state)
{
    fx *f = *state;
    sy_digest a, b, c;
    workload(&f->w, &f->kv, 7, 60, &a);
    /* A second replica on the other backend. */
    char dir[512];
    assert_true(t_tmpdir(dir, sizeof dir, "kvdet"));
    sy_storage *s2;
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(dir, NULL, &s2, err), SY_OK);
    sy_kvm kv2;
    assert_int_equal(sy_kv_init(&kv2, s2, &f->w.opts, 0), SY_OK);
    workload(&f->w, &kv2, 7, 60, &b);
    assert_true(sy_digest_eq(&a, &b));
    sy_storage_close(s2);
    t_rm_datadir(dir);
    /* A different workload differs. */
    sy_storage *s3;
    sy_kvm kv3;
    assert_int_equal(sy_storage_mem_new(NULL, &s3), SY_OK);
    assert_int_equal(sy_kv_init(&kv3, s3, &f->w.opts, 0), SY_OK);
    workload(&f->w, &kv3, 8, 60, &c);
    assert_false(sy_digest_eq(&a, &c));
    sy_storage_close(s3);
}

static void test_digest_depends_on_content_not_order(void **state)
{
    fx *f = *state;
    assert_int_equal(op_status(f, 0, 1, SY_OP_PUT, "a", "1"), SY_OK);
    assert_int_equal(op_status(f, 0, 2, SY_OP_PUT, "b", "2"), SY_OK);
    sy_storage *s2;
    sy_kvm kv2;
    assert_int_equal(sy_storage_mem_new(NULL, &s2), SY_OK);
    assert_int_equal(sy_kv_init(&kv2, s2, &f->w.opts, 0), SY_OK);
    fx g = { .w = f->w, .s = s2, .kv = kv2, .next = 1 };
    assert_int_equal(op_status(&g, 1, 1, SY_OP_PUT, "b", "old"), SY_OK);
    assert_int_equal(op_status(&g, 1, 2, SY_OP_PUT, "c", "3"), SY_OK);
    assert_int_equal(op_status(&g, 1, 3, SY_OP_PUT, "a", "1"), SY_OK);
    sy_digest d1, d2;
    assert_int_equal(sy_kv_digest(&f->kv, &d1), SY_OK);
    assert_int_equal(sy_kv_digest(&g.kv, &d2), SY_OK);
    assert_false(sy_digest_eq(&d1, &d2));
    assert_int_equal(op_status(&g, 1, 4, SY_OP_DEL, "c", NULL), SY_OK);
    assert_int_equal(op_status(&g, 1, 5, SY_OP_PUT, "b", "2"), SY_OK);
    assert_int_equal(sy_kv_digest(&g.kv, &d2), SY_OK);
    assert_true(sy_digest_eq(&d1, &d2));
    /* Deleting everything returns to the empty digest (zero). */
    assert_int_equal(op_status(&g, 1, 6, SY_OP_DEL, "a", NULL), SY_OK);
    assert_int_equal(op_status(&g, 1, 7, SY_OP_DEL, "b", NULL), SY_OK);
    sy_digest zero = { { 0 } };
    assert_int_equal(sy_kv_digest(&g.kv, &d2), SY_OK);
    assert_true(sy_digest_eq(&d2, &zero));
    sy_storage_close(s2);
}

static void test_snapshot_restore_reproduces_state_sessions_and_digest(void **state)
{
    fx *f = *state;
    sy_digest ignored;
    workload(&f->w, &f->kv, 11, 30, &ignored);
    uint8_t *blob;
    size_t len;
    assert_int_equal(sy_kv_snapshot(&f->kv, &blob, &len), SY_OK);
    sy_storage *s2;
    sy_kvm kv2;
    assert_int_equal(sy_storage_mem_new(NULL, &s2), SY_OK);
    assert_int_equal(sy_kv_init(&kv2, s2, &f->w.opts, 0), SY_OK);
    sy_txn t;
    assert_int_equal(sy_txn_begin(s2, true, &t), SY_OK);
    assert_int_equal(sy_kv_restore(&kv2, &t, blob, len), SY_OK);
    assert_int_equal(sy_txn_commit(&t), SY_OK);
    sy_digest d1, d2;
    assert_int_equal(sy_kv_digest(&f->kv, &d1), SY_OK);
    assert_int_equal(sy_kv_digest(&kv2, &d2), SY_OK);
    assert_true(sy_digest_eq(&d1, &d2));
    uint64_t a1, a2, r1, r2;
    assert_int_equal(sy_kv_applied(&kv2, &a2), SY_OK);
    assert_int_equal(sy_kv_applied(&f->kv, &a1), SY_OK);
    assert_int_equal(a1, a2);
    assert_int_equal(sy_kv_session(&f->kv, kvf_client(2), &r1), SY_OK);
    assert_int_equal(sy_kv_session(&kv2, kvf_client(2), &r2), SY_OK);
    assert_int_equal(r1, r2);
    /* Both continue identically, and the restored ledger verifies. */
    sy_digest c1, c2;
    uint8_t *snap2;
    size_t len2;
    assert_int_equal(sy_kv_snapshot(&kv2, &snap2, &len2), SY_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(blob, snap2, len);
    free(snap2);
    kvf_batch b = { .n = 0 };
    assert_int_equal(kvf_add(&f->w, &b, 5, 1, SY_OP_PUT, "after", "snap"), SY_OK);
    sy_kv_results x, y;
    assert_int_equal(kvf_apply(&f->kv, a1 + 1, SY_ENTRY_NORMAL, &b, &x), SY_OK);
    assert_int_equal(kvf_apply(&kv2, a1 + 1, SY_ENTRY_NORMAL, &b, &y), SY_OK);
    assert_memory_equal(x.blob, y.blob, x.blob_len);
    sy_kv_results_free(&x);
    sy_kv_results_free(&y);
    kvf_batch_free(&b);
    assert_int_equal(sy_kv_digest(&f->kv, &c1), SY_OK);
    assert_int_equal(sy_kv_digest(&kv2, &c2), SY_OK);
    assert_true(sy_digest_eq(&c1, &c2));
    uint64_t h;
    char why[256];
    assert_int_equal(sy_ledger_verify(s2, &f->w.opts, NULL, NULL, &h, why, sizeof why), SY_OK);
    /* A damaged blob is refused. */
    blob[len / 2] ^= 1;
    assert_int_equal(sy_txn_begin(s2, true, &t), SY_OK);
    assert_int_equal(sy_kv_restore(&kv2, &t, blob, len), SY_ECORRUPT);
    sy_txn_abort(&t);
    free(blob);
    sy_storage_close(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown), \
              cmocka_unit_test_setup_teardown(fn, setup_lmdb, teardown)
        T(test_put_get_delete_round_trip),
        T(test_cas_expect_absent_and_expected_value),
        T(test_limits_give_error_results_not_crashes),
        T(test_scan_respects_from_to_and_limit),
        T(test_scan_orders_long_keys_by_full_key),
        T(test_retried_request_is_applied_once_and_gets_cached_reply),
        T(test_same_request_twice_in_one_batch_applies_once),
        T(test_session_table_evicts_least_recently_used),
        T(test_bad_request_in_batch_gets_error_and_others_apply),
        T(test_noop_and_config_entries_only_advance_applied),
        T(test_direct_read_does_not_change_state),
        T(test_two_replicas_same_batches_identical_results_and_digest),
        T(test_digest_depends_on_content_not_order),
        T(test_snapshot_restore_reproduces_state_sessions_and_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
