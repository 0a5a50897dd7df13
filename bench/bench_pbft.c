/* PBFT engine-only throughput: n = 4 replicas in one process (the unit-test
 * harness: real envelopes through the real codec, no network, no disk),
 * committed client requests per second, once with the cheap simulated
 * signature scheme and once with real Ed25519, with the time spent signing
 * and verifying broken out to show where the time goes.
 *
 * usage: bench_pbft [requests] [batch_max]     (defaults 20000, 64) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "tests/unit/test_pbft_harness.h"

typedef struct {
    sy_verifier inner;
    sy_signer inner_sg[H_MAX + H_CLIENTS];
    uint64_t n_verify, n_sign;
    double t_verify, t_sign;
} counters;

static counters C;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool counting_verify(void *ctx, const sy_pubkey *pk, const void *msg, size_t len,
                            const sy_sig *sig)
{
    (void)ctx;
    double t = now_s();
    bool ok = sy_verify(&C.inner, pk, msg, len, sig);
    C.t_verify += now_s() - t;
    C.n_verify++;
    return ok;
}

static void counting_sign(void *ctx, const void *msg, size_t len, sy_sig *out)
{
    const sy_signer *inner = ctx;
    double t = now_s();
    sy_sign(inner, msg, len, out);
    C.t_sign += now_s() - t;
    C.n_sign++;
}

static uint32_t batch_max = 64;
static void tweak(uint32_t node, sy_engine_cfg *c)
{
    (void)node;
    c->batch_max = batch_max;
    c->batch_delay_ms = 1;   /* a partial batch waits 1 ms for company */
    c->checkpoint_interval = 128;
    c->max_pending = 1u << 20;
}

static void run(bool ed25519, uint32_t requests)
{
    harness *h = h_new(4, 1, ed25519, 128, tweak);
    memset(&C, 0, sizeof C);
    C.inner = h->ver;
    h->ver.verify = counting_verify;
    for (uint32_t i = 0; i < H_MAX + H_CLIENTS; i++) {
        C.inner_sg[i] = h->sg[i];
        h->sg[i].sign = counting_sign;
        h->sg[i].ctx = &C.inner_sg[i];
    }
    /* pre-sign the requests: client cost is not the replicas' cost */
    uint8_t **raw = calloc(requests, sizeof *raw);
    size_t *len = calloc(requests, sizeof *len);
    for (uint32_t r = 0; r < requests; r++)
        h_make_request(h, r % H_CLIENTS, &raw[r], &len[r]);
    C.n_sign = C.n_verify = 0;
    C.t_sign = C.t_verify = 0;
    double t0 = now_s();
    for (uint32_t r = 0; r < requests; r += batch_max) {
        for (uint32_t k = r; k < r + batch_max && k < requests; k++)
            h_submit_raw(h, raw[k], len[k], 1u);   /* to the primary */
        h_run(h);
        h_tick(h, 1);
    }
    double el = now_s() - t0;
    uint64_t done = h->nreq[3];
    printf("%-8s n=4 batch_max=%u: %llu requests committed in %.3f s = %.0f req/s "
           "(violations %llu)\n",
           ed25519 ? "ed25519" : "simsig", batch_max, (unsigned long long)done, el,
           (double)done / el, (unsigned long long)h->violations);
    printf("         sign %llu x = %.3f s (%.0f%%), verify %llu x = %.3f s (%.0f%%), "
           "rest (codec, hashing, engine, harness) %.3f s\n",
           (unsigned long long)C.n_sign, C.t_sign, 100 * C.t_sign / el,
           (unsigned long long)C.n_verify, C.t_verify, 100 * C.t_verify / el,
           el - C.t_sign - C.t_verify);
    printf("         per request: %.2f signs, %.2f verifies\n",
           (double)C.n_sign / (double)(done ? done : 1),
           (double)C.n_verify / (double)(done ? done : 1));
    for (uint32_t r = 0; r < requests; r++)
        free(raw[r]);
    free(raw);
    free(len);
    h_free(h);
}

int main(int argc, char **argv)
{
    uint32_t requests = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 20000;
    if (argc > 2)
        batch_max = (uint32_t)strtoul(argv[2], NULL, 10);
    if (!requests || !batch_max || batch_max > SY_MAX_BATCH) {
        fprintf(stderr, "usage: bench_pbft [requests] [batch_max (1..%u)]\n", SY_MAX_BATCH);
        return 2;
    }
    run(false, requests);
    run(true, requests);
    return 0;
}
