/* Envelope codec cost over the crypto floor. Prints, per second on one core:
 * raw Ed25519 sign and verify (libsodium), envelope encode+sign and
 * decode+verify of a typical client request (16-byte key, 100-byte value),
 * and the ratio envelope/raw. Target: overhead at most 10% of the raw rate.
 * Usage: bench_envelope [seconds-per-measurement, default 1] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/envelope.h"
#include "crypto/sy_err.h"

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

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    uint8_t seed[32] = {7};
    sy_seckey *sk;
    if (sy_seckey_from_seed(seed, &sk))
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
    sy_env_encode("bench", SY_CLIENT_ID_BASE, &m, &signer, &frame);
    sy_env tmp;
    sy_directory dir = {key_of, NULL};
    sy_env_opts o = {.cluster_id = "bench", .dir = &dir, .verifier = &ver};
    const char *why;
    if (sy_env_decode(&o, frame.p, frame.len, &tmp, &why)) {
        fprintf(stderr, "bench_envelope: decode failed: %s\n", why);
        return 1;
    }
    /* raw operations on the same bytes the envelope signs */
    const uint8_t *msg = tmp.signed_part;
    size_t mlen = tmp.signed_len;
    sy_sig sig = tmp.sig;

    double t0, t;
    long n;
    volatile int sink = 0;

    for (n = 0, t0 = now_s(); (t = now_s()) - t0 < secs; n++)
        sy_ed25519_sign(sk, msg, mlen, &sig);
    double raw_sign = (double)n / (t - t0);
    for (n = 0, t0 = now_s(); (t = now_s()) - t0 < secs; n++)
        sink += sy_ed25519_verify(&g_pk, msg, mlen, &sig);
    double raw_verify = (double)n / (t - t0);

    sy_buf out;
    sy_buf_init(&out);
    for (n = 0, t0 = now_s(); (t = now_s()) - t0 < secs; n++) {
        sy_buf_reset(&out);
        m.u.req.req_no = (uint64_t)n + 1;
        sy_env_encode("bench", SY_CLIENT_ID_BASE, &m, &signer, &out);
    }
    double env_sign = (double)n / (t - t0);
    for (n = 0, t0 = now_s(); (t = now_s()) - t0 < secs; n++) {
        sy_env e;
        sink += sy_env_decode(&o, frame.p, frame.len, &e, &why);
        sy_env_free(&e);
    }
    double env_verify = (double)n / (t - t0);

    printf("frame size: %zu bytes (16-byte key, 100-byte value)\n", frame.len);
    printf("%-28s %12s %12s %8s\n", "operation", "raw/s", "envelope/s", "ratio");
    printf("%-28s %12.0f %12.0f %7.1f%%\n", "sign  (encode+sign)", raw_sign, env_sign,
           100.0 * env_sign / raw_sign);
    printf("%-28s %12.0f %12.0f %7.1f%%\n", "verify (decode+verify)", raw_verify, env_verify,
           100.0 * env_verify / raw_verify);
    printf("target: envelope >= 90%% of raw (overhead <= 10%%)\n");
    sy_env_free(&tmp);
    sy_buf_free(&out);
    sy_buf_free(&frame);
    sy_seckey_free(sk);
    return sink < 0;
}
