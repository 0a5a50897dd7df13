/* Crash consistency of the LMDB backend under SIGKILL at random points.
 *
 * A child process applies batches in a loop exactly as the daemon would
 * (one write txn: hard state, log entry, KV apply, session, ledger block,
 * applied index; one commit). Batch i holds two requests from one client:
 * put "k<i>" = i (req_no 2i-1) and put "counter" = i (req_no 2i). The parent
 * kills it after a short random delay, reopens the store and checks that it
 * shows exactly batches 1..applied: nothing partial, nothing lost, the log,
 * hard state, sessions and the ledger chain all agreeing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core/rng.h"
#include "core/wal.h"
#include "tests/unit/kv_fixture.h"

#define KILL_POINTS 220
#define MAX_DELAY_US 15000
#define RESET_AFTER 1500   /* start a fresh dir so verification stays cheap */

static void rm_dir(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", dir, SY_WAL_FILE);
    unlink(p);
    rmdir(dir);
}

/* The child: never returns. Exit code 3 = a failure it detected. */
static void child_loop(kvf_world *w, const char *dir, int ack_fd, uint64_t seed)
{
    (void)seed;
    sy_storage *s;
    char err[SY_STORAGE_ERRMSG];
    sy_kvm kv;
    if (sy_storage_lmdb_open(dir, NULL, &s, err) || sy_kv_init(&kv, s, &w->opts, 0))
        _exit(3);
    uint64_t applied;
    if (sy_kv_applied(&kv, &applied))
        _exit(3);
    for (uint64_t i = applied + 1;; i++) {
        kvf_batch b = { .n = 0 };
        char k[32], v[32];
        snprintf(k, sizeof k, "k%llu", (unsigned long long)i);
        snprintf(v, sizeof v, "%llu", (unsigned long long)i);
        if (kvf_add(w, &b, 0, 2 * i - 1, SY_OP_PUT, k, v) ||
            kvf_add(w, &b, 0, 2 * i, SY_OP_PUT, "counter", v))
            _exit(3);
        uint8_t *data;
        size_t len;
        if (kvf_encode(&b, &data, &len))
            _exit(3);
        char hs[32];
        int hl = snprintf(hs, sizeof hs, "hs%llu", (unsigned long long)i);
        sy_committed c = { .entry = { .index = i, .term = 1, .type = SY_ENTRY_NORMAL,
                                      .data = { data, (uint32_t)len } } };
        sy_txn t;
        sy_kv_results r;
        if (sy_txn_begin(s, true, &t) ||
            sy_txn_set_hardstate(&t, (sy_bytes){ (const uint8_t *)hs, (uint32_t)hl }) ||
            sy_txn_append(&t, &c.entry, 1) || sy_kv_apply(&kv, &t, &c, &r))
            _exit(3);
        if (sy_txn_commit(&t))
            _exit(3);
        /* Acknowledge only after the commit returned: the parent checks
         * that every acknowledged batch survives the kill. */
        if (write(ack_fd, &i, sizeof i) != sizeof i)
            _exit(3);
        sy_kv_results_free(&r);
        free(data);
        kvf_batch_free(&b);
    }
}

static uint64_t value_u64(sy_kvm *kv, const char *key, bool *found)
{
    uint8_t *v;
    size_t vl;
    int rc = sy_kv_get(kv, key, strlen(key), &v, &vl);
    *found = rc == SY_OK;
    if (rc != SY_OK) {
        assert_int_equal(rc, SY_ENOTFOUND);
        return 0;
    }
    char buf[32];
    assert_true(vl < sizeof buf);
    memcpy(buf, v, vl);
    buf[vl] = 0;
    free(v);
    return strtoull(buf, NULL, 10);
}

/* Checks the store shows exactly batches 1..applied; returns applied.
 * log_is_applied: the log and hard state end at applied too (without a
 * write-ahead log they are committed together). */
static uint64_t check_store(kvf_world *w, const char *dir, uint64_t prev_applied,
                            bool log_is_applied)
{
    sy_storage *s;
    char err[SY_STORAGE_ERRMSG];
    sy_kvm kv;
    assert_int_equal(sy_storage_lmdb_open(dir, NULL, &s, err), SY_OK);
    assert_int_equal(sy_kv_init(&kv, s, &w->opts, 0), SY_OK);
    uint64_t a;
    assert_int_equal(sy_kv_applied(&kv, &a), SY_OK);
    assert_true(a >= prev_applied);  /* every acknowledged batch survived */
    bool found;
    uint64_t counter = value_u64(&kv, "counter", &found);
    assert_int_equal(found, a > 0);
    assert_int_equal(counter, a);
    for (uint64_t i = 1; i <= a + 1; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%llu", (unsigned long long)i);
        uint64_t v = value_u64(&kv, k, &found);
        if (i <= a) {
            assert_true(found);
            assert_int_equal(v, i);
        } else {
            assert_false(found);  /* no partial next batch */
        }
    }
    uint64_t rn;
    assert_int_equal(sy_kv_session(&kv, kvf_client(0), &rn), SY_OK);
    assert_int_equal(rn, 2 * a);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(s, &b), SY_OK);
    assert_int_equal(b.boot.applied, a);
    if (log_is_applied)
        assert_int_equal(b.boot.n_entries, a);
    if (a && log_is_applied) {
        char hs[32];
        int hl = snprintf(hs, sizeof hs, "hs%llu", (unsigned long long)a);
        assert_int_equal(b.boot.hardstate.len, hl);
        assert_memory_equal(b.boot.hardstate.p, hs, hl);
    }
    sy_storage_boot_free(&b);
    uint64_t h;
    char why[256];
    int rc = sy_ledger_verify(s, &w->opts, NULL, NULL, &h, why, sizeof why);
    if (rc)
        fail_msg("ledger: %s", why);
    assert_int_equal(h, a);
    sy_storage_close(s);
    return a;
}

/* The kill loop both tests share: fork a child that writes and
 * acknowledges batches, SIGKILL it after a random delay, then check the
 * store against the last acknowledged batch. check() returns the new
 * progress mark (batches / entries the store shows); the directory starts
 * afresh past RESET_AFTER so verification stays cheap. */
typedef void (*child_fn)(kvf_world *w, const char *dir, int ack_fd, uint64_t seed);
typedef uint64_t (*check_fn)(kvf_world *w, const char *dir, uint64_t acked, void *ctx);

static void kill_points(const char *tag, child_fn child, check_fn check, void *ctx)
{
    kvf_world w;
    assert_int_equal(kvf_world_init(&w), SY_OK);
    const char *base = getenv("SYNOD_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s-XXXXXX", base, tag);
    assert_non_null(mkdtemp(dir));
    sy_rng rng;
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    sy_rng_seed(&rng, seed);
    print_message("%s test seed %llu\n", tag, (unsigned long long)seed);
    uint64_t mark = 0, total = 0, progressed = 0;
    for (int kill_no = 0; kill_no < KILL_POINTS; kill_no++) {
        int ack[2];
        assert_int_equal(pipe(ack), 0);
        uint64_t child_seed = sy_rng_next(&rng);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(ack[0]);
            child(&w, dir, ack[1], child_seed);
        }
        close(ack[1]);
        usleep((useconds_t)sy_rng_below(&rng, MAX_DELAY_US));
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFSIGNALED(st))
            fail_msg("child exited by itself (status %d) at kill point %d", st, kill_no);
        uint64_t acked = mark, x;
        while (read(ack[0], &x, sizeof x) == sizeof x)
            acked = x;
        close(ack[0]);
        uint64_t m = check(&w, dir, acked, ctx);
        if (m > mark)
            progressed++;
        total += m - mark;
        mark = m;
        if (mark > RESET_AFTER) {
            rm_dir(dir);
            assert_int_equal(mkdir(dir, 0700), 0);
            mark = 0;
        }
    }
    print_message("%s test: %d kill points, %llu batches made durable, progress after %llu kills\n",
                  tag, KILL_POINTS, (unsigned long long)total, (unsigned long long)progressed);
    assert_true(progressed > KILL_POINTS / 4);
    rm_dir(dir);
    kvf_world_free(&w);
}

static uint64_t check_plain(kvf_world *w, const char *dir, uint64_t acked, void *ctx)
{
    (void)ctx;
    return check_store(w, dir, acked, true);
}

static void test_sigkill_at_random_points_never_shows_partial_or_lost_batches(void **state)
{
    (void)state;
    kill_points("crash", child_loop, check_plain, NULL);
}

/* ---- the same with the write-ahead log (core/wal.h), as the daemon runs
 * crash-fault engines: one LMDB transaction stays open across batches;
 * each batch's hard state and entry are made durable by a WAL record and
 * acknowledged then; the applied state reaches disk only when LMDB
 * commits, every few batches. After a kill, recovery must show every
 * acknowledged entry and hard state; the applied state may be behind the
 * log but is never partial, and the host re-applies from the log. ---- */

static int make_batch(kvf_world *w, uint64_t i, uint8_t **data, size_t *len)
{
    kvf_batch b = { .n = 0 };
    char k[32], v[32];
    snprintf(k, sizeof k, "k%llu", (unsigned long long)i);
    snprintf(v, sizeof v, "%llu", (unsigned long long)i);
    int rc = kvf_add(w, &b, 0, 2 * i - 1, SY_OP_PUT, k, v);
    if (!rc)
        rc = kvf_add(w, &b, 0, 2 * i, SY_OP_PUT, "counter", v);
    if (!rc)
        rc = kvf_encode(&b, data, len);
    kvf_batch_free(&b);
    return rc;
}

static void child_loop_wal(kvf_world *w, const char *dir, int ack_fd, uint64_t seed)
{
    sy_storage *s;
    sy_wal *wal;
    char err[SY_STORAGE_ERRMSG];
    sy_kvm kv;
    if (sy_storage_lmdb_open(dir, NULL, &s, err) || sy_wal_open(dir, 64u << 10, &wal, err) ||
        sy_wal_recover(wal, s, NULL) || sy_kv_init(&kv, s, &w->opts, 0))
        _exit(3);
    sy_rng rng;
    sy_rng_seed(&rng, seed);
    uint64_t applied, first, last;
    sy_txn t;
    if (sy_kv_applied(&kv, &applied) || sy_txn_begin(s, true, &t) ||
        sy_txn_log_bounds(&t, &first, &last))
        _exit(3);
    /* what a host does at restart: re-apply the log past the applied state */
    for (uint64_t i = applied + 1; i <= last; i++) {
        sy_committed c = { .evidence = { NULL, 0 } };
        sy_kv_results r;
        if (sy_txn_entry(&t, i, &c.entry))
            _exit(3);
        if (sy_kv_apply(&kv, &t, &c, &r))
            _exit(3);
        sy_kv_results_free(&r);
    }
    unsigned since_commit = 0, every = 1 + (unsigned)sy_rng_below(&rng, 8);
    for (uint64_t i = last + 1;; i++) {
        uint8_t *data;
        size_t len;
        if (make_batch(w, i, &data, &len))
            _exit(3);
        char hs[32];
        int hl = snprintf(hs, sizeof hs, "hs%llu", (unsigned long long)i);
        sy_committed c = { .entry = { .index = i, .term = 1, .type = SY_ENTRY_NORMAL,
                                      .data = { data, (uint32_t)len } } };
        sy_ready rd = { .hardstate_dirty = true,
                        .hardstate = { (const uint8_t *)hs, (uint32_t)hl },
                        .entries = &c.entry, .n_entries = 1 };
        sy_kv_results r;
        if (sy_txn_persist_ready(&t, &rd) || sy_kv_apply(&kv, &t, &c, &r))
            _exit(3);
        bool full = false;
        int rc = sy_wal_log(wal, &t, &rd, &full);
        if (rc == SY_OK && (full || ++since_commit >= every)) {
            if (sy_txn_commit(&t) || sy_txn_begin(s, true, &t))
                _exit(3);
            sy_wal_reset(wal);
            since_commit = 0;
        } else if (rc) {
            _exit(3);
        }
        /* durable now (WAL record synced, or LMDB committed): acknowledge */
        if (write(ack_fd, &i, sizeof i) != sizeof i)
            _exit(3);
        sy_kv_results_free(&r);
        free(data);
    }
}

/* Recovers, then checks: the log holds 1..last with last >= acked and the
 * hard state of `last`; the state shows exactly batches 1..applied with
 * applied <= last. Returns last. */
static uint64_t check_store_wal(kvf_world *w, const char *dir, uint64_t acked, size_t *replays)
{
    sy_storage *s;
    sy_wal *wal;
    char err[SY_STORAGE_ERRMSG];
    assert_int_equal(sy_storage_lmdb_open(dir, NULL, &s, err), SY_OK);
    assert_int_equal(sy_wal_open(dir, 64u << 10, &wal, err), SY_OK);
    size_t n = 0;
    assert_int_equal(sy_wal_recover(wal, s, &n), SY_OK);
    *replays += n;
    sy_wal_close(wal);
    sy_storage_boot b;
    assert_int_equal(sy_storage_load_boot(s, &b), SY_OK);
    uint64_t last = b.boot.n_entries;
    assert_true(last >= acked);   /* every acknowledged entry survived */
    for (size_t i = 0; i < b.boot.n_entries; i++) {
        assert_int_equal(b.boot.entries[i].index, i + 1);
        uint8_t *data;
        size_t len;
        assert_int_equal(make_batch(w, i + 1, &data, &len), SY_OK);
        assert_int_equal(b.boot.entries[i].data.len, len);
        assert_memory_equal(b.boot.entries[i].data.p, data, len);
        free(data);
    }
    if (last) {
        char hs[32];
        int hl = snprintf(hs, sizeof hs, "hs%llu", (unsigned long long)last);
        assert_int_equal(b.boot.hardstate.len, hl);
        assert_memory_equal(b.boot.hardstate.p, hs, hl);
    }
    uint64_t applied = b.boot.applied;
    assert_true(applied <= last);
    sy_storage_boot_free(&b);
    sy_storage_close(s);
    /* the applied state is whole: check_store's checks at its own index */
    assert_int_equal(check_store(w, dir, applied, false), applied);
    return last;
}

static uint64_t check_wal(kvf_world *w, const char *dir, uint64_t acked, void *ctx)
{
    return check_store_wal(w, dir, acked, ctx);
}

static void test_sigkill_with_write_ahead_log_loses_no_acknowledged_entry(void **state)
{
    (void)state;
    size_t replays = 0;
    kill_points("crashwal", child_loop_wal, check_wal, &replays);
    print_message("crashwal: %zu records replayed\n", replays);
    assert_true(replays > 0);   /* the log did carry entries LMDB had not committed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_at_random_points_never_shows_partial_or_lost_batches),
        cmocka_unit_test(test_sigkill_with_write_ahead_log_loses_no_acknowledged_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
