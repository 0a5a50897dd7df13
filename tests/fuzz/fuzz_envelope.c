/* libFuzzer target for the envelope decoder: any bytes, never a crash, never
 * an out-of-bounds read; a frame that decodes must re-encode to a body that
 * decodes again. Signatures are checked with the cheap scheme so the fuzzer
 * can also explore bodies (a fixed key whose signature the fuzzer cannot
 * forge would stop it at the signature check). */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "core/envelope.h"
#include "crypto/sy_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const sy_pubkey *any_key(void *ctx, uint32_t id)
{
    static const sy_pubkey k; /* read-only */
    (void)ctx;
    return (id < 8 || (id >= SY_CLIENT_ID_BASE && id < SY_CLIENT_ID_BASE + 8)) ? &k : NULL;
}

static bool accept_all(void *ctx, const sy_pubkey *pk, const void *m, size_t l, const sy_sig *s)
{
    (void)ctx; (void)pk; (void)m; (void)l;
    return s->b[0] != 0xff; /* both outcomes reachable */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sy_directory dir = {any_key, NULL};
    sy_verifier v = {accept_all, NULL};
    /* batch_ok: the client's decoder, so batch proofs are explored too */
    sy_env_opts o = {.cluster_id = "fuzz", .dir = &dir, .verifier = &v, .max_size = 1 << 20,
                     .batch_ok = true};
    sy_env e;
    const char *why = NULL;
    if (sy_env_decode(&o, data, size, &e, &why) == SY_OK) {
        sy_buf b;
        sy_buf_init(&b);
        if (sy_msg_encode_body(&e.msg, &b) == SY_OK) {
            sy_msg m2;
            if (sy_msg_decode_body(e.type, b.p, b.len, &m2) != SY_OK)
                __builtin_trap();
            sy_msg_free(&m2);
        }
        sy_buf_free(&b);
        sy_env_free(&e);
    }
    /* the batch decoder sees untrusted bytes inside PBFT pre-prepares */
    sy_bytes *reqs = NULL;
    uint32_t n = 0;
    if (sy_batch_decode(data, size, &reqs, &n) == SY_OK)
        free(reqs);
    return 0;
}
