/* synod-chaos: a concurrent workload against a real cluster that records
 * every operation's invocation and response and checks, at the end, that
 * the history is linearizable (tests/sim/linz.h: the checker the simulator
 * uses). tests/integration/chaos_suite.sh runs it while it SIGKILLs,
 * SIGSTOPs and restarts nodes, so what it checks is the daemon's host
 * logic as well as the engines: the write-ahead log and held apply
 * across crashes, early replies, lazy apply on followers, snapshots and
 * catch-up, the client library's retries and leader following.
 *
 *   synod-chaos --cluster FILE --keys DIR [--clients K] [--duration S]
 *               [--keyspace N] [--timeout MS] [--seed X] [--min-ok N]
 *               [--first-key I]
 *
 * K threads, each with its own client key DIR/client-<I+i>.key (I = 0
 * unless --first-key: a key's requests execute in req_no order, so no one
 * else may use these keys meanwhile), pick random
 * operations on N keys (put with a value unique in the run, linearizable
 * get, cas from the value the thread last saw, del) for S seconds. A call
 * that fails without a decision (the deadline passed: the write may or may
 * not have happened) is recorded as pending: it may take effect at any
 * later point or never. Times are CLOCK_MONOTONIC, read before a call is
 * made and after it returned, so each recorded interval contains the real
 * one.
 *
 * Keys and values carry a prefix unique to the run (printed), so a run
 * starts from keys nobody wrote and any cluster can take several runs.
 *
 * Prints one summary line and the verdict. Exit 0: linearizable and at
 * least --min-ok operations decided; 1: a violation (the operation and its
 * partition are printed) or too few decided operations; 2: usage or
 * set-up errors; 3: the check hit its search bound without a verdict. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include "crypto/sy_err.h"
#include "core/msg.h"
#include "net/client.h"
#include "tests/sim/linz.h"

#define MAX_CLIENTS 64u
#define LINZ_STEPS 200000000ull

typedef struct {
    const char *cluster, *keys;
    uint32_t clients, keyspace;
    uint32_t duration_s;
    int timeout_ms;
    uint64_t seed, min_ok;
    uint32_t first_key;
} opts;

typedef struct {
    uint64_t ok, cas_fail, not_found, pending, other;
} counts;

typedef struct {
    const opts *o;
    const char *run;          /* prefix of this run's keys and values */
    uint32_t idx;
    sy_client *c;
    uint64_t rng;
    uint64_t deadline_ns;
    counts n;
    int err;
    char why[256];
} worker;

static sy_linz *hist;
static pthread_mutex_t hist_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_rand(uint64_t *s)
{
    /* splitmix64: a seeded sequence per thread */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *work(void *arg)
{
    worker *w = arg;
    const opts *o = w->o;
    /* the last value this thread saw per key: cas mostly expects it */
    char (*seen)[64] = calloc(o->keyspace, sizeof *seen);
    bool *seen_absent = calloc(o->keyspace, sizeof *seen_absent);
    if (!seen || !seen_absent) {
        w->err = SY_ENOMEM;
        free(seen);
        free(seen_absent);
        return NULL;
    }
    for (uint64_t seq = 1; mono_ns() < w->deadline_ns; seq++) {
        uint32_t k = (uint32_t)(next_rand(&w->rng) % o->keyspace);
        uint32_t pick = (uint32_t)(next_rand(&w->rng) % 100);
        char key[48], val[64], old[64];
        snprintf(key, sizeof key, "%s-k%u", w->run, k);
        snprintf(val, sizeof val, "%s-c%u-%" PRIu64, w->run, w->idx, seq);
        uint8_t op, flags = 0;
        size_t vlen = 0, olen = 0;
        if (pick < 35) {
            op = SY_OP_PUT;
            vlen = strlen(val);
        } else if (pick < 70) {
            op = SY_OP_GET;
        } else if (pick < 90) {
            op = SY_OP_CAS;
            vlen = strlen(val);
            if (seen_absent[k] || !seen[k][0]) {
                flags = SY_CAS_EXPECT_ABSENT;
            } else {
                memcpy(old, seen[k], sizeof old);
                olen = strlen(old);
            }
        } else {
            op = SY_OP_DEL;
        }
        size_t id;
        pthread_mutex_lock(&hist_mu);
        int rc = sy_linz_invoke(hist, w->idx, mono_ns(), op, flags, key, strlen(key),
                                vlen ? val : NULL, vlen, olen ? old : NULL, olen, &id);
        pthread_mutex_unlock(&hist_mu);
        if (rc) {
            w->err = rc;
            break;
        }
        sy_client_result res;
        memset(&res, 0, sizeof res);
        rc = sy_client_exec(w->c, op, flags, key, strlen(key), vlen ? val : NULL, vlen,
                            olen ? old : NULL, olen, 0, o->timeout_ms, &res);
        uint64_t t_ret = mono_ns();
        if (rc != SY_OK) {
            /* no decision: pending (it may still happen) */
            if (rc == SY_ETIMEOUT || rc == SY_EUNREACH) {
                w->n.pending++;
                continue;
            }
            snprintf(w->why, sizeof w->why, "client %u: %s", w->idx, sy_strerror(rc));
            w->err = rc;
            break;
        }
        int st = res.status;
        if (st == SY_OK || st == SY_ENOTFOUND || st == SY_ECASFAIL) {
            pthread_mutex_lock(&hist_mu);
            rc = sy_linz_return(hist, id, t_ret, st, res.val, res.val_len);
            pthread_mutex_unlock(&hist_mu);
            if (st == SY_OK)
                w->n.ok++;
            else if (st == SY_ENOTFOUND)
                w->n.not_found++;
            else
                w->n.cas_fail++;
            /* what this thread now believes the key holds */
            if ((op == SY_OP_PUT || op == SY_OP_CAS) && st == SY_OK) {
                memcpy(seen[k], val, sizeof val);
                seen_absent[k] = false;
            } else if ((op == SY_OP_GET && st == SY_OK) ||
                       (op == SY_OP_CAS && st == SY_ECASFAIL && res.val_len)) {
                size_t l = res.val_len < sizeof seen[k] - 1 ? res.val_len : sizeof seen[k] - 1;
                memcpy(seen[k], res.val, l);
                seen[k][l] = 0;
                seen_absent[k] = false;
            } else if (op == SY_OP_DEL || st == SY_ENOTFOUND ||
                       (op == SY_OP_CAS && st == SY_ECASFAIL)) {
                seen_absent[k] = true;
            }
        } else {
            /* a decided refusal (busy, too big...): it did not execute,
             * so leave it pending, which allows "never" */
            w->n.other++;
        }
        sy_client_result_free(&res);
        if (rc) {
            w->err = rc;
            break;
        }
    }
    free(seen);
    free(seen_absent);
    return NULL;
}

static int usage(const char *msg)
{
    fprintf(stderr, "synod-chaos: %s\n"
                    "usage: synod-chaos --cluster FILE --keys DIR [--clients K] [--duration S]\n"
                    "                   [--keyspace N] [--timeout MS] [--seed X] [--min-ok N]\n"
                    "                   [--first-key I]\n",
            msg);
    return 2;
}

static bool num_arg(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    opts o = { .clients = 4, .keyspace = 5, .duration_s = 20, .timeout_ms = 3000, .seed = 1,
               .min_ok = 1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: synod-chaos --cluster FILE --keys DIR [--clients K] [--duration S]\n"
                   "                   [--keyspace N] [--timeout MS] [--seed X] [--min-ok N]\n"
                   "                   [--first-key I]\n"
                   "Concurrent put/get/cas/del on a few keys; the history is checked for\n"
                   "linearizability. Exit 0 ok, 1 violation or too few decided, 2 usage,\n"
                   "3 search bound reached.\n");
            return 0;
        }
        if (i + 1 >= argc)
            return usage("every option takes a value");
        const char *v = argv[++i];
        uint64_t x;
        if (!strcmp(a, "--cluster")) {
            o.cluster = v;
        } else if (!strcmp(a, "--keys")) {
            o.keys = v;
        } else if (!strcmp(a, "--clients") && num_arg(v, 1, MAX_CLIENTS, &x)) {
            o.clients = (uint32_t)x;
        } else if (!strcmp(a, "--keyspace") && num_arg(v, 1, 1000, &x)) {
            o.keyspace = (uint32_t)x;
        } else if (!strcmp(a, "--duration") && num_arg(v, 1, 86400, &x)) {
            o.duration_s = (uint32_t)x;
        } else if (!strcmp(a, "--timeout") && num_arg(v, 100, 600000, &x)) {
            o.timeout_ms = (int)x;
        } else if (!strcmp(a, "--seed") && num_arg(v, 0, UINT64_MAX, &x)) {
            o.seed = x;
        } else if (!strcmp(a, "--min-ok") && num_arg(v, 0, UINT64_MAX, &x)) {
            o.min_ok = x;
        } else if (!strcmp(a, "--first-key") && num_arg(v, 0, 1000, &x)) {
            o.first_key = (uint32_t)x;
        } else {
            char m[128];
            snprintf(m, sizeof m, "bad option or value: %s %s", a, v);
            return usage(m);
        }
    }
    if (!o.cluster || !o.keys)
        return usage("--cluster and --keys are required");
    /* every client key first: a missing one is a usage error before any
     * operation reaches the cluster, not after the others have run */
    for (uint32_t i = 0; i < o.clients; i++) {
        char kp[4096];
        snprintf(kp, sizeof kp, "%s/client-%u.key", o.keys, o.first_key + i);
        if (access(kp, R_OK) != 0) {
            fprintf(stderr, "synod-chaos: --clients %u needs %s (%s); generate the cluster with "
                    "synod-keys cluster --clients %u or more\n", o.clients, kp, strerror(errno),
                    o.first_key + o.clients);
            return 2;
        }
    }
    if (sy_linz_new(&hist)) {
        fprintf(stderr, "synod-chaos: out of memory\n");
        return 2;
    }
    worker *ws = calloc(o.clients, sizeof *ws);
    pthread_t *th = calloc(o.clients, sizeof *th);
    if (!ws || !th) {
        fprintf(stderr, "synod-chaos: out of memory\n");
        return 2;
    }
    /* the run's prefix: seed and wall clock, so no two runs share keys */
    char run[32];
    uint64_t run_id = (o.seed * UINT64_C(0x9e3779b97f4a7c15)) ^ ((uint64_t)time(NULL) * 1000003u);
    snprintf(run, sizeof run, "r%" PRIx64, run_id);
    printf("run %s: %u clients, %u keys, %u s\n", run, o.clients, o.keyspace, o.duration_s);
    fflush(stdout);
    uint64_t deadline = mono_ns() + (uint64_t)o.duration_s * 1000000000ull;
    int rc = 0;
    uint32_t started = 0;
    for (uint32_t i = 0; i < o.clients; i++) {
        char kp[4096];
        snprintf(kp, sizeof kp, "%s/client-%u.key", o.keys, o.first_key + i);
        ws[i] = (worker){ .o = &o, .run = run, .idx = i, .rng = o.seed * 1000003u + i,
                          .deadline_ns = deadline };
        if (sy_client_open(o.cluster, kp, &ws[i].c, ws[i].why, sizeof ws[i].why) != SY_OK) {
            fprintf(stderr, "synod-chaos: %s\n", ws[i].why);
            rc = 2;
            break;
        }
        if (pthread_create(&th[i], NULL, work, &ws[i])) {
            fprintf(stderr, "synod-chaos: cannot start a thread\n");
            sy_client_close(ws[i].c);
            rc = 2;
            break;
        }
        started++;
    }
    counts tot = { 0 };
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        sy_client_close(ws[i].c);
        tot.ok += ws[i].n.ok;
        tot.cas_fail += ws[i].n.cas_fail;
        tot.not_found += ws[i].n.not_found;
        tot.pending += ws[i].n.pending;
        tot.other += ws[i].n.other;
        if (ws[i].err) {
            fprintf(stderr, "synod-chaos: %s\n",
                    ws[i].why[0] ? ws[i].why : sy_strerror(ws[i].err));
            rc = 2;
        }
    }
    uint64_t decided = tot.ok + tot.cas_fail + tot.not_found;
    printf("ops %zu: ok %" PRIu64 ", cas failed %" PRIu64 ", not found %" PRIu64
           ", no decision (pending) %" PRIu64 ", refused %" PRIu64 "\n",
           sy_linz_count(hist), tot.ok, tot.cas_fail, tot.not_found, tot.pending, tot.other);
    if (rc == 0) {
        sy_linz_result lr;
        double t0 = (double)mono_ns();
        if (sy_linz_check(hist, LINZ_STEPS, &lr)) {
            fprintf(stderr, "synod-chaos: out of memory checking the history\n");
            rc = 2;
        } else if (lr.verdict == SY_LINZ_OK) {
            printf("linearizable: yes (%zu keys, %" PRIu64 " search steps, %.1f s)\n",
                   lr.partitions, lr.steps, ((double)mono_ns() - t0) / 1e9);
        } else {
            char d[512];
            sy_linz_describe(hist, lr.bad_op, d, sizeof d);
            printf("linearizable: %s on key %s (%zu ops); an operation that could not be "
                   "placed: %s\n",
                   lr.verdict == SY_LINZ_VIOLATION ? "NO" : "unknown (search bound hit)",
                   lr.key, lr.key_ops, d);
            rc = lr.verdict == SY_LINZ_VIOLATION ? 1 : 3;
        }
    }
    if (rc == 0 && decided < o.min_ok) {
        printf("too few decided operations: %" PRIu64 " < %" PRIu64 "\n", decided, o.min_ok);
        rc = 1;
    }
    free(ws);
    free(th);
    sy_linz_free(hist);
    return rc;
}
