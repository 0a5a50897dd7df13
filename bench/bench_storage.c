/* Storage benchmark: durable batched log appends through sy_storage (LMDB)
 * next to a plain LMDB put/commit loop and raw fdatasync, measured in the
 * same run on the same filesystem; then KV apply throughput, the cost of a
 * whole-state snapshot and the cost of the state-digest update.
 *
 * usage: bench_storage [DIR] [SECONDS_PER_CASE]   (DIR default $TMPDIR or /tmp) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <lmdb.h>
#include "core/storage.h"
#include "core/kv.h"
#include "core/envelope.h"
#include "crypto/sy_err.h"

#define ENTRY_BYTES 100
#define N_SIZES 3
static const int batch_sizes[N_SIZES] = { 1, 16, 128 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_env(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static double bench_fdatasync(const char *base, double secs)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/bench-fsync.dat", base);
    int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) {
        perror(p);
        exit(1);
    }
    char buf[ENTRY_BYTES];
    memset(buf, 'x', sizeof buf);
    long n = 0;
    double t0 = now_s(), t;
    do {
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd) != 0) {
            perror("fdatasync");
            exit(1);
        }
        n++;
    } while ((t = now_s()) - t0 < secs);
    close(fd);
    unlink(p);
    return (double)n / (t - t0);
}

/* Plain LMDB: batch puts of 100-byte values under u64 keys, one commit per
 * batch, default (fully synced) flags. Returns entries/s; *commits_s set. */
static double bench_raw_lmdb(const char *base, int batch, double secs, double *commits_s)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/bench-raw-lmdb", base);
    rm_env(dir);
    mkdir(dir, 0700);
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *t;
    mdb_env_create(&env);
    mdb_env_set_mapsize(env, 1ull << 32);
    mdb_env_set_maxdbs(env, 2);
    if (mdb_env_open(env, dir, 0, 0600)) {
        fprintf(stderr, "bench_storage: cannot open LMDB env in %s\n", dir);
        exit(1);
    }
    mdb_txn_begin(env, NULL, 0, &t);
    mdb_dbi_open(t, "log", MDB_CREATE, &dbi);
    mdb_txn_commit(t);
    uint8_t val[ENTRY_BYTES + SY_CHECKSUM_LEN + 9];
    memset(val, 'e', sizeof val);
    uint64_t idx = 1;
    long commits = 0;
    double t0 = now_s(), tn;
    do {
        mdb_txn_begin(env, NULL, 0, &t);
        for (int i = 0; i < batch; i++, idx++) {
            uint8_t k[8];
            sy_put_u64be(k, idx);
            MDB_val key = { 8, k }, v = { sizeof val, val };
            mdb_put(t, dbi, &key, &v, 0);
        }
        if (mdb_txn_commit(t)) {
            fprintf(stderr, "bench_storage: raw commit failed\n");
            exit(1);
        }
        commits++;
    } while ((tn = now_s()) - t0 < secs);
    mdb_env_close(env);
    rm_env(dir);
    *commits_s = (double)commits / (tn - t0);
    return (double)(idx - 1) / (tn - t0);
}

/* sy_storage: hard state + batch of checksummed entries, one commit. */
static double bench_log(const char *base, int batch, double secs, double *commits_s)
{
    char dir[1100], err[SY_STORAGE_ERRMSG];
    snprintf(dir, sizeof dir, "%s/bench-log", base);
    rm_env(dir);
    sy_storage *s;
    sy_storage_lmdb_opts o = { .map_size = 1ull << 32 };
    if (sy_storage_lmdb_open(dir, &o, &s, err)) {
        fprintf(stderr, "bench_storage: %s\n", err);
        exit(1);
    }
    uint8_t data[ENTRY_BYTES];
    memset(data, 'e', sizeof data);
    sy_entry es[128];
    uint64_t idx = 1;
    long commits = 0;
    double t0 = now_s(), tn;
    do {
        for (int i = 0; i < batch; i++)
            es[i] = (sy_entry){ .index = idx + (uint64_t)i, .term = 1, .type = SY_ENTRY_NORMAL,
                                .data = { data, sizeof data } };
        uint8_t hs[16];
        sy_put_u64be(hs, 1);
        sy_put_u64be(hs + 8, idx);
        sy_txn t;
        if (sy_txn_begin(s, true, &t) || sy_txn_set_hardstate(&t, (sy_bytes){ hs, 16 }) ||
            sy_txn_append(&t, es, (size_t)batch) || sy_txn_commit(&t)) {
            fprintf(stderr, "bench_storage: %s\n", sy_storage_errmsg(s));
            exit(1);
        }
        idx += (uint64_t)batch;
        commits++;
    } while ((tn = now_s()) - t0 < secs);
    sy_storage_close(s);
    rm_env(dir);
    *commits_s = (double)commits / (tn - t0);
    return (double)(idx - 1) / (tn - t0);
}

/* ---- KV apply ---- */
static sy_pubkey bench_pk;
static const sy_pubkey *key_of(void *ctx, uint32_t sender)
{
    (void)ctx;
    return sender == SY_CLIENT_ID_BASE ? &bench_pk : NULL;
}

static double bench_kv_apply(sy_storage *s, int per_batch, int batches)
{
    sy_simsig *reg;
    sy_signer signer;
    uint8_t seed[SY_SEED_LEN] = { 7 };
    sy_simsig_new(1, &reg);
    sy_simsig_add(reg, seed, &signer);
    bench_pk = signer.pub;
    sy_directory dir = { .key_of = key_of };
    sy_env_opts opts = { .cluster_id = "bench", .dir = &dir };
    sy_kvm kv;
    sy_kv_init(&kv, s, &opts, 0);
    /* Pre-encode everything so only apply is timed. */
    uint8_t **datas = calloc((size_t)batches, sizeof *datas);
    size_t *lens = calloc((size_t)batches, sizeof *lens);
    sy_bytes *reqs = calloc((size_t)per_batch, sizeof *reqs);
    uint64_t rn = 0;
    char val[ENTRY_BYTES];
    memset(val, 'v', sizeof val);
    for (int b = 0; b < batches; b++) {
        sy_buf bufs[128];
        for (int i = 0; i < per_batch; i++) {
            char k[32];
            snprintf(k, sizeof k, "key-%08llu", (unsigned long long)(rn * 7919 % 1000003));
            sy_msg m = { .type = SY_MSG_CLIENT_REQ };
            m.u.req = (sy_client_req){ .client_id = SY_CLIENT_ID_BASE, .req_no = ++rn,
                                       .op = SY_OP_PUT,
                                       .key = { (const uint8_t *)k, (uint32_t)strlen(k) },
                                       .val = { (const uint8_t *)val, sizeof val } };
            sy_buf_init(&bufs[i]);
            sy_env_encode("bench", SY_CLIENT_ID_BASE, &m, &signer, &bufs[i]);
            reqs[i] = (sy_bytes){ bufs[i].p, (uint32_t)bufs[i].len };
        }
        sy_batch_encode(reqs, (uint32_t)per_batch, &datas[b], &lens[b]);
        for (int i = 0; i < per_batch; i++)
            sy_buf_free(&bufs[i]);
    }
    double t0 = now_s();
    for (int b = 0; b < batches; b++) {
        sy_committed c = { .entry = { .index = (uint64_t)b + 1, .term = 1,
                                      .type = SY_ENTRY_NORMAL,
                                      .data = { datas[b], (uint32_t)lens[b] } } };
        sy_txn t;
        sy_kv_results r;
        if (sy_txn_begin(s, true, &t) || sy_txn_append(&t, &c.entry, 1) ||
            sy_kv_apply(&kv, &t, &c, &r) || sy_txn_commit(&t)) {
            fprintf(stderr, "bench_storage: apply failed: %s\n", sy_storage_errmsg(s));
            exit(1);
        }
        sy_kv_results_free(&r);
    }
    double dt = now_s() - t0;
    for (int b = 0; b < batches; b++)
        free(datas[b]);
    free(datas);
    free(lens);
    free(reqs);
    sy_simsig_free(reg);
    return (double)per_batch * batches / dt;
}

/* What a snapshot of the whole state costs once the store holds
 * per_batch * batches keys of ENTRY_BYTES values: serialising it
 * (sy_kv_snapshot), hashing the blob (the PBFT checkpoint digest, pbft.c)
 * and storing it durably (sy_txn_local_snapshot + commit) -- the work
 * a PBFT checkpoint does every checkpoint_interval sequence numbers and a
 * Raft/Paxos compaction every snapshot_threshold entries (runtime.c,
 * take_snapshot). All three grow with the state. */
static void bench_snapshot(sy_storage *s, int per_batch, int batches)
{
    sy_directory dir = { .key_of = key_of };
    sy_env_opts opts = { .cluster_id = "bench", .dir = &dir };
    sy_kvm kv;
    sy_kv_init(&kv, s, &opts, 0);
    uint8_t *blob = NULL;
    size_t len = 0;
    double t0 = now_s();
    if (sy_kv_snapshot(&kv, &blob, &len)) {
        fprintf(stderr, "bench_storage: snapshot failed: %s\n", sy_storage_errmsg(s));
        exit(1);
    }
    double t1 = now_s();
    sy_digest d;
    sy_hash(blob, len, &d);
    double t2 = now_s();
    sy_members mem = { .n_voters = 1 };
    sy_txn t;
    if (sy_txn_begin(s, true, &t) ||
        sy_txn_local_snapshot(&t, (uint64_t)batches, 1, &mem, (sy_bytes){ blob, (uint32_t)len }) ||
        sy_txn_commit(&t)) {
        fprintf(stderr, "bench_storage: storing the snapshot failed: %s\n", sy_storage_errmsg(s));
        exit(1);
    }
    double t3 = now_s();
    double keys = (double)per_batch * batches, mb = (double)len / 1e6;
    printf("snapshot of %.0f keys (%.1f MB): serialise %.1f ms, hash %.1f ms, store+sync %.1f ms;"
           " %.2f us per key, %.1f ms per MB; at 1,000,000 keys ~%.0f ms\n",
           keys, mb, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3,
           (t3 - t0) / keys * 1e6, (t3 - t0) * 1e3 / mb, (t3 - t0) / keys * 1e6 * 1e3);
    free(blob);
}

/* The digest update per put: hash of (u32 klen || key || value) and one
 * 256-bit add (the same work kv.c does; a delete is one more of each). */
static double bench_digest_ns(void)
{
    uint8_t kvbuf[4 + 16 + ENTRY_BYTES];
    memset(kvbuf, 'd', sizeof kvbuf);
    sy_digest acc = { { 0 } }, h;
    const int n = 200000;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        kvbuf[5] = (uint8_t)i;
        sy_hash(kvbuf, sizeof kvbuf, &h);
        unsigned carry = 0;
        for (int j = 0; j < SY_DIGEST_LEN; j++) {
            unsigned r = acc.b[j] + h.b[j] + carry;
            acc.b[j] = (uint8_t)r;
            carry = r >> 8;
        }
    }
    double dt = now_s() - t0;
    if (acc.b[0] == 0x42 && acc.b[1] == 0x42)
        printf(" ");  /* keep the loop observable */
    return dt / n * 1e9;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    double secs = argc > 2 ? atof(argv[2]) : 0.3;
    if (secs <= 0)
        secs = 0.3;
    sy_crypto_init();
    printf("bench_storage: dir %s, %.2fs per case, entries of %d bytes\n", base, secs,
           ENTRY_BYTES);
    double fsync_s = bench_fdatasync(base, secs);
    printf("raw fdatasync: %.0f syncs/s\n", fsync_s);
    printf("%-6s %14s %12s %14s %12s %8s\n", "batch", "log entries/s", "log fsyncs/s",
           "lmdb entries/s", "lmdb txn/s", "log/raw");
    double ratio128 = 0;
    for (int i = 0; i < N_SIZES; i++) {
        double rc_s, lc_s;
        double raw = bench_raw_lmdb(base, batch_sizes[i], secs, &rc_s);
        double log = bench_log(base, batch_sizes[i], secs, &lc_s);
        printf("%-6d %14.0f %12.0f %14.0f %12.0f %7.0f%%\n", batch_sizes[i], log, lc_s, raw, rc_s,
               100.0 * log / raw);
        if (batch_sizes[i] == 128)
            ratio128 = log / raw;
    }
    printf("log/raw-lmdb at batch 128: %.0f%% (target >= 80%%)\n", 100.0 * ratio128);

    char dir[1100], err[SY_STORAGE_ERRMSG];
    snprintf(dir, sizeof dir, "%s/bench-kv", base);
    rm_env(dir);
    sy_storage *s;
    sy_storage_lmdb_opts o = { .map_size = 1ull << 32 };
    if (sy_storage_lmdb_open(dir, &o, &s, err)) {
        fprintf(stderr, "bench_storage: %s\n", err);
        return 1;
    }
    double kv_lmdb = bench_kv_apply(s, 128, 60);
    sy_storage_close(s);
    rm_env(dir);
    /* a larger state for the snapshot cost: 102,400 distinct keys */
    if (sy_storage_lmdb_open(dir, &o, &s, err)) {
        fprintf(stderr, "bench_storage: %s\n", err);
        return 1;
    }
    bench_kv_apply(s, 128, 800);
    bench_snapshot(s, 128, 800);
    sy_storage_close(s);
    rm_env(dir);
    sy_storage_mem_new(NULL, &s);
    double kv_mem = bench_kv_apply(s, 128, 60);
    sy_storage_close(s);
    printf("kv apply (put, 128 req/batch, 1 durable commit/batch, LMDB): %.0f req/s\n", kv_lmdb);
    printf("kv apply (put, 128 req/batch, memory backend):              %.0f req/s\n", kv_mem);
    printf("state digest update: %.0f ns per key written\n", bench_digest_ns());
    return 0;
}
