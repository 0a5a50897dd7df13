/* Engine-only Multi-Paxos throughput: 3 engines in one process, messages
 * handed over as structs (no codec, no storage, no crypto: signer NULL).
 * Prints committed client requests per second at the leader and slots per
 * second. Target: >= 200,000 requests/s.
 *
 * usage: bench_paxos [seconds (default 2)] [requests per round (default 4096)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cft/paxos/paxos.h"
#include "core/mp.h"
#include "crypto/sy_err.h"

#define N 3
#define REQ_BYTES 128

typedef struct {
    void *e[N];
    uint64_t now;
    uint64_t committed_reqs, committed_slots;
    bool pending[N];
} bench;

static const sy_engine_ops *ops = &sy_paxos_ops;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t batch_count(const sy_entry *e)
{
    sy_mp_reader r;
    uint32_t n = 0;
    sy_mp_reader_init(&r, e->data.p, e->data.len);
    return sy_mp_array(&r, &n) == SY_OK ? n : 0;
}

/* One host cycle of node i: messages go straight into their targets. */
static void cycle(bench *b, uint32_t i)
{
    sy_ready rd;
    ops->ready(b->e[i], &rd);
    for (size_t k = 0; k < rd.n_msgs; k++) {
        sy_input in = { .kind = SY_IN_MSG, .now_ms = b->now };
        in.u.msg.from = i;
        in.u.msg.msg = &rd.msgs[k].msg;
        if (ops->step(b->e[rd.msgs[k].to], &in) == SY_EFATAL) {
            fprintf(stderr, "bench_paxos: node %u stopped on an impossible state\n",
                    rd.msgs[k].to);
            exit(1);
        }
        b->pending[rd.msgs[k].to] = true;
    }
    if (i == 0) {
        for (size_t k = 0; k < rd.n_committed; k++)
            if (rd.committed[k].entry.type == SY_ENTRY_NORMAL) {
                b->committed_reqs += batch_count(&rd.committed[k].entry);
                b->committed_slots++;
            }
    }
    ops->advance(b->e[i], b->now);
    b->pending[i] = false;
}

static void pump(bench *b)
{
    bool any = true;
    while (any) {
        any = false;
        for (uint32_t i = 0; i < N; i++)
            if (b->pending[i]) {
                cycle(b, i);
                any = true;
            }
    }
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    uint32_t per_round = argc > 2 ? (uint32_t)atoi(argv[2]) : 4096;
    if (secs <= 0 || per_round == 0) {
        fprintf(stderr, "usage: bench_paxos [seconds] [requests per round]\n");
        return 2;
    }
    bench b;
    memset(&b, 0, sizeof b);
    b.now = 1000;
    for (uint32_t i = 0; i < N; i++) {
        sy_engine_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.self = i;
        cfg.n = N;
        cfg.f = 1;
        strcpy(cfg.cluster_id, "bench");
        cfg.heartbeat_ms = 100;
        cfg.election_min_ms = 1000;
        cfg.election_max_ms = 2000;
        cfg.batch_max = 512;
        cfg.max_inflight = 64;
        cfg.max_pending = 1u << 20;
        cfg.rng_seed = 7 + i;
        if (ops->create(&cfg, NULL, &b.e[i]) != SY_OK) {
            fprintf(stderr, "bench_paxos: cannot create engine %u\n", i);
            return 1;
        }
        sy_input tick = { .kind = SY_IN_TICK, .now_ms = b.now };
        ops->step(b.e[i], &tick);
    }
    /* node 0's timer fires first: it runs phase 1 and leads */
    b.now += 5000;
    sy_input tick = { .kind = SY_IN_TICK, .now_ms = b.now };
    ops->step(b.e[0], &tick);
    b.pending[0] = true;
    pump(&b);
    sy_engine_status st;
    ops->status(b.e[0], &st);
    if (st.role != SY_ROLE_LEADER) {
        fprintf(stderr, "bench_paxos: node 0 did not become leader\n");
        return 1;
    }

    uint8_t raw[REQ_BYTES];
    memset(raw, 'x', sizeof raw);
    sy_client_req req;
    memset(&req, 0, sizeof req);
    req.client_id = SY_CLIENT_ID_BASE;
    req.op = SY_OP_PUT;
    uint64_t submitted = 0;
    double t0 = now_s(), t1 = t0;
    uint64_t rounds = 0;
    while (t1 - t0 < secs) {
        for (uint32_t k = 0; k < per_round; k++) {
            req.req_no = ++submitted;
            memcpy(raw, &req.req_no, sizeof req.req_no);  /* distinct bodies */
            sy_input in = { .kind = SY_IN_REQUEST, .now_ms = b.now };
            in.u.request.req = &req;
            in.u.request.raw = raw;
            in.u.request.raw_len = sizeof raw;
            ops->step(b.e[0], &in);
        }
        b.pending[0] = true;
        pump(&b);
        if ((++rounds & 15) == 0)
            t1 = now_s();
    }
    /* drain what is still in flight so the count is of finished work */
    for (int k = 0; k < 64 && b.committed_reqs < submitted; k++) {
        b.pending[0] = true;
        pump(&b);
    }
    t1 = now_s();
    double el = t1 - t0;
    printf("bench_paxos: 3 nodes, %u-byte requests, batch_max 512, max_inflight 64\n", REQ_BYTES);
    printf("committed %llu requests in %llu slots in %.2f s\n",
           (unsigned long long)b.committed_reqs, (unsigned long long)b.committed_slots, el);
    printf("%.0f requests/s  %.0f slots/s  (target >= 200000 requests/s)\n",
           b.committed_reqs / el, b.committed_slots / el);
    for (uint32_t i = 0; i < N; i++)
        ops->destroy(b.e[i]);
    return b.committed_reqs == submitted ? 0 : 1;
}
