/* Engine-only Raft throughput: 3 engines in one process, messages handed
 * from one engine's ready straight into the others' step, every ready
 * "persisted" by advancing at once. No crypto, no network, no storage: this
 * measures the protocol's own cost per committed request (batching,
 * replication bookkeeping, sy_batch_encode, copying entries).
 *
 * usage: bench_raft [seconds (default 3)] [requests per round (default 4096)]
 * prints committed requests/s and entries/s at the leader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cft/raft/raft.h"
#include "crypto/sy_err.h"

#define N 3
#define REQ_BYTES 100

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    void *e[N];
    uint64_t t;              /* simulated ms */
    uint64_t committed_reqs, committed_entries;
} bench;

/* One ready/advance cycle of node i, delivering its messages to the others. */
static void cycle(bench *b, uint32_t i)
{
    sy_ready rd;
    sy_raft_ops.ready(b->e[i], &rd);
    for (size_t k = 0; k < rd.n_msgs; k++) {
        sy_input in;
        memset(&in, 0, sizeof in);
        in.kind = SY_IN_MSG;
        in.now_ms = b->t;
        in.u.msg.from = i;
        in.u.msg.msg = &rd.msgs[k].msg;
        if (rd.msgs[k].to < N)
            sy_raft_ops.step(b->e[rd.msgs[k].to], &in);
    }
    {
        sy_engine_status st;
        sy_raft_ops.status(b->e[i], &st);
        if (st.role == SY_ROLE_LEADER) {
            for (size_t k = 0; k < rd.n_committed; k++) {
                const sy_entry *en = &rd.committed[k].entry;
                if (en->type != SY_ENTRY_NORMAL)
                    continue;
                sy_bytes *reqs = NULL;
                uint32_t n = 0;
                if (sy_batch_decode(en->data.p, en->data.len, &reqs, &n) == SY_OK) {
                    b->committed_reqs += n;
                    free(reqs);
                }
                b->committed_entries++;
            }
        }
    }
    sy_raft_ops.advance(b->e[i], b->t);
}

static uint32_t leader_of(bench *b)
{
    for (uint32_t i = 0; i < N; i++) {
        sy_engine_status st;
        sy_raft_ops.status(b->e[i], &st);
        if (st.role == SY_ROLE_LEADER)
            return i;
    }
    return SY_NO_NODE;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    uint32_t per_round = argc > 2 ? (uint32_t)atoi(argv[2]) : 4096;
    bench b;
    memset(&b, 0, sizeof b);
    for (uint32_t i = 0; i < N; i++) {
        sy_engine_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.self = i;
        cfg.n = N;
        cfg.f = 1;
        strcpy(cfg.cluster_id, "bench");
        cfg.heartbeat_ms = 50;
        cfg.election_min_ms = 500;
        cfg.election_max_ms = 1000;
        cfg.batch_max = 512;
        cfg.batch_bytes_max = 4u * 1024u * 1024u;
        cfg.max_inflight = 64;
        cfg.max_pending = 1u << 20;
        cfg.prevote = true;
        cfg.check_quorum = true;
        cfg.rng_seed = 42 + i;
        if (sy_raft_ops.create(&cfg, NULL, &b.e[i]) != SY_OK) {
            fprintf(stderr, "bench_raft: engine create failed\n");
            return 1;
        }
    }
    /* elect a leader in simulated time */
    uint32_t l = SY_NO_NODE;
    for (int ms = 0; ms < 10000 && l == SY_NO_NODE; ms++) {
        b.t++;
        for (uint32_t i = 0; i < N; i++) {
            uint64_t d = sy_raft_ops.next_deadline(b.e[i]);
            if (d && d <= b.t) {
                sy_input in;
                memset(&in, 0, sizeof in);
                in.kind = SY_IN_TICK;
                in.now_ms = b.t;
                sy_raft_ops.step(b.e[i], &in);
            }
        }
        for (int r = 0; r < 4; r++)
            for (uint32_t i = 0; i < N; i++)
                cycle(&b, i);
        l = leader_of(&b);
    }
    if (l == SY_NO_NODE) {
        fprintf(stderr, "bench_raft: no leader elected\n");
        return 1;
    }
    uint8_t raw[REQ_BYTES];
    memset(raw, 'x', sizeof raw);
    sy_client_req req;
    memset(&req, 0, sizeof req);
    req.client_id = SY_CLIENT_ID_BASE;
    req.op = SY_OP_PUT;
    uint64_t submitted = 0;
    b.committed_reqs = b.committed_entries = 0;
    double start = now_s(), end = start;
    uint64_t rounds = 0;
    while ((end = now_s()) - start < secs) {
        for (uint32_t k = 0; k < per_round; k++) {
            sy_input in;
            memset(&in, 0, sizeof in);
            in.kind = SY_IN_REQUEST;
            in.now_ms = b.t;
            req.req_no = ++submitted;
            in.u.request.req = &req;
            in.u.request.raw = raw;
            in.u.request.raw_len = sizeof raw;
            sy_raft_ops.step(b.e[l], &in);
        }
        /* leader, followers, leader: append, ack, commit */
        cycle(&b, l);
        for (uint32_t i = 0; i < N; i++)
            if (i != l)
                cycle(&b, i);
        rounds++;
        if (rounds % 64 == 0) {   /* keep simulated time moving: heartbeats */
            b.t++;
            for (uint32_t i = 0; i < N; i++) {
                sy_input in;
                memset(&in, 0, sizeof in);
                in.kind = SY_IN_TICK;
                in.now_ms = b.t;
                sy_raft_ops.step(b.e[i], &in);
            }
        }
    }
    /* drain */
    for (int r = 0; r < 4; r++)
        for (uint32_t i = 0; i < N; i++)
            cycle(&b, i);
    end = now_s();
    sy_engine_status st;
    sy_raft_ops.status(b.e[l], &st);
    double el = end - start;
    printf("bench_raft: nodes=%d leader=%u rounds=%llu requests/round=%u\n", N, l,
           (unsigned long long)rounds, per_round);
    printf("bench_raft: submitted=%llu committed=%llu entries=%llu in %.2fs\n",
           (unsigned long long)submitted, (unsigned long long)b.committed_reqs,
           (unsigned long long)b.committed_entries, el);
    printf("bench_raft: %.0f requests/s committed, %.0f entries/s (term %llu, commit %llu)\n",
           (double)b.committed_reqs / el, (double)b.committed_entries / el,
           (unsigned long long)st.term, (unsigned long long)st.commit_index);
    for (uint32_t i = 0; i < N; i++)
        sy_raft_ops.destroy(b.e[i]);
    return b.committed_reqs > 0 ? 0 : 1;
}
