/* The signature floor: how many requests per second the Ed25519 work alone
 * would allow, per protocol, measured on this machine now. bench/run.sh
 * prints it beside each cluster run (the floor is a ceiling on throughput:
 * a node cannot go faster than its signing and verifying allows).
 *
 * It times raw libsodium sign and verify on the bytes a client request
 * envelope signs (16-byte key, 100-byte value), then, for each case
 * PROTO:N:B (protocol, nodes, requests per batch), counts the signatures
 * the code as written needs per client request, and prints
 *   node_*    on the busiest node (Raft/Paxos leader; any PBFT replica),
 *             floor = 1 / (signs/sign_rate + verifies/verify_rate), one core;
 *   machine_* summed over every node and the client processes on one
 *             machine (a loopback cluster shares its cores), floor scaled
 *             by --cores.
 * The counts (bench/README.md explains each term and where in the code it
 * comes from), per client request with batch size B:
 *   raft/paxos leader: verify 1 (client request) + (n-1)/B (acks);
 *                      sign   1/B (replies: one batch signature for the
 *                      replies of a loop iteration, core/envelope.h)
 *                      + (n-1)/B (appends/accepts, one
 *                      envelope per peer) + 1/B (commit evidence)
 *   raft/paxos follower: verify 1/B (append); sign 2/B (ack, evidence)
 *   pbft replica:      verify 1 (client request: from the client at the
 *                      primary and f backups, inside the pre-prepare at
 *                      the others) +
 *                      (2(n-1) + 4f)/B (every pre-prepare, prepare and
 *                      commit envelope; statement signatures only up to
 *                      the quorum: the pre-prepare's and 2f-1 prepares at
 *                      a backup, 2f at the primary, 2f commits);
 *                      sign   1/B (replies, batch-signed) + 4/B
 *                      (pre-prepare or prepare, and
 *                      commit: a statement and one envelope each -- a
 *                      broadcast is signed once for all peers)
 *   pbft forwarding:   with --forward, every backup also relays every
 *                      client request to the primary in a FORWARD envelope
 *                      (what the code did before clients sent to the
 *                      primary themselves; backups now relay only
 *                      retransmissions): backups sign 1 more, the primary
 *                      verifies n-1 more.
 *   client:            sign 1; verify 1/B per replying node (raft/paxos
 *                      1 node, pbft f+1): synodctl bench's clients are
 *                      threads of one process and share the library's
 *                      cache of verified batch signatures. Clients in
 *                      separate processes verify every reply (1, f+1);
 *                      --no-shared-client counts that.
 * Heartbeats, checkpoints and retransmissions are left out, so the real
 * count is a little higher and the floor a little optimistic.
 *
 * usage: bench_sigfloor [--seconds S] [--rates SIGN VERIFY] [--cores C]
 *                       [--forward] [--no-shared-client] [PROTO:N:B ...]
 * prints "rates sign_per_s=.. verify_per_s=.. cores=.." then one "floor ..."
 * line per case. --rates skips the measurement (reuse earlier numbers). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/envelope.h"
#include "crypto/sy_err.h"

#define SF_MAX_CASES 64

typedef struct {
    double sign, verify;     /* per client request */
} sf_cost;

typedef struct {
    char proto[16];
    unsigned n;
    double batch;
} sf_case;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static sy_pubkey g_pk;
static const sy_pubkey *key_of(void *ctx, uint32_t id)
{
    (void)ctx;
    return id == SY_CLIENT_ID_BASE ? &g_pk : NULL;
}

/* Raw Ed25519 sign and verify per second on one core, over the signed part
 * of a typical client request envelope. */
static int measure(double secs, double *sign_rate, double *verify_rate)
{
    uint8_t seed[32] = {42};
    sy_seckey *sk;
    if (sy_crypto_init() || sy_seckey_from_seed(seed, &sk))
        return 1;
    sy_seckey_public(sk, &g_pk);
    sy_signer signer;
    sy_verifier ver;
    sy_signer_ed25519(&signer, sk);
    sy_verifier_ed25519(&ver);
    uint8_t key[16], val[100];
    memset(key, 'k', sizeof key);
    memset(val, 'v', sizeof val);
    sy_msg m = {.type = SY_MSG_CLIENT_REQ};
    m.u.req = (sy_client_req){.client_id = SY_CLIENT_ID_BASE, .req_no = 1, .op = SY_OP_PUT,
                              .key = {key, sizeof key}, .val = {val, sizeof val}};
    sy_buf frame;
    sy_buf_init(&frame);
    sy_env env;
    sy_directory dir = {key_of, NULL};
    sy_env_opts o = {.cluster_id = "bench", .dir = &dir, .verifier = &ver};
    const char *why = NULL;
    int rc = 1;
    if (sy_env_encode("bench", SY_CLIENT_ID_BASE, &m, &signer, &frame) != SY_OK)
        goto out_frame;
    if (sy_env_decode(&o, frame.p, frame.len, &env, &why) != SY_OK) {
        fprintf(stderr, "bench_sigfloor: decode failed: %s\n", why ? why : "?");
        goto out_frame;
    }
    sy_sig sig = env.sig;
    long n;
    double t0, t;
    int bad = 0;
    for (n = 0, t0 = now_s(); (t = now_s()) - t0 < secs; n++)
        sy_ed25519_sign(sk, env.signed_part, env.signed_len, &sig);
    *sign_rate = (double)n / (t - t0);
    for (n = 0, t0 = now_s(); (t = now_s()) - t0 < secs; n++)
        bad += !sy_ed25519_verify(&g_pk, env.signed_part, env.signed_len, &sig);
    *verify_rate = (double)n / (t - t0);
    rc = bad != 0;
    sy_env_free(&env);
out_frame:
    sy_buf_free(&frame);
    sy_seckey_free(sk);
    return rc;
}

static double cost_s(const sf_cost *c, double sign_rate, double verify_rate)
{
    return c->sign / sign_rate + c->verify / verify_rate;
}

/* Signatures per client request on the busiest node and on the whole
 * machine (all nodes and the client). Returns 0, or 1 for an unknown
 * protocol. */
static int count(const sf_case *c, bool forward, bool shared_client, double sign_rate,
                 double verify_rate,
                 sf_cost *node, sf_cost *machine)
{
    double n = c->n, b = c->batch < 1 ? 1 : c->batch;
    double cli_verify = shared_client ? 1 / b : 1; /* per replying node */
    if (!strcmp(c->proto, "raft") || !strcmp(c->proto, "paxos")) {
        node->verify = 1 + (n - 1) / b;
        node->sign = 1 / b + (n - 1) / b + 1 / b;
        double fol_verify = 1 / b, fol_sign = 2 / b;
        machine->verify = node->verify + (n - 1) * fol_verify + cli_verify;
        machine->sign = node->sign + (n - 1) * fol_sign + 1;
        return 0;
    }
    if (!strcmp(c->proto, "pbft")) {
        double f = (double)((c->n - 1) / 3), fw = forward ? 1 : 0;
        double votes = (2 * (n - 1) + 4 * f) / b;
        sf_cost prim = {.sign = 1 / b + 4 / b, .verify = 1 + fw * (n - 1) + votes};
        sf_cost back = {.sign = 1 / b + fw + 4 / b, .verify = 1 + votes};
        *node = cost_s(&prim, sign_rate, verify_rate) >= cost_s(&back, sign_rate, verify_rate)
                    ? prim : back;
        machine->verify = prim.verify + (n - 1) * back.verify + (f + 1) * cli_verify;
        machine->sign = prim.sign + (n - 1) * back.sign + 1;
        return 0;
    }
    return 1;
}

static double floor_of(const sf_cost *c, double sign_rate, double verify_rate, double cores)
{
    double secs = cost_s(c, sign_rate, verify_rate);
    return secs > 0 ? cores / secs : 0;
}

static int parse_case(const char *s, sf_case *c)
{
    char proto[16];
    unsigned n;
    double b;
    if (sscanf(s, "%15[a-z]:%u:%lf", proto, &n, &b) != 3 || n < 1 || b <= 0)
        return 1;
    snprintf(c->proto, sizeof c->proto, "%s", proto);
    c->n = n;
    c->batch = b;
    return 0;
}

int main(int argc, char **argv)
{
    double secs = 1.0, sign_rate = 0, verify_rate = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    sf_case cases[SF_MAX_CASES];
    int n_cases = 0;
    bool forward = false, shared_client = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--rates") && i + 2 < argc) {
            sign_rate = atof(argv[++i]);
            verify_rate = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--cores") && i + 1 < argc) {
            cores = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--forward")) {
            forward = true;
        } else if (!strcmp(argv[i], "--no-shared-client")) {
            shared_client = false;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_sigfloor [--seconds S] [--rates SIGN VERIFY] [--cores C] "
                   "[--forward] [--no-shared-client] [PROTO:N:BATCH ...]\n");
            return 0;
        } else if (n_cases < SF_MAX_CASES && parse_case(argv[i], &cases[n_cases]) == 0) {
            n_cases++;
        } else {
            fprintf(stderr, "bench_sigfloor: bad argument '%s' (want PROTO:N:BATCH, e.g. "
                            "raft:3:16, or --help)\n", argv[i]);
            return 2;
        }
    }
    if (secs <= 0 || cores < 1) {
        fprintf(stderr, "bench_sigfloor: --seconds and --cores must be positive\n");
        return 2;
    }
    if (sign_rate <= 0 || verify_rate <= 0) {
        if (measure(secs, &sign_rate, &verify_rate)) {
            fprintf(stderr, "bench_sigfloor: measuring Ed25519 failed\n");
            return 1;
        }
    }
    printf("rates sign_per_s=%.0f verify_per_s=%.0f cores=%ld\n", sign_rate, verify_rate, cores);
    for (int i = 0; i < n_cases; i++) {
        sf_cost node, mach;
        if (count(&cases[i], forward, shared_client, sign_rate, verify_rate, &node, &mach)) {
            fprintf(stderr, "bench_sigfloor: unknown protocol '%s' (raft, paxos, pbft)\n",
                    cases[i].proto);
            return 2;
        }
        printf("floor proto=%s n=%u batch=%.2f node_sign=%.3f node_verify=%.3f node_floor=%.0f "
               "machine_sign=%.3f machine_verify=%.3f machine_floor=%.0f\n",
               cases[i].proto, cases[i].n, cases[i].batch, node.sign, node.verify,
               floor_of(&node, sign_rate, verify_rate, 1), mach.sign, mach.verify,
               floor_of(&mach, sign_rate, verify_rate, (double)cores));
    }
    return 0;
}
